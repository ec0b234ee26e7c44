"""Step timing without a per-step device sync, and the share of time spent waiting for data.

Protocol (DESIGN.md, convention 7): the first ``warmup_steps`` steps are excluded; the device is
synchronised only at measurement boundaries (end of warm-up, :meth:`StepTimer.finish`, around an
:meth:`StepTimer.excluded` region such as evaluation). On CUDA a timing event is recorded at the end of
every step and read later: completed events are harvested with the non-blocking ``Event.query`` so
memory stays bounded, and the rest are read after the one sync in ``finish``. A step's time is the
interval between consecutive step-end events on the GPU timeline, which includes any time the GPU sat
idle waiting for the host; that is the step time a user pays. On CPU the markers are ``perf_counter``.

``data_wait_share`` is host time inside :meth:`StepTimer.data_wait` over host wall time of the measured
steps. In steady state the host is held back by the device queue, so host wall time and device time agree
over many steps; the boundary syncs make them agree exactly at the ends.
"""

from __future__ import annotations

import contextlib
import math
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from time import perf_counter
from typing import Any

__all__ = ["StepTimer", "ThroughputStats", "DATA_WAIT_LABEL"]

# The profiler range name of data waits; trace analysis reads it to split host-wait idle time.
DATA_WAIT_LABEL = "scalebench.data_wait"


@dataclass(frozen=True, kw_only=True)
class ThroughputStats:
    n_steps: int  # measured steps (warm-up and excluded intervals left out)
    step_time_s: float | None  # median
    step_time_p90_s: float | None
    step_time_mean_s: float | None
    tokens_per_s: float | None
    samples_per_s: float | None
    data_wait_share: float | None
    wall_s: float  # host wall time of the measured steps
    step_times_s: tuple[float, ...] = field(default=(), repr=False)

    def as_dict(self, *, with_steps: bool = False) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "step_times_s"}
        if with_steps:
            d["step_times_s"] = list(self.step_times_s)
        return d


def _quantile(sorted_values: list[float], q: float) -> float:
    """Linear-interpolated quantile (numpy's default) of already sorted values."""
    pos = (len(sorted_values) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


class StepTimer:
    """Records per-step times; call :meth:`step` once at the end of every training step."""

    def __init__(self, device_type: str = "cpu", *, warmup_steps: int = 2) -> None:
        if warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {warmup_steps!r}")
        self.device_type = device_type
        self.warmup_steps = warmup_steps
        self._cuda = device_type == "cuda"
        self._steps_seen = 0
        self._measuring = warmup_steps == 0
        # (marker, is_step_end, tokens, samples); a non-step marker starts a new interval
        self._pending: deque[tuple[Any, bool, int, int]] = deque()
        self._last_marker: Any = None
        self._durations: list[float] = []
        self._tokens = 0
        self._samples = 0
        self._data_wait_s = 0.0
        self._wall_s = 0.0
        self._wall_start: float | None = None
        self._finished: ThroughputStats | None = None
        if self._measuring:
            self._begin_measuring()

    # -- markers ---------------------------------------------------------------------------------------
    def _marker(self) -> Any:
        if self._cuda:
            import torch

            ev = torch.cuda.Event(enable_timing=True)
            ev.record()
            return ev
        return perf_counter()

    def _sync(self) -> None:
        if self._cuda:
            import torch

            torch.cuda.synchronize()

    def _begin_measuring(self) -> None:
        self._sync()  # boundary: the measured region starts with an empty device queue
        self._measuring = True
        self._last_marker = self._marker()
        self._wall_start = perf_counter()

    def _elapsed_s(self, a: Any, b: Any) -> float:
        return a.elapsed_time(b) / 1000.0 if self._cuda else b - a

    def _harvest(self, *, block: bool) -> None:
        """Turn pending markers into durations; without ``block`` only those the device has reached."""
        while self._pending:
            marker, is_step, tokens, samples = self._pending[0]
            if self._cuda and not block and not marker.query():
                return
            self._pending.popleft()
            if is_step:
                self._durations.append(self._elapsed_s(self._last_marker, marker))
                self._tokens += tokens
                self._samples += samples
            self._last_marker = marker

    # -- public ----------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def data_wait(self) -> Iterator[None]:
        """Wrap the fetch of the next batch: ``with timer.data_wait(): batch = next(it)``."""
        import torch

        t0 = perf_counter()
        try:
            with torch.profiler.record_function(DATA_WAIT_LABEL):
                yield
        finally:
            if self._measuring:
                self._data_wait_s += perf_counter() - t0

    def step(self, tokens: int = 0, samples: int = 0) -> None:
        """Mark the end of a training step that processed ``tokens`` tokens and ``samples`` samples."""
        if self._finished is not None:
            raise RuntimeError("StepTimer.step() after finish()")
        self._steps_seen += 1
        if not self._measuring:
            if self._steps_seen >= self.warmup_steps:
                self._begin_measuring()
            return
        self._pending.append((self._marker(), True, int(tokens), int(samples)))
        if self._cuda and len(self._pending) > 64:
            self._harvest(block=False)
        elif not self._cuda:
            self._harvest(block=True)

    @contextlib.contextmanager
    def excluded(self) -> Iterator[None]:
        """A region (evaluation, checkpointing) left out of step times, data-wait share and wall time."""
        if not self._measuring:
            yield
            return
        self._sync()
        wall_pause = perf_counter()
        try:
            yield
        finally:
            self._sync()
            self._pending.append((self._marker(), False, 0, 0))
            if self._wall_start is not None:
                self._wall_s += wall_pause - self._wall_start
            self._wall_start = perf_counter()

    def finish(self) -> ThroughputStats:
        """Synchronise once, read every marker and return the statistics (idempotent)."""
        if self._finished is not None:
            return self._finished
        if self._measuring:
            self._sync()
            self._harvest(block=True)
            if self._wall_start is not None:
                self._wall_s += perf_counter() - self._wall_start
        d = sorted(self._durations)
        total = sum(d)
        n = len(d)
        self._finished = ThroughputStats(
            n_steps=n,
            step_time_s=_quantile(d, 0.5) if n else None,
            step_time_p90_s=_quantile(d, 0.9) if n else None,
            step_time_mean_s=total / n if n else None,
            # per-step work over the median step (DESIGN.md): a slow step (trace export, a flush, a
            # back-off retry) moves the mean, not the rate a steady run sustains
            tokens_per_s=self._tokens / n / _quantile(d, 0.5) if n and total > 0 and self._tokens else None,
            samples_per_s=self._samples / n / _quantile(d, 0.5) if n and total > 0 and self._samples else None,
            data_wait_share=min(1.0, self._data_wait_s / self._wall_s) if n and self._wall_s > 0 else None,
            wall_s=self._wall_s,
            step_times_s=tuple(self._durations),
        )
        return self._finished
