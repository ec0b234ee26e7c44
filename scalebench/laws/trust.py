"""Whether a number computed from a fitted law can be read as a fact: the caveats of a prediction or a plan.

One rule for every surface (``scalebench plan``, ``scalebench.plan``, the page's predictions and plan):
a number is marked, with the reason, when

* the fit is ``weak`` or ``undetermined`` (its diagnostics give the reasons);
* its tokens per parameter lie outside the range of the fitted runs (the law's trade-off between N and D is
  measured only there; compute-optimal D/N drifts with C, and over-training moves it on purpose);
* its compute lies more than ``MAX_EXTRAPOLATION`` (1000×) beyond the fit's largest run (the law was never
  tested that far: read N, D and the loss as an order of magnitude).

A law given by its parameters (a published preset) has no runs here, so only the verdict-free checks that
need no data apply: none. The caveats are returned, not raised; callers mark the number (and Python callers
also warn) instead of showing it as fact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

MAX_EXTRAPOLATION = 1000.0  # beyond this multiple of the largest fitted run's compute, an order of magnitude


@dataclass(frozen=True, kw_only=True)
class FitRange:
    """What the fitted runs cover: the largest compute and the range of tokens per parameter."""

    max_flops: float
    min_tokens_per_param: float
    max_tokens_per_param: float


def fit_range(result: Any) -> FitRange | None:
    """The range of the runs ``result`` was fitted to (None for a law without runs or without N and D)."""
    res = getattr(result, "residuals", None)
    if res is None or not len(res) or not {"params", "tokens"} <= set(res.columns):
        return None
    ratio = res["tokens"].to_numpy(dtype=float) / res["params"].to_numpy(dtype=float)
    flops = res["flops"].to_numpy(dtype=float) if "flops" in res else 6.0 * res["params"].to_numpy(dtype=float) * \
        res["tokens"].to_numpy(dtype=float)
    return FitRange(max_flops=float(flops.max()), min_tokens_per_param=float(ratio.min()),
                    max_tokens_per_param=float(ratio.max()))


def caveats(result: Any, *, flops: float | None = None, tokens_per_param: float | None = None,
            max_extrapolation: float = MAX_EXTRAPOLATION) -> tuple[str, ...]:
    """The reasons a number from ``result`` at ``flops`` FLOPs and ``tokens_per_param`` is not a fact (empty
    when there are none)."""
    out: list[str] = []
    diag = getattr(result, "diagnostics", None)
    if diag is not None and diag.verdict != "reliable":
        first = f": {diag.reasons[0]}" if diag.reasons else ""
        article = "an" if diag.verdict[0] in "aeiou" else "a"
        out.append(f"from {article} {diag.verdict} fit{first}")
    span = fit_range(result)
    if span is None:
        return tuple(out)
    if tokens_per_param is not None and math.isfinite(tokens_per_param):
        lo, hi = span.min_tokens_per_param, span.max_tokens_per_param
        if not lo * (1 - 1e-9) <= tokens_per_param <= hi * (1 + 1e-9):
            out.append(f"{tokens_per_param:.3g} tokens per parameter is outside the fitted runs' {lo:.3g}–{hi:.3g}: "
                       "the law's trade-off between N and D was not measured there")
    if flops is not None and math.isfinite(flops) and flops > max_extrapolation * span.max_flops:
        out.append(f"{flops / span.max_flops:.3g}× beyond the fit's largest run ({span.max_flops:.3g} FLOPs), more "
                   f"than {max_extrapolation:g}×: the fit was never tested this far, so read N, D and the loss as "
                   "an order of magnitude")
    return tuple(out)
