"""Bootstrap over runs: refit on resamples drawn with replacement, percentile intervals from the refits.

A resample is expressed as integer weights on the original points (a run drawn k times counts k times in
the summed Huber objective), so no data are copied. Points sharing a group (a ``run_id``; a cell's seeds in a fit
weighted by seed noise) are resampled together, and a weighted fit's point weights multiply the counts.

Two ways to refit a resample give the same optimum:

* ``full``, the reference: the fit's own multi-start grid (screen every start, refine the best
  ``n_refine`` with L-BFGS-B) on every resample. Complete and slow: ~0.8 s per resample for 240 points.
* ``warm``, the default: a resample's optimum lies near the full-data one, so every resample is refined
  from the full-data optimum (and any other optimum of the full fit that nearly ties with it), all
  resamples at once by the vectorised ``refine_rows``: a few ms per resample. A seeded sample of the
  resamples (``AUDIT_SHARE``, at least ``AUDIT_MIN``) is also refitted from the full grid; one whose grid
  optimum is lower than the warm one (by more than ``AUDIT_RTOL``) is a disagreement and keeps the grid's
  answer. The share that disagree goes into the fit's metadata and diagnostics: the warm path is trusted
  only as far as it is checked.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from scalebench.laws.forms import LawForm
from scalebench.laws.objective import objective_values
from scalebench.laws.optimize import blas_single_thread, multistart, refine, refine_rows
from scalebench.laws.result import _percentiles

AUDIT_SHARE = 0.02  # of the resamples, refitted from the full grid to check the warm starts
AUDIT_MIN = 2
# A full-grid optimum lower than the warm one by more than this (relative) is a disagreement. With δ = 1e-3 the
# Huber objective is nearly L1 and has many nearby local optima on its kinks, which two runs of L-BFGS from
# different points tell apart by up to ~6e-4 (measured on Epoch's 240 points and on seeded data); another
# basin differs by far more (the second-best optimum on Epoch's points is 10x higher).
AUDIT_RTOL = 1e-3
# Warm starts: the full-data optimum, plus other distinct optima of the full fit whose objective is within this
# share of the best (an optimum 10x worse on all the data does not win on a resample of it).
WARM_GAP = 0.1
METHODS = ("warm", "full")


@dataclass(frozen=True, kw_only=True, eq=False)
class BootstrapOutcome:
    thetas: np.ndarray  # (B, P) raw parameters refitted on each resample
    method: str  # "warm" or "full"
    n_audited: int  # resamples also refitted from the full grid (warm method)
    n_disagree: int  # of those, where the full grid found a lower objective than the warm starts
    n_fallback: int  # warm refits that did not converge in the vectorised search and were redone one by one

    @property
    def disagree_share(self) -> float:
        return self.n_disagree / self.n_audited if self.n_audited else math.nan


def resample_weights(groups: np.ndarray, n_resamples: int, seed: int) -> np.ndarray:
    """(B, n) integer weights: each of the G groups drawn G times with replacement per resample."""
    codes, inverse = np.unique(groups, return_inverse=True)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, codes.size, size=(n_resamples, codes.size))
    counts = np.stack([np.bincount(d, minlength=codes.size) for d in draws])
    return counts[:, inverse].astype(float)


def audit_rows(n_resamples: int, seed: int, share: float | None = None) -> np.ndarray:
    """Indices of the resamples checked against the full grid (``share`` of them, default ``AUDIT_SHARE``, at
    least ``AUDIT_MIN``): a seeded sample, sorted."""
    share = AUDIT_SHARE if share is None else share
    k = min(n_resamples, max(AUDIT_MIN, math.ceil(share * n_resamples)))
    return np.sort(np.random.default_rng([seed, 1]).choice(n_resamples, size=k, replace=False))


def bootstrap(
    form: LawForm,
    logx: np.ndarray,
    logy: np.ndarray,
    groups: np.ndarray,
    *,
    optima: np.ndarray,
    grid: np.ndarray,
    n_refine: int | None,
    n_resamples: int,
    seed: int,
    delta: float,
    method: str = "warm",
    n_warm: int = 4,
    audit_share: float | None = None,
    progress: Callable[[int, int], None] | None = None,
    point_weights: np.ndarray | None = None,
) -> BootstrapOutcome:
    """Refit ``form`` on ``n_resamples`` resamples over ``groups``. ``optima``: the full fit's distinct local
    optima, best first (the warm starts are the first ``n_warm``); ``grid`` and ``n_refine``: the full fit's
    start grid and refinement count (the reference). ``progress(done, total)`` as resamples finish.
    ``point_weights``: the fit's own weights (seed noise; ``delta`` then holds one threshold per point)."""
    if method not in METHODS:
        raise ValueError(f"bootstrap method must be one of {METHODS}, not {method!r}")
    weights = resample_weights(groups, n_resamples, seed)
    if point_weights is not None:
        weights = weights * point_weights
    out = np.empty((n_resamples, form.n_params))

    def full_grid(w: np.ndarray):
        return multistart(form, logx, logy, delta=delta, starts=grid, n_refine=n_refine, weights=w)

    if method == "full":
        for i, w in enumerate(weights):
            out[i] = full_grid(w).theta
            if progress is not None:
                progress(i + 1, n_resamples)
        return BootstrapOutcome(thetas=out, method=method, n_audited=0, n_disagree=0, n_fallback=0)

    starts = warm_starts(form, logx, logy, optima, delta, n_warm, point_weights)
    objective, n_fallback = _warm(form, logx, logy, weights, starts, delta, out)
    audited = audit_rows(n_resamples, seed, audit_share)
    if progress is not None:
        progress(n_resamples - audited.size, n_resamples)
    ref_theta, ref_obj = _full_grid_rows(form, logx, logy, weights[audited], grid, n_refine, delta)
    worse = ref_obj < objective[audited] - AUDIT_RTOL * np.maximum(np.abs(objective[audited]), 1e-300)
    out[audited[worse]] = ref_theta[worse]
    n_disagree = int(np.sum(worse))
    if progress is not None:
        progress(n_resamples, n_resamples)
    return BootstrapOutcome(thetas=out, method=method, n_audited=int(audited.size), n_disagree=n_disagree,
                            n_fallback=n_fallback)


def warm_starts(form: LawForm, logx: np.ndarray, logy: np.ndarray, optima: np.ndarray, delta: float,
                n_warm: int, weights: np.ndarray | None = None) -> np.ndarray:
    """The full-data optimum and up to ``n_warm`` − 1 other distinct optima within ``WARM_GAP`` of it."""
    optima = np.atleast_2d(optima)
    obj = objective_values(form, optima, logx, logy, delta, weights)
    close = obj <= obj[0] + WARM_GAP * abs(obj[0])
    close[0] = True
    return optima[close][:n_warm]


def _warm(form, logx, logy, weights, starts, delta, out) -> tuple[np.ndarray, int]:
    """Refine every (resample, start) pair at once; keep each resample's best. Fills ``out``; returns the
    objectives and how many pairs had to be redone by the scalar optimiser."""
    n_res, n_starts = weights.shape[0], starts.shape[0]
    theta0 = np.repeat(starts[None], n_res, axis=0).reshape(-1, form.n_params)  # resample-major
    w_rows = np.repeat(weights, n_starts, axis=0)
    with blas_single_thread():
        rows = refine_rows(form, theta0, logx, logy, delta, w_rows)
        theta, obj = rows.theta.copy(), rows.objective.copy()
        redo = np.flatnonzero(~rows.success)
        for r in redo:
            local = refine(form, theta0[r], logx, logy, delta, w_rows[r])
            if local.objective < obj[r] or not np.isfinite(obj[r]):
                theta[r], obj[r] = local.theta, local.objective
    obj = obj.reshape(n_res, n_starts)
    best = np.argmin(obj, axis=1)
    out[:] = theta.reshape(n_res, n_starts, -1)[np.arange(n_res), best]
    return obj[np.arange(n_res), best], int(redo.size)


def _full_grid_rows(form, logx, logy, weights, grid, n_refine, delta) -> tuple[np.ndarray, np.ndarray]:
    """The fit's multi-start procedure (screen the whole grid, refine the ``n_refine`` best) on each row of
    ``weights``, all refinements in one vectorised search; best theta (k, P) and objective (k,) per row."""
    chosen, w_rows = [], []
    for w in weights:
        screened = objective_values(form, grid, logx, logy, delta, w)
        order = np.argsort(screened, kind="stable")
        pick = grid[order if n_refine is None else order[:n_refine]]
        chosen.append(pick)
        w_rows.append(np.broadcast_to(w, (len(pick), w.size)))
    sizes = [len(c) for c in chosen]
    with blas_single_thread():
        rows = refine_rows(form, np.concatenate(chosen), logx, logy, delta, np.concatenate(w_rows))
    theta, obj = np.empty((len(sizes), form.n_params)), np.empty(len(sizes))
    for k, part in enumerate(np.split(np.arange(sum(sizes)), np.cumsum(sizes)[:-1])):
        best = part[np.argmin(rows.objective[part])]
        theta[k], obj[k] = rows.theta[best], rows.objective[best]
    return theta, obj


def intervals(form: LawForm, thetas: np.ndarray, confidence: float) -> Mapping[str, tuple[float, float]]:
    """Percentile intervals of each public parameter and of the frontier exponents a, b."""
    samples = dict(form.to_public(thetas))
    ab = form.exponents(thetas)
    if ab is not None:
        samples["a"], samples["b"] = ab
    out = {}
    for name, values in samples.items():
        low, high = _percentiles(np.asarray(values, dtype=float), confidence)
        out[name] = (float(low), float(high))
    return out
