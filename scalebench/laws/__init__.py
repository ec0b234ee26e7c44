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
    "BrokenPowerLaw": "scalebench.laws.broken",
    "broken_power_law": "scalebench.laws.broken",
    "compare_laws": "scalebench.laws.compare",
    "ConstrainedLaw": "scalebench.laws.constraints",
    "constrain": "scalebench.laws.constraints",
    "DataConstrainedLaw": "scalebench.laws.datalimited",
    "Diagnostics": "scalebench.laws.diagnostics",
    "diagnose": "scalebench.laws.diagnostics",
    "fit": "scalebench.laws.fitting",
    "fit_frame": "scalebench.laws.fitting",
    "LAWS": "scalebench.laws.forms",
    "ChinchillaLaw": "scalebench.laws.forms",
    "KaplanJointLaw": "scalebench.laws.forms",
    "LawForm": "scalebench.laws.forms",
    "PowerLaw": "scalebench.laws.forms",
    "get_law": "scalebench.laws.forms",
    "register_law": "scalebench.laws.forms",
    "GroupedFit": "scalebench.laws.groups",
    "fit_groups": "scalebench.laws.groups",
    "load_data": "scalebench.laws.io",
    "IsoFlopResult": "scalebench.laws.isoflop",
    "isoflop_approach1": "scalebench.laws.isoflop",
    "isoflop_approach2": "scalebench.laws.isoflop",
    "get_preset": "scalebench.laws.presets",
    "list_presets": "scalebench.laws.presets",
    "FIT_FILE": "scalebench.laws.result",
    "FitResult": "scalebench.laws.result",
    "load_fit": "scalebench.laws.result",
    "save_fit": "scalebench.laws.result",
}

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

__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, globals(), functions_win=True)
