"""The Slurm executor: job arrays through submitit, run here by submitit's local executor (no Slurm here),
and the dry run, which prints the sbatch script submitit would submit."""

from __future__ import annotations

import os
import re
import signal
import sys
import time
from pathlib import Path

import pytest
from sweep_helpers import alive as _alive
from sweep_helpers import assert_steps_once as _steps_once
from sweep_helpers import store_rows as _rows

from scalebench.cli import main
from scalebench.config import load_sweep
from scalebench.errors import ConfigError
from scalebench.store import load_events
from scalebench.sweep.runner import run_sweep

SLURM_LOCAL = '[executor]\nkind = "slurm"\n[executor.slurm]\ncluster = "local"\n'


@pytest.fixture
def submitit():
    return pytest.importorskip("submitit")


def test_a_sweep_runs_to_completion_as_one_batch_of_submitit_jobs(submitit, write_sweep, tmp_path, monkeypatch):
    batches = []
    real_batch = submitit.LocalExecutor.batch

    def spy(self, *a, **kw):  # count how the runs were submitted (submitit's batch() is the array path)
        batches.append(self)
        return real_batch(self, *a, **kw)

    monkeypatch.setattr(submitit.LocalExecutor, "batch", spy)
    out = tmp_path / "sweep"
    outcome = run_sweep(write_sweep(tokens="[8192]"), out, backend="slurm")  # kind from --backend
    assert outcome.ok and outcome.counts == {"done": 2}
    assert len(batches) == 1  # both runs in one submission (2 slots free at the start)
    _steps_once(out)
    events = load_events(out)
    assert set(events[events.kind == "job"].run_id) == set(_rows(out))  # each run started as a job
    assert len(list((out / "slurm").glob("*_result.pkl"))) == 2
    # jobs reported through their outboxes (no SQLite writes from a job), all of it applied
    for run_dir in (out / "runs").iterdir():
        outbox = run_dir / "outbox.jsonl"
        assert outbox.is_file() and int((run_dir / "outbox.offset").read_text()) == outbox.stat().st_size
    assert any("submitit ran the jobs with its 'local' executor" in n for n in outcome.notes)


def test_a_job_killed_from_outside_is_failed_with_its_state_and_log_then_retried(submitit, write_sweep, tmp_path):
    out = tmp_path / "sweep"
    spec = write_sweep(tokens="[196608]", workers=1, extra=SLURM_LOCAL.replace("[executor]\n", "[executor]\nmax_attempts = 2\n"))
    killed: dict[str, int] = {}
    errors: dict[str, str] = {}

    def progress(p):  # runs in the sweep loop: kill -9 the first job's worker once it trains (an OOM kill)
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
    assert "its worker was killed by signal 9" in error and "(state " in error
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


DRY = """
[executor.slurm]
partition = "gpu"
account = "proj-42"
time_min = 90
cpus_per_job = 8
mem_gb = 64
array_parallelism = 3
setup = ["module load cuda/12.4"]
sbatch_extra = {qos = "high", constraint = "h100"}
"""


def test_dry_run_prints_the_job_array_and_submits_nothing(submitit, write_sweep, tmp_path, capsys):
    spec = write_sweep(tokens="[8192, 16384]", extra=DRY)  # 4 runs
    out = tmp_path / "sweep"
    assert main(["run", str(spec), "--out", str(out), "--backend", "slurm", "--dry-run"]) == 0
    text = capsys.readouterr().out
    sbatch = dict(re.findall(r"^#SBATCH --([\w-]+)=?(.*)$", text, flags=re.M))
    assert sbatch["array"] == "0-3%3"  # 4 runs, 3 at a time
    assert (sbatch["partition"], sbatch["account"], sbatch["time"], sbatch["cpus-per-task"], sbatch["mem"]) == (
        "gpu", "proj-42", "90", "8", "64GB")
    assert (sbatch["qos"], sbatch["constraint"], sbatch["nodes"], sbatch["ntasks-per-node"]) == ("high", "h100", "1", "1")
    assert "gpus-per-node" not in sbatch  # CPU runs ask for no GPU
    assert sbatch["output"].endswith("%A_%a_0_log.out")  # one log per array element
    assert text.startswith("# scalebench --dry-run") and "#!/bin/bash" in text
    assert "module load cuda/12.4" in text and "-m submitit.core._submit" in text
    plan = load_sweep(spec)
    for i in range(4):
        assert re.search(rf"^# \[{i}\] gpt-\S+: .* -I -m scalebench\.sweep\.worker \S+job\.json$", text, flags=re.M)
    assert plan.executor.kind == "local"  # the spec is unchanged; --backend chose slurm
    assert not out.exists()  # no store, no job files, no submitit folder


def test_gpu_jobs_ask_for_their_ranks(submitit, write_sweep):
    from scalebench.sweep.executors.slurm import sbatch_parameters
    from scalebench.sweep.planner import plan_runs

    spec = load_sweep(write_sweep(extra=DRY))
    runs = [r.__class__(**{**r.__dict__, "device": "cuda"}) for r in plan_runs(spec).runs]
    params = sbatch_parameters(spec, runs)
    assert params["gpus_per_node"] == 1
    import dataclasses

    two = dataclasses.replace(spec, parallel=dataclasses.replace(spec.parallel, ranks=2))
    assert sbatch_parameters(two, runs)["gpus_per_node"] == 2
    fixed = dataclasses.replace(spec, executor=dataclasses.replace(
        spec.executor, slurm=dataclasses.replace(spec.executor.slurm, gpus_per_job=4)))
    assert sbatch_parameters(fixed, runs)["gpus_per_node"] == 4


def test_a_restarted_sweep_cancels_the_slurm_job_a_killed_sweep_left_running(submitit, write_sweep, tmp_path,
                                                                             monkeypatch):
    # Slurm jobs outlive the sweep that submitted them; restarting their runs must not train them twice at once
    from scalebench.sweep.executors.slurm import SubmititExecutor

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "scancel.calls"
    (bin_dir / "scancel").write_text(f"#!/bin/sh\necho \"$@\" >> {calls}\n")
    (bin_dir / "scancel").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    spec = load_sweep(write_sweep(extra='[executor.slurm]\ncluster = "slurm"\n'))
    executor = SubmititExecutor(spec.executor, tmp_path / "sweep")
    run_dir = tmp_path / "sweep" / "runs" / "r"
    run_dir.mkdir(parents=True)
    executor.abandon(run_dir)  # no job recorded: nothing to cancel
    assert not calls.exists()
    (run_dir / "slurm_job_id").write_text("4242_3")
    executor.abandon(run_dir)
    assert calls.read_text().split() == ["4242_3"] and not (run_dir / "slurm_job_id").exists()
