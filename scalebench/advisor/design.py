"""The design criterion: how much a set of new runs would narrow a fitted law's compute-optimal target.

The target g(θ) and its linearisation (the noise model, Huber variance factor, Jacobians) are those of
``scalebench.laws.optimum``, the module that defines the interval `fit --at-flops` reports.

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

import numpy as np

from scalebench.errors import FitError
from scalebench.laws.forms import LawForm
from scalebench.laws.optimum import jacobians, target_grad

PRIOR_SD_SHARE = 0.25  # prior sd = this share of each raw parameter's bound range
PRIOR_WEAKEN = 0.01  # prior precision factor of the sensitivity test (sd 10x wider)


def prior_precision(form: LawForm) -> np.ndarray:
    lo, hi = np.array(form.bounds, dtype=float).T
    sd = PRIOR_SD_SHARE * (hi - lo)
    return np.diag(1.0 / sd**2)



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
        self.old_info = np.einsum("kni,knj->knij", jo, jo) / v  # (K, n, P, P): each done run's
        self.base = self.old_info.sum(axis=1) + self.prior[None]
        jc = jacobians(form, self.ensemble, cells_logx)  # (K, m, P)
        self.cell_info = np.einsum("kmi,kmj->kmij", jc, jc) / v

    def value(self, info: np.ndarray) -> np.ndarray:
        """Mean over the ensemble of log ∇gᵀ M⁻¹ ∇g for information matrices ``info`` (..., K, P, P)."""
        sol = np.linalg.solve(info, np.broadcast_to(self.grads[..., None], info.shape[:-1] + (1,)))[..., 0]
        var = np.einsum("...kp,kp->...k", sol, self.grads)
        return np.mean(np.log(np.maximum(var, 1e-300)), axis=-1)

    def bootstrap_value(self, cells: list[int] | np.ndarray, confidence: float, *, resamples: int = 64,
                        seed: int = 0) -> float:
        """Mean over the ensemble of the log half-width of the percentile interval a bootstrap over runs
        (done runs plus one at each listed cell) would give, linearised: resample b weighs run i by w_bi
        (multinomial), so the refit's deviation has variance s_b² = ∇gᵀ M_b⁻¹ (Σ w_bi² I_i) M_b⁻¹ ∇g with
        M_b = prior + Σ w_bi I_i, and the percentile half-width is the q with mean_b Φ(q / s_b) = (1 + P)/2.
        Unlike the delta criterion, it sees a design whose width hangs on a few runs a resample may leave out."""
        from scipy.special import ndtr

        cells = np.asarray(cells, dtype=int)
        info = np.concatenate([self.old_info, self.cell_info[:, cells]], axis=1)  # (K, N, P, P)
        n = info.shape[1]
        rng = np.random.default_rng(seed)
        w = rng.multinomial(n, np.full(n, 1.0 / n), size=resamples).astype(float)  # (B, N)
        m = np.einsum("bn,knij->bkij", w, info) + self.prior
        a = np.einsum("bn,knij->bkij", w * w, info)
        sol = np.linalg.solve(m, np.broadcast_to(self.grads[None, :, :, None], m.shape[:-1] + (1,)))[..., 0]
        sd = np.sqrt(np.maximum(np.einsum("bki,bkij,bkj->bk", sol, a, sol), 1e-300))  # (B, K)
        goal = 0.5 + 0.5 * confidence
        lo, hi = np.zeros(sd.shape[1]), 10.0 * sd.max(axis=0)
        for _ in range(50):  # bisection on the mixture's quantile, every ensemble member at once
            mid = 0.5 * (lo + hi)
            below = np.mean(ndtr(mid[None, :] / sd), axis=0) < goal
            lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
        return float(np.mean(np.log(0.5 * (lo + hi))))

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


__all__ = ["Criterion", "prior_precision"]
