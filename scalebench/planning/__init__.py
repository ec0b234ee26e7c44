"""Cost estimation and compute-optimal planning.

* :func:`estimate` — FLOPs, memory per GPU, least GPUs, time, cost, energy and loss of a run (or a table).
* :func:`plan` — from one constraint (FLOPs, dollars, GPU-hours, deadline, target loss) to params, tokens
  and the estimate, under a scaling law.
* :func:`calibrate` — MFU against model size (and power draw) from a sweep's measurements.
* :func:`estimate_inference` (also ``estimate(mode="inference")``) — memory, speed and price of serving.
"""

from scalebench._util import lazy_attributes

# public name -> module that defines it (loaded on first use, so `--help` imports no pandas/scipy)
_LAZY = {
    "Calibration": "scalebench.planning.calibrate",
    "calibrate": "scalebench.planning.calibrate",
    "Estimate": "scalebench.planning.estimate",
    "MemoryBreakdown": "scalebench.planning.estimate",
    "estimate": "scalebench.planning.estimate",
    "Plan": "scalebench.planning.plan",
    "plan": "scalebench.planning.plan",
    "InferenceEstimate": "scalebench.planning.inference",
    "estimate_inference": "scalebench.planning.inference",
    "Architecture": "scalebench.planning.presets",
    "get_architecture": "scalebench.planning.presets",
    "list_architectures": "scalebench.planning.presets",
}

__all__ = [
    "Estimate", "MemoryBreakdown", "estimate",
    "InferenceEstimate", "estimate_inference",
    "Plan", "plan",
    "Calibration", "calibrate",
    "Architecture", "get_architecture", "list_architectures",
]

__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, globals(), functions_win=True)
