"""Profiling: FLOP counting, step timing, memory, NVML telemetry, the profiler window, bottleneck verdicts.

Names load lazily so ``import scalebench.profiling`` does not import torch. The training loop uses
:class:`Instruments`; ``scalebench profile`` uses :func:`scalebench.train.profile.profile_config`, which trains with them.
"""

from __future__ import annotations

from scalebench._util import lazy_attributes

# public name -> module that defines it
_LAZY = {
    "Instruments": "scalebench.profiling.instruments",
    "InstrumentsResult": "scalebench.profiling.instruments",
    "METRIC_NAMES": "scalebench.profiling.instruments",
    "StepTimer": "scalebench.profiling.timing",
    "ThroughputStats": "scalebench.profiling.timing",
    "MemoryStats": "scalebench.profiling.memory",
    "MemoryTracker": "scalebench.profiling.memory",
    "TelemetrySampler": "scalebench.profiling.telemetry",
    "TelemetrySummary": "scalebench.profiling.telemetry",
    "ProfilerWindow": "scalebench.profiling.trace",
    "TraceBreakdown": "scalebench.profiling.trace",
    "analyze_trace": "scalebench.profiling.trace",
    "Evidence": "scalebench.profiling.bottleneck",
    "Verdict": "scalebench.profiling.bottleneck",
    "classify": "scalebench.profiling.bottleneck",
    "MFUResult": "scalebench.profiling.mfu",
    "mfu_for": "scalebench.profiling.mfu",
    "count_training_step_flops": "scalebench.profiling.flops",
    "count_flops_per_unit": "scalebench.profiling.flops",
}

__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, globals())
