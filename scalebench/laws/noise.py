"""Seed noise as fit weights: a ladder with ``[ladder] seeds = K`` measures how much each cell's loss moves between
seeds, and the loss fit weighs each run by it.

The noise of a cell is the spread of log loss between its seeds. With two or three seeds one cell's own
spread is a poor estimate (its log variance has a sampling spread of ψ'(ν/2), 1.2 at ν = 2 degrees of
freedom), so it is pooled with the others in two steps:

1. a **noise model**: log σ² is constant over cells, or linear in the log of the law's variables (noise usually
   falls with size and data). Fitted by weighted least squares to each replicated cell's unbiased log variance
   (log s² − ψ(ν/2) − log(2/ν), weight 1/ψ'(ν/2), both exact for normal noise); the slopes are kept only when
   a chi-square test against the constant rejects it at ``SLOPE_P``, so homoscedastic noise weighs every run
   the same;
2. **shrinkage**: a replicated cell's estimate moves from the model toward its own spread in proportion
   τ² / (τ² + ψ'(ν/2)), τ² the cells' spread about the model beyond sampling (moments, as DerSimonian and Laird
   1986). A cell without seeds takes the model's value, clipped to the range the replicated cells span.

A run's scale is c = σ_ref / σ (σ_ref the geometric mean over runs, ratio clipped to ``MAX_RATIO``). The fit
minimises Σ Huber(c·r, δ) = Σ c²·Huber(r, δ/c) over runs r (residuals in log loss): per-run weights c² and
Huber thresholds δ/c, so δ keeps its meaning at the typical run and a noisy run pulls less (by 1/σ in the
near-L1 regime of the default δ, the Laplace likelihood; by 1/σ² in the quadratic one). The bootstrap resamples
cells, all seeds of one together, with the weights held at the full data's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

SLOPE_P = 0.05  # a noise slope is kept when the constant model is rejected at this level
MAX_RATIO = 10.0  # no run's noise is taken as more than this many times (or less than 1/this) the typical run's
EXCLUDED_AXES = ("seed", "probe")  # what differs between the runs of one cell (probes are not cells at all)


@dataclass(frozen=True, kw_only=True, eq=False)
class SeedNoise:
    """Each run's noise (sd of its log loss) and what it rests on."""

    sigma: np.ndarray  # (n,) noise of each run's log loss
    cells: np.ndarray  # (n,) the cell of each run
    n_cells: int
    replicated: int  # cells with two runs or more
    dof: int  # degrees of freedom of the seed spreads, summed
    slopes: dict[str, float] = field(default_factory=dict)  # d log σ / d log x of the model ({} = constant)
    p_value: float = math.nan  # of the chi-square test of the slopes against a constant
    tau: float = 0.0  # sd of the cells' log σ² about the model beyond sampling

    @property
    def reference(self) -> float:
        return float(np.exp(np.mean(np.log(self.sigma))))

    @property
    def scale(self) -> np.ndarray:
        """c = σ_ref / σ of each run: its residual's multiplier in the fit."""
        return self.reference / self.sigma

    @property
    def weights(self) -> np.ndarray:
        return self.scale**2

    def deltas(self, delta: float) -> np.ndarray:
        return delta / self.scale

    def summary(self) -> dict[str, Any]:
        return {"cells": self.n_cells, "replicated_cells": self.replicated, "dof": self.dof,
                "sigma_reference": self.reference, "sigma_min": float(self.sigma.min()),
                "sigma_max": float(self.sigma.max()),
                "model": "constant" if not self.slopes else "log-linear in " + ", ".join(self.slopes),
                "slopes": dict(self.slopes), "slope_p_value": None if math.isnan(self.p_value) else self.p_value,
                "tau": self.tau}

    def describe(self) -> str:
        s = self.summary()
        model = s["model"] + ("" if not self.slopes else " (" + ", ".join(
            f"σ ∝ {k}^{v:.2f}" for k, v in self.slopes.items()) + ")")
        return (f"runs weighted by seed noise: {self.replicated} of {self.n_cells} cells repeated ({self.dof} "
                f"degrees of freedom), noise of log loss {s['sigma_min']:.3g}-{s['sigma_max']:.3g}, model {model}")


def seed_noise(logx: np.ndarray, logy: np.ndarray, cells: Sequence[Any] | np.ndarray,
               names: Sequence[str]) -> SeedNoise | None:
    """The noise of each run from the spread of ``logy`` between runs of one cell (``cells``: a label per run;
    ``logx``: (k, n) logs of the law's variables ``names``). None when no cell has two runs or no spread."""
    cells = np.asarray(cells)
    codes, inverse, counts = np.unique(cells.astype(str), return_inverse=True, return_counts=True)
    rep = np.flatnonzero(counts >= 2)
    if rep.size == 0:
        return None
    nu = counts[rep] - 1.0
    var = np.array([np.var(logy[inverse == c], ddof=1) for c in rep])
    if not np.any(var > 0):
        return None  # seeds that do not move the loss: nothing to weigh by
    var = np.maximum(var, 1e-3 * np.median(var[var > 0]))
    y, v = _log_variance(var, nu)
    cx = np.stack([np.array([logx[j][inverse == c].mean() for c in range(codes.size)]) for j in range(len(logx))])
    model, slopes, p = _noise_model(cx[:, rep], y, v, names)
    pred = model(cx)
    resid = y - pred[rep]
    tau2 = _between(resid, v, 1 + len(slopes))
    own = pred.copy()
    own[rep] = pred[rep] + tau2 / (tau2 + v) * resid
    lo, hi = own[rep].min(), own[rep].max()
    log_var = np.clip(own, lo, hi)  # no extrapolating the noise past the cells that measured it
    sigma = np.exp(0.5 * log_var)[inverse]
    ref = float(np.exp(np.mean(np.log(sigma))))
    sigma = np.clip(sigma, ref / MAX_RATIO, ref * MAX_RATIO)
    return SeedNoise(sigma=sigma, cells=cells, n_cells=int(codes.size), replicated=int(rep.size), dof=int(nu.sum()),
                     slopes={k: 0.5 * b for k, b in slopes.items()}, p_value=p, tau=math.sqrt(tau2))


def _log_variance(var: np.ndarray, nu: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unbiased log σ² from sample variances on ``nu`` degrees of freedom, and its sampling variance."""
    from scipy.special import digamma, polygamma

    return np.log(var) - digamma(nu / 2) - np.log(2 / nu), polygamma(1, nu / 2)


def _noise_model(x: np.ndarray, y: np.ndarray, v: np.ndarray, names: Sequence[str]):
    """(predict(x), slopes of log σ² by name, p-value): log-linear in the varying ``x`` rows when a chi-square
    test rejects a constant at ``SLOPE_P``, else the weighted mean."""
    from scipy import stats

    w = 1 / v
    mean = float(np.sum(w * y) / np.sum(w))

    def constant(xs: np.ndarray) -> np.ndarray:
        return np.full(xs.shape[1], mean)

    varying = [j for j in range(x.shape[0]) if np.ptp(x[j]) > 1e-9]
    if not varying or y.size < len(varying) + 3:
        return constant, {}, math.nan
    design = np.column_stack([np.ones(y.size), *(x[j] for j in varying)])
    beta, *_ = np.linalg.lstsq(design * np.sqrt(w)[:, None], y * np.sqrt(w), rcond=None)
    drop = float(np.sum(w * (y - mean) ** 2) - np.sum(w * (y - design @ beta) ** 2))
    p = float(stats.chi2.sf(drop, len(varying)))
    if p >= SLOPE_P:
        return constant, {}, p

    def linear(xs: np.ndarray) -> np.ndarray:
        return beta[0] + sum(b * xs[j] for b, j in zip(beta[1:], varying, strict=True))

    return linear, {names[j]: float(b) for b, j in zip(beta[1:], varying, strict=True)}, p


def _between(resid: np.ndarray, v: np.ndarray, n_coef: int) -> float:
    """τ²: the cells' spread about the model beyond their sampling variances (method of moments)."""
    w = 1 / v
    q = float(np.sum(w * resid**2))
    return max(0.0, (q - max(resid.size - n_coef, 0)) / float(np.sum(w)))


def seed_cells(results: pd.DataFrame, axes: Sequence[str]) -> pd.Series | None:
    """Each run's cell (its family, size, budget and grid axes; seeds aside), by run id, when the sweep repeats
    cells with ``[ladder] seeds``; None otherwise."""
    if "seed" not in results or not results["seed"].notna().any() or "run_id" not in results:
        return None
    keys = [c for c in ("family", "size", "budget", *axes) if c in results and c not in EXCLUDED_AXES]
    keys = list(dict.fromkeys(keys))
    label = results[keys].astype(str).agg("|".join, axis=1) if keys else results["run_id"].astype(str)
    return pd.Series(label.to_numpy(), index=results["run_id"].to_numpy())
