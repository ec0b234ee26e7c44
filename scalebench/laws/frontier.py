"""The compute-optimal frontier of a fitted law, under C = 6·N·D.

For the Chinchilla form (Hoffmann et al. 2022, eq. 4 and appendix D.2):
a = β/(α+β), b = α/(α+β), N_opt(C) = G·(C/6)^a, D_opt(C) = G⁻¹·(C/6)^b, G = (αA/(βB))^(1/(α+β)).
For Kaplan's joint form the analogous closed form is in ``KaplanJointLaw.log_params_opt``. The loss at the
optimum is the law evaluated there, and the least compute that reaches a target loss is found by
bisection on log C (the optimal loss falls monotonically with C), which works for any form.
"""

from __future__ import annotations

import numpy as np

from scalebench.errors import FitError
from scalebench.laws.forms import LOG6, LawForm

# Bisection bracket for the inverse, in natural-log FLOPs: 1 FLOP to 1e80 FLOPs.
_LOG_C_LO, _LOG_C_HI = 0.0, 80.0 * np.log(10.0)


def _require_frontier(form: LawForm) -> None:
    if not form.has_frontier:
        raise FitError(
            f"law {form.name!r} has no compute-optimal frontier (it needs a law in params and tokens); "
            "fit 'chinchilla' or 'kaplan-joint'"
        )


def optimal_log(
    form: LawForm, theta: np.ndarray, log_flops: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(log N_opt, log D_opt, log L at the optimum), each shape (S, m), for thetas (S, P) at log C (m,)."""
    _require_frontier(form)
    theta = np.atleast_2d(theta)
    log_n = form.log_params_opt(theta, log_flops)
    log_d = np.asarray(log_flops)[None, :] - LOG6 - log_n
    log_l = np.empty_like(log_n)
    with np.errstate(over="ignore", invalid="ignore"):
        for s in range(theta.shape[0]):  # each sample has its own optimum points
            log_l[s] = form.log_predict(theta[s : s + 1], np.vstack([log_n[s], log_d[s]]))[0]
    return log_n, log_d, log_l


def _log_loss_at_flops(form: LawForm, theta: np.ndarray, log_flops: np.ndarray) -> np.ndarray:
    if form.variables == ("flops",):  # a law in compute alone is its own frontier
        return form.log_predict(theta[None, :], np.asarray(log_flops)[None, :])[0]
    return optimal_log(form, theta, log_flops)[2][0]


def log_flops_for_loss(form: LawForm, theta: np.ndarray, targets: np.ndarray, iters: int = 200) -> np.ndarray:
    """Least log C whose optimal loss is ≤ each target, shape (S, m); +inf where the law never gets there."""
    if not (form.has_frontier or form.variables == ("flops",)):
        _require_frontier(form)
    theta = np.atleast_2d(theta)
    log_t = np.log(np.asarray(targets, dtype=float))
    out = np.empty((theta.shape[0], log_t.size))
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        for s in range(theta.shape[0]):
            lo = np.full(log_t.size, _LOG_C_LO)
            hi = np.full(log_t.size, _LOG_C_HI)
            reachable = _log_loss_at_flops(form, theta[s], hi) <= log_t
            for _ in range(iters):
                mid = 0.5 * (lo + hi)
                below = _log_loss_at_flops(form, theta[s], mid) <= log_t
                hi = np.where(below, mid, hi)
                lo = np.where(below, lo, mid)
                if np.all(hi - lo < 1e-12):
                    break
            out[s] = np.where(reachable, hi, np.inf)
    return out
