"""Which runs next: proposals that most narrow a fitted law's compute-optimal interval per unit of cost.

>>> from scalebench.advisor import advise
>>> advice = advise("reports/quickstart", target_flops=1e15, budget_flops=1e14)   # doctest: +SKIP
>>> advice.write_extension("more.toml")                                           # doctest: +SKIP
"""

from __future__ import annotations

from scalebench._util import lazy_attributes

# public name -> module that defines it (loaded on first use, so `--help` imports no pandas/scipy)
_LAZY = {
    "Advice": "scalebench.advisor.advise",
    "ProposedRun": "scalebench.advisor.advise",
    "REPORT_TARGET_FACTOR": "scalebench.advisor.advise",
    "advise": "scalebench.advisor.advise",
    "sweep_proposal": "scalebench.advisor.advise",
}

__all__ = ["REPORT_TARGET_FACTOR", "Advice", "ProposedRun", "advise", "sweep_proposal"]

__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, globals())
