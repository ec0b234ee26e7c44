"""The distributed context: a no-op on one process, torch.distributed under torchrun.

Decisions that must agree across ranks (out of memory? diverged? checkpoint now?) go through
:meth:`DistributedContext.any`, so every rank acts together; only rank 0 writes to the store.
Teardown waits at a barrier before ``destroy_process_group``: without it gloo aborted 5 of 33 two-rank runs at
exit ("terminate called without an active exception"), with it 20 of 20 exited cleanly. It also waits until
the run has reported: a successful ``train`` leaves the group open and the worker calls :func:`shutdown`
after its record is committed (``atexit`` does it otherwise), so a teardown fault never fails a run.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime
import os
from typing import Any

from scalebench.errors import DeviceError

_OPEN: list[DistributedContext] = []  # a started group whose teardown waits until the run has reported


def shutdown() -> None:
    """Tear down the process group of a finished run (the worker calls it after writing the record)."""
    while _OPEN:
        _OPEN.pop().close()


atexit.register(shutdown)


_COLLECTIVE_FIX = {
    "nccl": "run with NCCL_DEBUG=INFO to see which transport failed; across nodes check NCCL_SOCKET_IFNAME "
            "(the interface the nodes share) and NCCL_IB_DISABLE=1 where InfiniBand is absent",
    "gloo": "check GLOO_SOCKET_IFNAME (the interface the nodes share)",
}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"


def rendezvous_failure(rank: int, world_size: int, exc: BaseException) -> str:
    """Why ranks could not meet, and what to check, from the error of joining the group."""
    addr = f"{os.environ.get('MASTER_ADDR', '?')}:{os.environ.get('MASTER_PORT', '?')}"
    text = str(exc)
    low = text.lower()
    if "address already in use" in low or "eaddrinuse" in low:
        cause = (f"rank 0 could not listen on {addr}: the port is taken (another job on that node); run again "
                 "(the port derives from the job id) or free the port")
    elif "resolve" in low or "name or service not known" in low or "getaddrinfo" in low:
        cause = f"the rendezvous host in {addr} does not resolve on this node; check the node's DNS or hosts file"
    elif "refused" in low:
        cause = (f"nothing listens at {addr}: rank 0 has not started, or failed before it could listen; see rank "
                 "0's log")
    elif "timed out" in low or "timeout" in low:
        cause = (f"not all {world_size} ranks met at {addr} in time: a rank did not start (see the job's other "
                 "tasks' logs), or a firewall blocks the port between nodes")
    else:
        cause = f"joining the group at {addr} failed"
    return f"rendezvous failed on rank {rank} of {world_size}: {cause} ({_first_line(exc)})"


class DistributedContext:
    def __init__(self, device_type: str) -> None:
        self.world_size = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.device_type = device_type
        self.active = self.world_size > 1
        self._started = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def device(self) -> Any:
        import torch

        if self.device_type == "cuda":
            return torch.device("cuda", self.local_rank if self.active else torch.cuda.current_device())
        return torch.device("cpu")

    def start(self, timeout_s: float = 600.0) -> None:
        """Join the run's process group, then check it with one all-reduce (NCCL on GPU) before training.

        Under torchrun its rendezvous is used (``env://``); ranks a cluster started (srun tasks,
        Ray actors) meet at rank 0's TCP store on MASTER_ADDR:MASTER_PORT, waiting at most
        ``SCALEBENCH_RENDEZVOUS_TIMEOUT_S`` (default ``timeout_s``). A failure is a DeviceError naming its cause.
        """
        if not self.active or self._started:
            return
        import torch
        import torch.distributed as dist

        if self.device_type == "cuda":
            torch.cuda.set_device(self.local_rank)
        backend = "nccl" if self.device_type == "cuda" else "gloo"
        timeout = datetime.timedelta(seconds=timeout_s)
        try:
            if "TORCHELASTIC_RUN_ID" in os.environ:  # torchrun: its rendezvous, as env:// finds it
                dist.init_process_group(backend, timeout=timeout)
            else:
                dist.init_process_group(backend, store=self._store(), rank=self.rank, world_size=self.world_size,
                                        timeout=timeout)
        except Exception as exc:  # noqa: BLE001 - DistNetworkError, DistStoreError, RuntimeError: named below
            raise DeviceError(rendezvous_failure(self.rank, self.world_size, exc)) from None
        self._started = True
        _OPEN.append(self)
        self._preflight(backend)

    def _store(self):
        import torch.distributed as dist

        addr, port = os.environ.get("MASTER_ADDR", ""), os.environ.get("MASTER_PORT", "")
        if not addr or not port.isdigit():
            raise DeviceError(f"rank {self.rank} of {self.world_size}: MASTER_ADDR and MASTER_PORT must name rank "
                              f"0's rendezvous, got {addr!r}:{port!r}")
        wait = float(os.environ.get("SCALEBENCH_RENDEZVOUS_TIMEOUT_S", "600"))
        return dist.TCPStore(addr, int(port), self.world_size, is_master=self.rank == 0,
                             timeout=datetime.timedelta(seconds=wait), wait_for_workers=True)

    def _preflight(self, backend: str) -> None:
        """One all-reduce of ones: every rank must see world_size, or the group is not usable."""
        try:
            got = self.sum([1.0])[0]
        except Exception as exc:  # noqa: BLE001 - NCCL/gloo errors: named below
            raise DeviceError(f"pre-flight {backend} all-reduce over {self.world_size} ranks failed on rank "
                              f"{self.rank}: {_first_line(exc)}; {_COLLECTIVE_FIX[backend]}") from None
        if got != self.world_size:
            raise DeviceError(f"pre-flight {backend} all-reduce over {self.world_size} ranks gave {got:g} on rank "
                              f"{self.rank}, not {self.world_size}; {_COLLECTIVE_FIX[backend]}")

    def _tensor(self, values: list[float]):
        import torch

        dev = self.device() if self.device_type == "cuda" else torch.device("cpu")
        return torch.tensor(values, dtype=torch.float64, device=dev)

    def any(self, flag: bool) -> bool:
        """True on every rank when any rank says True."""
        if not self.active:
            return flag
        return bool(self.max([1.0 if flag else 0.0])[0] > 0)

    def max(self, values: list[float]) -> list[float]:
        if not self.active:
            return list(values)
        import torch.distributed as dist

        t = self._tensor(values)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return t.tolist()

    def sum(self, values: list[float]) -> list[float]:
        if not self.active:
            return list(values)
        import torch.distributed as dist

        t = self._tensor(values)
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t.tolist()

    def mean_tensor(self, t):
        """The element-wise mean over ranks of a (float) tensor on this rank's device."""
        if not self.active:
            return t
        import torch.distributed as dist

        t = t.detach().clone().to(self.device() if self.device_type == "cuda" else "cpu", dtype=t.dtype)
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t / self.world_size

    def barrier(self) -> None:
        if self.active and self._started:
            import torch.distributed as dist

            dist.barrier()

    def close(self) -> None:
        """Barrier, then destroy the group; a teardown fault never fails a run that has reported."""
        if not (self.active and self._started):
            return
        import torch.distributed as dist

        with contextlib.suppress(Exception):
            dist.barrier()
        with contextlib.suppress(Exception):
            dist.destroy_process_group()
        self._started = False
        if self in _OPEN:
            _OPEN.remove(self)
