"""Memory measurements: device peaks, allocator retries and OOMs (CUDA); peak RSS (any device).

``num_alloc_retries`` and ``num_ooms`` in ``torch.cuda.memory_stats`` are cumulative for the process, so
:class:`MemoryTracker` remembers them at :meth:`~MemoryTracker.start` and reports the difference. Peak RSS
comes from ``getrusage`` and cannot be reset: it is the process's peak since it started (a run is one
process in scalebench's executors, so that is the run's peak).
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["MemoryStats", "MemoryTracker", "peak_rss_bytes", "reset_peak_memory", "read_memory_stats"]


@dataclass(frozen=True, kw_only=True)
class MemoryStats:
    peak_mem_bytes: int | None  # peak allocated device memory (None on CPU)
    peak_reserved_bytes: int | None  # peak reserved by the caching allocator
    alloc_retries: int | None  # cudaMalloc retries after freeing the cache: a sign of memory pressure
    oom_count: int | None
    peak_rss_bytes: int | None
    device_total_bytes: int | None = None

    @property
    def peak_reserved_fraction(self) -> float | None:
        if self.peak_reserved_bytes is None or not self.device_total_bytes:
            return None
        return self.peak_reserved_bytes / self.device_total_bytes

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["peak_reserved_fraction"] = self.peak_reserved_fraction
        return d


def peak_rss_bytes() -> int | None:
    """Peak resident set size of this process (``ru_maxrss`` is KiB on Linux, bytes on macOS)."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss if sys.platform == "darwin" else rss * 1024)


def _cuda_index(device: Any) -> int:
    import torch

    d = torch.device(device)
    return d.index if d.index is not None else torch.cuda.current_device()


def reset_peak_memory(device: Any = "cpu") -> None:
    """Reset the device's peak allocated/reserved counters (no-op on CPU)."""
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.reset_peak_memory_stats(_cuda_index(device))


def _cuda_counters(device: Any) -> tuple[int, int]:
    import torch

    stats = torch.cuda.memory_stats(_cuda_index(device))
    return int(stats.get("num_alloc_retries", 0)), int(stats.get("num_ooms", 0))


def read_memory_stats(device: Any = "cpu", *, baseline: tuple[int, int] = (0, 0)) -> MemoryStats:
    """Peaks since the last reset; retries and OOMs minus ``baseline`` (retries, ooms)."""
    import torch

    if torch.device(device).type != "cuda":
        return MemoryStats(
            peak_mem_bytes=None,
            peak_reserved_bytes=None,
            alloc_retries=None,
            oom_count=None,
            peak_rss_bytes=peak_rss_bytes(),
        )
    index = _cuda_index(device)
    retries, ooms = _cuda_counters(device)
    return MemoryStats(
        peak_mem_bytes=int(torch.cuda.max_memory_allocated(index)),
        peak_reserved_bytes=int(torch.cuda.max_memory_reserved(index)),
        alloc_retries=retries - baseline[0],
        oom_count=ooms - baseline[1],
        peak_rss_bytes=peak_rss_bytes(),
        device_total_bytes=int(torch.cuda.get_device_properties(index).total_memory),
    )


class MemoryTracker:
    """Reset peaks at :meth:`start`; :meth:`read` returns the run's peaks and its own retries and OOMs."""

    def __init__(self, device: Any = "cpu") -> None:
        self.device = device
        self._baseline = (0, 0)

    def start(self) -> None:
        import torch

        reset_peak_memory(self.device)
        if torch.device(self.device).type == "cuda":
            self._baseline = _cuda_counters(self.device)

    def read(self) -> MemoryStats:
        return read_memory_stats(self.device, baseline=self._baseline)
