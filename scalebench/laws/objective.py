"""The robust fitting objective: Huber loss on residuals of log loss, summed over points.

Residuals are r_i = log L̂_i − log L_i, so the objective is scale-free across loss values and, with a small
δ (1e-3, Hoffmann et al. 2022 appendix D.2), behaves like least absolute deviations: outlying runs pull
far less than in least squares. Optional per-point weights (integer counts) implement a bootstrap resample
without copying the data; ``delta`` may be one threshold or one per point (a fit weighted by seed noise,
``laws.noise``, scales each residual by multiplying its weight and dividing its threshold); ``objective_and_grad_rows`` evaluates many (parameters, weights) rows at once, so a
bootstrap's refits share one vectorised pass per step.
"""

from __future__ import annotations

import numpy as np

from scalebench.laws.forms import LawForm


def huber(r: np.ndarray, delta: float) -> np.ndarray:
    """0.5·r² for |r| ≤ δ, δ·(|r| − δ/2) beyond: quadratic near zero, linear in the tails."""
    abs_r = np.abs(r)
    return np.where(abs_r <= delta, 0.5 * r * r, delta * (abs_r - 0.5 * delta))


def huber_grad(r: np.ndarray, delta: float) -> np.ndarray:
    return np.clip(r, -delta, delta)


def delta_mass(delta: float | np.ndarray, weights: np.ndarray | None, n: int, rows: int | None = None) -> np.ndarray:
    """Σ weight·δ over the points (the size of a gradient that counts as stationary): a float, or (rows,) for a
    (rows, n) ``weights``."""
    d = np.broadcast_to(np.asarray(delta, dtype=float), (n,))
    if weights is None:
        total = float(d.sum())
        return total if rows is None else np.full(rows, total)
    return np.asarray(weights, dtype=float) @ d


def objective_values(
    form: LawForm,
    theta: np.ndarray,
    logx: np.ndarray,
    logy: np.ndarray,
    delta: float,
    weights: np.ndarray | None = None,
    chunk: int = 1024,
) -> np.ndarray:
    """Objective at each of S parameter vectors, shape (S,); evaluated in chunks to bound memory."""
    theta = np.atleast_2d(theta)
    out = np.empty(theta.shape[0])
    for i in range(0, theta.shape[0], chunk):
        with np.errstate(over="ignore", invalid="ignore"):
            h = huber(form.log_predict(theta[i : i + chunk], logx) - logy, delta)
        out[i : i + chunk] = h.sum(axis=1) if weights is None else np.einsum("sn,n->s", h, weights)
    return np.where(np.isfinite(out), out, np.inf)


def objective_and_grad(
    form: LawForm,
    theta: np.ndarray,
    logx: np.ndarray,
    logy: np.ndarray,
    delta: float,
    weights: np.ndarray | None = None,
) -> tuple[float, np.ndarray]:
    """Objective and its analytic gradient at one parameter vector (shape (P,))."""
    f, jac = form.log_predict_grad(theta[None, :], logx)
    r = f[0] - logy
    h, g = huber(r, delta), huber_grad(r, delta)
    if weights is not None:
        h, g = h * weights, g * weights
    # einsum, not @: BLAS threads on tiny products stall badly when cores are shared
    return float(h.sum()), np.einsum("pn,n->p", jac[0], g)


def objective_and_grad_rows(
    form: LawForm,
    theta: np.ndarray,
    logx: np.ndarray,
    logy: np.ndarray,
    delta: float,
    weights: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Objective (S,) and gradient (S, P) of S independent problems: row s is ``theta[s]`` (S, P) scored with
    ``weights[s]`` (S, n; None: every point once). Non-finite objectives come back as inf."""
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        f, jac = form.log_predict_grad(theta, logx)
        r = f - logy
        h, g = huber(r, delta), huber_grad(r, delta)
        if weights is not None:
            h, g = h * weights, g * weights
        obj = h.sum(axis=1)
        grad = np.einsum("spn,sn->sp", jac, g)
    bad = ~(np.isfinite(obj) & np.all(np.isfinite(grad), axis=1))
    if bad.any():
        obj = np.where(bad, np.inf, obj)
        grad = np.where(bad[:, None], 0.0, grad)
    return obj, grad
