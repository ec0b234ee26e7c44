"""The Ray executor on one local Ray instance for the whole test session (``num_cpus=2``), and the three
executors side by side: a tiny sweep gives the same runs and losses through local, ray and slurm."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest
from sweep_helpers import alive as _alive
from sweep_helpers import assert_steps_once as _steps_once
from sweep_helpers import store_rows as _rows

from scalebench.store import load_events, load_results
from scalebench.sweep.runner import run_sweep

# one worker holds the session's Ray instance: its tests go to the same pytest-xdist worker
pytestmark = pytest.mark.xdist_group("ray")


@pytest.fixture(scope="session")
def ray_cluster(scalebench_home):
    """One local Ray instance per test session (starting one takes seconds); its address for other drivers."""
    ray = pytest.importorskip("ray")
    ctx = ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="warning",
                   configure_logging=False)
    yield ctx.address_info["address"]
    ray.shutdown()


def _ppid(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


@pytest.mark.slow
def test_local_ray_and_slurm_give_the_same_runs_and_losses(ray_cluster, write_sweep, tmp_path):
    pytest.importorskip("submitit")
    spec = write_sweep(tokens="[8192]", extra='[executor.slurm]\ncluster = "local"\n')
    results = {}
    for backend in ("local", "ray", "slurm"):
        out = tmp_path / backend
        outcome = run_sweep(spec, out, backend=backend)
        assert outcome.counts == {"done": 2}, backend
        df = load_results(out).set_index("run_id").sort_index()
        results[backend] = df
        _steps_once(out)
        outboxes = [(d / "outbox.jsonl").is_file() for d in (out / "runs").iterdir()]
        assert outboxes == [backend != "local"] * 2  # remote kinds report through the outbox, local writes SQLite
    local = results["local"]
    for backend in ("ray", "slurm"):
        other = results[backend]
        assert list(other.index) == list(local.index)
        np.testing.assert_allclose(other["eval_loss"], local["eval_loss"], rtol=0.01)
        assert (other["status"] == "done").all()
    events = load_events(tmp_path / "ray")
    assert set(events[events.kind == "job"].run_id) == set(local.index)  # each run was a Ray task
    assert "Ray task started" in events[events.kind == "job"]["message"].iloc[0]


@pytest.mark.slow
def test_a_killed_ray_worker_process_fails_its_run_which_is_retried(ray_cluster, write_sweep, tmp_path):
    out = tmp_path / "sweep"
    spec = write_sweep(tokens="[65536]", extra='[executor]\nkind = "ray"\nmax_attempts = 2\n')
    killed: dict[str, int] = {}
    errors: dict[str, str] = {}

    def progress(p):  # kill -9 the Ray worker process (the task) of the first run that trains
        rows = _rows(out)
        if not killed and p.last_run is not None and rows[p.last_run]["pid"]:
            task_pid = _ppid(rows[p.last_run]["pid"])  # the worker's parent: the Ray worker process
            assert task_pid not in (os.getpid(), 1)
            os.kill(task_pid, signal.SIGKILL)
            killed[p.last_run] = rows[p.last_run]["pid"]
        errors.update({k: r["error"] for k, r in rows.items() if r["error"] and k in killed})

    outcome = run_sweep(spec, out, progress=progress)
    assert killed and outcome.counts == {"done": 2}
    (run_id,) = killed
    assert not _alive(killed[run_id])  # its worker died with the Ray worker process
    assert _rows(out)[run_id]["attempts"] == 2
    assert "ended without recording an outcome" in errors[run_id] and "Ray task of" in errors[run_id]
    events = load_events(out)
    assert run_id in set(events[events.kind == "retry"].run_id)
    _steps_once(out)


@pytest.mark.slow
def test_a_restarted_driver_picks_up_where_it_was(ray_cluster, write_sweep, tmp_path, sweep_cli, wait_until,
                                                  both_training):
    out = tmp_path / "sweep"
    spec = write_sweep(tokens="[98304]", extra=f'[executor]\nkind = "ray"\n[executor.ray]\naddress = "{ray_cluster}"\n')
    spec.write_text(spec.read_text().replace('compile = "off"', 'compile = "off"\ncheckpoint_interval_s = 1'))
    driver = sweep_cli(spec, out)  # a driver of its own, connected to the session's Ray instance
    wait_until(lambda: both_training(out), "both Ray tasks have recorded steps")
    pids = [r["pid"] for r in _rows(out).values()]
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    deadline = time.monotonic() + 60  # Ray ends a dead driver's tasks; their workers die with them
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.3)
    assert not any(_alive(p) for p in pids)
    outcome = run_sweep(spec, out)  # this process's Ray connection: the same instance
    assert outcome.counts == {"done": 2}
    _steps_once(out)  # resumed from checkpoints or restarted: nothing lost, nothing recorded twice
    events = load_events(out)
    assert set(events[events.kind == "interrupted"].run_id) == set(_rows(out))


@pytest.mark.slow
def test_a_killed_driver_leaves_nothing_of_the_ray_it_started_running(write_sweep, tmp_path, sweep_cli, wait_until,
                                                                        both_training):
    """kill -9 of a sweep that started its own Ray: its Ray processes (the raylet's agents, which Ray leaves
    orphaned, among them), its tasks and their workers all end within seconds."""
    from scalebench.sweep.executors.reaper import process_table, tree

    pytest.importorskip("ray")
    out = tmp_path / "sweep"
    spec = write_sweep(tokens="[98304]", extra='[executor]\nkind = "ray"\n[executor.ray]\nnum_cpus = 2\n')
    driver = sweep_cli(spec, out, env={k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"})
    wait_until(lambda: both_training(out), "both Ray tasks have recorded steps", timeout_s=240)
    table = process_table()
    started = tree([(driver.pid, table[driver.pid][1])], table) - {(driver.pid, table[driver.pid][1])}
    assert len(started) >= 6  # GCS, raylet, agents, two task workers and their training workers, the reaper
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    wait_until(lambda: not tree(started, process_table()), "nothing the killed sweep started is alive",
               timeout_s=30, every_s=0.5)


def test_ray_without_ray_installed_is_a_config_error_naming_the_fix(write_sweep, tmp_path, monkeypatch):
    import sys

    from scalebench.errors import ConfigError

    monkeypatch.setitem(sys.modules, "ray", None)
    out = tmp_path / "sweep"
    with pytest.raises(ConfigError, match=r"executor\.kind = 'ray' needs Ray.*pip install 'scalebench\[ray\]'"):
        run_sweep(write_sweep(), out, backend="ray")
    assert not out.exists()


def test_ray_tasks_ask_for_ranks_over_runs_per_gpu(write_sweep):
    import dataclasses

    from scalebench.config import load_sweep
    from scalebench.sweep.executors.ray import task_resources
    from scalebench.sweep.planner import plan_runs

    spec = load_sweep(write_sweep())
    run = dataclasses.replace(plan_runs(spec).runs[0], device="cuda")
    assert task_resources(run, spec) == {"num_cpus": 1.0, "num_gpus": 1.0}
    packed = dataclasses.replace(spec, devices=dataclasses.replace(spec.devices, runs_per_gpu=4))
    assert task_resources(run, packed) == {"num_cpus": 1.0, "num_gpus": 0.25}  # four runs share a GPU
    two = dataclasses.replace(spec, parallel=dataclasses.replace(spec.parallel, ranks=2))
    assert task_resources(dataclasses.replace(run, threads=3), two) == {"num_cpus": 6.0, "num_gpus": 2.0}
    assert task_resources(dataclasses.replace(run, device="cpu"), spec)["num_gpus"] == 0.0


def test_dry_runs_of_ray_and_local_start_nothing(write_sweep, tmp_path, capsys):
    import sys

    from scalebench.cli import main

    spec = write_sweep(extra="[executor.ray]\naddress = 'head:6379'\n")
    out = tmp_path / "sweep"
    assert main(["run", str(spec), "--out", str(out), "--backend", "ray", "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("# ray: 4 tasks on the Ray cluster at head:6379; nothing started")
    tasks = [line for line in text.splitlines() if line.startswith("task ")]
    assert len(tasks) == 4 and all("num_cpus=1 num_gpus=0 runs " in t for t in tasks)
    assert all(t.endswith("job.json") and " -I -m scalebench.sweep.worker " in t for t in tasks)
    assert main(["run", str(spec), "--out", str(out), "--dry-run"]) == 0  # the spec's kind: local
    text = capsys.readouterr().out
    assert text.startswith("# local: 4 runs, 2 at a time on this machine; nothing started")
    assert f"OMP_NUM_THREADS=1 {sys.executable} -I -m scalebench.sweep.worker " in text
    assert not out.exists()


@pytest.mark.slow
def test_a_run_on_two_ranks_is_a_placement_group_of_rank_actors(ray_cluster, write_sweep, tmp_path):
    # one actor per rank, no torchrun: rank 0's actor shares its address and both meet through the rendezvous
    spec = write_sweep(tokens="[6144]", workers=2, extra="[parallel]\nranks = 2\n[executor.ray]\ncpus_per_run = 2\n")
    out = tmp_path / "sweep"
    outcome = run_sweep(spec, out, backend="ray")
    assert outcome.counts == {"done": 2}
    df = load_results(out)
    assert (df["world_size"] == 2).all()
    events = load_events(out)
    started = events[events.kind == "job"]["message"].tolist()
    assert len(started) == 2 and all("Ray actor (rank 0 of 2)" in m and "rendezvous" in m for m in started)
    import ray
    from ray.util import placement_group_table

    assert not [g for g in placement_group_table().values() if g["state"] != "REMOVED"]  # groups given back
    assert ray.is_initialized()


def test_a_ray_dry_run_of_a_multi_node_run_names_its_placement_group(write_sweep, tmp_path, capsys):
    from scalebench.cli import main

    spec = write_sweep(tokens="[16384]", extra="[parallel]\nranks = 16\n[executor.ray]\ngpus_per_node = 8\n")
    spec.write_text(spec.read_text().replace('device = "cpu"', 'device = "cuda"'))
    assert main(["run", str(spec), "--out", str(tmp_path / "o"), "--backend", "ray", "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert "placement group STRICT_SPREAD of 2 bundle(s) {'CPU': 8.0, 'GPU': 8.0}" in text
    assert "16 actors (one per rank, 8 per node)" in text and "torch.distributed.run" not in text
