"""Scaling laws: forms, robust fitting, isoFLOP analyses, compute-optimal frontier, bootstrap, backtests.

>>> from scalebench.laws import fit, get_preset
>>> result = fit("runs.csv", "chinchilla", bootstrap=200)          # doctest: +SKIP
>>> result.compute_optimal([1e21, 1e23])                            # doctest: +SKIP
>>> get_preset("chinchilla").compute_optimal(5.76e23)               # doctest: +SKIP
"""

from __future__ import annotations

from scalebench.laws.backtest import BacktestResult, backtest
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
from scalebench.laws.io import load_data
from scalebench.laws.isoflop import IsoFlopResult, isoflop_approach1, isoflop_approach2
from scalebench.laws.presets import get_preset, list_presets
from scalebench.laws.result import FitResult

__all__ = [
    "LAWS",
    "BacktestResult",
    "ChinchillaLaw",
    "FitResult",
    "IsoFlopResult",
    "KaplanJointLaw",
    "LawForm",
    "PowerLaw",
    "backtest",
    "fit",
    "fit_frame",
    "get_law",
    "get_preset",
    "isoflop_approach1",
    "isoflop_approach2",
    "list_presets",
    "load_data",
    "register_law",
]
