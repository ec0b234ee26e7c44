"""What every executor shares: the config tables, slots, the worker command, spawning, the outbox.

The Ray and Slurm executors themselves are exercised in test_ray.py and test_slurm.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scalebench.config import ParallelSpec, RunSpec, load_sweep
from scalebench.errors import ConfigError, DeviceError
from scalebench.store import ResultStore, load_steps
from scalebench.sweep.executors import (
    Slot,
    cpu_slots,
    executor_class,
    gpu_slots,
    list_executors,
    visible_gpu_ids,
    worker_command,
    worker_env,
)


def _run(ranks: int = 1, threads: int = 2) -> RunSpec:
    from scalebench.config import DataSpec, EvalSpec, ProfilingSpec, TrainSpec

    return RunSpec(run_id="r", sweep="s", family="gpt", size="debug", shape={}, params=1, params_total=1,
                   flops_per_token=1.0, tokens=1, flops=1.0, steps=1, budget_label="t1", train=TrainSpec(),
                   eval=EvalSpec(), data=DataSpec(), profiling=ProfilingSpec(), threads=threads,
                   parallel=ParallelSpec(ranks=ranks), run_dir="/x/runs/r")


# --- config -------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("old", "new"), [
    ("slurm_partition = 'gpu'", "executor.slurm.partition"),
    ("slurm_cluster = 'local'", "executor.slurm.cluster"),
    ("slurm_time_min = 5", "executor.slurm.time_min"),
    ("slurm_gpus_per_job = 2", "executor.slurm.gpus_per_job"),
    ("slurm_cpus_per_job = 2", "executor.slurm.cpus_per_job"),
    ("slurm_mem_gb = 8", "executor.slurm.mem_gb"),
    ("max_parallel = 4", "executor.slurm.array_parallelism"),
])
def test_the_old_flat_slurm_keys_name_their_new_spelling(write_sweep, old, new):
    key = old.split(" =")[0]
    with pytest.raises(ConfigError, match=rf"executor\.{key} is now {new.replace('.', '[.]')}"):
        load_sweep(write_sweep(extra=f"[executor]\n{old}\n"))


@pytest.mark.parametrize(("extra", "message"), [
    ('[executor]\nkind = "pbs"', r"\[executor\] kind: got 'pbs', expected a registered executor kind: 'local', "
                                 r"'ray', 'slurm'"),
    ('[executor.slurm]\ncluster = "pbs"', r"executor\.slurm\.cluster: got 'pbs', expected one of 'auto'"),
    ("[executor.slurm]\ntime_min = 0", r"\[executor\.slurm\] time_min must be positive"),
    ("[executor.slurm]\ngpus_per_job = -1", r"gpus_per_job must be >= 0"),
    ("[executor.slurm]\nqos = 'high'", r"unknown key 'executor\.slurm\.qos'.*sbatch_extra"),
    ("[executor.slurm]\nsbatch_extra = {partition = 'x'}", r"sbatch_extra\.partition: --partition .* executor\.slurm\.partition"),
    ("[executor.slurm]\nsbatch_extra = {array = '0-3'}", r"executor\.slurm\.array_parallelism"),
    ("[executor.ray]\naddress = 'h:6379'\nnum_cpus = 2", r"num_cpus and num_gpus size a Ray instance started here"),
    ("[executor.ray]\ncpus_per_run = 0", r"cpus_per_run must be positive"),
    ("[executor.local]\nthreads = 2", r"unknown key 'executor\.local\.threads'"),
])
def test_executor_tables_are_checked_by_the_strict_loader(write_sweep, extra, message):
    with pytest.raises(ConfigError, match=message):
        load_sweep(write_sweep(extra=f"{extra}\n"))


def test_packing_and_multi_rank_runs_exclude_each_other(write_sweep, tmp_path):
    text = write_sweep().read_text().replace("cpu_workers = 2", "cpu_workers = 2\nruns_per_gpu = 2")
    path = tmp_path / "packed.toml"
    path.write_text(text + "[parallel]\nranks = 2\n")
    with pytest.raises(ConfigError, match=r"devices\.runs_per_gpu = 2 packs .* parallel\.ranks = 2"):
        load_sweep(path)


def test_executor_defaults_and_tables(write_sweep):
    spec = load_sweep(write_sweep(extra='[executor]\nkind = "ray"\n[executor.ray]\nnum_cpus = 2\n'
                                        '[executor.slurm]\npartition = "gpu"\nsbatch_extra = {qos = "high"}\n'))
    ex = spec.executor
    assert (ex.kind, ex.max_attempts, ex.ray.num_cpus, ex.ray.address) == ("ray", 2, 2, "")
    assert (ex.slurm.cluster, ex.slurm.partition, ex.slurm.array_parallelism, ex.slurm.gpus_per_job) == (
        "auto", "gpu", 8, None)
    assert ex.slurm.sbatch_extra == {"qos": "high"} and spec.devices.runs_per_gpu == 1
    assert list_executors() == ["local", "ray", "slurm"]
    assert [executor_class(k).kind for k in list_executors()] == ["local", "ray", "slurm"]
    for kind in list_executors():  # every kind answers the whole protocol the runner calls
        for method in ("slots", "start", "describe", "notes", "abandon", "close"):
            assert callable(getattr(executor_class(kind), method, None)), (kind, method)


def test_backend_overrides_the_spec_and_is_recorded(write_sweep, tmp_path):
    from scalebench.sweep.runner import _load

    spec, _ = _load(write_sweep(extra='[executor]\nkind = "slurm"\n'), "local")
    assert spec.executor.kind == "local"
    with pytest.raises(ConfigError, match=r"--backend 'pbs'"):
        _load(write_sweep(), "pbs")


# --- slots --------------------------------------------------------------------------------------------

def test_gpu_slots_group_ranks_and_repeat_for_packing():
    ids = ["0", "1", "2", "3"]
    assert [s.gpus for s in gpu_slots(ids, 1)] == [("0",), ("1",), ("2",), ("3",)]
    assert [s.gpus for s in gpu_slots(ids, 2)] == [("0", "1"), ("2", "3")]
    assert [s.label for s in gpu_slots(ids, 2)] == ["cuda:0,1", "cuda:2,3"]
    assert [s.gpus for s in gpu_slots(ids, 3)] == [("0", "1", "2")]  # GPU 3 stays idle
    # packing: each GPU twice, spread over the GPUs first
    assert [s.gpus for s in gpu_slots(ids[:2], 1, runs_per_gpu=2)] == [("0",), ("1",), ("0",), ("1",)]
    with pytest.raises(DeviceError, match=r"parallel\.ranks = 4 needs 4 GPUs per run, but the sweep has 2"):
        gpu_slots(["0", "1"], 4)


def test_gpu_ids_translate_through_an_inherited_cuda_visible_devices():
    assert visible_gpu_ids([0, 1], {}) == ["0", "1"]
    assert visible_gpu_ids([0, 1], {"CUDA_VISIBLE_DEVICES": "2,3"}) == ["2", "3"]  # Slurm gave us GPUs 2 and 3
    assert visible_gpu_ids([1], {"CUDA_VISIBLE_DEVICES": "GPU-aa, GPU-bb"}) == ["GPU-bb"]
    assert Slot(label="x", gpus=("2", "GPU-bb")).gpu_indices() == [2, "GPU-bb"]


def test_cpu_slots_count_processes():
    assert len(cpu_slots(4, 1)) == 4
    assert len(cpu_slots(4, 2)) == 2  # a 2-rank run takes two worker processes
    assert len(cpu_slots(1, 2)) == 1  # at least one run at a time


def test_the_worker_environment_pins_the_slot():
    env = worker_env(_run(threads=3), Slot(label="cuda:2,3", gpus=("2", "3")), base={"PATH": "/bin"})
    assert env == {"PATH": "/bin", "OMP_NUM_THREADS": "3", "CUDA_VISIBLE_DEVICES": "2,3"}
    assert "CUDA_VISIBLE_DEVICES" not in worker_env(_run(), Slot(label="cpu:0"), base={})


# --- the worker command -------------------------------------------------------------------------------

def test_one_rank_runs_the_worker_module_isolated():
    assert worker_command(_run(), "/x/job.json", sys.executable) == [
        sys.executable, "-I", "-m", "scalebench.sweep.worker", "/x/job.json"]


def test_several_ranks_run_under_torchrun_with_isolated_ranks():
    cmd = worker_command(_run(ranks=2), "/x/job.json", sys.executable)
    assert cmd == [sys.executable, "-I", "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
                   "--no-python", sys.executable, "-I", "-m", "scalebench.sweep.worker", "/x/job.json"]
    # torchrun accepts it as written (its own parser, no process started)
    from torch.distributed.run import get_args_parser

    args = get_args_parser().parse_args(cmd[4:])
    assert (args.standalone, args.nproc_per_node, args.no_python, args.training_script) == (
        True, "2", True, sys.executable)
    assert args.training_script_args == ["-I", "-m", "scalebench.sweep.worker", "/x/job.json"]


@pytest.mark.slow
def test_torchrun_starts_the_ranks_isolated_and_they_check_their_executor(tmp_path):
    from scalebench.sweep.executors import spawn_worker

    marker = tmp_path / "imported"
    (tmp_path / "json.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    cmd = worker_command(_run(ranks=2), tmp_path / "missing-job.json", sys.executable)
    log = tmp_path / "log"
    with open(log, "wb") as f:  # started as executors start it: each rank finds the executor above torchrun
        assert spawn_worker(cmd, dict(os.environ), stdout=f, cwd=tmp_path).wait(timeout=300) != 0
    text = log.read_text()
    # a rank got to its job (torchrun ends the other once one fails, so under load the second may be stopped
    # before it reads its own: in 1 of 2 loaded suite runs it was), and none imported the planted json.py
    assert "missing-job.json" in text and "ChildFailedError" in text, text
    assert not marker.exists()
    # started by someone else than the executor it names: every rank stops before reading its job
    orphan = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "SCALEBENCH_PARENT_PID": "1"})
    assert "exitcode  : 3" in orphan.stderr and "missing-job.json" not in orphan.stderr, orphan.stderr


def test_a_stray_module_in_the_working_directory_does_not_run_in_a_worker(tmp_path):
    # a json.py in the current folder: a plain `python -m` would import it in place of the standard library's
    marker = tmp_path / "imported"
    (tmp_path / "json.py").write_text(f"open({str(marker)!r}, 'w').close()\nraise SystemExit('stray json.py')\n")
    job = tmp_path / "missing-job.json"
    plain = subprocess.run([sys.executable, "-m", "scalebench.sweep.worker", str(job)], cwd=tmp_path,
                           capture_output=True, text=True)
    assert marker.exists() and "stray json.py" in plain.stderr  # the plant works
    marker.unlink()
    isolated = subprocess.run(worker_command(_run(), job, sys.executable), cwd=tmp_path, capture_output=True,
                              text=True, env={**os.environ, "PYTHONPATH": "."})
    assert not marker.exists(), isolated.stderr
    assert "missing-job.json" in isolated.stderr  # it got as far as reading its job file


def test_where_the_isolated_interpreter_lacks_scalebench_a_bootstrap_loads_this_one(tmp_path):
    # an interpreter whose isolated path has neither scalebench nor its dependencies (here: no site
    # directory at all, as where both come from PYTHONPATH): the worker still runs this scalebench
    python = tmp_path / "python"
    python.write_text(f"#!/bin/sh\nexec {sys.executable} -S \"$@\"\n")
    python.chmod(0o755)
    marker = tmp_path / "imported"
    (tmp_path / "json.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    cmd = worker_command(_run(), tmp_path / "missing-job.json", str(python))
    assert cmd[1:3] == ["-I", "-c"]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True)
    import scalebench.sweep.worker as ours

    assert ours.__file__ in proc.stderr and "missing-job.json" in proc.stderr, proc.stderr  # this worker module ran
    assert not marker.exists()


# --- workers never outlive their driver ---------------------------------------------------------------

def _children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return out


def _alive_with(text: str) -> list[int]:
    """Live processes whose command line mentions ``text``."""
    pids = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (d / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if text in cmd and state != "Z" and int(d.name) != os.getpid():
            pids.append(int(d.name))
    return pids


@pytest.mark.slow
def test_killing_the_driver_as_its_first_worker_starts_leaves_no_worker(write_sweep, tmp_path, sweep_cli):
    spec = write_sweep(tokens="[8192]", workers=1)
    # and through submitit's local executor, whose controller process would outlive the sweep
    slurm = write_sweep(name="viaslurm", tokens="[16384]", workers=1,
                        extra='[executor]\nkind = "slurm"\n[executor.slurm]\ncluster = "local"\n')
    for attempt, (delay_s, spec_path) in enumerate(((0.0, spec), (0.0, spec), (0.003, spec), (2.0, slurm))):
        out = tmp_path / f"sweep{attempt}"
        driver = sweep_cli(spec_path, out)
        first_job = next(iter(plan_dirs(spec_path, out))) / "job.json"  # written just before its worker starts
        deadline = time.monotonic() + 120
        while not (first_job.exists() and _children(driver.pid)) and time.monotonic() < deadline:
            time.sleep(0.001)  # poll hard: kill within a millisecond or so of the fork
        time.sleep(delay_s)
        os.kill(driver.pid, signal.SIGKILL)
        assert first_job.exists(), "the driver started no worker"
        driver.wait()
        deadline = time.monotonic() + 15
        while _alive_with(str(out)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive_with(str(out)), f"try {attempt}: a worker outlived its driver"
    # a restart trains every run once: no step recorded twice, none lost
    from scalebench.sweep.runner import run_sweep

    assert run_sweep(spec_path, out).counts == {"done": 2}  # the last try: the submitit one
    steps = load_steps(out)
    with ResultStore(out) as store:
        for row in store.runs():
            assert steps[steps.run_id == row["run_id"]]["step"].tolist() == list(range(row["spec"]["steps"]))


def plan_dirs(spec_path: Path, out: Path) -> list[Path]:
    """The run folders of the sweep, in launch order (largest first)."""
    from scalebench.sweep.planner import plan_runs

    return [Path(r.run_dir) for r in plan_runs(load_sweep(spec_path), sweep_dir=out).runs]


def test_a_worker_whose_parent_is_gone_trains_nothing(tmp_path):
    from scalebench.sweep.worker import EXIT_ORPHANED, parent_gone

    assert not parent_gone({})  # started by hand: no expectation
    assert not parent_gone({"SCALEBENCH_PARENT_PID": str(os.getppid())})
    assert parent_gone({"SCALEBENCH_PARENT_PID": "1"} if os.getppid() != 1 else {"SCALEBENCH_PARENT_PID": "2"})
    # a torchrun rank: our parent is "torchrun", so its parent must be the executor
    assert not parent_gone({"SCALEBENCH_PARENT_PID": str(_ppid(os.getppid())), "LOCAL_RANK": "0"})
    job = tmp_path / "job.json"  # not even read
    proc = subprocess.run(worker_command(_run(), job, sys.executable), capture_output=True, text=True,
                          env={**os.environ, "SCALEBENCH_PARENT_PID": "1"})
    assert proc.returncode == EXIT_ORPHANED, proc.stderr


def _ppid(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


# --- the outbox ---------------------------------------------------------------------------------------

def test_outbox_lines_reach_the_store_once_and_partial_lines_wait(tmp_path):
    from scalebench.store import load_events
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
        assert drain(store, "r", run_dir) == 3
        assert drain(store, "r", run_dir) == 0  # nothing new: nothing applied twice
        assert load_steps(tmp_path)["step"].tolist() == [0, 1]
        assert load_events(tmp_path)["kind"].tolist() == ["note"]
        with open(run_dir / "outbox.jsonl", "a") as f:
            f.write(', "message": "done"}\n')
        sink.set_status("r", "done", record={"eval_loss": 2.5})
        drain(store, "r", run_dir)
        assert load_events(tmp_path)["kind"].tolist() == ["note", "half"]
        assert store.runs()[0]["status"] == "done" and store.runs()[0]["record"]["eval_loss"] == 2.5
        assert int((run_dir / "outbox.offset").read_text()) == (run_dir / "outbox.jsonl").stat().st_size
        retire(run_dir)
        assert (run_dir / "outbox.1.jsonl").is_file() and not (run_dir / "outbox.jsonl").exists()


def test_the_cluster_docs_snippets_are_valid_specs(tmp_path):
    import re

    section = (Path(__file__).parents[1] / "docs" / "clusters.md").read_text()
    blocks = re.findall(r"```toml\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 4  # a multi-GPU node, a Ray cluster, a Slurm cluster, one run across nodes
    kinds = []
    for i, block in enumerate(blocks):
        path = tmp_path / f"readme{i}.toml"
        path.write_text('name = "r"\n[model]\nsizes = ["debug", "100k"]\n[budget]\ntokens = [8192]\n' + block)
        kinds.append(load_sweep(path).executor.kind)
    assert kinds == ["local", "local", "slurm", "local"]
