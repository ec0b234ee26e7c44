"""Cost estimation and compute-optimal planning.

* :func:`estimate` — FLOPs, memory per GPU, least GPUs, time, cost, energy and loss of a run (or a table).
* :func:`plan` — from one constraint (FLOPs, dollars, GPU-hours, deadline, target loss) to params, tokens
  and the estimate, under a scaling law.
* :func:`calibrate` — MFU against model size (and power draw) from a sweep's measurements.
"""

from scalebench.planning.calibrate import Calibration, calibrate
from scalebench.planning.estimate import Estimate, MemoryBreakdown, estimate
from scalebench.planning.plan import Plan, plan
from scalebench.planning.presets import Architecture, get_architecture, list_architectures

__all__ = [
    "Estimate", "MemoryBreakdown", "estimate",
    "Plan", "plan",
    "Calibration", "calibrate",
    "Architecture", "get_architecture", "list_architectures",
]
