"""Nothing silently wrong: a changed corpus or setup never mixes into a sweep, damage never becomes a "done" run.

Each test reproduces one failure a hostile probe found (named F1..F14 in the comments) before its fix."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest
import torch

from scalebench.cli import main
from scalebench.errors import ConfigError
from scalebench.store import ResultStore
from scalebench.sweep.runner import run_sweep, setup_differences


def _corpus(tmp_path: Path, text: str = "the quick brown fox jumps over the lazy dog. ") -> str:
    src = tmp_path / "corpus"
    src.mkdir(exist_ok=True)
    for i in range(40):
        (src / f"f{i}.txt").write_text(f"file {i}: " + text * 40)
    return f'\n[data]\nsource = "{src}"\n'


def _seed_store(out: Path, spec_path: Path, **meta) -> None:
    """A sweep folder as an earlier `run` of ``spec_path`` left it (its meta), with no runs trained."""
    from scalebench.config import load_sweep

    with ResultStore(out, create=True) as store:
        spec = load_sweep(spec_path)
        store.set_meta(sweep_name=spec.name, spec=spec.to_dict(), **meta)


# --- F1: a corpus changed under a sweep -------------------------------------------------------------------

def test_a_sweep_whose_corpus_changed_is_refused_and_its_fingerprint_kept(write_sweep, tmp_path, capsys):
    out = tmp_path / "sweep"
    spec = write_sweep(extra=_corpus(tmp_path))
    _seed_store(out, spec, corpus={"fingerprint": "0123456789abcdef", "source": "old"})
    with pytest.raises(ConfigError, match="corpus changed since .*fingerprint 0123456789abcdef, now [0-9a-f]{16}"):
        run_sweep(spec, out)
    assert main(["run", str(spec), "--out", str(out), "--no-progress"]) == 2
    assert "another folder (--out)" in capsys.readouterr().err
    with ResultStore(out) as store:
        assert store.meta()["corpus"]["fingerprint"] == "0123456789abcdef" and store.runs() == []


class _Ctx:
    is_main = True

    def barrier(self):
        pass


class _Sink:
    def __init__(self):
        self.events = []

    def add_event(self, run_id, kind, message):
        self.events.append((kind, message))


def _checkpointer(tmp_path, **kw):
    from scalebench.train.checkpoint import Checkpointer

    args = {"spec_hash": "h", "run_id": "r", "sink": _Sink(), "ctx": _Ctx(), "strategy": "single", "steps": 10,
            "corpus": "aaaa"}
    return Checkpointer(tmp_path, **{**args, **kw})


_STATE = {"step": 3, "micro_batch": 1, "ema": None, "best_ema": 1.0, "backoffs": 0, "trained_s": 0.0}


def test_a_checkpoint_never_resumes_on_another_corpus(tmp_path):
    model = torch.nn.Linear(4, 4)
    _checkpointer(tmp_path).save(model, torch.optim.AdamW(model.parameters()), None, _STATE)
    other = _checkpointer(tmp_path, corpus="bbbb")
    assert other.load(model, torch.optim.AdamW(model.parameters()), "cpu") is None
    assert other.sink.events[0][0] == "checkpoint-stale" and "another corpus" in other.sink.events[0][1]
    assert (tmp_path / "checkpoint.pt.unusable").is_file() and not (tmp_path / "checkpoint.pt").exists()


# --- F2: another training setup under the same name -------------------------------------------------------

def test_an_extension_may_add_sizes_budgets_and_grid_values_only(write_sweep, tmp_path):
    from scalebench.config import load_sweep

    base = load_sweep(write_sweep(tokens="[8192]")).to_dict()
    more = load_sweep(write_sweep(tokens="[8192, 16384]", workers=1)).to_dict()
    assert setup_differences(base, more) == []  # more budgets, another worker count: the same setup
    longer = load_sweep(_with(write_sweep, "seq_len = 32", "seq_len = 64")).to_dict()
    assert setup_differences(base, longer) == ["train.seq_len = 64 (was 32)"]


def _with(write_sweep, old: str, new: str) -> Path:
    path = write_sweep(tokens="[16384]")
    path.write_text(path.read_text().replace(old, new))
    return path


def test_the_same_name_with_another_setup_is_refused_naming_what_differs(write_sweep, tmp_path, capsys):
    out = tmp_path / "sweep"
    extra = _corpus(tmp_path)
    first = write_sweep(extra=extra)
    _seed_store(out, first)
    changed = _with(write_sweep, "seq_len = 32", "seq_len = 64")
    changed.write_text(changed.read_text() + extra)
    with pytest.raises(ConfigError, match=r"another setup: train.seq_len = 64 \(was 32\).*sizes, budgets or grid"):
        run_sweep(changed, out)
    assert main(["run", str(changed), "--out", str(out), "--no-progress"]) == 2
    with ResultStore(out) as store:
        assert store.runs() == []


# --- F5: damaged checkpoints and forks of every kind are set aside ----------------------------------------

@pytest.mark.parametrize("step", [10**6, -5, 11])
def test_a_checkpoint_at_a_step_outside_the_run_is_set_aside(tmp_path, step):
    model = torch.nn.Linear(4, 4)
    _checkpointer(tmp_path).save(model, torch.optim.AdamW(model.parameters()), None, {**_STATE, "step": step})
    ck = _checkpointer(tmp_path)
    assert ck.load(model, torch.optim.AdamW(model.parameters()), "cpu") is None
    kind, message = ck.sink.events[0]
    assert kind == "checkpoint-unusable" and f"at step {step}" in message and "set aside" in message


def test_a_checkpoint_with_non_finite_weights_is_set_aside(tmp_path):
    model = torch.nn.Linear(4, 4)
    with torch.no_grad():
        model.weight[0, 0] = float("nan")
    _checkpointer(tmp_path).save(model, torch.optim.AdamW(model.parameters()), None, _STATE)
    ck = _checkpointer(tmp_path)
    assert ck.load(torch.nn.Linear(4, 4), torch.optim.AdamW(model.parameters()), "cpu") is None
    assert "not finite" in ck.sink.events[0][1]


def test_a_fork_at_another_step_is_set_aside(tmp_path):
    from scalebench.train.checkpoint import fork_path

    model = torch.nn.Linear(4, 4)
    _checkpointer(tmp_path).save_fork(model, torch.optim.AdamW(model.parameters()), None, {**_STATE, "step": 4})
    path = fork_path(tmp_path, 4)
    state = torch.load(path, weights_only=True)
    state["trainer"]["step"] = 500
    torch.save(state, path)
    ck = _checkpointer(tmp_path / "branch")
    assert ck.load_fork(path, "h", model, torch.optim.AdamW(model.parameters()), "cpu") is None
    assert "this run needs step 4" in ck.sink.events[0][1] and not path.exists()
    assert path.with_name(path.name + ".unusable").is_file()


def test_a_folder_or_link_named_checkpoint_tmp_never_stops_a_save(tmp_path):
    """F5 and F10: a folder left as checkpoint.tmp failed every save; a planted link was written through."""
    model = torch.nn.Linear(4, 4)
    (tmp_path / "checkpoint.tmp").mkdir()
    (tmp_path / "checkpoint.tmp" / "x").write_text("x")
    _checkpointer(tmp_path).save(model, torch.optim.AdamW(model.parameters()), None, _STATE)
    assert (tmp_path / "checkpoint.pt").is_file() and not (tmp_path / "checkpoint.tmp").exists()
    victim = tmp_path / "victim"
    victim.write_text("VICTIM")
    os.symlink(victim, tmp_path / "checkpoint.tmp")
    _checkpointer(tmp_path).save(model, torch.optim.AdamW(model.parameters()), None, _STATE)
    assert victim.read_text() == "VICTIM" and (tmp_path / "checkpoint.pt").is_file()


# --- F3: workers verify the data they train on, not its size only -----------------------------------------

def test_a_cache_altered_in_place_is_refused_when_opened_and_after_training(tmp_path):
    from scalebench.config import DataSpec
    from scalebench.data import TokenData, prepare_corpus
    from scalebench.data.tasks import get_task
    from scalebench.sweep.worker import _verify_data

    src = tmp_path / "texts"
    src.mkdir()
    for i in range(30):
        (src / f"f{i}.txt").write_text(f"text number {i}. " * 300)
    data = DataSpec(source=str(src), patterns=("*.txt",))
    info = prepare_corpus(data, 0.2)
    TokenData(info, data)  # whole: opens
    train = Path(info.path) / "train.bin"
    raw = bytearray(train.read_bytes())
    raw[10:20] = bytes(10)  # same size, other content: what the sizes alone let through
    train.write_bytes(bytes(raw))
    with pytest.raises(ConfigError, match="train.bin does not match its recorded sha256.*Run the sweep again"):
        TokenData(info, data)

    class Run:  # what the worker checks once a run has trained
        pass

    run = Run()
    run.data = data
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "checkpoint.pt").write_bytes(b"trained partly on the altered data")
    with pytest.raises(ConfigError, match="sha256"):
        _verify_data(get_task("text"), info, run, run_dir)
    assert not (run_dir / "checkpoint.pt").exists()


# --- F4: a warm-up past the run's length ----------------------------------------------------------------

def test_warmup_steps_past_a_runs_length_is_refused_at_validate(write_sweep, capsys):
    spec = write_sweep(tokens="[8192, 16384]")
    spec.write_text(spec.read_text().replace("compile = \"off\"", "compile = \"off\"\nwarmup_steps = 1000000000"))
    assert main(["validate", str(spec)]) == 2
    err = capsys.readouterr().err
    assert "train.warmup_steps = 1000000000" in err and "trains 16 steps" in err and "Traceback" not in err


# --- F6, F7, F8: every read of a store goes through one damage check ----------------------------------------

def _sql(out: Path, stmt: str) -> None:
    import sqlite3

    c = sqlite3.connect(out / "scalebench.sqlite")
    c.execute(stmt)
    c.commit()
    c.close()


def test_status_of_a_store_without_runs_says_so(tmp_path, capsys):
    ResultStore(tmp_path / "sweep", create=True).close()  # what a kill between creating and planning leaves
    assert main(["status", str(tmp_path / "sweep")]) == 0
    assert "no runs yet" in capsys.readouterr().out


def _smash_table(out: Path, table: str) -> None:
    import random
    import sqlite3

    db = out / "scalebench.sqlite"
    c = sqlite3.connect(db)
    c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    root = c.execute("select rootpage from sqlite_master where name=?", (table,)).fetchone()[0]
    c.close()
    with open(db, "r+b") as f:
        f.seek((root - 1) * 4096)
        f.write(random.Random(0).randbytes(4096))


@pytest.mark.parametrize("damage", ["steps-page", "events-page", "meta-page", "runs-json", "meta-json",
                                    "status-bogus"])
def test_damage_found_while_reading_is_bad_input_with_the_fix(tmp_path, capsys, damage):
    from scalebench.report.synthetic import make_synthetic_sweep

    out = make_synthetic_sweep(tmp_path / "sweep", n_sizes=3, n_budgets=2, steps_per_run=10, telemetry_per_run=2)
    if damage.endswith("-page"):
        _smash_table(out, damage.split("-")[0])
    elif damage == "runs-json":
        _sql(out, "update runs set record='{not json' where rowid=1")
    elif damage == "meta-json":
        _sql(out, "update meta set value='{{{' where key='spec'")
    else:
        _sql(out, "update runs set status='exploded' where rowid=1")
    cmds = ("status", "fit", "export", "report") if damage == "steps-page" else ("status", "fit", "export")
    codes = {cmd: main([cmd, str(out), *(["--out", str(tmp_path / "x.csv")] if cmd == "export" else [])])
             for cmd in cmds}  # report: slow, once
    err = capsys.readouterr().err
    assert "Traceback" not in err
    # each command reads every table of the sweep (scalebench.Sweep), so each meets the damage and refuses
    assert codes == dict.fromkeys(cmds, 2), codes
    assert err.count("not a readable scalebench store") == len(cmds) and "scalebench.sqlite.damaged" in err
    assert not (tmp_path / "x.csv").exists()
    if damage in ("meta-page", "meta-json"):
        assert codes["fit"] == 2 and not (out / "fit.json").exists()  # no fit saved from a damaged store


def test_status_shows_a_killed_sweeps_runs_as_not_running(tmp_path, capsys):
    from scalebench.report.synthetic import make_synthetic_sweep
    from scalebench.sweep.runner import _sweep_lock, sweep_running

    out = make_synthetic_sweep(tmp_path / "sweep", n_sizes=3, n_budgets=2, steps_per_run=10, telemetry_per_run=2)
    _sql(out, "update runs set status='running' where rowid=1")
    assert not sweep_running(out)
    assert main(["status", str(out)]) == 0
    text = capsys.readouterr().out
    assert "1 interrupted" in text and "not training" in text
    with _sweep_lock(out):  # a live sweep holds the folder: its runs are running
        assert sweep_running(out)
        assert main(["status", str(out)]) == 0
        assert "1 running" in capsys.readouterr().out


def test_a_missing_local_python_is_refused_at_validate_unless_python_is_given(write_sweep, capsys):
    import sys

    spec = write_sweep(extra='\n[executor.local]\npython = "/nowhere/python3"\n')
    assert main(["validate", str(spec)]) == 2
    assert "executor.local.python = '/nowhere/python3': no such executable" in capsys.readouterr().err
    assert main(["validate", str(spec), "--python", sys.executable]) == 0  # --python replaces the key
    assert main(["validate", str(spec), "--python", "/nowhere/else"]) == 2
    assert "--python '/nowhere/else': no such executable" in capsys.readouterr().err


def test_run_with_python_plans_where_the_spec_names_a_missing_one(write_sweep, tmp_path, capsys):
    import sys

    spec = write_sweep(extra='\n[executor.local]\npython = "/nowhere/python3"\n')
    out = str(tmp_path / "s")
    assert main(["run", str(spec), "--out", out, "--dry-run"]) == 2  # what a run without --python meets
    assert "executor.local.python = '/nowhere/python3'" in capsys.readouterr().err
    python = str(tmp_path / "python3")
    os.symlink(os.path.realpath(sys.executable), python)
    assert main(["run", str(spec), "--out", out, "--dry-run", "--python", python]) == 0
    assert f"{python} -I" in capsys.readouterr().out  # the workers' command names the interpreter given


# --- F10: logs and outboxes are never written through a planted link -------------------------------------

def test_a_link_planted_as_worker_log_or_outbox_is_not_written_through(tmp_path):
    from scalebench._util import open_append
    from scalebench.sweep.outbox import OutboxSink

    victim = tmp_path / "victim"
    victim.write_text("VICTIM")
    for name in ("worker.log", "outbox.jsonl"):
        os.symlink(victim, tmp_path / name)
    with open_append(tmp_path / "worker.log") as log:
        log.write(b"a worker's output\n")
    OutboxSink(tmp_path).add_event("r", "note", "hello")
    assert victim.read_text() == "VICTIM"
    assert not (tmp_path / "worker.log").is_symlink() and (tmp_path / "worker.log").read_bytes() == b"a worker's output\n"
    assert "hello" in (tmp_path / "outbox.jsonl").read_text()


def test_a_link_planted_as_metrics_jsonl_is_not_written_through(tmp_path):
    from scalebench.tracking import TrackerContext
    from scalebench.tracking.jsonl import JsonlTracker, read

    victim = tmp_path / "victim"
    victim.write_text("VICTIM")
    os.symlink(victim, tmp_path / "metrics.jsonl")
    tracker = JsonlTracker(TrackerContext(run_id="r", sweep="s", project="p", folder=tmp_path, run_dir=tmp_path))
    tracker.start({})
    tracker.log(1, {"loss": 2.0})
    tracker.finish("done")
    assert victim.read_text() == "VICTIM"
    assert not (tmp_path / "metrics.jsonl").is_symlink() and read(tmp_path) == [{"step": 1, "loss": 2.0}]


def test_a_link_planted_as_the_profilers_trace_is_replaced_not_written_through(tmp_path):
    import gzip
    import json

    from scalebench.profiling.trace import ProfilerWindow

    victim = tmp_path / "victim"
    victim.write_text("VICTIM")
    os.symlink(victim, tmp_path / "trace.json.gz")
    a = torch.ones(16, 16)
    with ProfilerWindow(tmp_path, wait=0, warmup=1, active=1, rank=0, world_size=1) as window:
        for _ in range(3):
            a = (a @ a).clamp(max=1.0)
            window.step()
    assert victim.read_text() == "VICTIM"
    assert window.trace_path == tmp_path / "trace.json.gz" and not window.trace_path.is_symlink()
    with gzip.open(window.trace_path, "rt") as f:
        assert json.load(f)["distributedInfo"]["rank"] == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["trace.json.gz", "victim"]  # no temp file left


# --- F9: a killed sweep's worker still alive is waited for (then stopped) before its run starts again ------

def test_a_rerun_ends_a_dead_sweeps_worker_before_starting_its_run_again(tmp_path, monkeypatch):
    import socket
    import subprocess
    import sys

    from scalebench.sweep import runner

    run_dir = tmp_path / "runs" / "r"
    run_dir.mkdir(parents=True)
    sleeper = [sys.executable, "-c", "import time; time.sleep(120)"]
    old = subprocess.Popen([*sleeper, "runs/r/job.json"], cwd=tmp_path)  # names this run's job file
    other = subprocess.Popen([*sleeper, "runs/q/job.json"], cwd=tmp_path)  # another run's: never touched
    try:
        monkeypatch.setattr(runner, "_OLD_WORKER_WAIT_S", 0.5)
        host = socket.gethostname()
        runner._end_old_worker({"pid": other.pid, "host": host}, run_dir)
        assert other.poll() is None
        runner._end_old_worker({"pid": old.pid, "host": host}, run_dir)
        assert old.wait(timeout=30) is not None
    finally:
        for p in (old, other):
            p.kill()
            p.wait()


_FAKE_DRIVER = """
import json, subprocess, sys, time
from scalebench.sweep.executors.base import _die_with_parent_preexec
from scalebench.sweep.executors.reaper import Reaper
import os
sleep = [sys.executable, "-c", "import time; time.sleep(120)"]
before = subprocess.Popen(sleep)  # the driver's own child from before Ray: never touched
reaper = Reaper()
# a raylet stand-in: dies with the driver (parent-death signal), its child (an agent) is orphaned then
raylet = subprocess.Popen([sys.executable, "-c", "import subprocess, sys, time; a = subprocess.Popen("
                           + repr(sleep) + ", start_new_session=True); print(a.pid, flush=True); time.sleep(120)"],
                          stdout=subprocess.PIPE, preexec_fn=_die_with_parent_preexec(os.getpid()))
agent = int(raylet.stdout.readline())
reaper.adopted()
after = subprocess.Popen(sleep)  # started once Ray is up: not Ray's, never touched
print(json.dumps({"before": before.pid, "raylet": raylet.pid, "agent": agent, "after": after.pid,
                  "reaper": reaper.pid}), flush=True)
time.sleep(120)
"""


def test_a_killed_driver_leaves_none_of_its_rays_processes_running(tmp_path, wait_until):
    """F9: kill -9 of the sweep process: what ray.init started ends with it, orphaned grandchildren included."""
    import json
    import signal
    import subprocess
    import sys

    from scalebench.sweep.executors.base import pid_alive

    driver = subprocess.Popen([sys.executable, "-c", _FAKE_DRIVER], stdout=subprocess.PIPE, cwd=tmp_path)
    pids = json.loads(driver.stdout.readline())
    try:
        assert all(pid_alive(p) for p in pids.values())
        driver.kill()  # at once: adopted() returned once the reaper held the tree
        driver.wait()
        wait_until(lambda: not any(pid_alive(pids[k]) for k in ("raylet", "agent", "reaper")),
                   "the raylet stand-in, its orphaned agent and the reaper are gone", timeout_s=20)
        assert pid_alive(pids["before"]) and pid_alive(pids["after"])  # the driver's other children
    finally:
        for pid in pids.values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def test_a_closed_reaper_ends_what_ray_left_and_exits(tmp_path):
    import subprocess
    import sys

    from scalebench.sweep.executors.reaper import Reaper

    reaper = Reaper()
    left = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])  # adopted: "Ray's"
    try:
        reaper.adopted()
        reaper.close()  # after ray.shutdown(): a straggler is ended, the reaper exits
        assert left.wait(timeout=20) == -9
    finally:
        left.kill()
        left.wait()


# --- F11: every family's memory model refuses impossible specs at validate ---------------------------------

def test_an_impossible_lstm_is_refused_at_validate_by_its_memory_model(tmp_path, capsys):
    spec = tmp_path / "huge.toml"
    spec.write_text('name = "huge"\nfamily = "lstm"\n[model]\nshapes = [{n_layer = 1, d_model = 32}, '
                    '{n_layer = 8, d_model = 100000}]\n[budget]\ntokens = [8192]\n[train]\nbatch_tokens = 512\n'
                    'seq_len = 32\n[devices]\ndevice = "cpu"\n' + _corpus(tmp_path))
    assert main(["validate", str(spec)]) == 2
    err = capsys.readouterr().err
    assert "by the family's memory model, lstm L8-d100000 needs" in err and "L1-d32" not in err


@pytest.mark.parametrize("family, small, huge", [
    ("gpt", {"n_layer": 2, "d_model": 64, "n_head": 2}, {"n_layer": 96, "d_model": 32768, "n_head": 64}),
    ("lstm", {"n_layer": 1, "d_model": 32}, {"n_layer": 100, "d_model": 20000}),
    ("cnn", {"width": 8, "blocks": 1}, {"width": 80000, "blocks": 4}),
    ("mlp", {"n_layer": 1, "width": 8}, {"n_layer": 100, "width": 30000}),
    ("llama", {"n_layer": 2, "d_model": 64, "n_head": 2}, {"n_layer": 96, "d_model": 32768, "n_head": 64}),
])
def test_each_family_has_a_memory_model_that_grows_with_its_shape(family, small, huge):
    from scalebench.families import get_family

    fam = get_family(family)
    s, h = fam.make_shape(**small), fam.make_shape(**huge)
    assert fam.params_total(h) > 1e10
    # model states alone: 16 bytes per parameter with AdamW in fp32 (weights, gradients, two moments)
    assert fam.memory_model(h, 1, "fp32") >= 16 * fam.params_total(h)
    assert fam.memory_model(s, 1, "fp32") < 2**30
    assert fam.memory_model(s, 8, "fp32") > fam.memory_model(s, 1, "fp32")  # activations grow with the batch


# --- F13: names, Slurm options, ignored data keys, patterns, a BOM, unknown shape keys --------------------

@pytest.mark.parametrize("text, message", [
    ('name = "a\\nb"', r"name 'a\\nb': .* printable .*character '\\n' \(U\+000A\)"),
    ('name = "tab\\there"', r"character '\\t'"),
    ('name = "evil\\u202egnp.exe"', r"U\+202E"),
    ('[executor.slurm]\nsbatch_extra = {qos = "high\\n#SBATCH --wrap=evil"}', "an #SBATCH option is one line"),
    ('[executor.slurm]\npartition = "a b"', "partition = 'a b': a Slurm name has no spaces"),
    ('[data]\nsource = "default"\npatterns = ["../*.txt"]', r"patterns\[0\] = '\.\./\*\.txt'.*without '\.\.'"),
    ('[data]\nsource = "default"\npatterns = ["/etc/*"]', r"patterns\[0\] = '/etc/\*'"),
])
def test_hostile_spec_values_are_refused_naming_the_key(tmp_path, text, message):
    from scalebench.config import load_sweep

    body = 'name = "x"\n[model]\nsizes = ["debug", "100k"]\n[budget]\ntokens = [8192]\n'
    if text.startswith("name"):
        body = body.replace('name = "x"', text)
    else:
        body += text + "\n"
    path = tmp_path / "s.toml"
    path.write_text(body)
    with pytest.raises(ConfigError, match=message):
        load_sweep(path)


def test_a_spec_with_a_byte_order_mark_loads(tmp_path):
    from scalebench.config import load_sweep

    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbf" + b'name = "bom"\n[model]\nsizes = ["debug", "100k"]\n[budget]\ntokens = [8192]\n')
    assert load_sweep(path).name == "bom"


def test_an_unknown_shape_key_names_the_accepted_ones(write_sweep, capsys):
    spec = write_sweep()
    spec.write_text(spec.read_text().replace('sizes = ["debug", "100k"]',
                                             'shapes = [{n_layer = 2, d_model = 32, n_head = 2}, '
                                             '{n_layer = 2, d_model = 64, heads = 2}]'))
    assert main(["validate", str(spec)]) == 2
    assert "model.shapes[1]: gpt shape: unknown field 'heads'; fields: n_layer, d_model, n_head" in capsys.readouterr().err


# --- F14: fit inputs, the crash log of the current attempt ------------------------------------------------

def _law_csv(path: Path, extra_header: str = "", extra_value: str = "") -> Path:
    rows = [f"params,tokens,loss{extra_header}"]
    for n in (1e6, 3e6, 1e7, 3e7):
        for d in (1e8, 3e8, 1e9):
            rows.append(f"{n},{d},{1.7 + 400 / n**0.34 + 410 / d**0.28:.5f}{extra_value}")
    path.write_text("\n".join(rows) + "\n")
    return path


def test_fit_refuses_two_loss_columns_and_a_boolean_column(tmp_path, capsys):
    two = _law_csv(tmp_path / "two.csv", ",loss", ",9.9")
    assert main(["fit", str(two), "--law", "power-params"]) == 2
    assert "column 'loss' appears 2 times" in capsys.readouterr().err
    flags = _law_csv(tmp_path / "bool.csv", ",done", ",True")
    assert main(["fit", str(flags), "--law", "power-params", "--loss-col", "done"]) == 2
    assert "column 'done' holds True/False, not numbers" in capsys.readouterr().err


def test_a_saved_fit_with_non_finite_parameters_is_refused(tmp_path):
    import json

    from scalebench.errors import FitError
    from scalebench.laws import fit
    from scalebench.laws.result import load_fit, save_fit

    path = save_fit(fit(_law_csv(tmp_path / "law.csv"), law="power-params"), tmp_path / "fit.json")
    doc = json.loads(path.read_text())
    doc["theta"] = [float("nan")] * len(doc["theta"])
    path.write_text(json.dumps(doc))
    with pytest.raises(FitError, match="not finite numbers"):
        load_fit(path)


def test_a_crash_quotes_its_own_attempts_log_not_an_earlier_ones(tmp_path):
    import subprocess
    import sys

    from scalebench.sweep.executors.base import ProcessHandle

    log_path = tmp_path / "worker.log"
    log_path.write_text("Traceback: the first attempt's error\n")
    with open(log_path, "ab") as log:
        offset = os.fstat(log.fileno()).st_size
        proc = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"], stdout=log)
        handle = ProcessHandle(proc, log_path, log, offset)
        assert handle.wait(60) == 3
        assert handle.log_tail() == ""  # this attempt wrote nothing: nothing of the last one is quoted


def test_a_step_trains_on_the_same_windows_however_its_batch_is_split(tmp_path):
    """F14: with the default micro_batch a 2-rank run drew other windows than the 1-rank run."""
    import numpy as np

    from scalebench.config import DataSpec
    from scalebench.data import TokenData, prepare_corpus

    src = tmp_path / "texts"
    src.mkdir()
    for i in range(30):
        (src / f"f{i}.txt").write_text(f"text number {i}. " * 300)
    data = TokenData(prepare_corpus(DataSpec(source=str(src), patterns=("*.txt",)), 0.2))
    whole = data.batch(0, 5, 0, 16, 32, batch_rows=16)[0]
    old_one_rank = data.batch(0, 5, 0, 16, 32)[0]
    assert np.array_equal(whole, old_one_rank)  # a 1-rank run without micro-batches: the windows it always drew
    for micro in (8, 4, 1):  # two ranks (micro-batch r of each step), or micro-batches on one
        parts = [data.batch(0, 5, m, micro, 32, batch_rows=16)[0] for m in range(16 // micro)]
        assert np.array_equal(np.concatenate(parts), whole)


@pytest.mark.parametrize("key", ["val_source = \"v.bin\"", "vocab_size = 50304"])
def test_token_file_keys_on_a_text_source_are_refused_not_ignored(write_sweep, tmp_path, capsys, key):
    spec = write_sweep(extra=_corpus(tmp_path) + key + "\n")
    assert main(["validate", str(spec)]) == 2
    err = capsys.readouterr().err
    assert f"data.{key.split()[0]} applies to token files" in err and "Traceback" not in err


# --- a single text file as the corpus: validate plans what run builds -----------------------------------

def test_a_single_text_file_validates_with_the_held_out_tail_run_builds(write_sweep, tmp_path, capsys):
    from scalebench.config import DataSpec
    from scalebench.data.corpus import prepare_corpus
    from scalebench.data.describe import describe_text_corpus

    text = tmp_path / "book.txt"
    text.write_text("the quick brown fox jumps over the lazy dog. " * 4000)
    spec = write_sweep(extra=f'\n[data]\nsource = "{text}"\n')
    assert main(["validate", str(spec)]) == 0, capsys.readouterr().err  # was: "held-out split has 0 tokens"
    data = DataSpec(source=str(text))
    estimate, built = describe_text_corpus(data, 0.1), prepare_corpus(data, 0.1)
    assert estimate.val_tokens == pytest.approx(built.val_tokens, abs=2) and built.val_tokens > 0
    assert estimate.train_tokens == pytest.approx(built.train_tokens, abs=2)


def test_a_folder_with_one_usable_file_holds_out_its_tail(tmp_path):
    from scalebench.config import DataSpec
    from scalebench.data.corpus import prepare_corpus

    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("a sentence of plain text. " * 2000)
    (src / "b.txt").write_text((src / "a.txt").read_text())  # a duplicate: skipped
    (src / "c.txt").write_text("")  # empty: skipped
    info = prepare_corpus(DataSpec(source=str(src), patterns=("*.txt",)), 0.1)
    assert info.val_tokens == pytest.approx(0.1 * 2000 * 26, abs=2)
    assert info.train_tokens == pytest.approx(0.9 * 2000 * 26, abs=2)
