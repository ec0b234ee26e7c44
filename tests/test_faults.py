"""Faults a hostile user (or a bad day) brings: damaged stores, read-only and full file systems, planted
links, two sweeps in one folder. Each must end with a message and an exit code, never a traceback or a
"done" sweep whose results are wrong."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from scalebench.cli import main
from scalebench.errors import ConfigError, StoreError
from scalebench.store import ResultStore, load_results
from scalebench.sweep.runner import run_sweep

CLI = [sys.executable, "-m", "scalebench.cli"]


def _tiny_text_corpus(tmp_path: Path) -> str:
    """A small text corpus, quick to build, for sweeps refused before they train."""
    src = tmp_path / "corpus"
    src.mkdir(exist_ok=True)
    for i in range(40):
        (src / f"f{i}.txt").write_text(f"file {i}: " + "the quick brown fox jumps over the lazy dog. " * 40)
    return f'\n[data]\nsource = "{src}"\n'


def _can_mount() -> bool:
    if shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "-rm", "true"], capture_output=True).returncode == 0


needs_mount = pytest.mark.skipif(not _can_mount(), reason="needs `unshare -rm` (user and mount namespaces)")


def in_namespace(script: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run a shell script in a private mount namespace, where it may mount read-only or tiny folders that
    bind even root (permission bits do not), and that vanish with the process."""
    return subprocess.run(["unshare", "-rm", "sh", "-ec", script], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


def _sh(argv: list) -> str:
    return " ".join(f"'{a}'" for a in argv)


# --- item 2: one folder, one sweep --------------------------------------------------------------------

def test_a_folder_holding_another_sweep_is_refused_before_anything_starts(write_sweep, tmp_path, capsys):
    out = tmp_path / "sweep"
    with ResultStore(out, create=True) as store:
        store.set_meta(sweep_name="someone-else", spec={"name": "someone-else"})
    spec = write_sweep(name="mine", extra=_tiny_text_corpus(tmp_path))
    with pytest.raises(ConfigError, match="holds sweep 'someone-else'.*one folder holds one sweep"):
        run_sweep(spec, out)
    assert main(["run", str(spec), "--out", str(out), "--no-progress"]) == 2
    assert "--out" in capsys.readouterr().err
    with ResultStore(out) as store:
        assert store.runs() == []  # nothing was added to the other sweep


@pytest.mark.slow
def test_the_same_sweep_may_be_extended_but_not_joined(write_sweep, tmp_path):
    import re

    out = tmp_path / "sweep"
    spec = write_sweep(name="ladder", tokens="[8192]")
    # item 13 too: with stdout a pipe, one line per finished run (id, loss, wall time, what is left)
    res = subprocess.run(CLI + ["run", str(spec), "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith("[")]
    assert len(lines) == 2, res.stdout
    assert re.fullmatch(r"\[1/2\] gpt-\S+ done: eval loss \d\.\d{4}, \d+\.\d s; [01] left( \(1 running\))?"
                        r"(, about \d+ s to go)?", lines[0]), lines[0]
    assert re.fullmatch(r"\[2/2\] gpt-\S+ done: eval loss \d\.\d{4}, \d+\.\d s; 0 left", lines[1]), lines[1]
    first = {r["run_id"]: r["finished_at"] for r in ResultStore(out).runs()}
    bigger = write_sweep(name="ladder", tokens="[8192, 12288]")  # same name, one more budget: a resume
    res = subprocess.run(CLI + ["run", str(bigger), "--out", str(out), "--quiet"], capture_output=True, text=True,
                         timeout=600)
    assert res.returncode == 0 and "4 done" in res.stdout, res.stderr
    assert not [ln for ln in res.stdout.splitlines() if ln.startswith("[")]  # --quiet: no per-run lines
    rows = {r["run_id"]: r["finished_at"] for r in ResultStore(out).runs()}
    assert len(rows) == 4 and all(rows[k] == v for k, v in first.items())
    other = write_sweep(name="another", tokens="[8192]")
    with pytest.raises(ConfigError, match="holds sweep 'ladder'"):
        run_sweep(other, out)
    assert len(load_results(out)) == 4


# --- item 7: a damaged store is found before it is written ------------------------------------------------

def _smash_last_page(path: Path) -> None:
    data = bytearray(path.read_bytes())
    page = 4096
    start = (len(data) // page - 1) * page
    data[start + 100 : start + page - 100] = b"Z" * (page - 200)
    path.write_bytes(bytes(data))


def test_a_zero_byte_store_is_reported_not_reused(write_sweep, tmp_path, capsys):
    out = tmp_path / "sweep"
    out.mkdir()
    (out / "scalebench.sqlite").write_bytes(b"")
    spec = write_sweep(extra=_tiny_text_corpus(tmp_path))
    assert main(["run", str(spec), "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "empty (0 bytes)" in err and "scalebench.sqlite.damaged" in err and "Traceback" not in err
    assert (out / "scalebench.sqlite").stat().st_size == 0  # left as found, for the user to look at
    for argv in (["status", str(out)], ["fit", str(out)], ["report", str(out)]):
        assert main(argv) == 2, argv
        assert "empty (0 bytes)" in capsys.readouterr().err


def test_page_level_damage_stops_a_sweep_with_a_message(write_sweep, tmp_path, capsys):
    from scalebench.report.synthetic import make_synthetic_sweep

    out = make_synthetic_sweep(tmp_path / "sweep", n_sizes=3, n_budgets=2)
    _smash_last_page(out / "scalebench.sqlite")
    with pytest.raises(StoreError, match="damaged"):
        ResultStore(out, check=True)
    spec = write_sweep(name="synthetic", extra=_tiny_text_corpus(tmp_path))
    assert main(["run", str(spec), "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "not a readable scalebench store: damaged" in err and "Traceback" not in err


# --- items 5 and 8: read-only folders, files in the way, missing folders --------------------------------

@needs_mount
def test_a_finished_sweep_on_a_read_only_mount_can_be_read(tmp_path):
    from scalebench.report.synthetic import make_synthetic_sweep

    folder = make_synthetic_sweep(tmp_path / "archive", n_sizes=3, n_budgets=2)
    before = sorted(p.name for p in folder.iterdir())
    out = tmp_path / "out"
    out.mkdir()
    steps = [["status", folder], ["fit", folder, "--law", "chinchilla"], ["export", folder, "--out", out / "r.csv"],
             ["report", folder, "--out", out / "r.html", "--bootstrap", "0"]]
    script = f"mount --bind '{folder}' '{folder}'; mount -o remount,ro,bind '{folder}' '{folder}'\n"
    script += "".join(f"{_sh(CLI + a)} > /dev/null || echo \"{a[0]} exited $?\" >&2\n" for a in steps)
    script += f"{_sh(CLI + ['report', folder, '--bootstrap', '0'])} || echo \"default-out exited $?\" >&2\n"
    res = in_namespace(script)
    assert res.returncode == 0, res.stderr
    lines = [ln for ln in res.stderr.splitlines() if "exited" in ln]
    assert lines == ["default-out exited 2"], res.stderr  # the four reads work; writing the page there cannot
    assert "Read-only file system" in res.stderr and "Traceback" not in res.stderr
    assert (out / "r.csv").is_file() and (out / "r.html").is_file()
    assert sorted(p.name for p in folder.iterdir()) == before


def test_out_naming_a_file_is_bad_input(write_sweep, tmp_path, capsys):
    target = tmp_path / "results.txt"
    target.write_text("my notes")
    spec = write_sweep(extra=_tiny_text_corpus(tmp_path))
    assert main(["run", str(spec), "--out", str(target), "--no-progress"]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    assert target.read_text() == "my notes"
    assert main(["run", str(spec), "--out", str(target / "sub"), "--no-progress"]) == 2
    assert "Traceback" not in capsys.readouterr().err


@needs_mount
def test_run_into_a_read_only_folder_is_bad_input(write_sweep, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    spec = write_sweep(extra=_tiny_text_corpus(tmp_path))
    script = (f"mount --bind '{ro}' '{ro}'; mount -o remount,ro,bind '{ro}' '{ro}'\n"
              f"{_sh(CLI + ['run', spec, '--out', ro / 'sweep', '--no-progress'])} || echo \"exited $?\" >&2\n")
    res = in_namespace(script)
    assert "exited 2" in res.stderr and "Read-only file system" in res.stderr, res.stderr
    assert "Traceback" not in res.stderr


def test_export_into_a_missing_folder_makes_it_and_a_file_in_the_way_is_bad_input(tmp_path, capsys):
    from scalebench.report.synthetic import make_synthetic_sweep

    folder = make_synthetic_sweep(tmp_path / "s", n_sizes=3, n_budgets=2)
    assert main(["export", str(folder), "--out", str(tmp_path / "new" / "r.csv")]) == 0
    assert (tmp_path / "new" / "r.csv").is_file()
    (tmp_path / "file").write_text("x")
    for argv in (["export", str(folder), "--out", str(tmp_path / "file" / "r.csv")],
                 ["report", str(folder), "--out", str(tmp_path / "file" / "r.html"), "--bootstrap", "0"],
                 ["export", str(folder), "--out", str(tmp_path)]):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert "Traceback" not in err and ("not a folder" in err or "is a folder" in err or "must end" in err), err
    assert not list(tmp_path.glob("**/.*.tmp"))


# --- item 11: no writes through planted links ---------------------------------------------------------

def test_a_planted_lock_symlink_is_not_followed(write_sweep, tmp_path, capsys):
    out = tmp_path / "sweep"
    out.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (out / ".lock").symlink_to(victim)
    spec = write_sweep(extra=_tiny_text_corpus(tmp_path))
    assert main(["run", str(spec), "--out", str(out), "--no-progress"]) == 2
    assert "symbolic link" in capsys.readouterr().err
    assert victim.read_text() == "precious"


def test_atomic_writes_refuse_a_planted_temp_link(tmp_path, monkeypatch):
    from scalebench._util import write_text_atomic

    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    monkeypatch.setattr(os, "urandom", lambda n: b"\0" * n)  # the attacker guesses the temp name
    (tmp_path / f".job.json.{os.getpid()}.00000000.tmp").symlink_to(victim)
    with pytest.raises(ConfigError, match="symbolic link|already exists"):
        write_text_atomic(tmp_path / "job.json", "{}", what="job file")
    assert victim.read_text() == "precious" and not (tmp_path / "job.json").exists()


# --- item 1: the corpus cache is checked when used -------------------------------------------------------

def _text_spec(tmp_path: Path):
    from scalebench.config import DataSpec

    src = tmp_path / "texts"
    src.mkdir(exist_ok=True)
    for i in range(30):
        (src / f"f{i}.txt").write_text(f"text number {i}. " * 300)
    return DataSpec(source=str(src), patterns=("*.txt",))


@pytest.mark.parametrize("damage", ["truncate", "empty", "remove-val", "flip", "garbage-meta", "meta-list"])
def test_a_damaged_corpus_cache_is_rebuilt_not_trained_on(tmp_path, damage):
    from scalebench.data import TokenData, prepare_corpus

    spec = _text_spec(tmp_path)
    info = prepare_corpus(spec, 0.2)
    cache = Path(info.path)
    train, val, meta = cache / "train.bin", cache / "val.bin", cache / "meta.json"
    good = train.read_bytes()
    if damage == "truncate":
        train.write_bytes(good[:5000])
    elif damage == "empty":
        train.write_bytes(b"")
    elif damage == "remove-val":
        val.unlink()
    elif damage == "flip":
        train.write_bytes(good[:100] + bytes([good[100] ^ 1]) + good[101:])
    elif damage == "garbage-meta":
        meta.write_text("{not json")
    else:
        meta.write_text("[1, 2, 3]")
    with pytest.warns(UserWarning, match=f"corpus cache {cache}: .*rebuilding it"):
        again = prepare_corpus(spec, 0.2)
    assert again == info and train.read_bytes() == good
    assert len(TokenData(again).train) == info.train_tokens


def test_a_worker_refuses_a_cache_that_shrank_under_it(tmp_path):
    from scalebench.data import TokenData, prepare_corpus

    info = prepare_corpus(_text_spec(tmp_path), 0.2)
    (Path(info.path) / "train.bin").write_bytes(b"x" * 5000)
    with pytest.raises(ConfigError, match="train.bin holds 5,000 bytes, not the .* the sweep recorded"):
        TokenData(info)


@needs_mount
def test_a_full_disk_during_the_corpus_build_leaves_nothing_behind(tmp_path, write_sweep):
    home = tmp_path / "home"
    home.mkdir()
    src = tmp_path / "big"
    src.mkdir()
    for i in range(50):  # ~1 MB of text into a 256 kB file system
        (src / f"f{i}.txt").write_text(f"{i} " + "lorem ipsum dolor sit amet " * 800)
    spec = write_sweep(extra=f'\n[data]\nsource = "{src}"\n')
    script = (f"mount -t tmpfs -o size=256k tmpfs '{home}'\n"
              f"{_sh(CLI + ['run', spec, '--out', tmp_path / 'out'])} || echo \"exited $?\" >&2\n"
              f"echo \"used $(du -sk '{home}' | cut -f1) kB\"; find '{home}' -type f\n")
    res = in_namespace(script, env={"SCALEBENCH_HOME": str(home)})
    assert "exited 1" in res.stderr and "is full" in res.stderr and "SCALEBENCH_HOME" in res.stderr, res.stderr
    assert "Traceback" not in res.stderr
    files = [ln for ln in res.stdout.splitlines() if ln.startswith(str(home))]  # `validate` builds no corpus:
    assert all(f.endswith("/.lock") for f in files), res.stdout  # `run` does; no temp file, no half a train.bin


@needs_mount
def test_an_unwritable_home_names_scalebench_home(tmp_path, write_sweep):
    home = tmp_path / "home"
    home.mkdir()
    spec = write_sweep(extra=_tiny_text_corpus(tmp_path))
    script = (f"mount --bind '{home}' '{home}'; mount -o remount,ro,bind '{home}' '{home}'\n"  # run builds the
              f"{_sh(CLI + ['run', spec, '--out', tmp_path / 'out'])} || echo \"exited $?\" >&2\n")  # corpus
    res = in_namespace(script, env={"SCALEBENCH_HOME": str(home / "sb")})
    assert "exited 2" in res.stderr and "Read-only file system" in res.stderr, res.stderr
    assert "set SCALEBENCH_HOME" in res.stderr and "Traceback" not in res.stderr


# --- item 10: token files and corpus errors checked before anything starts -----------------------------

def test_bin_corpora_are_checked_whole(tmp_path, write_sweep):
    import numpy as np

    from scalebench.config import DataSpec
    from scalebench.data import prepare_corpus

    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    with pytest.raises(ConfigError, match="data.source: token file .*empty.bin' is empty"):
        prepare_corpus(DataSpec(source=str(empty), vocab_size=256), 0.1)
    train, val = tmp_path / "train.bin", tmp_path / "val.bin"
    np.arange(200, dtype=np.uint16).tofile(train)
    np.array([1, 2, 999], dtype=np.uint16).tofile(val)
    with pytest.raises(ConfigError, match="val.bin' holds token id 999, not below vocab_size = 256"):
        prepare_corpus(DataSpec(source=str(train), val_source=str(val), vocab_size=256), 0.1)
    spec = write_sweep(extra=f'\n[data]\nsource = "{tmp_path / "missing-folder"}"\n')
    with pytest.raises(ConfigError, match=f"^{spec}: data.source"):
        run_sweep(spec, tmp_path / "sweep")


def test_a_cache_from_before_checksums_is_checked_by_size_and_stays_readable_by_older_versions(tmp_path):
    import json
    import warnings
    from dataclasses import fields

    from scalebench.data import CorpusInfo, prepare_corpus

    spec = _text_spec(tmp_path)
    info = prepare_corpus(spec, 0.2)
    cache = Path(info.path)
    # meta.json keeps exactly the fields older versions construct CorpusInfo from
    assert set(json.loads((cache / "meta.json").read_text())) == {f.name for f in fields(CorpusInfo)}
    (cache / "checksums.json").unlink()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert prepare_corpus(spec, 0.2) == info  # whole: used as is, its checksums recorded now
    assert (cache / "checksums.json").is_file()
    (cache / "checksums.json").unlink()
    (cache / "val.bin").write_bytes(b"")
    with pytest.warns(UserWarning, match="val.bin holds 0 bytes"):
        prepare_corpus(spec, 0.2)


def test_validate_refuses_sizes_that_cannot_fit_the_device(tmp_path, capsys):
    spec = tmp_path / "huge.toml"
    spec.write_text('name = "huge"\nfamily = "gpt"\n[model]\nshapes = [{n_layer = 2, d_model = 64, n_head = 2}, '
                    '{n_layer = 48, d_model = 8192, n_head = 64}]\n[budget]\ntokens = [8192]\n[train]\n'
                    'batch_tokens = 512\nseq_len = 32\n[devices]\ndevice = "cpu"\n' + _tiny_text_corpus(tmp_path))
    assert main(["validate", str(spec)]) == 2
    err = capsys.readouterr().err
    assert f"{spec}: model: by the estimator's memory model, L48-d8192-h64 needs" in err
    assert "GiB even at 1 sequence per micro-batch" in err and "RAM" in err and "L2-d64" not in err


@pytest.mark.parametrize("text, message", [
    ('name = "{long}"', "name must be at most 100 bytes"),
    ('[devices]\nthreads_per_worker = 100000', "must be at most 1024"),
])
def test_absurd_names_and_thread_counts_are_refused(tmp_path, text, message):
    from scalebench.config import load_sweep

    path = tmp_path / "s.toml"
    body = 'family = "gpt"\n[model]\nsizes = ["debug", "100k"]\n[budget]\ntokens = [8192]\n'
    if text.startswith("name"):
        path.write_text(text.format(long="x" * 300) + "\n" + body)
    else:
        path.write_text('name = "ok"\n' + body + text + "\n")
    with pytest.raises(ConfigError, match=message):
        load_sweep(path)


def test_more_threads_per_worker_than_cores_is_refused_here(write_sweep, tmp_path):
    from scalebench.config import load_sweep
    from scalebench.sweep.planner import plan_runs

    # the template's cpu_workers line takes the extra key too
    spec = write_sweep(workers=f"1\nthreads_per_worker = {os.cpu_count() + 1}", extra=_tiny_text_corpus(tmp_path))
    with pytest.raises(ConfigError, match="threads_per_worker .* more than the .* CPU cores"):
        plan_runs(load_sweep(spec), source=str(spec))


# --- item 6: interruptions are not crashes ---------------------------------------------------------------

_INTERRUPTED_WORKER = (  # the real worker, with a signal landing in the middle of training
    "import sys, scalebench.train as t\n"
    "def stopped(*a, **k):\n    raise KeyboardInterrupt\n"
    "t.train = stopped\n"
    "from scalebench.sweep import worker\n"
    "sys.exit(worker.main([sys.argv[-1]]))\n"
)


@pytest.mark.slow
def test_interruptions_do_not_use_up_crash_retries_and_each_retry_keeps_its_reason(write_sweep, tmp_path):
    from scalebench.store import load_events

    # debug: interrupted twice, then crashes once, then trains; 100k: crashes once, then trains.
    # With max_attempts = 2 both must finish: only the crashes count, one each.
    code = tmp_path / "interrupt.py"
    code.write_text(_INTERRUPTED_WORKER)
    fake = tmp_path / "python"
    fake.write_text(
        "#!/bin/sh\nfor a; do job=$a; done\n"  # the job file is the last argument (python -I -m ... JOB)
        f"case \"$job\" in *job.json) ;; *) exec {sys.executable} \"$@\";; esac\n"  # the -I probe passes
        "n_file=\"$job.n\"; n=$(cat \"$n_file\" 2>/dev/null || echo 0); n=$((n+1)); echo $n > \"$n_file\"\n"
        f"case \"$job\" in\n  *debug*) [ $n -le 2 ] && exec {sys.executable} {code} \"$@\"\n"
        "           [ $n -eq 3 ] && { echo 'Segmentation fault' >&2; kill -9 $$; } ;;\n"
        "  *) [ $n -eq 1 ] && { echo 'Bus error' >&2; kill -9 $$; } ;;\nesac\n"
        f"exec {sys.executable} \"$@\"\n")
    fake.chmod(0o755)
    spec = write_sweep(tokens="[8192]", extra="[executor]\nmax_attempts = 2\n")
    outcome = run_sweep(spec, tmp_path / "sweep", python=str(fake))
    df = load_results(tmp_path / "sweep").set_index("size")
    assert outcome.counts == {"done": 2}, df[["status", "error"]]
    assert df.loc["debug", "attempts"] == 4 and df.loc["100k", "attempts"] == 2
    ev = load_events(tmp_path / "sweep")
    debug = ev[ev.run_id.str.contains("debug")]
    assert (debug.kind == "interrupted").sum() == 2 and (debug.kind == "crash").sum() == 1
    retries = ev[ev.kind == "retry"].set_index("run_id")["message"]
    assert len(retries) == 4
    assert any("interrupted" in m and "not counted" in m for m in retries)
    assert any("crash 1 of 2" in m and "killed by signal 9" in m and "Segmentation fault" in m for m in retries)
    assert any("crash 1 of 2" in m and "Bus error" in m for m in retries)


# --- item 12: estimator and fit inputs -----------------------------------------------------------------

def _law_csv(tmp_path: Path, last_loss: str) -> Path:
    path = tmp_path / "runs.csv"
    rows = [(1e6 * 2**i, 1e8 * 2**i, 3.0 - 0.1 * i) for i in range(6)]
    text = "params,tokens,loss\n" + "".join(f"{n:g},{d:g},{loss:g}\n" for n, d, loss in rows[:-1])
    path.write_text(text + f"{rows[-1][0]:g},{rows[-1][1]:g},{last_loss}\n")
    return path


@pytest.mark.parametrize("argv, message", [
    (["estimate", "--model", "llama2-7b", "--params", "1e9", "--gpu", "H100-SXM"],
     "params = 1e+09 contradicts model 'llama2-7b'"),
    (["estimate", "--params", "1e9", "--tokens", "2e10", "--gpu", "H100-SXM", "--mfu", "5"],
     "--mfu: must be a fraction of the peak from 0.001 to 1, got '5' (a percentage? 5% is --mfu 0.05)"),
    (["estimate", "--params", "1e9", "--tokens", "2e10", "--gpu", "H100-SXM", "--mfu", "1e-9"], "--mfu: must be"),
    (["plan", "--flops", "1e21", "--gpu", "H100-SXM", "--mfu", "40"], "--mfu: must be"),
    (["fit", "{csv:inf}"], "NaN or infinite"),
    (["fit", "{csv:1e300}", "--law", "power-params"], "above 10000 (the largest is 1e+300): losses are nats"),
    (["fit", "{csv:2.4}", "--bootstrap", "1000000000"], "bootstrap must be a non-negative integer count of resamples, at most 100,000"),
    (["report", "{dir}", "--bootstrap", "1000000000"], "--bootstrap: must be from 0 to 100,000"),
])
def test_absurd_estimator_and_fit_inputs_are_refused_in_words(tmp_path, capsys, argv, message):
    argv = [a.format(dir=tmp_path) if a == "{dir}" else
            str(_law_csv(tmp_path, a[5:-1])) if a.startswith("{csv:") else a for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "np." not in err and "Traceback" not in err, err


def test_estimator_messages_show_plain_numbers(tmp_path):
    import numpy as np

    from scalebench.planning import estimate

    with pytest.raises(ConfigError) as info:
        estimate(params=np.array([1e9, -2.0]), tokens=np.array([1e10, 1e10]), gpu="H100-SXM")
    assert "got -2 (row 1)" in str(info.value) and "np." not in str(info.value)
    with pytest.raises(ConfigError, match=r"got 5$") as info:
        estimate(params=1e9, tokens=1e10, gpu="H100-SXM", mfu=np.float64(5.0))


def test_run_reporter_lines_count_this_sessions_runs_and_estimate_what_is_left():
    import io

    from scalebench.sweep.cli import RunReporter
    from scalebench.sweep.runner import FinishedRun, Progress

    t = [0.0]
    out = io.StringIO()
    rep = RunReporter(bar=False, quiet=False, out=out, clock=lambda: t[0])

    def prog(finished, flops, running=()):
        return Progress(runs_total=5, runs_finished=1 + len(finished), runs_running=tuple(running), flops_total=100.0,
                        flops_finished=flops, last_loss=None, last_run=None, finished=tuple(finished), runs_to_do=4)

    a = FinishedRun(run_id="a", status="done", eval_loss=2.5, wall_time_s=12.0, error=None)
    b = FinishedRun(run_id="b", status="failed", eval_loss=None, wall_time_s=3.0, error="RuntimeError: boom")
    rep(prog([], 20.0, ["a", "b"]))  # one run finished before this session: not announced
    t[0] = 10.0
    rep(prog([a], 40.0, ["b"]))
    rep(prog([a], 40.0, ["b"]))  # nothing new: nothing printed
    t[0] = 20.0
    rep(prog([a, b], 60.0))
    assert out.getvalue().splitlines() == [
        "[1/4] a done: eval loss 2.5000, 12.0 s; 3 left (1 running), about 30 s to go",
        "[2/4] b failed: RuntimeError: boom, 3.0 s; 2 left, about 20 s to go",
    ]
    quiet = io.StringIO()
    rep = RunReporter(bar=True, quiet=True, out=quiet)
    rep(prog([a, b], 60.0))
    assert quiet.getvalue() == "" and rep.bar is None


# --- item 16: MFU you can trust ------------------------------------------------------------------------

def test_calibration_keeps_a_robust_maximum_and_its_spread(tmp_path, monkeypatch):
    from pytest import approx

    from scalebench.hardware.calibrate import _summary, calibrate

    # rates 2, 2, 2, 2, 1 (one timing slowed by another process): p90 2, median 2, p10 1.4
    peak, median, spread = _summary(2.0, [1.0, 1.0, 1.0, 1.0, 2.0])
    assert (peak, median, spread) == (approx(2.0), approx(2.0), approx(0.3))
    assert _summary(1.0, [1e-3] * 19 + [1e-9])[0] == approx(1000.0)  # one timer artefact does not set the peak
    cal = calibrate("cpu", size=64, copy_bytes=1 << 16, repeats=3, rounds=3, pause_s=0)
    assert cal.rounds == 3
    for key in ("fp32_matmul", "copy_bandwidth"):
        assert 0 <= getattr(cal, f"{key}_spread") <= 1
    assert cal.fp32_matmul_median <= cal.fp32_matmul_flops_per_s


def test_status_flags_mfu_above_one_instead_of_showing_it_as_fact(tmp_path, capsys):
    out = tmp_path / "s"
    with ResultStore(out, create=True) as store:
        spec = {"family": "gpt", "size": "debug", "params": 1000, "tokens": 8192, "flops": 1e9, "shape": {}}
        store.add_runs([("gpt-debug-t1", "h", spec), ("gpt-100k-t1", "h2", {**spec, "size": "100k"})])
        store.set_status("gpt-debug-t1", "done", record={"eval_loss": 2.5, "mfu": None, "mfu_measured_peak": 1.42})
        store.set_status("gpt-100k-t1", "done", record={"eval_loss": 2.4, "mfu": None, "mfu_measured_peak": 0.31})
    assert main(["status", str(out)]) == 0
    text = capsys.readouterr().out
    assert "1.420!" in text and "0.310!" not in text and "0.310" in text
    assert "mfu!: gpt-debug-t1: MFU above 1 against the calibrated peak" in text and "--calibrate" in text


def test_a_cpu_sweep_that_asked_for_bf16_says_it_trains_in_fp32(write_sweep, tmp_path, capsys):
    spec = write_sweep(extra=_tiny_text_corpus(tmp_path))
    spec.write_text(spec.read_text().replace("compile = \"off\"", "compile = \"off\"\nprecision = \"bf16\""))
    assert main(["validate", str(spec)]) == 0
    out = capsys.readouterr().out
    assert "note: train.precision = 'bf16', but the runs go to the CPU, where they train in fp32" in out


def test_cpu_runs_without_a_trace_get_a_verdict_from_step_timing_or_a_true_reason(tmp_path):
    from scalebench.profiling.bottleneck import Evidence, classify
    from scalebench.profiling.instruments import Instruments

    fast = classify(Evidence(device_type="cpu", mfu_measured_peak=0.72))
    assert fast.bottleneck == "compute" and "step timing" in fast.rule and "0.72" in fast.rule
    reason = Instruments(run_dir=tmp_path, device="cpu", profile=False)._no_trace_reason(None, None)
    assert "profiler window was off" in reason and "profiling.profiler = 'on'" in reason
    slow = classify(Evidence(device_type="cpu", mfu_measured_peak=0.08, no_trace_reason=reason))
    assert slow.bottleneck is None and "not compute-bound" in slow.rule
    assert "profiler window was off" in slow.recommendation and "run with the profiler window enabled" not in \
        slow.recommendation
    above = classify(Evidence(device_type="cpu", mfu_measured_peak=1.3))
    assert above.bottleneck is None and "calibration understates" in above.recommendation
    untouched = classify(Evidence(device_type="cpu"))  # nothing measured: as before
    assert untouched.bottleneck is None


@needs_mount
def test_a_full_disk_under_the_store_is_a_message_not_a_traceback(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    code = ("from scalebench.store import ResultStore\n"
            "from scalebench.errors import StoreError\n"
            f"s = ResultStore('{disk}/sweep', create=True)\n"
            "s.add_runs([('r', 'h', {})])\n"
            "try:\n"
            "    for i in range(100000):\n"
            "        s.add_steps('r', [{'step': i * 50 + j, 'tokens': 1, 'loss': 1.0} for j in range(50)])\n"
            "except StoreError as exc:\n"
            "    print('StoreError:', exc)\n")
    res = in_namespace(f"mount -t tmpfs -o size=512k tmpfs '{disk}'\n{sys.executable} -c \"{code}\"\n")
    assert "StoreError:" in res.stdout and "database or disk is full" in res.stdout, res.stdout + res.stderr
    assert "free space" in res.stdout and "Traceback" not in res.stderr


def test_a_store_being_created_is_never_seen_half_made(tmp_path):
    # a reader polling a sweep folder as the sweep starts (status in a loop, a test's wait) must never
    # meet the file before its tables exist: it would report the store as foreign or damaged
    import threading

    from scalebench.store import load_meta

    folders = [tmp_path / f"s{i}" for i in range(40)]
    errors: list[Exception] = []
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            for f in folders:
                if (f / "scalebench.sqlite").exists():
                    try:
                        load_meta(f)
                    except Exception as exc:  # noqa: BLE001 - any failure to read counts
                        errors.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for f in folders:
            ResultStore(f, create=True).close()
    finally:
        done.set()
        reader.join()
    assert errors == []
