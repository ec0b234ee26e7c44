"""scalebench: scaling-law benchmarking and resource planning.

Sweep a ladder of models on your hardware, profile every run, fit scaling laws, write a report, and
estimate what a large run will cost. The public API is below; names load lazily so that
``import scalebench`` stays cheap (torch is imported only when a training or profiling function is used).
"""

from __future__ import annotations

import logging
from importlib.metadata import PackageNotFoundError, version

from scalebench._util import lazy_attributes
from scalebench.errors import ConfigError, DeviceError, FitError, ScalebenchError, StoreError

try:
    __version__ = version("scalebench")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

logging.getLogger(__name__).addHandler(logging.NullHandler())

# public name -> module that defines it
_LAZY = {
    "Sweep": "scalebench.sweep_dir",
    "SweepSpec": "scalebench.config",
    "RunSpec": "scalebench.config",
    "load_sweep": "scalebench.config",
    "plan_runs": "scalebench.sweep.planner",
    "run_sweep": "scalebench.sweep.runner",
    "train": "scalebench.train",
    "RunRecord": "scalebench.train",
    "load_results": "scalebench.store",
    "load_steps": "scalebench.store",
    "load_meta": "scalebench.store",
    "ResultStore": "scalebench.store",
    "load_events": "scalebench.store",
    "load_telemetry": "scalebench.store",
    "estimate": "scalebench.planning",
    "Estimate": "scalebench.planning",
    "plan": "scalebench.planning",
    "Plan": "scalebench.planning",
    "calibrate": "scalebench.planning",
    "Calibration": "scalebench.planning",
    "get_gpu": "scalebench.hardware.catalog",
    "list_gpus": "scalebench.hardware.catalog",
    "GPUSpec": "scalebench.hardware.catalog",
    "get_family": "scalebench.families",
    "Family": "scalebench.families",
    "register_family": "scalebench.families",
    "fit": "scalebench.laws",
    "FitResult": "scalebench.laws",
    "backtest": "scalebench.laws",
    "BacktestResult": "scalebench.laws",
    "isoflop_approach1": "scalebench.laws",
    "isoflop_approach2": "scalebench.laws",
    "IsoFlopResult": "scalebench.laws",
    "get_preset": "scalebench.laws",
    "list_presets": "scalebench.laws",
    "get_law": "scalebench.laws",
    "advise": "scalebench.advisor",
    "Advice": "scalebench.advisor",
    "register_law": "scalebench.laws",
    "write_report": "scalebench.report",
    "ReportOptions": "scalebench.report",
    "profile_config": "scalebench.train.profile",
}

__all__ = [
    "__version__",
    "ScalebenchError",
    "ConfigError",
    "DeviceError",
    "FitError",
    "StoreError",
    *_LAZY,
]


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, globals())
