"""GPU telemetry: a background NVML sampler per run (default 10 Hz) and its summary.

Energy comes from the NVML energy counter (read at start and stop; exact over the interval) and, where
the board has no counter, from power samples integrated over time (trapezoid, then the sampled span's
mean power times the whole duration). Without NVML or a GPU the sampler records why and does nothing, so
a CPU run is not slowed. An NVML error in the middle of a run stops sampling with a warning and keeps the
samples so far; ``strict=True`` re-raises it as :class:`DeviceError` from :meth:`TelemetrySampler.stop`.

The sampler thread spends its time in NVML calls (ctypes, which releases the GIL) and ``Event.wait``;
at 10 Hz that is about 1 ms of CPU per second, which does not slow a training loop measurably
(``benchmarks/profiling_overhead.py``).
"""

from __future__ import annotations

import threading
import time
import warnings
from dataclasses import asdict, dataclass
from typing import Any

from scalebench.errors import DeviceError
from scalebench.hardware import nvml

__all__ = ["TelemetrySampler", "TelemetrySummary", "SAMPLE_KEYS"]

SAMPLE_KEYS = ("t_s", "gpu_util", "mem_used_bytes", "power_w", "sm_clock_mhz", "temp_c", "throttle_reasons")


@dataclass(frozen=True, kw_only=True)
class TelemetrySummary:
    available: bool
    reason: str = ""  # why unavailable, or the error that stopped sampling early
    energy_j: float | None = None
    avg_power_w: float | None = None
    gpu_util_mean: float | None = None  # percent, 0-100
    mem_used_max_bytes: int | None = None
    sm_clock_mean_mhz: float | None = None
    temp_max_c: int | None = None
    throttled_share: float | None = None  # share of samples with a power/thermal slowdown reason set
    n_samples: int = 0
    duration_s: float = 0.0
    energy_source: str | None = None  # 'counter' | 'integrated' | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


class TelemetrySampler:
    """Samples one GPU through NVML on a daemon thread.

    ``device_index`` is the CUDA index (``CUDA_VISIBLE_DEVICES`` is honoured); ``None`` records telemetry
    as unavailable. Use as a context manager or call :meth:`start` / :meth:`stop`.
    """

    def __init__(self, device_index: int | None, interval_s: float = 0.1, *, strict: bool = False) -> None:
        if interval_s <= 0:
            raise ValueError(f"interval_s must be positive, got {interval_s!r}")
        self.device_index = device_index
        self.interval_s = float(interval_s)
        self.strict = strict
        self.samples: list[dict[str, Any]] = []
        self._reason = ""
        self._available = False
        self._handle: Any = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._error: DeviceError | None = None
        self._t0 = 0.0
        self._duration_s = 0.0
        self._energy_start_mj: int | None = None
        self._energy_delta_mj: int | None = None
        self._initialised = False
        self._stopped = False

    # -- lifecycle -------------------------------------------------------------------------------------
    def __enter__(self) -> TelemetrySampler:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        if self._thread is not None or self._initialised:
            raise RuntimeError("TelemetrySampler.start() called twice")
        if self.device_index is None:
            self._reason = "no GPU device for this run"
            return
        ok, why = nvml.nvml_available()
        if not ok:
            self._reason = why
            return
        try:
            nvml.init()
            self._initialised = True
            self._handle = nvml.handle_for_cuda_device(self.device_index)
            self._energy_start_mj = nvml.energy_mj(self._handle)
        except DeviceError as exc:
            self._reason = str(exc)
            self._release()
            return
        self._available = True
        self._t0 = time.perf_counter()
        self._sample()  # one reading at t=0 so even a very short run has a sample
        self._thread = threading.Thread(target=self._loop, name="scalebench-telemetry", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if not self._available or self._stopped:
            return
        self._stopped = True
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._duration_s = time.perf_counter() - self._t0
        if self._error is None:
            self._sample()  # closing reading: the integrated energy then spans the whole run
            try:
                end = nvml.energy_mj(self._handle)
                if end is not None and self._energy_start_mj is not None:
                    self._energy_delta_mj = end - self._energy_start_mj
            except DeviceError as exc:
                self._error = exc
        self._release()
        if self._error is not None:
            self._reason = f"sampling stopped early: {self._error}"
            if self.strict:
                raise self._error
            warnings.warn(
                f"GPU telemetry {self._reason}; energy and utilisation cover only part of the run",
                RuntimeWarning,
                stacklevel=2,
            )

    def _release(self) -> None:
        if self._initialised:
            self._initialised = False
            try:
                nvml.shutdown()
            except DeviceError:
                pass  # nothing to do about a failed shutdown; the readings are already taken

    # -- sampling ----------------------------------------------------------------------------------------
    def _sample(self) -> None:
        try:
            r = nvml.read(self._handle)
        except DeviceError as exc:
            self._error = exc
            self._stop.set()
            return
        self.samples.append(
            {
                "t_s": time.perf_counter() - self._t0,
                "gpu_util": r.gpu_util,
                "mem_used_bytes": r.mem_used_bytes,
                "power_w": r.power_w,
                "sm_clock_mhz": r.sm_clock_mhz,
                "temp_c": r.temp_c,
                "throttle_reasons": r.throttle_reasons,
            }
        )

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()

    # -- results -----------------------------------------------------------------------------------------
    def summary(self) -> TelemetrySummary:
        if not self._available:
            return TelemetrySummary(available=False, reason=self._reason)
        s = self.samples
        power = [(x["t_s"], x["power_w"]) for x in s if x["power_w"] is not None]
        avg_power = _integrated_mean(power)
        energy_j: float | None = None
        source: str | None = None
        if self._energy_delta_mj is not None:
            energy_j, source = self._energy_delta_mj / 1000.0, "counter"
            if self._duration_s > 0:
                avg_power = energy_j / self._duration_s  # exact over the run, unlike the sampled mean
        elif avg_power is not None:
            energy_j, source = avg_power * self._duration_s, "integrated"
        throttles = [x["throttle_reasons"] for x in s if x["throttle_reasons"] is not None]
        mem = [x["mem_used_bytes"] for x in s if x["mem_used_bytes"] is not None]
        temps = [x["temp_c"] for x in s if x["temp_c"] is not None]
        return TelemetrySummary(
            available=True,
            reason=self._reason,
            energy_j=energy_j,
            avg_power_w=avg_power,
            gpu_util_mean=_mean([x["gpu_util"] for x in s if x["gpu_util"] is not None]),
            mem_used_max_bytes=max(mem) if mem else None,
            sm_clock_mean_mhz=_mean([x["sm_clock_mhz"] for x in s if x["sm_clock_mhz"] is not None]),
            temp_max_c=max(temps) if temps else None,
            throttled_share=(
                sum(1 for t in throttles if t & nvml.THROTTLE_MASK) / len(throttles) if throttles else None
            ),
            n_samples=len(s),
            duration_s=self._duration_s,
            energy_source=source,
        )


def _integrated_mean(points: list[tuple[float, float]]) -> float | None:
    """Time-weighted mean of (t, value) points (trapezoid); the plain mean when they span no time."""
    if not points:
        return None
    span = points[-1][0] - points[0][0]
    if len(points) < 2 or span <= 0:
        return sum(v for _, v in points) / len(points)
    area = sum((t1 - t0) * (v0 + v1) / 2 for (t0, v0), (t1, v1) in zip(points, points[1:], strict=False))
    return area / span


class SlotTelemetry:
    """Every GPU of a run's slot (a multi-rank run's GPUs), one :class:`TelemetrySampler` each.

    Samples carry ``gpu`` (the CUDA index within the slot) and ``rank`` (the rank that trains on it: rank r
    uses the slot's r-th GPU). The summary sums energy and power over the GPUs, averages utilisation and
    clocks, and takes the maxima of memory and temperature.
    """

    def __init__(self, device_indices: list[int], interval_s: float = 0.1, *, strict: bool = False) -> None:
        self.samplers = [TelemetrySampler(i, interval_s, strict=strict) for i in device_indices]
        self.device_indices = list(device_indices)

    def __enter__(self) -> SlotTelemetry:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        for s in self.samplers:
            s.start()

    def stop(self) -> None:
        for s in self.samplers:
            s.stop()

    @property
    def samples(self) -> list[dict[str, Any]]:
        return [{**x, "gpu": i, "rank": rank} for rank, (i, s) in enumerate(zip(self.device_indices, self.samplers, strict=True))
                for x in s.samples]

    def summary(self) -> TelemetrySummary:
        parts = [s.summary() for s in self.samplers]
        ok = [p for p in parts if p.available]
        if not ok:
            return TelemetrySummary(available=False, reason=parts[0].reason if parts else "no GPU in the slot")
        missing = len(parts) - len(ok)

        def total(key: str) -> float | None:
            values = [getattr(p, key) for p in ok]
            return None if any(v is None for v in values) else sum(values)

        def pick(key: str, fn):
            values = [getattr(p, key) for p in ok if getattr(p, key) is not None]
            return fn(values) if values else None

        return TelemetrySummary(
            available=True,
            reason=f"{missing} of {len(parts)} GPUs unavailable" if missing else "; ".join(p.reason for p in ok if p.reason),
            energy_j=total("energy_j"), avg_power_w=total("avg_power_w"),
            gpu_util_mean=pick("gpu_util_mean", _mean), mem_used_max_bytes=pick("mem_used_max_bytes", max),
            sm_clock_mean_mhz=pick("sm_clock_mean_mhz", _mean), temp_max_c=pick("temp_max_c", max),
            throttled_share=pick("throttled_share", _mean), n_samples=sum(p.n_samples for p in ok),
            duration_s=max(p.duration_s for p in ok),
            energy_source=ok[0].energy_source if len({p.energy_source for p in ok}) == 1 else "mixed",
        )
