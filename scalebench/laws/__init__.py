"""Scaling laws: forms, robust fitting, isoFLOP analyses, compute-optimal frontier, bootstrap, backtests.

>>> from scalebench.laws import fit, get_preset
>>> result = fit("runs.csv", "chinchilla", bootstrap=200)          # doctest: +SKIP
>>> result.compute_optimal([1e21, 1e23])                            # doctest: +SKIP
>>> get_preset("chinchilla").compute_optimal(5.76e23)               # doctest: +SKIP
"""

from __future__ import annotations

from scalebench._util import lazy_attributes

# public name -> module that defines it (loaded on first use, so `--help` imports no pandas/scipy)
_LAZY = {
    "BacktestResult": "scalebench.laws.backtest",
    "backtest": "scalebench.laws.backtest",
    "fit": "scalebench.laws.fitting",
    "fit_frame": "scalebench.laws.fitting",
    "LAWS": "scalebench.laws.forms",
    "ChinchillaLaw": "scalebench.laws.forms",
    "KaplanJointLaw": "scalebench.laws.forms",
    "LawForm": "scalebench.laws.forms",
    "PowerLaw": "scalebench.laws.forms",
    "get_law": "scalebench.laws.forms",
    "register_law": "scalebench.laws.forms",
    "load_data": "scalebench.laws.io",
    "IsoFlopResult": "scalebench.laws.isoflop",
    "isoflop_approach1": "scalebench.laws.isoflop",
    "isoflop_approach2": "scalebench.laws.isoflop",
    "get_preset": "scalebench.laws.presets",
    "list_presets": "scalebench.laws.presets",
    "FitResult": "scalebench.laws.result",
}

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

__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, globals(), functions_win=True)
