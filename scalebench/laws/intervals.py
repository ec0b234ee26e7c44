"""The one definition of an interval on a compute-optimal quantity: N_opt, D_opt and the predicted loss at C.

Every surface that shows such an interval (``scalebench fit --at-flops``, the page's predictions and
frontier band, plans, ``scalebench next``) calls :func:`interval` or :func:`intervals_at`, so one sweep
shows one interval per quantity.

**Definition.** At a compute budget C (FLOPs, C = 6·N·D) the target g is log N_opt(C), log D_opt(C) or
log L(N_opt, D_opt) under the fitted law.

* ``bootstrap`` (used when the fit carries at least ``MIN_BOOTSTRAP`` refits): the percentile interval of g
  over the refits on runs resampled with replacement (Efron & Tibshirani 1993, ch. 13). Why first: the laws
  are non-linear and their fits are robust (Huber), so intervals on N_opt are asymmetric and the residuals
  are not Gaussian; the percentile bootstrap carries both without a formula, and it resamples whole runs,
  the unit the data were measured in.
* ``delta`` (no or too few refits, but the fit's residuals are known): the delta method on the Huber
  estimator's asymptotic covariance (``laws.optimum.delta_interval``): g ± z·sd, returned on g's own scale.
  It is the linearisation of the same estimator, cheap, and exact as the noise shrinks.
* ``none``: neither refits nor residuals (a published law given by its parameters): no interval (NaN).

Percentiles of fewer than ``MIN_BOOTSTRAP`` refits are mostly noise in the tails (a 95% interval from 10
refits rests on the extreme ones), hence the threshold. ``tokens`` shares the width of ``params`` under the
delta method (log D = log C − log 6 − log N); under the bootstrap each has its own percentiles.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from scalebench.errors import ConfigError, FitError

QUANTITIES = ("params", "tokens", "loss")  # N_opt, D_opt, the loss at the optimum
MIN_BOOTSTRAP = 20
METHODS = ("bootstrap", "delta", "none")


@dataclass(frozen=True, kw_only=True)
class Interval:
    """``quantity`` at ``flops``: the fit's ``point`` and the (``low``, ``high``) interval at ``confidence``
    found by ``method`` (``bootstrap``, ``delta`` or ``none``); NaN bounds when the fit does not determine it."""

    quantity: str
    flops: float
    point: float
    low: float
    high: float
    confidence: float
    method: str

    def __post_init__(self) -> None:
        if self.quantity not in QUANTITIES:
            raise ValueError(f"Interval.quantity must be one of {QUANTITIES}, not {self.quantity!r}")
        if self.method not in METHODS:
            raise ValueError(f"Interval.method must be one of {METHODS}, not {self.method!r}")

    @property
    def determined(self) -> bool:
        return math.isfinite(self.low) and math.isfinite(self.high)

    def summary(self) -> dict[str, Any]:
        from scalebench._util import json_safe

        return json_safe({"quantity": self.quantity, "flops": self.flops, "point": self.point, "low": self.low,
                          "high": self.high, "confidence": self.confidence, "method": self.method})


def _check(result: Any, confidence: float | None) -> float:
    if not result.form.has_frontier:
        raise FitError(f"law {result.law!r} has no compute-optimal frontier; fit 'chinchilla' or 'kaplan-joint'")
    conf = result.confidence if confidence is None else confidence
    if isinstance(conf, bool) or not isinstance(conf, (int, float)) or not 0 < conf < 1:
        raise ConfigError(f"confidence must be a number in (0, 1), e.g. 0.95, not {conf!r}")
    return float(conf)


def _flops(value: Any) -> np.ndarray:
    c = np.atleast_1d(np.asarray(value, dtype=float)).ravel()
    if c.size == 0 or np.any(~(c > 0)) or np.any(~np.isfinite(c)):
        raise ConfigError(f"FLOP budgets must be positive and finite (e.g. 1e21), not {value!r}")
    return c


def method_of(result: Any) -> str:
    """Which definition applies to ``result``: ``bootstrap``, ``delta`` or ``none`` (see the module doc)."""
    boot = result.bootstrap_thetas
    if boot is not None and len(boot) >= MIN_BOOTSTRAP:
        return "bootstrap"
    res = result.residuals
    if res is not None and len(res) > result.form.n_params and all(v in res for v in result.form.variables):
        return "delta"
    return "none"


def intervals_at(result: Any, flops: Any, confidence: float | None = None) -> pd.DataFrame:
    """The compute-optimal point and intervals at each budget: columns ``flops``, ``params``, ``tokens``,
    ``tokens_per_param``, ``loss``, their ``_low``/``_high`` (NaN where undetermined) and ``method``."""
    from scalebench.laws.frontier import optimal_log

    conf = _check(result, confidence)
    c = _flops(flops)
    log_c = np.log(c)
    log_n, log_d, log_l = (x[0] for x in optimal_log(result.form, result.theta, log_c))
    frame = pd.DataFrame({"flops": c, "params": np.exp(log_n), "tokens": np.exp(log_d),
                          "tokens_per_param": np.exp(log_d - log_n), "loss": np.exp(log_l)})
    method = method_of(result)
    tail = 50.0 * (1.0 - conf)
    if method == "bootstrap":
        bn, bd, bl = optimal_log(result.form, result.bootstrap_thetas, log_c)
        for col, samples in (("params", bn), ("tokens", bd), ("tokens_per_param", bd - bn), ("loss", bl)):
            with np.errstate(invalid="ignore"), _quiet():
                low, high = np.nanpercentile(np.exp(samples), [tail, 100.0 - tail], axis=0)
            frame[f"{col}_low"], frame[f"{col}_high"] = low, high
    else:
        bounds = {q: np.full((2, c.size), np.nan) for q in (*QUANTITIES, "tokens_per_param")}
        if method == "delta":
            for i, lc in enumerate(log_c):
                half = {q: _delta_half(result, q, float(lc), conf) for q in ("params", "loss")}
                half["tokens"], half["tokens_per_param"] = half["params"], 2.0 * half["params"]
                for q, h in half.items():
                    mid = math.log(frame.at[i, q])
                    with np.errstate(over="ignore"):
                        bounds[q][:, i] = np.exp([mid - h, mid + h])
        for q, (low, high) in bounds.items():
            frame[f"{q}_low"], frame[f"{q}_high"] = low, high
    frame["method"] = method
    return frame


def _delta_half(result: Any, quantity: str, log_c: float, confidence: float) -> float:
    """Half width in log of the delta-method interval (NaN when the fit leaves it undetermined)."""
    from scalebench.laws.optimum import delta_interval

    res = result.residuals
    logx = np.log(res[list(result.form.variables)].to_numpy(dtype=float).T)
    point, low, high = delta_interval(result.form, result.theta, logx, res["residual"].to_numpy(),
                                             delta=result.huber_delta, target=quantity, log_c=log_c,
                                             confidence=confidence)
    if not (math.isfinite(low) and math.isfinite(high) and low > 0):
        return math.nan
    return 0.5 * (math.log(high) - math.log(low))


def interval(result: Any, quantity: str, flops: float, confidence: float | None = None) -> Interval:
    """The interval on ``quantity`` (``params`` = N_opt, ``tokens`` = D_opt, ``loss`` = the loss at the
    optimum) at ``flops`` FLOPs, by the module's definition; ``confidence`` defaults to the fit's."""
    if quantity not in QUANTITIES:
        raise ConfigError(f"quantity must be one of {', '.join(QUANTITIES)}, not {quantity!r}")
    if isinstance(flops, bool) or not isinstance(flops, (int, float, np.floating, np.integer)):
        raise ConfigError(f"flops must be a positive FLOP count (a number, e.g. 1e21), not {flops!r}")
    row = intervals_at(result, float(flops), confidence).iloc[0]
    conf = _check(result, confidence)
    return Interval(quantity=quantity, flops=float(flops), point=float(row[quantity]),
                    low=float(row[f"{quantity}_low"]), high=float(row[f"{quantity}_high"]), confidence=conf,
                    method=str(row["method"]))


def optimum(result: Any, flops: float, confidence: float | None = None) -> dict[str, Any]:
    """The JSON block ``scalebench fit --at-flops`` prints: ``{flops, params, tokens, loss, ci: {quantity:
    [low, high]}, ci_method, confidence}`` (``ci`` empty when the method is ``none``)."""
    from scalebench._util import json_safe

    conf = _check(result, confidence)
    if isinstance(flops, bool) or not isinstance(flops, (int, float)) or not flops > 0 or not math.isfinite(flops):
        raise ConfigError(f"--at-flops must be a positive FLOP count, e.g. 1e21, not {flops!r}")
    row = intervals_at(result, float(flops), conf).iloc[0]
    method = str(row["method"])
    ci = {} if method == "none" else {q: [float(row[f"{q}_low"]), float(row[f"{q}_high"])] for q in QUANTITIES}
    return json_safe({"flops": float(flops), **{q: float(row[q]) for q in QUANTITIES}, "ci": ci,
                      "ci_method": method, "confidence": conf})


def format_optimum(opt: dict[str, Any]) -> str:
    """One text line per quantity of :func:`optimum`'s dict."""
    pct = f"{100 * opt['confidence']:g}%"
    lines = [f"compute-optimal at {opt['flops']:.4g} FLOPs ({opt['ci_method']} {pct} intervals):"]
    for q in QUANTITIES:
        lo, hi = opt["ci"].get(q, [None, None])
        band = f"   [{lo:.4g}, {hi:.4g}]" if lo is not None and hi is not None else "   [undetermined]"
        lines.append(f"  {q:>8} = {opt[q]:.4g}{band if opt['ci'] else ''}")
    return "\n".join(lines)


class _quiet:
    """Silence numpy's "All-NaN slice" warning: a budget no refit reaches is NaN, said by the NaN itself."""

    def __enter__(self) -> None:
        import warnings

        self._w = warnings.catch_warnings()
        self._w.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc: object) -> None:
        self._w.__exit__(*exc)
