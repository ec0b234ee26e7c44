"""How a sweep's runs are started: worker processes here (``local``), Ray tasks (``ray``) or Slurm job arrays
through submitit (``slurm``).

One class per kind, registered by its ``kind``, each configured by its own table (``[executor.local]``,
``[executor.ray]``, ``[executor.slurm]``) and chosen by ``executor.kind`` or ``scalebench run --backend``.
All start the same worker command (``base.worker_command``; torchrun for runs on several ranks) in a
*slot* (a group of GPUs, CPU processes, or a place in a cluster's queue). The runner owns the loop
(queue, retries, timeouts, resume) and sees only the job handles; a handle reports an exit code once
its job has ended and can describe how it ended, so a worker that died without writing (kill -9,
scancel, a lost Ray worker, node failure) is marked failed with that description and its log's tail.
Remote kinds (ray, slurm) report through the run's outbox, never the SQLite store.

Ray and submitit are imported only by the kinds that need them (extras ``scalebench[ray]``, ``[slurm]``).
"""

from __future__ import annotations

from pathlib import Path

from scalebench._lazy_registry import EXECUTORS as _KINDS
from scalebench.config import ExecutorSpec
from scalebench.errors import ConfigError
from scalebench.sweep.executors.base import (
    JOB_LOST,
    Executor,
    JobHandle,
    Launch,
    Slot,
    cpu_slots,
    device_slots,
    gpu_slots,
    spawn_worker,
    visible_gpu_ids,
    worker_command,
    worker_env,
)

ENTRY_POINTS = _KINDS.group  # third-party kinds: name = "package.module:Class"


def register_executor(kind: str, target: str) -> None:
    """Register an executor class (``"package.module:Class"``) under ``kind``."""
    _KINDS.register(kind, target)


def executor_class(kind: str) -> type:
    if kind not in _KINDS:
        raise ConfigError(f"executor kind {kind!r} is not known; one of {', '.join(_KINDS.kinds())}")
    return _KINDS.load(kind)


def list_executors() -> list[str]:
    return _KINDS.kinds()


def make_executor(spec: ExecutorSpec, sweep_dir: Path, python: str | None = None) -> Executor:
    """The executor of ``spec.kind``; a missing extra (ray, submitit) is a ConfigError naming the install."""
    return executor_class(spec.kind)(spec, Path(sweep_dir), python)


__all__ = ["JOB_LOST", "Executor", "JobHandle", "Launch", "Slot", "cpu_slots", "device_slots", "executor_class",
           "gpu_slots", "list_executors", "make_executor", "register_executor", "spawn_worker", "visible_gpu_ids",
           "worker_command", "worker_env"]
