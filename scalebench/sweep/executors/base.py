"""What every executor shares: slots, the worker's command line and environment, and how it is spawned.

A *slot* is where one run trains: a group of ``parallel.ranks`` GPUs (``CUDA_VISIBLE_DEVICES="a,b"``), a
group of CPU worker processes, or a place in a cluster's queue. Every executor starts the same worker
command (``worker_command``): ``python -I -m scalebench.sweep.worker JOB.json`` for one rank, torchrun
around it for several. The worker is spawned (``spawn_worker``) so that it cannot outlive whoever
started it, and it imports nothing from the current directory.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from scalebench.config import RunSpec
from scalebench.errors import ConfigError, DeviceError

JOB_LOST = -1000  # a job ended without a result: killed, cancelled, node failure, preemption
PARENT_ENV = "SCALEBENCH_PARENT_PID"  # the pid a worker must find as its parent (see worker.parent_gone)
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True, kw_only=True)
class Slot:
    """Where one run trains. ``gpus`` are the ids to put in CUDA_VISIBLE_DEVICES (physical indices where the
    sweep sees them so; an inherited CUDA_VISIBLE_DEVICES may hold UUIDs); empty for CPU and queue slots."""

    label: str  # "cuda:0,1", "cpu:3", "job:7"
    gpus: tuple[str, ...] = ()

    def gpu_indices(self) -> list[int | str]:
        """For job.json: integers where the ids are indices (what NVML takes), else the ids as given."""
        return [int(g) if g.isdigit() else g for g in self.gpus]


class JobHandle(Protocol):
    pid: int | None  # of the worker process, where the sweep process knows it

    def poll(self) -> int | None: ...  # the exit code once the job has ended, else None
    def terminate(self) -> None: ...  # ask to stop: the worker leaves its run pending
    def kill(self) -> None: ...
    def wait(self, timeout: float) -> int | None: ...  # None if still running after `timeout` seconds
    def describe(self, code: int) -> str: ...  # "killed by signal 9", "Slurm job 123 ended NODE_FAIL …"
    def log_tail(self, lines: int = 8) -> str: ...
    def close(self) -> None: ...


@dataclass(frozen=True, kw_only=True)
class Launch:
    """One run to start: its spec, its slot and its job file (written by the runner)."""

    run: RunSpec
    slot: Slot
    job_path: Path


class Executor(Protocol):
    kind: str
    remote: bool  # workers may run on other hosts: they report through an outbox (sweep/outbox.py)

    def slots(self, runs: Sequence[RunSpec], spec: Any) -> list[Slot]: ...  # how many in flight, and where
    def start(self, launches: Sequence[Launch]) -> list[JobHandle]: ...  # one handle per launch, in order
    def describe(self, runs: Sequence[RunSpec], spec: Any, sweep_dir: Path) -> str: ...  # --dry-run
    def notes(self) -> tuple[str, ...]: ...
    def abandon(self, run_dir: Path) -> None: ...  # a run an earlier sweep left running is about to restart
    def close(self) -> None: ...


# --- slots --------------------------------------------------------------------------------------------

def visible_gpu_ids(indices: Sequence[int], environ: Mapping[str, str] | None = None) -> list[str]:
    """The CUDA_VISIBLE_DEVICES ids of the visible devices ``indices`` (0 = the first this process sees).

    Indices count visible devices; translate through an inherited CUDA_VISIBLE_DEVICES (Slurm's "2,3") so
    a worker lands on the GPU it was given, not physical GPU 0.
    """
    env = os.environ if environ is None else environ
    visible = [v.strip() for v in env.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
    return [visible[i] if i < len(visible) else str(i) for i in indices]


def gpu_slots(gpu_ids: Sequence[str], ranks: int, runs_per_gpu: int = 1) -> list[Slot]:
    """Group GPUs into slots of ``ranks`` (in order: [0,1], [2,3], ...), each repeated ``runs_per_gpu`` times.

    Repeats go round the groups (slot order 0, 1, 0, 1 ...), so runs spread over the GPUs before packing.
    GPUs left over when ``ranks`` does not divide their number stay idle.
    """
    if ranks < 1 or runs_per_gpu < 1:
        raise ValueError(f"ranks and runs_per_gpu must be >= 1, got {ranks}, {runs_per_gpu}")
    groups = [tuple(gpu_ids[i:i + ranks]) for i in range(0, len(gpu_ids) - ranks + 1, ranks)]
    if not groups:
        raise DeviceError(f"parallel.ranks = {ranks} needs {ranks} GPUs per run, but the sweep has "
                          f"{len(gpu_ids)} ({', '.join(gpu_ids) or 'none'}); lower parallel.ranks or list more "
                          "devices.gpus")
    return [Slot(label="cuda:" + ",".join(g), gpus=g) for _ in range(runs_per_gpu) for g in groups]


def cpu_slots(cpu_workers: int, ranks: int) -> list[Slot]:
    """``cpu_workers`` worker processes in all, ``ranks`` per run: at least one run at a time."""
    return [Slot(label=f"cpu:{i}") for i in range(max(1, cpu_workers // ranks))]


def device_slots(runs: Sequence[RunSpec], spec: Any) -> list[Slot]:
    """Slots on this machine: groups of the GPUs it sees (or ``devices.gpus``), else CPU process groups."""
    ranks = spec.parallel.ranks
    if runs and runs[0].device == "cuda":
        import torch

        count = torch.cuda.device_count()
        indices = list(spec.devices.gpus) or list(range(count))
        bad = [g for g in indices if g >= count]
        if bad:
            raise DeviceError(f"devices.gpus = {list(spec.devices.gpus)}: index {bad[0]} is not among the {count} "
                              "CUDA devices this process sees (indices count visible devices, from 0)")
        if not indices:
            raise DeviceError("devices.device = 'cuda' but torch sees no CUDA device (CPU build of torch, or "
                              "CUDA_VISIBLE_DEVICES hides them); set devices.device = 'auto' or 'cpu'")
        return gpu_slots(visible_gpu_ids(indices), ranks, spec.devices.runs_per_gpu)
    return cpu_slots(spec.devices.cpu_workers, ranks)


def idle_gpus_note(slots: Sequence[Slot], spec: Any) -> tuple[str, ...]:
    """A note when ``parallel.ranks`` leaves GPUs of the sweep unused."""
    used = {g for s in slots for g in s.gpus}
    if not used:
        return ()
    import torch

    total = len(spec.devices.gpus) or torch.cuda.device_count()
    if total > len(used):
        return (f"parallel.ranks = {spec.parallel.ranks} groups {len(used)} of the {total} GPUs into slots; "
                f"{total - len(used)} stay idle",)
    return ()


# --- the worker's command line and environment -------------------------------------------------------

_isolated_entry: dict[str, list[str]] = {}  # per interpreter: how to start the worker module isolated


def _isolated_module_args(python: str) -> list[str]:
    """``-I -m scalebench.sweep.worker`` where the isolated interpreter finds this scalebench; else a bootstrap.

    ``-I`` keeps the current directory (and PYTHONPATH, user site) off ``sys.path``, so a stray ``json.py``
    there cannot run inside a worker. Where the isolated interpreter finds no scalebench or another one
    (a source checkout used through PYTHONPATH), the bootstrap loads this scalebench package from its
    file location, without putting its folder on ``sys.path``, and *appends* the absolute, existing
    entries of this process's path that the isolated one lacks, for its dependencies: appended entries
    cannot shadow the standard library, and the current folder is never one of them.
    """
    if python in _isolated_entry:
        return _isolated_entry[python]
    import scalebench

    probe = "import json, sys\ntry:\n import scalebench; f = scalebench.__file__\nexcept ImportError:\n f = None\n" \
            "print(json.dumps([f, sys.path]))"
    try:
        out = subprocess.run([python, "-I", "-c", probe], capture_output=True, text=True, timeout=60, check=True,
                             cwd="/")
        found, isolated_path = json.loads(out.stdout.strip().splitlines()[-1])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        found, isolated_path = None, []
    init = str(Path(scalebench.__file__).resolve())
    if found is not None and str(Path(found).resolve()) == init:
        args = ["-I", "-m", "scalebench.sweep.worker"]
    else:
        cwd = os.getcwd()
        extra = [p for p in sys.path if p and os.path.isabs(p) and os.path.isdir(p) and p != cwd
                 and p not in isolated_path]
        boot = ("import importlib.util as u, sys\n"
                f"sys.path.extend({extra!r})\n"
                f"s = u.spec_from_file_location('scalebench', {init!r}, "
                f"submodule_search_locations=[{str(Path(init).parent)!r}])\n"
                "m = sys.modules['scalebench'] = u.module_from_spec(s)\n"
                "s.loader.exec_module(m)\n"
                "from scalebench.sweep.worker import main\n"
                "sys.exit(main(sys.argv[1:]))")
        args = ["-I", "-c", boot]
    _isolated_entry[python] = args
    return args


# --- runs across nodes: one process per rank, started by the cluster (srun tasks, Ray actors) ---------------

def node_layout(ranks: int, nodes: int, gpus_per_node: int | None, where: str) -> tuple[int, int]:
    """(nodes, ranks per node) of a run: ``nodes`` when given (> 0), else the fewest nodes of ``gpus_per_node``
    GPUs that hold ``ranks``; the ranks split evenly. ``where`` names the GPUs-per-node setting in errors."""
    if nodes <= 0:
        nodes = 1 if not gpus_per_node else -(-ranks // gpus_per_node)
    if ranks % nodes:
        raise ConfigError(f"parallel.ranks = {ranks} on {nodes} nodes of {gpus_per_node} GPUs ({where}): the "
                          "ranks must split evenly over the nodes; make ranks a multiple of the GPUs per node, or "
                          "set parallel.nodes to a divisor of ranks")
    per_node = ranks // nodes
    if gpus_per_node and per_node > gpus_per_node:
        raise ConfigError(f"parallel.nodes = {nodes} puts {per_node} ranks on each node, but a node has "
                          f"{gpus_per_node} GPUs ({where}); raise parallel.nodes or set {where}")
    return nodes, per_node


def rendezvous_port(job_id: str) -> int:
    """A rendezvous port every task of a job derives alike from its id without talking to the others.

    15000-29999: below Linux's ephemeral range (32768+), where outgoing connections take their ports, and
    different for the jobs of an array that may share a node (their ids differ).
    """
    import hashlib

    return 15000 + int(hashlib.sha256(job_id.encode()).hexdigest(), 16) % 15000


def rank_env(*, rank: int, local_rank: int, world_size: int, local_world_size: int, node_rank: int,
             master_addr: str, master_port: int) -> dict[str, str]:
    """The torch.distributed ``env://`` variables of one rank (what torchrun would set on one node)."""
    return {"RANK": str(rank), "LOCAL_RANK": str(local_rank), "WORLD_SIZE": str(world_size),
            "LOCAL_WORLD_SIZE": str(local_world_size), "GROUP_RANK": str(node_rank), "MASTER_ADDR": master_addr,
            "MASTER_PORT": str(master_port)}


def worker_command(run: RunSpec, job_path: str | Path, python: str | None = None, *,
                   torchrun: bool = True) -> list[str]:
    """The command that trains ``run`` from its job file, in its slot: the one place executors get it from.

    One rank: ``python -I -m scalebench.sweep.worker JOB.json``. Several: torchrun on this node,
    ``python -I -m torch.distributed.run --standalone --nproc-per-node=N --no-python python -I -m
    scalebench.sweep.worker JOB.json``; ``--no-python`` because torchrun would otherwise start each rank as
    ``python -u -m ...``, putting the current directory back on the ranks' ``sys.path``. ``--standalone``
    gives each run its own rendezvous on a free port, so several runs on one node do not meet.
    ``torchrun=False``: the worker alone, for one rank that a cluster started (its ``rank_env`` set).
    """
    python = python or sys.executable
    worker = [python, *_isolated_module_args(python), str(job_path)]
    ranks = run.parallel.ranks
    if ranks == 1 or not torchrun:
        return worker
    return [python, "-I", "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={ranks}",
            "--no-python", *worker]


def worker_env(run: RunSpec, slot: Slot, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The worker's environment: its thread count and, on GPU, its slot's devices."""
    env = dict(os.environ if base is None else base)
    env["OMP_NUM_THREADS"] = str(run.threads)
    if slot.gpus:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(slot.gpus)
    return env


# --- spawning: a worker never outlives its parent ----------------------------------------------------

def _prctl() -> Any:
    try:
        return ctypes.CDLL(None, use_errno=True).prctl  # resolved here: the forked child only calls it
    except (OSError, AttributeError):  # not Linux: no parent-death signal; the worker's own check remains
        return None


def _die_with_parent_preexec(parent_pid: int):
    prctl = _prctl()

    def preexec() -> None:  # in the child, between fork and exec: no imports, no allocation-heavy work
        if prctl is not None:
            prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent_pid:  # the parent died before the signal was armed
            os._exit(1)

    return preexec


def spawn_worker(command: list[str], env: Mapping[str, str], *, stdout: Any = None,
                 cwd: str | Path | None = None) -> subprocess.Popen:
    """Start a worker that gets SIGKILL when this process dies (Linux), in its own session.

    The parent-death signal is armed before the worker's interpreter starts, and the child checks its
    parent right after arming it, so a kill of this process at any moment leaves no worker behind; the
    worker checks again (``worker.parent_gone``) for the ranks torchrun starts.
    """
    env = {**env, PARENT_ENV: str(os.getpid())}
    return subprocess.Popen(command, env=env, stdout=stdout, stderr=subprocess.STDOUT if stdout else None,
                            start_new_session=True, preexec_fn=_die_with_parent_preexec(os.getpid()), cwd=cwd)


def die_with_parent() -> None:
    """Arm SIGKILL-on-parent-death for this process (Linux; a no-op elsewhere)."""
    prctl = _prctl()
    if prctl is not None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie, dead but not yet reaped, counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def wait_forwarding_stop(proc: subprocess.Popen, grace_s: float = 10.0, watch_pid: int | None = None) -> int:
    """Wait for a worker this job started; a stop request (KeyboardInterrupt here) goes on as SIGTERM.

    The worker then leaves its run pending with its checkpoint; SIGKILL after ``grace_s``. With
    ``watch_pid`` (a sweep process on this machine that is not our parent), the worker is killed as soon
    as that process is gone: a job must not outlive the sweep that submitted it.
    """
    try:
        while True:
            try:
                return proc.wait(timeout=0.5 if watch_pid else None)
            except subprocess.TimeoutExpired:
                if not pid_alive(watch_pid):
                    proc.kill()
                    return proc.wait()
    except KeyboardInterrupt:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait()


def tail(path: Path, lines: int, offset: int = 0) -> str:
    """The last ``lines`` lines of a log from byte ``offset`` on (one attempt's output, never an earlier one's)."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            text = f.read().decode(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return "\n".join(text[-lines:])


class ProcessHandle:
    """A worker process this sweep started (local executor)."""

    def __init__(self, proc: subprocess.Popen, log_path: Path, log: Any, log_offset: int = 0) -> None:
        self.proc, self.pid, self._log_path, self._log = proc, proc.pid, log_path, log
        self._log_offset = log_offset  # where this attempt's output starts in the (appended) log

    def poll(self) -> int | None:
        return self.proc.poll()

    def terminate(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        # torchrun's ranks are in the worker's session: SIGKILL them too (they would die with torchrun anyway)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
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
        return tail(self._log_path, lines, self._log_offset)

    def close(self) -> None:
        self._log.close()
