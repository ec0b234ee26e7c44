"""IsoFLOP analyses of Hoffmann et al. 2022 (§3.1, §3.2): compute-optimal scaling without a parametric law.

Approach 1 — training-curve envelope. Each run's loss curve is a function of compute C = 6·N·D (D the
tokens seen so far). At each compute level the run with the lowest loss gives N_opt(C); a power law
N_opt = k·C^a is fitted to those points (least squares in log-log), and D_opt = C/(6·N_opt). Curves should
come from runs whose learning-rate schedule matches their length (Hoffmann et al. §3.1), or be smoothed.

Approach 2 — isoFLOP profiles. Runs are grouped by compute budget; for each budget a parabola in log N is
fitted to the final losses and its vertex gives N_opt(C); then N_opt ∝ C^a, D_opt ∝ C^b.

Known bias of Approach 2: the loss along an isoFLOP line is not a parabola in log N. With α ≠ β it is an
asymmetric valley, so a symmetric parabola puts the vertex off the true minimum, by an amount that depends
on how the sampled sizes sit around the minimum and on their spread. If every budget's grid is centred on
its optimum with the same width in log N, the offset is the same at every budget and the exponent a is
unbiased (only the coefficient shifts); grids that are off-centre by different amounts (e.g. one fixed set
of sizes for all budgets) or that narrow/widen with C bias a. Prefer wide grids centred on the expected
optimum, check ``vertex_inside`` in ``profiles``, and cross-check with the parametric fit (Approach 3).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from scalebench.errors import ConfigError, FitError
from scalebench.laws.io import load_data
from scalebench.laws.result import json_float

LOG6 = math.log(6.0)


@dataclass(frozen=True, kw_only=True, eq=False)
class IsoFlopResult:
    """N_opt(C) = exp(log_params_coef)·C^a and D_opt(C) = exp(log_tokens_coef)·C^b."""

    approach: int
    a: float
    b: float
    log_params_coef: float
    log_tokens_coef: float
    frontier: pd.DataFrame = field(repr=False)  # flops, params, tokens, loss: the optimum per budget / bin
    profiles: pd.DataFrame | None = field(default=None, repr=False)  # Approach 2: one parabola per budget

    def params_opt(self, flops: Any) -> np.ndarray:
        return np.exp(self.log_params_coef + self.a * np.log(np.asarray(flops, dtype=float)))

    def tokens_opt(self, flops: Any) -> np.ndarray:
        return np.exp(self.log_tokens_coef + self.b * np.log(np.asarray(flops, dtype=float)))

    def summary(self) -> dict[str, Any]:
        return {
            "approach": self.approach,
            "a": json_float(self.a),
            "b": json_float(self.b),
            "log_params_coef": json_float(self.log_params_coef),
            "log_tokens_coef": json_float(self.log_tokens_coef),
            "n_points": len(self.frontier),
        }


def _power_fit(frontier: pd.DataFrame, approach: int, profiles: pd.DataFrame | None = None) -> IsoFlopResult:
    if len(frontier) < 2 or frontier["flops"].nunique() < 2:
        raise FitError(
            f"isoFLOP approach {approach}: need optima at 2 or more compute levels, got {len(frontier)}"
        )
    log_c = np.log(frontier["flops"].to_numpy())
    a, k_n = np.polyfit(log_c, np.log(frontier["params"].to_numpy()), 1)
    b, k_d = np.polyfit(log_c, np.log(frontier["tokens"].to_numpy()), 1)
    return IsoFlopResult(
        approach=approach,
        a=float(a),
        b=float(b),
        log_params_coef=float(k_n),
        log_tokens_coef=float(k_d),
        frontier=frontier.reset_index(drop=True),
        profiles=profiles,
    )


def isoflop_approach1(
    source: object,
    *,
    loss_col: str | None = None,
    n_bins: int = 30,
    min_runs: int = 2,
    drop_edge: bool = True,
) -> IsoFlopResult:
    """Approach 1 from training curves: rows are (run, checkpoint) with ``params``, ``tokens`` seen so far
    and ``loss``; runs are identified by ``run_id`` (else by ``params``). Losses are interpolated in log C
    at ``n_bins`` log-spaced compute levels; a level counts when at least ``min_runs`` curves cover it.
    ``drop_edge`` drops levels won by the smallest or largest model, whose true optimum may lie beyond."""
    frame = load_data(source, ("params", "tokens"), loss_col=loss_col)
    key = "run_id" if "run_id" in frame else "params"
    curves = []
    for _, run in frame.groupby(key, sort=False):
        run = run.sort_values("flops")
        if len(run) >= 2:
            curves.append(
                (
                    float(run["params"].iloc[0]),
                    np.log(run["flops"].to_numpy()),
                    np.log(run["loss"].to_numpy()),
                )
            )
    if len(curves) < 2:
        raise FitError("isoFLOP approach 1 needs training curves (2+ checkpoints) from 2 or more runs")
    lo = min(c[1][0] for c in curves)
    hi = max(c[1][-1] for c in curves)
    levels = np.linspace(lo, hi, n_bins)
    losses = np.full((len(curves), n_bins), np.inf)
    for i, (_, lc, ll) in enumerate(curves):
        inside = (levels >= lc[0]) & (levels <= lc[-1])
        losses[i, inside] = np.interp(levels[inside], lc, ll)
    sizes = np.array([c[0] for c in curves])
    covered = np.isfinite(losses).sum(axis=0) >= min_runs
    winner = np.argmin(losses, axis=0)
    keep = covered.copy()
    if drop_edge:
        keep &= (sizes[winner] > sizes.min()) & (sizes[winner] < sizes.max())
    flops = np.exp(levels[keep])
    params = sizes[winner[keep]]
    frontier = pd.DataFrame(
        {
            "flops": flops,
            "params": params,
            "tokens": flops / (6.0 * params),
            "loss": np.exp(losses[winner[keep], np.flatnonzero(keep)]),
        }
    )
    return _power_fit(frontier, 1)


def budget_clusters(flops: np.ndarray, rtol: float) -> np.ndarray:
    """Cluster compute values: a new budget starts when C exceeds the current one's first by > rtol."""
    order = np.argsort(flops)
    labels = np.empty(flops.size, dtype=int)
    label, start = -1, -np.inf
    for i in order:
        if flops[i] > start * (1.0 + rtol):
            label, start = label + 1, flops[i]
        labels[i] = label
    return labels


def isoflop_approach2(
    source: object, *, loss_col: str | None = None, budget_col: str | None = None, rtol: float = 0.1
) -> IsoFlopResult:
    """Approach 2 from final losses of runs on isoFLOP lines (``params``, ``tokens`` or ``flops``, ``loss``).
    Budgets come from ``budget_col`` when given, else by clustering ``flops`` within ``rtol``. Each budget
    needs 3+ model sizes; a parabola that opens downward is skipped with a warning. See the module docs for
    the method's bias."""
    if not rtol > 0:
        raise ConfigError(f"rtol must be positive, not {rtol!r}")
    extra = () if budget_col is None else (budget_col,)
    frame = load_data(source, ("params", "tokens"), loss_col=loss_col, extra_cols=extra)
    if budget_col is not None:
        labels = pd.factorize(frame[budget_col].to_numpy())[0]
        if (labels < 0).any():
            raise FitError(f"budget_col {budget_col!r} has {int((labels < 0).sum())} missing value(s)")
    else:
        labels = budget_clusters(frame["flops"].to_numpy(), rtol)
    rows, optima = [], []
    for label in np.unique(labels):
        group = frame[labels == label]
        budget = float(np.median(group["flops"]))
        if group["params"].nunique() < 3:
            warnings.warn(f"isoFLOP budget {budget:.3g}: fewer than 3 model sizes, skipped", stacklevel=2)
            continue
        log_n = np.log(group["params"].to_numpy())
        c2, c1, c0 = np.polyfit(log_n, group["loss"].to_numpy(), 2)
        vertex = -c1 / (2.0 * c2) if c2 > 0 else math.nan
        inside = bool(c2 > 0 and log_n.min() <= vertex <= log_n.max())
        rows.append(
            {"flops": budget, "c0": c0, "c1": c1, "c2": c2, "n_runs": len(group), "vertex_inside": inside}
        )
        if not c2 > 0:
            warnings.warn(
                f"isoFLOP budget {budget:.3g}: parabola opens downward (no minimum), skipped", stacklevel=2
            )
            continue
        if not inside:
            warnings.warn(
                f"isoFLOP budget {budget:.3g}: the minimum lies outside the sampled sizes (extrapolated); "
                "extend the grid of sizes",
                stacklevel=2,
            )
        n_opt = math.exp(vertex)
        optima.append(
            {
                "flops": budget,
                "params": n_opt,
                "tokens": budget / (6.0 * n_opt),
                "loss": c0 - c1 * c1 / (4.0 * c2),
            }
        )
    return _power_fit(
        pd.DataFrame(optima, columns=["flops", "params", "tokens", "loss"]), 2, pd.DataFrame(rows)
    )
