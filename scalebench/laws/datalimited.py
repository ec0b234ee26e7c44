"""The data-constrained scaling law of Muennighoff et al. 2023 ("Scaling Data-Constrained Language Models",
eqs. 5–7 and appendix A), registered as ``data-constrained``.

Repeated data is worth less than fresh data, and parameters beyond what the unique data can use are worth
less than useful ones. With U_D unique tokens seen (at most D) and repetitions R_D = D/U_D − 1,

    D' = U_D + U_D·R_D*·(1 − exp(−R_D/R_D*))            (effective data)
    N' = U_N + U_N·R_N*·(1 − exp(−R_N/R_N*)),  R_N = N/U_N − 1   (effective parameters)
    L  = E + A/N'^α + B/D'^β

where U_N = min(N_opt(U_D), N): the base law's compute-optimal model size for U_D tokens, capped at N. Under
the Chinchilla law that optimum satisfies αA·N^−α = βB·D^−β (both terms of ∂L/∂log N and ∂L/∂log D
equal at the optimum of C = 6ND), so N_opt(D) = (αA/(βB))^(1/α)·D^(β/α). Columns: ``params``, ``tokens``
and ``unique_tokens``. R_D* and R_N* are the repetitions at which repeated tokens/excess parameters have
lost 1 − 1/e of their value; the paper fits R_D* ≈ 15.4 and R_N* ≈ 5.3.

The Jacobian is by central differences (the min() has a kink; the rest is smooth).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from scalebench.laws.forms import LawForm, log_chinchilla, register_law


@dataclass(frozen=True, kw_only=True)
class DataConstrainedLaw(LawForm):
    name: str = "data-constrained"
    variables: tuple[str, ...] = ("params", "tokens", "unique_tokens")
    raw_names: tuple[str, ...] = ("e", "a", "b", "alpha", "beta", "l_rd_star", "l_rn_star")
    param_names: tuple[str, ...] = ("E", "A", "B", "alpha", "beta", "rd_star", "rn_star")
    bounds: tuple[tuple[float, float], ...] = (
        (-10.0, 5.0),
        (-10.0, 60.0),
        (-10.0, 60.0),
        (0.01, 5.0),
        (0.01, 5.0),
        (math.log(0.01), math.log(1e4)),
        (math.log(0.01), math.log(1e4)),
    )
    grid: tuple[tuple[str, tuple[float, ...]], ...] = (
        ("e", (-0.5, 0.0, 0.5, 1.0)),
        ("a", (0.0, 5.0, 10.0, 15.0, 20.0)),
        ("b", (0.0, 5.0, 10.0, 15.0, 20.0)),
        ("alpha", (0.2, 0.5, 1.0)),
        ("beta", (0.2, 0.5, 1.0)),
        ("l_rd_star", (math.log(3.0), math.log(15.0), math.log(60.0))),
        ("l_rn_star", (math.log(1.0), math.log(5.0), math.log(25.0))),
    )
    formula: str = "L = E + A/N'^alpha + B/D'^beta (N', D': effective params and data, Muennighoff et al. eq. 5-7)"
    citation: str = "Muennighoff et al. 2023, Scaling Data-Constrained Language Models, eqs. 5-7"

    @property
    def positive_params(self) -> tuple[str, ...]:
        return self.param_names

    @staticmethod
    def _effective(log_unique: np.ndarray, log_total: np.ndarray, log_r_star: np.ndarray) -> np.ndarray:
        """log(U + U·R*·(1 − exp(−R/R*))) with R = total/U − 1 ≥ 0."""
        r = np.expm1(np.maximum(log_total - log_unique, 0.0))
        r_star = np.exp(log_r_star)
        return log_unique + np.log1p(r_star * -np.expm1(-r / r_star))

    def log_predict(self, theta, logx):
        theta = np.atleast_2d(np.asarray(theta, dtype=float))
        e, a, b, al, be, lrd, lrn = (theta[:, i, None] for i in range(7))
        ln, ld, lu = (np.asarray(v, dtype=float)[None, :] for v in logx)
        log_ud = np.minimum(lu, ld)  # unique tokens actually seen
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            log_un_opt = (np.log(al) + a - np.log(be) - b) / al + be / al * log_ud
            log_un = np.minimum(log_un_opt, ln)
            log_d_eff = self._effective(log_ud, ld, lrd)
            log_n_eff = self._effective(log_un, ln, lrn)
            return log_chinchilla(e, a - al * log_n_eff, b - be * log_d_eff)

    def to_public(self, theta):
        theta = np.asarray(theta, dtype=float)
        return {
            "E": np.exp(theta[..., 0]),
            "A": np.exp(theta[..., 1]),
            "B": np.exp(theta[..., 2]),
            "alpha": theta[..., 3],
            "beta": theta[..., 4],
            "rd_star": np.exp(theta[..., 5]),
            "rn_star": np.exp(theta[..., 6]),
        }

    def from_public(self, params):
        self.check_public(params)
        return np.array([self.raw_value(n, float(params[n])) for n in self.param_names], dtype=float)


register_law(DataConstrainedLaw())
