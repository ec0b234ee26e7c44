"""The Slurm executor through submitit's local executor (no Slurm here): same loop, same store, same retries."""

from __future__ import annotations

import os
import re
import signal
import sys
import time
from pathlib import Path

import pytest

from scalebench.config import load_sweep
from scalebench.errors import ConfigError
from scalebench.store import ResultStore, load_events, load_steps
from scalebench.sweep.runner import run_sweep

SLURM_LOCAL = '[executor]\nkind = "slurm"\nslurm_cluster = "local"\n'


@pytest.fixture
def submitit():
    return pytest.importorskip("submitit")


def _rows(sweep_dir: Path) -> dict[str, dict]:
    with ResultStore(sweep_dir) as s:
        return {r["run_id"]: r for r in s.runs()}


def _steps_once(sweep_dir: Path) -> None:
    steps = load_steps(sweep_dir)
    for run_id, row in _rows(sweep_dir).items():
        assert steps[steps.run_id == run_id]["step"].tolist() == list(range(row["spec"]["steps"])), run_id


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def test_a_sweep_runs_to_completion_as_submitit_jobs(submitit, write_sweep, tmp_path):
    out = tmp_path / "sweep"
    outcome = run_sweep(write_sweep(tokens="[8192]", extra=SLURM_LOCAL), out)
    assert outcome.ok and outcome.counts == {"done": 2}
    _steps_once(out)
    events = load_events(out)
    assert set(events[events.kind == "job"].run_id) == set(_rows(out))  # each run started as a job
    assert len(list((out / "slurm").glob("*_result.pkl"))) == 2
    # jobs reported through their outboxes (no SQLite writes from a job), all of it applied
    for run_dir in (out / "runs").iterdir():
        outbox = run_dir / "outbox.jsonl"
        assert outbox.is_file() and int((run_dir / "outbox.offset").read_text()) == outbox.stat().st_size


def test_a_job_killed_from_outside_is_failed_with_its_state_and_log_then_retried(submitit, write_sweep, tmp_path):
    out = tmp_path / "sweep"
    spec = write_sweep(tokens="[196608]", workers=1, extra=SLURM_LOCAL + "max_attempts = 2\n")
    killed: dict[str, int] = {}
    errors: dict[str, str] = {}

    def progress(p):  # runs in the sweep loop: kill -9 the first job once it trains (an OOM kill, a dead node)
        rows = _rows(out)
        if not killed and p.last_run is not None and rows[p.last_run]["pid"]:
            pid = rows[p.last_run]["pid"]
            assert pid != os.getpid()
            os.kill(pid, signal.SIGKILL)
            killed[p.last_run] = pid
        errors.update({k: r["error"] for k, r in rows.items() if r["error"] and k in killed})

    outcome = run_sweep(spec, out, progress=progress)
    assert killed and outcome.counts == {"done": 2}
    (run_id,) = killed
    assert _rows(out)[run_id]["attempts"] == 2
    error = errors[run_id]
    assert "ended without recording an outcome" in error and "(state " in error
    log = re.search(r"log (\S+_log\.err)\)", error).group(1)  # the job's stderr log, and its tail
    assert Path(log).read_text().strip().splitlines()[-1] in error
    events = load_events(out)
    assert run_id in set(events[events.kind == "retry"].run_id)
    _steps_once(out)


def test_sigterm_to_the_sweep_cancels_its_jobs_and_leaves_runs_pending(submitit, write_sweep, tmp_path, sweep_cli,
                                                                        wait_until, both_training, long_run):
    # started as `nohup` or `&` would (SIGINT ignored, and so inherited by submitit's controllers)
    out = tmp_path / "sweep"
    spec = write_sweep(tokens=long_run[0], extra=SLURM_LOCAL)
    proc = sweep_cli(spec, out, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    wait_until(lambda: both_training(out), "both jobs have recorded steps")
    proc.terminate()
    assert proc.wait(timeout=30) == 130
    rows = _rows(out)
    assert {r["status"] for r in rows.values()} == {"pending"}
    pids = [r["pid"] for r in rows.values()]
    assert all(pids)
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_alive(p) for p in pids)  # the jobs were cancelled, not left training
    events = load_events(out)
    assert set(events[events.kind == "interrupted"].run_id) == set(rows)  # stopped gracefully, not SIGKILLed
    assert run_sweep(spec, out).counts == {"done": 2}
    _steps_once(out)


def test_slurm_without_submitit_is_a_config_error_naming_the_fix(write_sweep, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "submitit", None)  # `import submitit` now raises ImportError
    out = tmp_path / "sweep"
    with pytest.raises(ConfigError, match=r"executor\.kind = 'slurm'.*pip install 'scalebench\[slurm\]'"):
        run_sweep(write_sweep(extra=SLURM_LOCAL), out)
    assert not out.exists()  # refused before planning or writing anything


@pytest.mark.parametrize(("extra", "message"), [
    ('kind = "ray"', r"executor\.kind: got 'ray', expected one of 'local', 'slurm'"),
    ('slurm_cluster = "pbs"', r"executor\.slurm_cluster: got 'pbs', expected one of 'auto', 'local', 'slurm'"),
    ("slurm_time_min = 0", r"\[executor\] slurm_time_min must be positive"),
    ("slurm_gpus_per_job = -1", r"slurm_gpus_per_job must be >= 0"),
    ("slurm_qos = 'high'", r"unknown key 'executor\.slurm_qos'"),
])
def test_executor_keys_are_checked_by_the_strict_loader(write_sweep, extra, message):
    with pytest.raises(ConfigError, match=message):
        load_sweep(write_sweep(extra=f"[executor]\n{extra}\n"))


def test_slurm_defaults(write_sweep):
    ex = load_sweep(write_sweep(extra=SLURM_LOCAL)).executor
    assert (ex.kind, ex.slurm_cluster, ex.max_parallel, ex.slurm_gpus_per_job, ex.slurm_time_min) == (
        "slurm", "local", 8, 1, 60)


def test_outbox_lines_reach_the_store_once_and_partial_lines_wait(tmp_path):
    from scalebench.store import ResultStore, load_events, load_steps
    from scalebench.sweep.outbox import OutboxSink, drain, retire

    run_dir = tmp_path / "runs" / "r"
    run_dir.mkdir(parents=True)
    with ResultStore(tmp_path, create=True) as store:
        store.add_runs([("r", "h", {})])
        store.set_status("r", "running")
        sink = OutboxSink(run_dir)
        sink.truncate_steps("r", -1)
        sink.add_steps("r", [{"step": 0, "tokens": 10, "loss": 5.0}, {"step": 1, "tokens": 20, "loss": float("nan")}])
        sink.add_event("r", "note", "hello")
        with open(run_dir / "outbox.jsonl", "a") as f:  # a line the worker is still writing
            f.write('{"op": "event", "kind": "half"')
        drain(store, "r", run_dir)
        drain(store, "r", run_dir)  # nothing new: nothing applied twice
        assert load_steps(tmp_path)["step"].tolist() == [0, 1]
        assert load_events(tmp_path)["kind"].tolist() == ["note"]
        with open(run_dir / "outbox.jsonl", "a") as f:
            f.write(', "message": "done"}\n')
        sink.set_status("r", "done", record={"eval_loss": 2.5})
        drain(store, "r", run_dir)
        assert load_events(tmp_path)["kind"].tolist() == ["note", "half"]
        assert store.runs()[0]["status"] == "done" and store.runs()[0]["record"]["eval_loss"] == 2.5
        retire(run_dir)
        assert (run_dir / "outbox.1.jsonl").is_file() and not (run_dir / "outbox.jsonl").exists()
