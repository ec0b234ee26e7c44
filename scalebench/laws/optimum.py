"""The compute-optimal point of a fitted law at a compute budget, with its interval (`fit --at-flops`).

The interval itself is defined once, in ``scalebench.laws.intervals`` (percentile bootstrap with 20 or more
refits, else the delta method below); ``optimum_at`` is its `fit --at-flops` form. The advisor
(``scalebench.advisor``) narrows the same interval.

Everything here works on the raw parameters θ of a ``LawForm`` (the optimiser's parametrisation) and on
the log of a *target* g(θ) at a compute budget C* under C = 6·N·D:

* ``params``:  g = log N_opt(C*)
* ``tokens``:  g = log D_opt(C*) = log C* − log 6 − log N_opt(C*)   (the same width as ``params``)
* ``loss``:    g = log L(N_opt, D_opt)

**Noise model.** Each run's log loss is the law's log prediction plus independent noise of variance σ²,
the same for every run (an assumption: seed-to-seed noise of small runs is often larger). The fit
minimises a Huber loss with threshold δ; for Gaussian noise its estimator has the asymptotic covariance
``v · (JᵀJ)⁻¹`` with ``v = E[ψ(ε)²] / E[ψ'(ε)]²`` and ψ = clip(·, −δ, δ) (Huber 1964, "Robust Estimation
of a Location Parameter", §4; Huber & Ronchetti 2009, *Robust Statistics*, eq. 6.5), where J is the
Jacobian d log L̂ / dθ at the fitted runs. For δ ≫ σ this is least squares (v = σ²); for δ ≪ σ (the
default δ = 1e-3 against σ ≈ 0.01) it tends to least absolute deviations, v = (π/2)·σ².

**Delta method.** Var g ≈ ∇gᵀ Σ ∇g with Σ = v·(JᵀJ)⁻¹; ∇g by central differences (any law with a
frontier). The interval is g ± z·sd, returned on the target's own scale (exp). A parameter the fit left on
its bound (E → 0, say) is held there: the interval is conditional on it, as a profile over the others.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy.stats import norm

from scalebench.errors import FitError
from scalebench.laws.forms import LOG6, LawForm
from scalebench.laws.frontier import optimal_log

if TYPE_CHECKING:
    import pandas as pd

    from scalebench.laws.result import FitResult

TARGETS = ("params", "tokens", "loss")


def huber_variance(sigma: float, delta: float) -> float:
    """v = E[ψ²]/E[ψ']² for ε ~ N(0, σ²), ψ = clip(ε, −δ, δ): the Huber estimator's variance factor."""
    if not sigma > 0:
        return 0.0
    k = delta / sigma
    inside = 2.0 * norm.cdf(k) - 1.0  # P(|ε| ≤ δ) = E[ψ']
    if inside < 1e-12:  # δ → 0: least absolute deviations, 1/(4 f(0)²) = (π/2)σ²
        return 0.5 * math.pi * sigma**2
    e_psi2 = sigma**2 * (inside - 2.0 * k * norm.pdf(k)) + delta**2 * (1.0 - inside)
    return float(e_psi2 / inside**2)


def noise_sigma(residuals: np.ndarray, n_params: int) -> float:
    """σ of log-loss noise from a fit's residuals: root mean square with the degrees of freedom removed.

    A Huber fit with a small δ interpolates some points (their residual is ~0), so the residual sum of
    squares over n − P degrees of freedom is the estimate; with no spare points it is NaN.
    """
    r = np.asarray(residuals, dtype=float)
    dof = r.size - n_params
    if dof <= 0:
        return math.nan
    return float(math.sqrt(np.sum(r * r) / dof))


def target_log(form: LawForm, thetas: np.ndarray, target: str, log_c: float) -> np.ndarray:
    """g(θ) for each row of ``thetas`` (S, P) -> (S,)."""
    if target not in TARGETS:
        raise FitError(f"target must be one of {', '.join(TARGETS)}, not {target!r}")
    log_n, log_d, log_l = optimal_log(form, np.atleast_2d(thetas), np.array([log_c]))
    return {"params": log_n, "tokens": log_d, "loss": log_l}[target][:, 0]


def target_grad(form: LawForm, thetas: np.ndarray, target: str, log_c: float) -> np.ndarray:
    """∇θ g at each row of ``thetas`` (S, P) -> (S, P), by central differences."""
    thetas = np.atleast_2d(np.asarray(thetas, dtype=float))
    s, p = thetas.shape
    h = 1e-5 * np.maximum(1.0, np.abs(thetas))  # (S, P)
    eye = np.eye(p)[None, :, :] * h[:, :, None]  # (S, P, P): row i perturbs parameter i
    plus = (thetas[:, None, :] + eye).reshape(-1, p)
    minus = (thetas[:, None, :] - eye).reshape(-1, p)
    with np.errstate(all="ignore"):
        g_plus = target_log(form, plus, target, log_c).reshape(s, p)
        g_minus = target_log(form, minus, target, log_c).reshape(s, p)
    return (g_plus - g_minus) / (2.0 * h)


def jacobians(form: LawForm, thetas: np.ndarray, logx: np.ndarray) -> np.ndarray:
    """d log L̂ / dθ at n points for each of S thetas: (S, n, P)."""
    with np.errstate(all="ignore"):
        jac = form.log_predict_grad(np.atleast_2d(thetas), logx)[1]  # (S, P, n)
    return np.nan_to_num(np.swapaxes(jac, 1, 2))


def on_bounds(form: LawForm, theta: np.ndarray) -> np.ndarray:
    """Which raw parameters sit on a bound (within 1e-6 of the range), as ``optimize.multistart`` says."""
    lo, hi = np.array(form.bounds, dtype=float).T
    edge = 1e-6 * (hi - lo)
    theta = np.asarray(theta, dtype=float)
    return (theta - lo <= edge) | (hi - theta <= edge)


def delta_interval(
    form: LawForm,
    theta: np.ndarray,
    logx: np.ndarray,
    residuals: np.ndarray,
    *,
    delta: float,
    target: str,
    log_c: float,
    confidence: float,
) -> tuple[float, float, float]:
    """(point, low, high) of the target at C* from the delta method; NaN bounds when undetermined."""
    theta = np.asarray(theta, dtype=float)
    point = float(np.exp(target_log(form, theta, target, log_c)[0]))
    sigma = noise_sigma(residuals, form.n_params)
    if not math.isfinite(sigma):
        return point, math.nan, math.nan
    v = max(huber_variance(max(sigma, 1e-12), delta), 1e-24)
    free = ~on_bounds(form, theta)  # a parameter the fit left on its bound is held there (conditional interval)
    jac = jacobians(form, theta, logx)[0][:, free]
    grad = target_grad(form, theta, target, log_c)[0][free]
    info = jac.T @ jac
    if not np.all(np.isfinite(grad)) or np.linalg.cond(info) > 1e14:
        return point, math.nan, math.nan
    var = v * float(grad @ np.linalg.solve(info, grad))
    if not var >= 0:
        return point, math.nan, math.nan
    z = float(norm.ppf(0.5 + confidence / 2.0))
    if not (math.isfinite(point) and point > 0):
        return point, math.nan, math.nan
    half = z * math.sqrt(var)
    with np.errstate(over="ignore"):  # an interval wider than floats reach is infinite, not an error
        lo, hi = np.exp(np.log(point) + np.array([-half, half]))
    return point, float(lo), float(hi)


def optimum_at(result: FitResult, flops: float, *, confidence: float | None = None,
               data: pd.DataFrame | None = None) -> dict[str, Any]:
    """The compute-optimal point at ``flops`` with intervals, as ``scalebench.laws.intervals.optimum`` gives it
    (the one definition: percentile bootstrap with 20 or more refits, else the delta method above on the
    fit's residuals). ``data`` is accepted for compatibility: the fit's residuals carry its points."""
    from scalebench.laws.intervals import optimum

    del data
    return optimum(result, flops, confidence)


def format_optimum(opt: Mapping[str, Any]) -> str:
    """One text line per quantity of ``optimum_at``'s dict."""
    from scalebench.laws.intervals import format_optimum as fmt

    return fmt(dict(opt))


__all__ = [
    "LOG6",
    "TARGETS",
    "delta_interval",
    "format_optimum",
    "huber_variance",
    "jacobians",
    "noise_sigma",
    "optimum_at",
    "target_grad",
    "target_log",
]
