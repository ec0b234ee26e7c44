"""Linearised uncertainty of a fitted law's compute-optimal point, and designs that shrink it.

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

**Design.** The information a set of runs carries about θ is M = JᵀJ / v + P, with P a weak Gaussian
prior (standard deviation a quarter of each parameter's bound range) that only matters where the data
leave a direction of θ undetermined, so the criterion is finite before the law is identified. Adding runs
adds their J Jᵀ / v. The c-optimal criterion (Elfving 1952; Atkinson, Donev & Tobias 2007, *Optimum
Experimental Designs*, ch. 10 and 17) is ∇gᵀ M⁻¹ ∇g. Because the law is non-linear, the criterion is
averaged (as mean log variance) over an ensemble of parameter values — the fit and its bootstrap refits —
a pseudo-Bayesian design (Chaloner & Verdinelli 1995, "Bayesian Experimental Design: A Review", §2.2),
so a design is not tuned to one possibly wrong point estimate.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import norm

from scalebench.errors import FitError
from scalebench.laws.forms import LOG6, LawForm
from scalebench.laws.frontier import optimal_log

TARGETS = ("params", "tokens", "loss")
PRIOR_SD_SHARE = 0.25  # prior sd = this share of each raw parameter's bound range
PRIOR_WEAKEN = 0.01  # prior precision factor of the sensitivity test (sd 10x wider)


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


def prior_precision(form: LawForm) -> np.ndarray:
    lo, hi = np.array(form.bounds, dtype=float).T
    sd = PRIOR_SD_SHARE * (hi - lo)
    return np.diag(1.0 / sd**2)


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


class Criterion:
    """Mean log c-optimal variance over an ensemble; information matrices built incrementally.

    ``base`` (K, P, P) is the information of the runs already done (plus the prior) at each ensemble member;
    ``cell_info`` (K, m, P, P) the information one run at each of m candidate cells would add.
    """

    def __init__(self, form: LawForm, ensemble: np.ndarray, old_logx: np.ndarray, cells_logx: np.ndarray,
                 *, v: float, target: str, log_c: float) -> None:
        self.ensemble = np.atleast_2d(ensemble)
        grads = target_grad(form, self.ensemble, target, log_c)
        keep = np.all(np.isfinite(grads), axis=1)
        if not keep.any():
            raise FitError(f"the {target} target is not finite at C* for any fitted parameter set")
        self.ensemble, self.grads = self.ensemble[keep], grads[keep]
        jo = jacobians(form, self.ensemble, old_logx)  # (K, n, P)
        self.prior = prior_precision(form)
        self.base = np.einsum("kni,knj->kij", jo, jo) / v + self.prior[None]
        jc = jacobians(form, self.ensemble, cells_logx)  # (K, m, P)
        self.cell_info = np.einsum("kmi,kmj->kmij", jc, jc) / v

    def value(self, info: np.ndarray) -> np.ndarray:
        """Mean over the ensemble of log ∇gᵀ M⁻¹ ∇g for information matrices ``info`` (..., K, P, P)."""
        sol = np.linalg.solve(info, np.broadcast_to(self.grads[..., None], info.shape[:-1] + (1,)))[..., 0]
        var = np.einsum("...kp,kp->...k", sol, self.grads)
        return np.mean(np.log(np.maximum(var, 1e-300)), axis=-1)

    def info_of(self, cells: list[int] | np.ndarray) -> np.ndarray:
        """Information of the done runs plus one run at each listed cell: (K, P, P)."""
        cells = np.asarray(cells, dtype=int)
        return self.base + (self.cell_info[:, cells].sum(axis=1) if cells.size else 0.0)

    def relative_variance(self, info: np.ndarray) -> np.ndarray:
        """Posterior over prior variance of each raw parameter, the ensemble's median: (P,). Near 1: the
        runs say nothing about that parameter beyond the prior (it is not identified)."""
        post = np.diagonal(np.linalg.inv(info), axis1=-2, axis2=-1)
        return np.median(post * np.diagonal(self.prior), axis=0)

    def prior_sensitivity(self, info: np.ndarray) -> float:
        """How much the target's variance grows when the prior is made 10x wider (median over the ensemble):
        about 1 when the runs determine the target, large when only the prior does."""
        weak = info - (1.0 - PRIOR_WEAKEN) * self.prior
        return float(np.median(np.exp(self._log_var(weak) - self._log_var(info))))

    def _log_var(self, info: np.ndarray) -> np.ndarray:
        sol = np.linalg.solve(info, self.grads[..., None])[..., 0]
        return np.log(np.maximum(np.einsum("kp,kp->k", sol, self.grads), 1e-300))


__all__ = [
    "LOG6",
    "TARGETS",
    "Criterion",
    "delta_interval",
    "huber_variance",
    "jacobians",
    "noise_sigma",
    "prior_precision",
    "target_grad",
    "target_log",
]
