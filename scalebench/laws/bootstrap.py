"""Bootstrap over runs: refit on resamples drawn with replacement, percentile intervals from the refits.

A resample is expressed as integer weights on the original points (a run drawn k times counts k times in
the summed Huber objective), so no data are copied. Points sharing a ``run_id`` are resampled together.
Each refit warm-starts from the full-data optimum and the next few distinct local optima of the full fit:
a resample's optimum lies near the full-data one, so a handful of L-BFGS-B runs replaces the 4,500-start
grid (about 20 ms per resample for 240 points).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from scalebench.laws.forms import LawForm
from scalebench.laws.optimize import blas_single_thread, refine
from scalebench.laws.result import _percentiles


def resample_weights(groups: np.ndarray, n_resamples: int, seed: int) -> np.ndarray:
    """(B, n) integer weights: each of the G groups drawn G times with replacement per resample."""
    codes, inverse = np.unique(groups, return_inverse=True)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, codes.size, size=(n_resamples, codes.size))
    counts = np.stack([np.bincount(d, minlength=codes.size) for d in draws])
    return counts[:, inverse].astype(float)


def bootstrap_thetas(
    form: LawForm,
    logx: np.ndarray,
    logy: np.ndarray,
    groups: np.ndarray,
    *,
    starts: np.ndarray,
    n_resamples: int,
    seed: int,
    delta: float,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Raw parameters refitted on each resample, shape (B, P); ``progress(done, total)`` after each."""
    weights = resample_weights(groups, n_resamples, seed)
    out = np.empty((n_resamples, form.n_params))
    with blas_single_thread():
        for i, w in enumerate(weights):
            fits = [refine(form, s, logx, logy, delta, w) for s in np.atleast_2d(starts)]
            out[i] = min(fits, key=lambda r: r.objective).theta
            if progress is not None:
                progress(i + 1, n_resamples)
    return out


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
