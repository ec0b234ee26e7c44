"""How a sweep's runs are started: a worker process here (``local``) or a submitit job (``slurm``).

Both start the same worker entry (``scalebench.sweep.worker``), which writes its run's outcome to the
store itself; the runner owns the loop (queue, retries, timeouts, resume) and sees only the small job
handle below. A job handle reports an exit code once the job has ended and can describe how it ended,
so a worker that died without writing (kill -9, scancel, node failure, preemption) is marked failed
with that description and the tail of its log.

Submitit is imported lazily: only ``executor.kind = "slurm"`` needs it (``pip install 'scalebench[slurm]'``).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Protocol

from scalebench.config import ExecutorSpec, RunSpec
from scalebench.errors import ConfigError, DeviceError

JOB_LOST = -1000  # a submitit job ended without a result: killed, cancelled, node failure, preemption


class JobHandle(Protocol):
    pid: int | None  # of the worker process, where the sweep process knows it

    def poll(self) -> int | None: ...  # the exit code once the job has ended, else None
    def terminate(self) -> None: ...  # ask to stop: the worker leaves its run pending
    def kill(self) -> None: ...
    def wait(self, timeout: float) -> int | None: ...  # None if still running after `timeout` seconds
    def describe(self, code: int) -> str: ...  # "killed by signal 9", "Slurm job 123 ended NODE_FAIL …"
    def log_tail(self, lines: int = 8) -> str: ...
    def close(self) -> None: ...


class Executor(Protocol):
    kind: str
    remote: bool  # workers may run on other hosts: they report through an outbox (sweep/outbox.py)

    def slots(self, runs: list[RunSpec], spec: Any) -> list[str]: ...  # how many runs may be in flight, and where
    def start(self, run: RunSpec, slot: str, job_path: Path) -> JobHandle: ...
    def notes(self) -> tuple[str, ...]: ...


def make_executor(spec: ExecutorSpec, sweep_dir: Path, python: str | None = None) -> Executor:
    if spec.kind == "slurm":
        return SubmititExecutor(spec, sweep_dir, python)
    return LocalExecutor(python)


def _tail(path: Path, lines: int) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return "\n".join(text[-lines:])


def cuda_visible_for(slot: str) -> str:
    """The CUDA_VISIBLE_DEVICES value that pins a worker to slot ``cuda:i``.

    Slots index the devices this process sees; translate through an inherited CUDA_VISIBLE_DEVICES
    (e.g. Slurm's "2,3") so a worker lands on the GPU it was given, not physical GPU 0.
    """
    visible = [v for v in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
    index = int(slot.split(":")[1])
    return visible[index] if index < len(visible) else str(index)


def device_slots(runs: list[RunSpec], spec: Any) -> list[str]:
    """One slot per GPU this process sees (or ``devices.gpus``), else ``devices.cpu_workers`` CPU slots."""
    if runs and runs[0].device == "cuda":
        import torch

        count = torch.cuda.device_count()
        gpus = list(spec.devices.gpus) or list(range(count))
        bad = [g for g in gpus if g >= count]
        if bad:
            raise DeviceError(f"devices.gpus = {list(spec.devices.gpus)}: index {bad[0]} is not among the {count} "
                              "CUDA devices this process sees (indices count visible devices, from 0)")
        if not gpus:
            raise DeviceError("devices.device = 'cuda' but torch sees no CUDA device (CPU build of torch, or "
                              "CUDA_VISIBLE_DEVICES hides them); set devices.device = 'auto' or 'cpu'")
        return [f"cuda:{g}" for g in gpus]
    return [f"cpu:{i}" for i in range(spec.devices.cpu_workers)]


def worker_command(run: RunSpec, job_path: Path, python: str) -> list[str]:
    """The worker's command line: one process, or torchrun with one process per rank (gloo on CPU)."""
    if run.parallel.ranks > 1:
        return [python, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={run.parallel.ranks}",
                "-m", "scalebench.sweep.worker", str(job_path)]
    return [python, "-m", "scalebench.sweep.worker", str(job_path)]


# --- local: one subprocess per run --------------------------------------------------------------------

class _ProcessHandle:
    def __init__(self, proc: subprocess.Popen, log_path: Path, log: Any) -> None:
        self.proc, self.pid, self._log_path, self._log = proc, proc.pid, log_path, log

    def poll(self) -> int | None:
        return self.proc.poll()

    def terminate(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()

    def wait(self, timeout: float) -> int | None:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def describe(self, code: int) -> str:
        return f"killed by signal {-code}" if code < 0 else f"exited with code {code}"

    def log_tail(self, lines: int = 8) -> str:
        return _tail(self._log_path, lines)

    def close(self) -> None:
        self._log.close()


class LocalExecutor:
    """Each run in its own ``python -m scalebench.sweep.worker`` process, one per device slot."""

    kind = "local"
    remote = False  # workers share this machine's file system: they write the store directly

    def __init__(self, python: str | None = None) -> None:
        self.python = python or sys.executable

    def slots(self, runs: list[RunSpec], spec: Any) -> list[str]:
        return device_slots(runs, spec)

    def start(self, run: RunSpec, slot: str, job_path: Path) -> _ProcessHandle:
        env = dict(os.environ)
        env["OMP_NUM_THREADS"] = str(run.threads)
        if slot.startswith("cuda:"):
            env["CUDA_VISIBLE_DEVICES"] = cuda_visible_for(slot)
        log_path = job_path.parent / "worker.log"
        log = open(log_path, "ab")  # noqa: SIM115 - closed when the worker is reaped
        proc = subprocess.Popen(worker_command(run, job_path, self.python),
                                env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        return _ProcessHandle(proc, log_path, log)

    def notes(self) -> tuple[str, ...]:
        return ()


# --- slurm: one submitit job per run ------------------------------------------------------------------

def _raise_interrupt(signum, frame):  # noqa: ARG001
    raise KeyboardInterrupt


def submitit_entry(job_path: str, threads: int, cuda_visible: str | None) -> int:
    """What a submitit job runs: the worker's ``run_job`` on the job file, in the job's own process.

    Runs before torch is imported there, so the thread count and GPU pin still take effect.
    """
    os.environ["OMP_NUM_THREADS"] = str(threads)
    if cuda_visible is not None:  # submitit's local executor; on Slurm the allocation sets it
        os.environ["CUDA_VISIBLE_DEVICES"] = cuda_visible
    # submitit ignores SIGTERM (Slurm's warning before a kill); scancel and preemption should instead
    # leave the run pending with its checkpoint, as a signal to a local worker does
    signal.signal(signal.SIGTERM, _raise_interrupt)
    signal.signal(signal.SIGINT, _raise_interrupt)
    from scalebench.sweep.outbox import OutboxSink
    from scalebench.sweep.worker import _die_with_parent, run_job

    if os.environ.get("SUBMITIT_EXECUTOR") == "local":
        _die_with_parent()  # a SIGKILL to submitit's local controller (kill()) then reaches this worker too

    job = json.loads(Path(job_path).read_text())
    run_id = job["run"]["run_id"]
    with OutboxSink(job["run"]["run_dir"]) as store:  # where it really runs: the sweep process cannot know
        store.set_pid(run_id, os.getpid())
        job_id = os.environ.get("SLURM_JOB_ID") or os.environ.get("SUBMITIT_LOCAL_JOB_ID", "?")
        store.add_event(run_id, "job", f"job {job_id} started on {socket.gethostname()}, pid {os.getpid()}")
    return run_job(job)


class _SubmititHandle:
    pid = None  # the worker records its own pid in the store once it starts

    def __init__(self, job: Any, label: str, local: bool) -> None:
        self.job, self._label, self._local = job, label, local

    def _signal_controller(self, sig: int) -> None:
        # submitit's local job: its controller process (job._process) forwards SIGTERM to the worker;
        # job.cancel() sends SIGINT, which a sweep started in the background inherits as ignored
        proc = getattr(self.job, "_process", None)
        if proc is not None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(sig)

    def _result(self) -> tuple[str, Any] | None:
        path = self.job.paths.result_pickle
        if not path.exists():
            return None
        from submitit.core.utils import pickle_load

        try:
            return pickle_load(path)
        except Exception:  # noqa: BLE001 - a torn or unreadable result counts as none
            return None

    def poll(self) -> int | None:
        if not self.job.done():
            return None
        result = self._result()
        if result is None:
            return JOB_LOST
        outcome, value = result
        return value if outcome == "success" and isinstance(value, int) else 1

    def terminate(self) -> None:  # the worker catches SIGTERM and leaves its run pending
        if self._local:
            self._signal_controller(signal.SIGTERM)
            return
        with contextlib.suppress(Exception):  # already gone, or scancel unreachable: nothing more to do
            self.job.cancel(check=False)  # Slurm: SIGTERM, then SIGKILL after its KillWait

    def kill(self) -> None:
        if self._local:
            self._signal_controller(signal.SIGKILL)
        else:
            self.terminate()

    def wait(self, timeout: float) -> int | None:
        deadline = time.monotonic() + timeout
        while True:
            code = self.poll()
            if code is not None or time.monotonic() >= deadline:
                return code
            time.sleep(0.2)

    def describe(self, code: int) -> str:
        state = self.job.state
        where = f"{self._label} job {self.job.job_id} (state {state}; log {self.job.paths.stderr})"
        if code == JOB_LOST:
            return (f"{where} ended without recording an outcome: cancelled (scancel), killed, out of "
                    "memory or time, node failure or preemption")
        result = self._result()
        if result is not None and result[0] == "error":
            return f"{where} failed: {str(result[1]).strip().splitlines()[-1]}"
        return f"{where} exited with code {code}"

    def log_tail(self, lines: int = 8) -> str:
        return _tail(Path(self.job.paths.stderr), lines)

    def close(self) -> None:
        pass


class SubmititExecutor:
    """Each run a submitit job: on Slurm (``sbatch``), or in submitit's local executor for trying it here."""

    kind = "slurm"
    remote = True  # jobs may run on other hosts: they report through their outbox, never SQLite

    def __init__(self, spec: ExecutorSpec, sweep_dir: Path, python: str | None = None) -> None:
        try:
            import submitit
        except ImportError:
            raise ConfigError("executor.kind = 'slurm' needs submitit, which is not installed: "
                              "pip install 'scalebench[slurm]' (or set executor.kind = 'local')") from None
        self.spec = spec
        cluster = None if spec.slurm_cluster == "auto" else spec.slurm_cluster  # None: Slurm where srun is
        kwargs = {f"{c}_python": python for c in ("slurm", "local") if python}
        try:
            self._executor = submitit.AutoExecutor(folder=Path(sweep_dir) / "slurm", cluster=cluster, **kwargs)
        except RuntimeError as exc:  # slurm_cluster = "slurm" where no srun is on PATH
            raise ConfigError(f"executor.slurm_cluster = {spec.slurm_cluster!r}: {exc}; run where Slurm is "
                              "installed, or set slurm_cluster = 'local' to try the sweep here") from None
        self.cluster = self._executor.cluster
        self._gpus, self._auto_cpu = 0, False

    def slots(self, runs: list[RunSpec], spec: Any) -> list[str]:
        cuda = bool(runs) and runs[0].device == "cuda"
        self._gpus = self.spec.slurm_gpus_per_job if cuda else 0  # no GPUs asked for CPU runs
        self._auto_cpu = not cuda and spec.devices.device == "auto"
        if self.cluster != "slurm":  # jobs share this machine: its GPUs, or devices.cpu_workers
            return device_slots(runs, spec)[: self.spec.max_parallel]
        return [f"job:{i}" for i in range(self.spec.max_parallel)]

    def start(self, run: RunSpec, slot: str, job_path: Path) -> _SubmititHandle:
        s = self.spec
        params: dict[str, Any] = dict(name=f"scalebench-{run.run_id}", timeout_min=s.slurm_time_min, nodes=1,
                                      tasks_per_node=1, cpus_per_task=s.slurm_cpus_per_job, mem_gb=float(s.slurm_mem_gb),
                                      gpus_per_node=self._gpus)
        if s.slurm_partition:
            params["slurm_partition"] = s.slurm_partition
        self._executor.update_parameters(**params)
        cuda_visible = cuda_visible_for(slot) if slot.startswith("cuda:") else None
        job = self._executor.submit(submitit_entry, str(job_path), run.threads, cuda_visible)
        return _SubmititHandle(job, "Slurm" if self.cluster == "slurm" else f"submitit {self.cluster}",
                               local=self.cluster != "slurm")

    def notes(self) -> tuple[str, ...]:
        if self.spec.slurm_cluster == "auto" and self.cluster != "slurm":
            return (f"executor.kind = 'slurm': no Slurm found here (no srun), so submitit ran the jobs with its "
                    f"{self.cluster!r} executor on this machine",)
        if self.cluster == "slurm" and self._auto_cpu:  # "auto" is decided here, where there may be no GPU
            return ("executor.kind = 'slurm': devices.device = 'auto' found no GPU on the submitting machine, so "
                    "the jobs trained on CPU; set devices.device = 'cuda' for GPU jobs",)
        return ()
