"""Broken power laws in one variable (Caballero, Gupta, Rish & Krueger 2022, "Broken Neural Scaling Laws").

With n breaks, eq. 1 of the paper reads

    L(x) = E + A·x^(−α) · Π_k (1 + (x/d_k)^(1/f_k))^(−α_k·f_k)

so the log-log slope is −α well below the first break d_1 and −(α + α_1 + … + α_k) past break k; f_k sets
how sharp break k is (small f: sharp). It is fitted, like the other forms, in log space:

    log L̂ = LSE(e, a − α·log x − Σ_k α_k·f_k·softplus((log x − log d_k)/f_k))

with E = e^e, A = e^a, d_k = e^(ld_k), f_k = e^(lf_k). Break start values are placed inside the data's
range of x (``adapt_grid``), since the right place for a break depends on the variable and its units.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scalebench.errors import ConfigError
from scalebench.laws.forms import LawForm, _lse, register_law

VARIABLES = ("params", "tokens", "flops")
MAX_BREAKS = 4


@dataclass(frozen=True, kw_only=True)
class BrokenPowerLaw(LawForm):
    """A smoothly broken power law in ``variable`` with ``n_breaks`` breaks; public parameters ``E``, ``A``,
    ``alpha`` and, per break k = 1…n, ``alpha{k}`` (the change in slope), ``d{k}`` (where) and ``f{k}``
    (sharpness)."""

    variable: str = "tokens"
    n_breaks: int = 1
    name: str = ""
    variables: tuple[str, ...] = ()
    raw_names: tuple[str, ...] = ()
    param_names: tuple[str, ...] = ()
    bounds: tuple[tuple[float, float], ...] = ()
    grid: tuple[tuple[str, tuple[float, ...]], ...] = ()

    def __post_init__(self) -> None:
        if self.variable not in VARIABLES:
            raise ConfigError(f"broken power law variable must be one of {VARIABLES}, not {self.variable!r}")
        if not (isinstance(self.n_breaks, int) and 1 <= self.n_breaks <= MAX_BREAKS):
            raise ConfigError(f"broken power law n_breaks must be an integer from 1 to {MAX_BREAKS}, "
                              f"not {self.n_breaks!r}")
        ks = range(1, self.n_breaks + 1)
        raw = ["e", "a", "alpha"]
        public = ["E", "A", "alpha"]
        bounds = [(-10.0, 5.0), (-10.0, 60.0), (0.0, 5.0)]
        grid = [("e", (-1.0, -0.5, 0.0, 0.5, 1.0)), ("a", (0.0, 2.5, 5.0, 10.0, 20.0)),
                ("alpha", (0.05, 0.2, 0.4, 0.8))]
        for k in ks:
            raw += [f"alpha{k}", f"ld{k}", f"lf{k}"]
            public += [f"alpha{k}", f"d{k}", f"f{k}"]
            bounds += [(-5.0, 5.0), (0.0, 80.0), (np.log(0.01), np.log(10.0))]
            first = k == 1
            grid += [(f"alpha{k}", (-0.2, 0.2, 0.5) if first else (-0.2, 0.3)),
                     (f"ld{k}", tuple(np.log(10.0 ** np.arange(4, 21, 4)))),
                     (f"lf{k}", (np.log(0.3), np.log(1.0)) if first else (np.log(0.5),))]
        suffix = "" if self.n_breaks == 1 else f"-{self.n_breaks}"
        terms = " * ".join(f"(1 + (x/d{k})^(1/f{k}))^(-alpha{k}*f{k})" for k in ks)
        sets = {
            "name": self.name or f"broken-power-{self.variable}{suffix}",
            "variables": (self.variable,),
            "raw_names": tuple(raw),
            "param_names": tuple(public),
            "bounds": tuple(bounds),
            "grid": tuple(grid),
            "formula": f"L = E + A*x^-alpha * {terms}, x = {self.variable}",
            "citation": self.citation
            or "Caballero, Gupta, Rish & Krueger 2022, Broken Neural Scaling Laws, eq. 1",
        }
        for key, value in sets.items():
            object.__setattr__(self, key, value)
        super().__post_init__()

    @property
    def positive_params(self) -> tuple[str, ...]:
        ks = range(1, self.n_breaks + 1)
        return ("E", "A", "alpha", *(f"d{k}" for k in ks), *(f"f{k}" for k in ks))

    def adapt_grid(self, logx: np.ndarray) -> dict[str, tuple[float, ...]]:
        lx = np.asarray(logx[0], dtype=float)
        lo, hi = np.nanpercentile(lx, [15.0, 85.0])
        out = {}
        for k in range(1, self.n_breaks + 1):
            count = 5 if k == 1 else 3
            out[f"ld{k}"] = tuple(float(v) for v in np.linspace(lo, hi, count))
        return out

    def log_predict_grad(self, theta, logx):
        theta = np.atleast_2d(np.asarray(theta, dtype=float))
        lx = np.asarray(logx[0], dtype=float)[None, :]
        e, a, al = (theta[:, i, None] for i in range(3))
        u = a - al * lx
        du = [np.ones_like(u), -np.broadcast_to(lx, u.shape)]
        for k in range(self.n_breaks):
            ak, ld, lf = (theta[:, 3 + 3 * k + j, None] for j in range(3))
            f = np.exp(lf)
            z = lx - ld
            s = np.logaddexp(0.0, z / f)  # softplus
            sig = 0.5 * (1.0 + np.tanh(0.5 * z / f))  # the logistic function, overflow-free
            u = u - ak * f * s
            du += [-f * s, ak * sig, -ak * (f * s - sig * z)]
        total, (w_u, w_e) = _lse(u, np.broadcast_to(e, u.shape))
        jac = np.stack([w_e, *(w_u * d for d in du)], axis=1)
        return total, jac

    def log_predict(self, theta, logx):
        return self.log_predict_grad(theta, logx)[0]

    def to_public(self, theta):
        theta = np.asarray(theta, dtype=float)
        out = {"E": np.exp(theta[..., 0]), "A": np.exp(theta[..., 1]), "alpha": theta[..., 2]}
        for k in range(1, self.n_breaks + 1):
            base = 3 * k
            out[f"alpha{k}"] = theta[..., base]
            out[f"d{k}"] = np.exp(theta[..., base + 1])
            out[f"f{k}"] = np.exp(theta[..., base + 2])
        return out

    def from_public(self, params):
        self.check_public(params)
        return np.array([self.raw_value(n, float(params[n])) for n in self.param_names], dtype=float)


def broken_power_law(variable: str = "tokens", n_breaks: int = 1) -> BrokenPowerLaw:
    """The broken power law in ``variable`` with ``n_breaks`` breaks (registered ones are reused)."""
    from scalebench.laws.forms import LAWS

    law = BrokenPowerLaw(variable=variable, n_breaks=n_breaks)
    return LAWS.get(law.name, law)  # type: ignore[return-value]


for _variable in VARIABLES:
    register_law(BrokenPowerLaw(variable=_variable))
