"""``kind = "local"``: each run a worker process on this machine, one per device slot."""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from scalebench._util import open_append
from scalebench.config import ExecutorSpec, RunSpec
from scalebench.sweep.executors.base import (
    Launch,
    ProcessHandle,
    Slot,
    _isolated_module_args,
    device_slots,
    idle_gpus_note,
    spawn_worker,
    worker_command,
    worker_env,
)


class LocalExecutor:
    """Each run in its own worker process (torchrun for several ranks), pinned to its slot's devices."""

    kind = "local"
    remote = False  # workers share this machine's file system: they write the store directly

    def __init__(self, spec: ExecutorSpec, sweep_dir: Path, python: str | None = None) -> None:
        self.python = python or spec.local.python or sys.executable
        self._notes: tuple[str, ...] = ()
        _isolated_module_args(self.python)  # probe once now, not between writing a job file and its spawn

    def slots(self, runs: Sequence[RunSpec], spec: Any) -> list[Slot]:
        slots = device_slots(runs, spec)
        self._notes = idle_gpus_note(slots, spec)
        return slots

    def start(self, launches: Sequence[Launch]) -> list[ProcessHandle]:
        handles = []
        for item in launches:
            log_path = item.job_path.parent / "worker.log"
            log = open_append(log_path)  # closed when the worker is reaped; never through a planted link
            offset = os.fstat(log.fileno()).st_size
            try:
                proc = spawn_worker(worker_command(item.run, item.job_path, self.python),
                                    worker_env(item.run, item.slot), stdout=log)
            except BaseException:
                log.close()
                raise
            handles.append(ProcessHandle(proc, log_path, log, offset))
        return handles

    def describe(self, runs: Sequence[RunSpec], spec: Any, sweep_dir: Path) -> str:
        slots = device_slots(runs, spec)
        lines = [f"# local: {len(runs)} runs, {len(slots)} at a time on this machine; nothing started",
                 "# slots: " + ", ".join(s.label for s in slots)]
        for i, run in enumerate(runs):
            slot = slots[i % len(slots)]
            pin = f"CUDA_VISIBLE_DEVICES={','.join(slot.gpus)} " if slot.gpus else ""
            cmd = worker_command(run, Path(run.run_dir) / "job.json", self.python)
            lines.append(f"{pin}OMP_NUM_THREADS={run.threads} {shlex.join(cmd)}")
        return "\n".join(lines) + "\n"

    def notes(self) -> tuple[str, ...]:
        return self._notes

    def abandon(self, run_dir: Path) -> None:
        pass  # its workers died with the sweep process that started them

    def close(self) -> None:
        pass
