"""Scaling laws: forms, robust fitting, isoFLOP analyses, compute-optimal frontier, bootstrap, backtests.

>>> from scalebench.laws import fit, get_preset
>>> result = fit("runs.csv", "chinchilla", bootstrap=200)          # doctest: +SKIP
>>> result.compute_optimal([1e21, 1e23])                            # doctest: +SKIP
>>> get_preset("chinchilla").compute_optimal(5.76e23)               # doctest: +SKIP
"""

from __future__ import annotations

from scalebench.laws.backtest import BacktestResult, backtest
from scalebench.laws.broken import BrokenPowerLaw, broken_power_law
from scalebench.laws.compare import compare_laws
from scalebench.laws.constraints import ConstrainedLaw, constrain
from scalebench.laws.datalimited import DataConstrainedLaw
from scalebench.laws.diagnostics import Diagnostics, diagnose
from scalebench.laws.fitting import fit, fit_frame
from scalebench.laws.forms import (
    LAWS,
    ChinchillaLaw,
    KaplanJointLaw,
    LawForm,
    PowerLaw,
    get_law,
    register_law,
)
from scalebench.laws.groups import GroupedFit, fit_groups
from scalebench.laws.io import load_data
from scalebench.laws.isoflop import IsoFlopResult, isoflop_approach1, isoflop_approach2
from scalebench.laws.presets import get_preset, list_presets
from scalebench.laws.result import FIT_FILE, FitResult, load_fit, save_fit

__all__ = [
    "FIT_FILE",
    "LAWS",
    "BacktestResult",
    "BrokenPowerLaw",
    "ChinchillaLaw",
    "ConstrainedLaw",
    "DataConstrainedLaw",
    "Diagnostics",
    "GroupedFit",
    "FitResult",
    "IsoFlopResult",
    "KaplanJointLaw",
    "LawForm",
    "PowerLaw",
    "backtest",
    "broken_power_law",
    "compare_laws",
    "constrain",
    "diagnose",
    "fit",
    "fit_groups",
    "fit_frame",
    "get_law",
    "get_preset",
    "isoflop_approach1",
    "isoflop_approach2",
    "list_presets",
    "load_data",
    "load_fit",
    "register_law",
    "save_fit",
]
