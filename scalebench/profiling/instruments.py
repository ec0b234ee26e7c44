"""One object that instruments a training loop: step timer, NVML sampler, profiler window, memory.

The trainer (``scalebench.train``) and the stand-alone ``scalebench profile`` use the same object, so a
profiled configuration and a sweep run report the same numbers::

    inst = Instruments(run_dir=run_dir, device=device, flops_per_token=fam.flops_per_token(shape),
                       dtype="bf16", micro_batch=batch)
    inst.record_counted_flops(count_gpt_flops_per_token(model, 1, seq_len, device))  # once, before
    with inst:
        for step in range(steps):
            with inst.data_wait():
                x, y = next(batches)
            ...  # forward, backward, optimizer step: no .item(), no synchronize
            inst.on_step(tokens=x.numel(), samples=x.shape[0])
            if step % eval_every == 0:
                with inst.excluded():
                    evaluate()
    metrics = inst.finish()  # flat dict, DESIGN.md names; inst.result has the objects

Leaving the ``with`` block on an exception stops the sampler and the profiler and records nothing.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scalebench.profiling.bottleneck import Evidence, Verdict, classify
from scalebench.profiling.memory import MemoryStats, MemoryTracker
from scalebench.profiling.mfu import MFUResult, mfu_for
from scalebench.profiling.telemetry import SlotTelemetry, TelemetrySampler, TelemetrySummary
from scalebench.profiling.timing import StepTimer, ThroughputStats
from scalebench.profiling.trace import (
    ProfilerWindow,
    TraceBreakdown,
    analyze_trace,
    rank_trace_name,
    trace_folder,
)

__all__ = ["Instruments", "InstrumentsResult", "METRIC_NAMES"]

# The flat metrics :meth:`Instruments.finish` returns (DESIGN.md names; store columns).
METRIC_NAMES = (
    "flops_counted_ratio",
    "mfu",
    "mfu_measured_peak",
    "tokens_per_s",
    "samples_per_s",
    "step_time_s",
    "step_time_p90_s",
    "data_wait_share",
    "peak_mem_bytes",
    "peak_reserved_bytes",
    "alloc_retries",
    "oom_count",
    "peak_rss_bytes",
    "energy_j",
    "avg_power_w",
    "gpu_util_mean",
    "telemetry_available",
    "bottleneck",
    "bottleneck_detail",
    "trace_path",
)


@dataclass(frozen=True, kw_only=True)
class InstrumentsResult:
    throughput: ThroughputStats
    memory: MemoryStats
    telemetry: TelemetrySummary
    breakdown: TraceBreakdown | None
    mfu: MFUResult | None
    verdict: Verdict
    trace_path: Path | None
    flops_per_token: float | None
    flops_counted_per_token: float | None
    metrics: dict[str, Any] = field(repr=False)


class Instruments:
    """Timer + telemetry + profiler window + memory for one run; see the module docstring for usage.

    ``profile=None`` turns the profiler window on for CUDA runs only (DESIGN: on by default for GPU runs);
    pass ``True`` to get a trace-based verdict on CPU too. ``telemetry`` samples NVML on CUDA runs.
    ``dtype`` is the matmul precision the MFU peak is taken for (``"bf16"`` under bf16 autocast;
    ``"tf32"`` for fp32 with TF32 matmuls; ``"fp32"``). ``device_name`` defaults to the CUDA device
    name (or ``cpu: <model>``) and must match the catalog / calibration names.
    """

    def __init__(
        self,
        *,
        run_dir: str | Path,
        device: Any = "cpu",
        warmup_steps: int = 2,
        profile: bool | None = None,
        profiler_schedule: tuple[int, int, int] = (1, 1, 3),
        telemetry: bool = True,
        telemetry_interval_s: float = 0.1,
        flops_per_token: float | None = None,
        dtype: str = "fp32",
        device_name: str | None = None,
        micro_batch: int | None = None,
        calibration_path: str | Path | None = None,
        slot_gpus: int = 1,
    ) -> None:
        import torch

        self.device = torch.device(device)
        self.device_type = self.device.type
        cuda = self.device_type == "cuda"
        self.run_dir = Path(run_dir)
        self.flops_per_token = flops_per_token
        self.flops_counted_per_token: float | None = None
        self.dtype = dtype
        self.micro_batch = micro_batch
        self.calibration_path = calibration_path
        self._device_name = device_name
        self.timer = StepTimer(self.device_type, warmup_steps=warmup_steps)
        cuda_index = (self.device.index if self.device.index is not None else 0) if cuda else None
        if telemetry and cuda and slot_gpus > 1:  # rank 0 watches every GPU of a multi-rank run's slot
            self.sampler = SlotTelemetry(list(range(slot_gpus)), telemetry_interval_s)
        else:
            self.sampler = TelemetrySampler(cuda_index if telemetry else None, telemetry_interval_s)
        wait, warmup, active = profiler_schedule
        self.profiler = ProfilerWindow(  # rank 0's trace; the other ranks' go beside it (train/loop.py)
            trace_folder(self.run_dir), wait, warmup, active, self.device_type,
            enabled=cuda if profile is None else profile, filename=rank_trace_name(0)
        )
        self.memory = MemoryTracker(self.device)
        self.result: InstrumentsResult | None = None
        self._started = False
        self._closed = False

    # -- lifecycle -------------------------------------------------------------------------------------
    def __enter__(self) -> Instruments:
        self.start()
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.timer.finish()  # before closing the profiler, whose export must not count as step time
        self._close()

    def start(self) -> None:
        if self._started:
            raise RuntimeError("Instruments.start() called twice")
        self._started = True
        self.memory.start()
        self.sampler.start()
        self.profiler.__enter__()

    def _close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self.profiler.__exit__(None, None, None)
        finally:
            self.sampler.stop()

    # -- per step --------------------------------------------------------------------------------------
    def data_wait(self) -> contextlib.AbstractContextManager[None]:
        """``with inst.data_wait(): batch = next(it)``."""
        return self.timer.data_wait()

    @contextlib.contextmanager
    def excluded(self) -> Iterator[None]:
        """Evaluation, checkpointing: left out of the step statistics."""
        with self.timer.excluded():
            yield

    def on_step(self, tokens: int = 0, samples: int = 0) -> None:
        """Call once at the end of every optimizer step (after ``optimizer.step()``), without syncing."""
        self.timer.step(tokens, samples)
        self.profiler.step()

    def record_counted_flops(self, flops_counted_per_token: float | None) -> None:
        """The FlopCounterMode count per token of one real step (``flops.count_gpt_flops_per_token``)."""
        self.flops_counted_per_token = flops_counted_per_token

    @property
    def device_name(self) -> str:
        if self._device_name is None:
            from scalebench.hardware.calibrate import current_device_name

            self._device_name = current_device_name(self.device)
        return self._device_name

    @property
    def telemetry_samples(self) -> list[dict[str, Any]]:
        return self.sampler.samples

    def _no_trace_reason(self, trace_path: Path | None, breakdown: Any) -> str | None:
        if breakdown is not None:
            return None
        if not self.profiler.enabled:
            return ("the profiler window was off for this run (on CPU, profiling.profiler = 'auto' profiles only "
                    "runs of at least 5 times its window of profiler_wait + profiler_warmup + profiler_active "
                    "steps); set profiling.profiler = 'on' to profile shorter runs")
        if trace_path is None:
            return "the profiler window was on but the run ended before it recorded a trace"
        return f"the trace {trace_path} could not be analysed"

    # -- results ---------------------------------------------------------------------------------------
    def finish(self) -> dict[str, Any]:
        """Stop everything, analyse, and return the flat metrics (idempotent)."""
        if self.result is not None:
            return self.result.metrics
        if not self._started:
            raise RuntimeError("Instruments.finish() before start()")
        import torch

        throughput = self.timer.finish()
        self._close()
        telemetry = self.sampler.summary()
        memory = self.memory.read()
        trace_path = self.profiler.trace_path
        breakdown = None
        if trace_path is not None:
            try:
                breakdown = analyze_trace(trace_path)
            except (OSError, EOFError, ValueError, KeyError) as exc:  # a torn trace must not fail the run
                warnings.warn(
                    f"could not analyse the profiler trace {trace_path}: {exc}", RuntimeWarning, stacklevel=2
                )
        mfu = None
        if self.flops_per_token and throughput.tokens_per_s:
            mfu = mfu_for(
                throughput.tokens_per_s * self.flops_per_token,
                self.device_name,
                self.dtype,
                calibration_path=self.calibration_path,
                threads=torch.get_num_threads() if self.device_type == "cpu" else None,
            )
        verdict = classify(
            Evidence(
                device_type=self.device_type,
                mfu=mfu.mfu if mfu else None,
                breakdown=breakdown,
                data_wait_share=throughput.data_wait_share,
                alloc_retries=memory.alloc_retries,
                oom_count=memory.oom_count,
                peak_reserved_fraction=memory.peak_reserved_fraction,
                micro_batch=self.micro_batch,
                mfu_measured_peak=mfu.mfu_measured_peak if mfu else None,
                no_trace_reason=self._no_trace_reason(trace_path, breakdown),
            )
        )
        ratio = None
        if self.flops_counted_per_token and self.flops_per_token:
            ratio = self.flops_counted_per_token / self.flops_per_token
        metrics: dict[str, Any] = {
            "flops_counted_ratio": ratio,
            "mfu": mfu.mfu if mfu else None,
            "mfu_measured_peak": mfu.mfu_measured_peak if mfu else None,
            "tokens_per_s": throughput.tokens_per_s,
            "samples_per_s": throughput.samples_per_s,
            "step_time_s": throughput.step_time_s,
            "step_time_p90_s": throughput.step_time_p90_s,
            "data_wait_share": throughput.data_wait_share,
            "peak_mem_bytes": memory.peak_mem_bytes,
            "peak_reserved_bytes": memory.peak_reserved_bytes,
            "alloc_retries": memory.alloc_retries,
            "oom_count": memory.oom_count,
            "peak_rss_bytes": memory.peak_rss_bytes,
            "energy_j": telemetry.energy_j,
            "avg_power_w": telemetry.avg_power_w,
            "gpu_util_mean": telemetry.gpu_util_mean,
            "telemetry_available": telemetry.available,
            "bottleneck": verdict.bottleneck,
            "bottleneck_detail": verdict.as_dict(),
            "trace_path": str(trace_path) if trace_path is not None else None,
        }
        self.result = InstrumentsResult(
            throughput=throughput,
            memory=memory,
            telemetry=telemetry,
            breakdown=breakdown,
            mfu=mfu,
            verdict=verdict,
            trace_path=trace_path,
            flops_per_token=self.flops_per_token,
            flops_counted_per_token=self.flops_counted_per_token,
            metrics=metrics,
        )
        return metrics
