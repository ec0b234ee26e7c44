"""``kind = "slurm"``: the runs as Slurm job arrays through submitit (``pip install 'scalebench[slurm]'``).

The runs the sweep can start at once go out as one ``sbatch --array=0-K%P`` (submitit's ``executor.batch()``;
``P`` = ``executor.slurm.array_parallelism``), retries as later submissions. Each job runs
``submitit_entry``, which starts the same worker command a local run uses (torchrun for several ranks) and
reports through the run's outbox: a job on a cluster node never writes the sweep's SQLite store.
``cluster = "local"`` runs the jobs with submitit's local executor on this machine (its device slots,
capped by ``array_parallelism``), which is how the tests run them.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from scalebench.config import ExecutorSpec, RunSpec
from scalebench.errors import ConfigError
from scalebench.sweep.executors.base import (
    JOB_LOST,
    Launch,
    Slot,
    device_slots,
    die_with_parent,
    node_layout,
    rank_env,
    rendezvous_port,
    spawn_worker,
    tail,
    wait_forwarding_stop,
    worker_command,
    worker_env,
)

_JOB_ID_FILE = "slurm_job_id"


def _import_submitit():
    try:
        import submitit
    except ImportError:
        raise ConfigError("executor.kind = 'slurm' needs submitit, which is not installed: "
                          "pip install 'scalebench[slurm]' (or run with --backend local)") from None
    return submitit


def _mem(mem_gb: float) -> str:
    return f"{int(mem_gb)}GB" if float(mem_gb).is_integer() else f"{round(mem_gb * 1024)}MB"


def job_layout(spec: Any, runs: Sequence[RunSpec]) -> tuple[int, int]:
    """(nodes, tasks per node) of each job: one task per rank, over as many nodes as the ranks need."""
    cuda = bool(runs) and runs[0].device == "cuda"
    return node_layout(spec.parallel.ranks, spec.parallel.nodes, spec.executor.slurm.gpus_per_node if cuda else None,
                       "executor.slurm.gpus_per_node")


def sbatch_parameters(spec: Any, runs: Sequence[RunSpec]) -> dict[str, Any]:
    """The submitit ``SlurmExecutor`` parameters (sbatch's names) for the jobs of ``runs``: one run per job,
    one task per rank (srun starts them; no torchrun), its GPUs on each of its nodes."""
    s = spec.executor.slurm
    cuda = bool(runs) and runs[0].device == "cuda"
    nodes, per_node = job_layout(spec, runs)
    gpus = (s.gpus_per_job if s.gpus_per_job is not None else per_node) if cuda else 0
    params: dict[str, Any] = {"job_name": f"scalebench-{spec.name}", "time": s.time_min, "nodes": nodes,
                              "ntasks_per_node": per_node, "cpus_per_task": s.cpus_per_job, "mem": _mem(s.mem_gb),
                              "array_parallelism": s.array_parallelism}
    if gpus:
        params["gpus_per_node"] = gpus
    for key in ("partition", "account"):
        if getattr(s, key):
            params[key] = getattr(s, key)
    if s.setup:
        params["setup"] = list(s.setup)
    if s.sbatch_extra:
        params["additional_parameters"] = dict(s.sbatch_extra)
    return params


# --- what a job runs ----------------------------------------------------------------------------------

def _raise_interrupt(signum, frame):  # noqa: ARG001
    raise KeyboardInterrupt


def _gpus_from_env() -> list[int | str]:
    ids = [v.strip() for v in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
    return [int(v) if v.isdigit() else v for v in ids]


def task_rank_env(local: bool) -> dict[str, str]:
    """This task's rank variables, from submitit's view of the job (Slurm's SLURM_PROCID, SLURM_LOCALID,
    SLURM_NTASKS, SLURM_JOB_NODELIST ...). The rendezvous host is the allocation's first node, as Slurm names
    it (not this task's ``hostname --ip-address``, which some clusters resolve to 127.0.0.1, nor the
    submitting login node); the port derives from the job id, alike in every task."""
    import submitit

    env = submitit.JobEnvironment()
    per_node = env.num_tasks // max(1, env.num_nodes)
    return rank_env(rank=env.global_rank, local_rank=env.local_rank, world_size=env.num_tasks,
                    local_world_size=per_node, node_rank=env.node,
                    master_addr="127.0.0.1" if local else env.hostnames[0],
                    master_port=rendezvous_port(f"{env.job_id}"))


def submitit_entry(job_path: str, gpus: list[str] | None, driver_pid: int | None = None) -> int:
    """What a submitit task runs: one rank of the run's worker as a child process; returns its exit code.

    A run on several ranks is one task per rank (Slurm's srun starts them on the job's nodes; submitit's
    local executor starts them here): each sets its rank's variables and starts the worker itself, no
    torchrun. ``gpus``: the slot's devices on submitit's local executor; on Slurm (None) the allocation's
    CUDA_VISIBLE_DEVICES. scancel and preemption (SIGTERM) are forwarded to the worker, which leaves its
    run pending with its checkpoint, as a signal to a local worker does. ``driver_pid`` (local executor
    only): the sweep process, whose death ends the job (submitit's local controller would outlive it).
    """
    signal.signal(signal.SIGTERM, _raise_interrupt)  # submitit itself ignores SIGTERM (Slurm's warning)
    signal.signal(signal.SIGINT, _raise_interrupt)
    local = os.environ.get("SUBMITIT_EXECUTOR") == "local"
    if local:
        die_with_parent()  # a SIGKILL to submitit's local controller (kill()) then reaches this job too
    from scalebench._util import write_text_atomic
    from scalebench.config import RunSpec
    from scalebench.sweep.outbox import OutboxSink

    path = Path(job_path)
    job = json.loads(path.read_text())
    run = RunSpec.from_dict(job["run"])
    slot = Slot(label="job", gpus=tuple(gpus or ()))
    env = worker_env(run, slot)
    if run.parallel.ranks > 1:
        env.update(task_rank_env(local))
    command = worker_command(run, path, torchrun=False)
    if env.get("RANK", "0") != "0":  # rank 0 alone writes the job file and the outbox
        return wait_forwarding_stop(spawn_worker(command, env), watch_pid=driver_pid)
    job["gpus"] = slot.gpu_indices() if gpus is not None else _gpus_from_env()
    # the telemetry sampler watches the GPUs this job really got; atomic: the other ranks may be reading it
    write_text_atomic(path, json.dumps(job), what="job file")
    with OutboxSink(run.run_dir) as sink:
        job_id = os.environ.get("SLURM_JOB_ID") or os.environ.get("SUBMITIT_LOCAL_JOB_ID", "?")
        proc = spawn_worker(command, env)  # output goes to the job's own log
        sink.set_pid(run.run_id, proc.pid)
        where = (f" (rank 0 of {run.parallel.ranks}; rendezvous {env['MASTER_ADDR']}:{env['MASTER_PORT']})"
                 if run.parallel.ranks > 1 else "")
        sink.add_event(run.run_id, "job", f"job {job_id} started on {socket.gethostname()}{where}, worker pid "
                       f"{proc.pid}")
    return wait_forwarding_stop(proc, watch_pid=driver_pid)


# --- the sweep's side ---------------------------------------------------------------------------------

class _SubmititHandle:
    pid = None  # the job records its worker's pid in the store once it starts

    def __init__(self, job: Any, label: str, local: bool) -> None:
        self.job, self._label, self._local = job, label, local

    def _signal_controller(self, sig: int) -> None:
        # submitit's local job: its controller process (job._process) forwards SIGTERM to the job;
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

    def terminate(self) -> None:  # the job forwards SIGTERM to its worker, which leaves its run pending
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
        where = f"{self._label} job {self.job.job_id} (state {self.job.state}; log {self.job.paths.stderr})"
        if code == JOB_LOST:
            return (f"{where} ended without recording an outcome: cancelled (scancel), killed, out of "
                    "memory or time, node failure or preemption")
        if code < 0:
            return f"{where}: its worker was killed by signal {-code}"
        result = self._result()
        if result is not None and result[0] == "error":
            return f"{where} failed: {str(result[1]).strip().splitlines()[-1]}"
        return f"{where}: its worker exited with code {code}"

    def log_tail(self, lines: int = 8) -> str:
        return tail(Path(self.job.paths.stderr), lines)

    def close(self) -> None:
        pass


class SubmititExecutor:
    """Each run a job of a Slurm job array; or of submitit's local executor, for trying a spec here."""

    kind = "slurm"
    remote = True  # jobs may run on other hosts: they report through their outbox, never SQLite

    def __init__(self, spec: ExecutorSpec, sweep_dir: Path, python: str | None = None) -> None:
        _import_submitit()  # fail fast, before planning
        self.spec, self.folder = spec.slurm, Path(sweep_dir) / "slurm"
        self.python = python or spec.slurm.python or sys.executable
        self._executor: Any = None
        self.cluster: str | None = None
        self._auto_cpu = False

    def _resolve_cluster(self) -> str:
        import shutil

        if self.spec.cluster == "auto":
            return "slurm" if shutil.which("srun") else "local"
        return self.spec.cluster

    def _connect(self, runs: Sequence[RunSpec], spec: Any) -> None:
        submitit = _import_submitit()
        self.cluster = self._resolve_cluster()
        if self.cluster == "slurm":
            try:
                ex = submitit.SlurmExecutor(folder=self.folder, python=shlex.quote(self.python))
            except RuntimeError as exc:  # cluster = "slurm" where no srun is on PATH
                raise ConfigError(f"executor.slurm.cluster = 'slurm': {exc}; run where Slurm is installed, or set "
                                  "executor.slurm.cluster = 'local' to try the sweep here") from None
            ex.update_parameters(**sbatch_parameters(spec, runs))
        else:
            ex = submitit.LocalExecutor(folder=self.folder, python=shlex.quote(self.python))
            # the slot's GPUs are pinned by submitit_entry; `setup` lines are for cluster nodes, not run here
            # one machine: every rank a task here, whatever parallel.nodes says
            ex.update_parameters(timeout_min=self.spec.time_min, nodes=1, tasks_per_node=spec.parallel.ranks)
        self._executor = ex

    def slots(self, runs: Sequence[RunSpec], spec: Any) -> list[Slot]:
        self._connect(runs, spec)
        cuda = bool(runs) and runs[0].device == "cuda"
        self._auto_cpu = not cuda and spec.devices.device == "auto"
        if self.cluster != "slurm":  # jobs share this machine: its device slots
            return device_slots(runs, spec)[: self.spec.array_parallelism]
        # every run in flight at once: Slurm runs array_parallelism of them (--array=0-K%P)
        return [Slot(label=f"job:{i}") for i in range(max(1, len(runs)))]

    def start(self, launches: Sequence[Launch]) -> list[_SubmititHandle]:
        label = "Slurm" if self.cluster == "slurm" else f"submitit {self.cluster}"
        local = self.cluster != "slurm"
        try:
            with self._executor.batch():  # one job array for everything started together
                jobs = [self._executor.submit(submitit_entry, str(item.job_path), list(item.slot.gpus) if local else None,
                                              os.getpid() if local else None) for item in launches]
        except (subprocess.CalledProcessError, OSError) as exc:
            out = getattr(exc, "output", b"") or b""
            raise ConfigError(f"sbatch refused the job array: {exc} {out.decode(errors='replace').strip()}; check "
                              "executor.slurm.partition, account, time_min and sbatch_extra "
                              "(`scalebench run SWEEP --backend slurm --dry-run` shows the script)") from None
        if not local:  # a later sweep process cancels it if it restarts the run (see abandon)
            for item, job in zip(launches, jobs, strict=True):
                (item.job_path.parent / _JOB_ID_FILE).write_text(str(job.job_id))
        return [_SubmititHandle(job, label, local) for job in jobs]

    def abandon(self, run_dir: Path) -> None:
        """A run an earlier (killed) sweep process left running: cancel its Slurm job before it restarts.

        Slurm jobs do not end with the sweep that submitted them; without this a restarted sweep would
        train the run twice at once. (Jobs of submitit's local executor end with their sweep.)
        """
        path = Path(run_dir) / _JOB_ID_FILE
        if (self.cluster or self._resolve_cluster()) != "slurm" or not path.is_file():
            return
        submitit = _import_submitit()
        job = submitit.SlurmJob(folder=self.folder, job_id=path.read_text().strip())
        with contextlib.suppress(Exception):  # already ended, or scancel unreachable: nothing more to do
            job.cancel(check=False)
        path.unlink(missing_ok=True)

    def describe(self, runs: Sequence[RunSpec], spec: Any, sweep_dir: Path) -> str:
        return dry_run_submission(runs, spec, sweep_dir, self.python)

    def notes(self) -> tuple[str, ...]:
        if self.spec.cluster == "auto" and self.cluster not in (None, "slurm"):
            return (f"executor.kind = 'slurm': no Slurm found here (no srun), so submitit ran the jobs with its "
                    f"{self.cluster!r} executor on this machine",)
        if self.cluster == "slurm" and self._auto_cpu:  # "auto" is decided here, where there may be no GPU
            return ("executor.kind = 'slurm': devices.device = 'auto' found no GPU on the submitting machine, so "
                    "the jobs trained on CPU; set devices.device = 'cuda' for GPU jobs",)
        return ()

    def close(self) -> None:
        pass


def dry_run_submission(runs: Sequence[RunSpec], spec: Any, sweep_dir: Path, python: str | None = None) -> str:
    """The sbatch script submitit would submit for ``runs`` (one job array), with the run of each index.

    Made by submitit's own script writer, with the parameters a real submission uses; submits nothing
    and writes nothing.
    """
    _import_submitit()
    from submitit.slurm.slurm import _make_sbatch_string  # submitit's script writer (no public entry)

    python = python or spec.executor.slurm.python or sys.executable
    folder = Path(sweep_dir).resolve() / "slurm"
    command = " ".join([shlex.quote(python), "-u -m submitit.core._submit", shlex.quote(str(folder))])
    params = sbatch_parameters(spec, runs)
    n = len(runs)
    script = _make_sbatch_string(command=command, folder=folder, map_count=n if n > 1 else None, **params)
    lines = [f"# scalebench --dry-run: sweep {spec.name!r}, {n} runs as {'one job array' if n > 1 else 'one job'}; "
             "nothing submitted, nothing written",
             f"# sbatch {folder}/submission_file.sh  (submitit writes the file and the pickled calls at submission)"]
    if spec.parallel.ranks > 1:
        nodes, per_node = job_layout(spec, runs)
        gpus = params.get("gpus_per_node", 0)
        lines.append(f"# each job: {nodes} node(s) x {per_node} task(s), one task per rank"
                     + (f", {gpus} GPUs per node" if gpus else "") + "; srun starts the tasks (no torchrun); each "
                     "sets RANK/LOCAL_RANK/WORLD_SIZE from SLURM_PROCID/SLURM_LOCALID/SLURM_NTASKS, MASTER_ADDR = "
                     "the first node of SLURM_JOB_NODELIST, MASTER_PORT = 15000 + hash(SLURM_JOB_ID) % 15000")
    for i, run in enumerate(runs):
        cmd = worker_command(run, Path(run.run_dir).resolve() / "job.json", python, torchrun=False)
        lines.append(f"# [{i}] {run.run_id}: {'each task runs ' if run.parallel.ranks > 1 else ''}{shlex.join(cmd)}")
    return "\n".join(lines) + "\n" + script + "\n"
