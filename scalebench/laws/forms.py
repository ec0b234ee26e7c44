"""Scaling-law forms and their registry.

A form is a small frozen object: its variables, its raw (optimiser) parameters with bounds and an
initialisation grid, the public parameters a user reads, the log-prediction, its analytic Jacobian, and —
for laws in (params, tokens) — the compute-optimal frontier under C = 6·N·D (Kaplan et al. 2020 §2.1).

Every form predicts ``log L`` in a raw parametrisation that keeps the optimiser well conditioned: scales
enter as logarithms, so sums of power-law terms become a log-sum-exp (Hoffmann et al. 2022, appendix D.2).
All methods are batched: ``theta`` has shape (S, P) for S parameter vectors, ``logx`` has shape (V, n) for
V variables at n points, and predictions have shape (S, n).

Extending: subclass :class:`LawForm`, implement ``log_predict_grad`` (and ``to_public``/``from_public`` if
the public parameters are not the raw ones), then ``register_law(MyLaw())``.
"""

from __future__ import annotations

import itertools
import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from scalebench.errors import ConfigError, FitError

LOG6 = math.log(6.0)  # C = 6·N·D: forward + backward FLOPs per parameter per token


def _finite_real(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)) and math.isfinite(value)


def _lse(*terms: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """Stable log(Σ exp(u_i)) and the softmax weights exp(u_i)/Σ exp(u_j) (the LSE gradient)."""
    m = terms[0]
    for t in terms[1:]:
        m = np.maximum(m, t)
    exps = [np.exp(t - m) for t in terms]
    total = exps[0]
    for e in exps[1:]:
        total = total + e
    return m + np.log(total), [e / total for e in exps]


@dataclass(frozen=True, kw_only=True)
class LawForm:
    """Base class of a law form. Subclasses set the fields and implement ``log_predict_grad``."""

    name: str
    variables: tuple[str, ...]  # data columns, in the order of the rows of ``logx``
    raw_names: tuple[str, ...]  # optimiser parameters
    param_names: tuple[str, ...]  # public parameters (``to_public`` keys)
    bounds: tuple[tuple[float, float], ...]  # per raw parameter, for L-BFGS-B
    grid: tuple[tuple[str, tuple[float, ...]], ...]  # raw name -> start values; starts = product
    formula: str = ""
    citation: str = ""
    # (coefficient, exponent, variable) raw names of each term c − e·log(variable): diagnostics judge their
    # correlation with the variable centred on the data (otherwise log A and alpha always look interchangeable)
    scale_pairs: tuple[tuple[str, str, str], ...] = ()

    def __post_init__(self) -> None:
        if len(self.bounds) != len(self.raw_names):
            raise ConfigError(
                f"law {self.name!r}: {len(self.bounds)} bounds for {len(self.raw_names)} parameters"
            )
        if sorted(n for n, _ in self.grid) != sorted(self.raw_names):
            raise ConfigError(f"law {self.name!r}: grid must give values for exactly {self.raw_names}")

    @property
    def n_params(self) -> int:
        return len(self.raw_names)

    # --- prediction -------------------------------------------------------------------------------
    def log_predict_grad(self, theta: np.ndarray, logx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(log L̂ of shape (S, n), Jacobian d log L̂ / d theta of shape (S, P, n)).

        The default differentiates ``log_predict`` by central differences (step 1e-6 relative), so a law
        that only writes ``log_predict`` can be fitted; write the analytic Jacobian where it is simple."""
        if type(self).log_predict is LawForm.log_predict:
            raise NotImplementedError(f"law {self.name!r} implements neither log_predict nor log_predict_grad")
        theta = np.atleast_2d(np.asarray(theta, dtype=float))
        f = self.log_predict(theta, logx)
        jac = np.empty((theta.shape[0], theta.shape[1], f.shape[1]))
        for i in range(theta.shape[1]):
            h = 1e-6 * np.maximum(1.0, np.abs(theta[:, i]))
            up, down = theta.copy(), theta.copy()
            up[:, i] += h
            down[:, i] -= h
            jac[:, i] = (self.log_predict(up, logx) - self.log_predict(down, logx)) / (2.0 * h[:, None])
        return f, jac

    def log_predict(self, theta: np.ndarray, logx: np.ndarray) -> np.ndarray:
        if type(self).log_predict_grad is LawForm.log_predict_grad:
            raise NotImplementedError(f"law {self.name!r} implements neither log_predict nor log_predict_grad")
        return self.log_predict_grad(theta, logx)[0]

    def adapt_grid(self, logx: np.ndarray) -> dict[str, tuple[float, ...]]:
        """Start values that depend on the data (e.g. a break placed inside the data's range), replacing the
        static ``grid`` for those raw parameters; the default has none."""
        return {}

    def public_name(self, raw: str) -> str:
        """The public parameter that raw parameter ``raw`` sets (raw and public lists align by position)."""
        return self.param_names[self.raw_names.index(raw)]

    def is_log_scaled(self, name: str) -> bool:
        """Whether public parameter ``name`` is exp(raw) (a scale fitted as its logarithm) rather than the
        raw value itself; found by evaluating ``to_public`` at raw 0 and 1."""
        i = self.param_names.index(name)
        zero = np.zeros(self.n_params)
        one = zero.copy()
        one[i] = 1.0
        at0, at1 = float(self.to_public(zero)[name]), float(self.to_public(one)[name])
        return math.isclose(at0, 1.0) and math.isclose(at1, math.e)

    def raw_value(self, name: str, value: float) -> float:
        """The raw parameter value for public parameter ``name`` = ``value`` (used to fix parameters)."""
        if name not in self.param_names:
            raise ConfigError(f"law {self.name!r} has no parameter {name!r}; parameters are {list(self.param_names)}")
        if not _finite_real(value):
            raise ConfigError(f"law {self.name!r}: parameter {name!r} must be a finite number, not {value!r}")
        if self.is_log_scaled(name):
            if not value > 0:
                raise ConfigError(f"law {self.name!r}: parameter {name!r} is a positive scale, not {value!r}")
            return math.log(value)
        return float(value)

    # --- parameters -------------------------------------------------------------------------------
    def to_public(self, theta: np.ndarray) -> dict[str, np.ndarray]:
        """Public parameters from raw ones; ``theta`` shape (..., P)."""
        theta = np.asarray(theta, dtype=float)
        return {n: theta[..., i] for i, n in enumerate(self.raw_names)}

    @property
    def positive_params(self) -> tuple[str, ...]:
        """Public parameters that must be > 0 (scales taken as logarithms, exponents); others only finite."""
        return ()

    def check_public(self, params: Mapping[str, float]) -> None:
        """Names must match ``param_names`` (ConfigError); values must be finite real numbers, and positive
        where ``positive_params`` says so (FitError naming the parameter)."""
        if not isinstance(params, Mapping):
            raise ConfigError(f"law {self.name!r}: parameters must be a mapping of name to value, "
                              f"not {type(params).__name__}")
        missing = [n for n in self.param_names if n not in params]
        unknown = [n for n in params if n not in self.param_names]
        if missing or unknown:
            raise ConfigError(
                f"law {self.name!r} takes parameters {list(self.param_names)}; missing {missing}, unknown {unknown}"
            )
        for name in self.param_names:
            value = params[name]
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real) or not math.isfinite(value):
                raise FitError(f"law {self.name!r}: parameter {name!r} must be a finite number, got {value!r}")
            if name in self.positive_params and not value > 0:
                hint = ""
                if name == "E":
                    hint = ("; for a law without an irreducible loss (E = 0) use a pure power law: "
                            "'kaplan-params', 'kaplan-tokens', 'kaplan-flops' or 'kaplan-joint'")
                raise FitError(f"law {self.name!r}: parameter {name!r} must be positive, got {value!r}{hint}")

    def from_public(self, params: Mapping[str, float]) -> np.ndarray:
        """Raw parameters from public ones (the inverse of ``to_public``)."""
        self.check_public(params)
        return np.array([float(params[n]) for n in self.raw_names])

    def init_grid(
        self, grid: Mapping[str, Sequence[float]] | np.ndarray | None = None, logx: np.ndarray | None = None
    ) -> np.ndarray:
        """Start points, shape (S, P): the cartesian product of per-parameter values (or an explicit array).
        With ``logx`` the data-dependent values of ``adapt_grid`` replace the static ones."""
        if isinstance(grid, np.ndarray):
            try:
                starts = np.atleast_2d(np.asarray(grid, dtype=float))
            except (TypeError, ValueError):
                raise ConfigError(f"law {self.name!r}: grid (a start array) must hold numbers") from None
            if starts.ndim != 2 or starts.shape[1] != self.n_params or starts.shape[0] == 0:
                raise ConfigError(
                    f"law {self.name!r}: grid (a start array) needs one or more rows of {self.n_params} "
                    f"columns {self.raw_names}, got shape {grid.shape}"
                )
            if not np.isfinite(starts).all():
                raise ConfigError(f"law {self.name!r}: grid (a start array) has NaN or infinite values")
            return starts
        values = dict(self.grid)
        if logx is not None:
            values.update(self.adapt_grid(logx))
        if grid is not None:
            if not isinstance(grid, Mapping):
                raise ConfigError(
                    f"law {self.name!r}: grid must map raw parameter names {self.raw_names} to start values "
                    f"(or be an (S, P) array), not {type(grid).__name__}"
                )
            unknown = set(grid) - set(self.raw_names)
            if unknown:
                raise ConfigError(
                    f"law {self.name!r}: grid keys {sorted(map(str, unknown))} unknown; "
                    f"raw parameters are {self.raw_names}"
                )
            for k, v in grid.items():
                values[k] = self._grid_values(k, v)
        axes = [values[n] for n in self.raw_names]
        return np.array(list(itertools.product(*axes)), dtype=float)

    def _grid_values(self, key: str, values: object) -> tuple[float, ...]:
        """One grid axis: a non-empty sequence (or a single number) of finite numbers."""
        if isinstance(values, numbers.Real) and not isinstance(values, (bool, np.bool_)):
            values = (values,)
        if isinstance(values, (str, bytes, Mapping)) or not isinstance(values, (Sequence, np.ndarray)):
            raise ConfigError(f"law {self.name!r}: grid[{key!r}] must be a sequence of start values, not {values!r}")
        out = []
        for v in np.ravel(np.asarray(values, dtype=object)):
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real) or not math.isfinite(v):
                raise ConfigError(f"law {self.name!r}: grid[{key!r}] must hold finite numbers, got {v!r}")
            out.append(float(v))
        if not out:
            raise ConfigError(f"law {self.name!r}: grid[{key!r}] is empty; give at least one start value")
        return tuple(out)

    # --- compute-optimal frontier (laws in params and tokens) -----------------------------------------
    @property
    def has_frontier(self) -> bool:
        return False

    def exponents(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """(a, b) with N_opt ∝ C^a, D_opt ∝ C^b, or None for laws without a frontier."""
        return None

    def log_params_opt(self, theta: np.ndarray, log_flops: np.ndarray) -> np.ndarray:
        """log N_opt at each log C; ``theta`` (S, P) and ``log_flops`` (m,) -> (S, m)."""
        raise NotImplementedError(f"law {self.name!r} has no compute-optimal frontier")


def log_chinchilla(log_e, log_n_term, log_d_term):
    """log(E + A/N^alpha + B/D^beta) from the logs of its three terms, stably (log-sum-exp)."""
    m = np.maximum(np.maximum(log_n_term, log_d_term), log_e)
    return m + np.log(np.exp(log_n_term - m) + np.exp(log_d_term - m) + np.exp(log_e - m))


@dataclass(frozen=True, kw_only=True)
class ChinchillaLaw(LawForm):
    """L(N, D) = E + A/N^α + B/D^β, fitted as log L̂ = LSE(a − α log N, b − β log D, e) with A = e^a,
    B = e^b, E = e^e (Hoffmann et al. 2022, eq. 2 and appendix D.2; grid of 4,500 starts from D.2)."""

    name: str = "chinchilla"
    variables: tuple[str, ...] = ("params", "tokens")
    raw_names: tuple[str, ...] = ("e", "a", "b", "alpha", "beta")
    param_names: tuple[str, ...] = ("E", "A", "B", "alpha", "beta")
    bounds: tuple[tuple[float, float], ...] = (
        (-10.0, 5.0),
        (-10.0, 60.0),
        (-10.0, 60.0),
        (0.0, 5.0),
        (0.0, 5.0),
    )
    grid: tuple[tuple[str, tuple[float, ...]], ...] = (
        ("alpha", (0.0, 0.5, 1.0, 1.5, 2.0)),
        ("beta", (0.0, 0.5, 1.0, 1.5, 2.0)),
        ("e", (-1.0, -0.5, 0.0, 0.5, 1.0)),
        ("a", (0.0, 5.0, 10.0, 15.0, 20.0, 25.0)),
        ("b", (0.0, 5.0, 10.0, 15.0, 20.0, 25.0)),
    )
    formula: str = "L = E + A/N^alpha + B/D^beta"
    citation: str = (
        "Hoffmann et al. 2022, Training Compute-Optimal Large Language Models, eq. 2, appendix D.2"
    )
    scale_pairs: tuple[tuple[str, str, str], ...] = (("a", "alpha", "params"), ("b", "beta", "tokens"))

    @property
    def positive_params(self) -> tuple[str, ...]:
        return self.param_names

    def log_predict_grad(self, theta, logx):
        theta = np.atleast_2d(theta)
        e, a, b, al, be = (theta[:, i, None] for i in range(5))
        ln, ld = logx[0], logx[1]
        f, (w1, w2, w3) = _lse(a - al * ln, b - be * ld, np.broadcast_to(e, (theta.shape[0], ln.shape[0])))
        jac = np.stack([w3, w1, w2, -w1 * ln, -w2 * ld], axis=1)
        return f, jac

    def log_predict(self, theta, logx):
        theta = np.atleast_2d(theta)
        e, a, b, al, be = (theta[:, i, None] for i in range(5))
        return log_chinchilla(e, a - al * logx[0], b - be * logx[1])

    def to_public(self, theta):
        theta = np.asarray(theta, dtype=float)
        return {
            "E": np.exp(theta[..., 0]),
            "A": np.exp(theta[..., 1]),
            "B": np.exp(theta[..., 2]),
            "alpha": theta[..., 3],
            "beta": theta[..., 4],
        }

    def from_public(self, params):
        self.check_public(params)
        return np.array(
            [
                math.log(params["E"]),
                math.log(params["A"]),
                math.log(params["B"]),
                params["alpha"],
                params["beta"],
            ],
            dtype=float,
        )

    @property
    def has_frontier(self) -> bool:
        return True

    def exponents(self, theta):
        theta = np.asarray(theta, dtype=float)
        al, be = theta[..., 3], theta[..., 4]
        with np.errstate(divide="ignore", invalid="ignore"):
            return be / (al + be), al / (al + be)

    def log_params_opt(self, theta, log_flops):
        # N_opt = G·(C/6)^a with G = (αA/(βB))^(1/(α+β)), a = β/(α+β) (Hoffmann et al. 2022, eq. 4, D.2)
        theta = np.atleast_2d(theta)
        a_raw, b_raw, al, be = (theta[:, i, None] for i in (1, 2, 3, 4))
        with np.errstate(divide="ignore", invalid="ignore"):
            log_g = (np.log(al) + a_raw - np.log(be) - b_raw) / (al + be)
            return log_g + be / (al + be) * (np.asarray(log_flops)[None, :] - LOG6)


@dataclass(frozen=True, kw_only=True)
class PowerLaw(LawForm):
    """One variable: L(X) = E + A·X^(−α), fitted as log L̂ = LSE(a − α log X, e). With ``saturating=False``
    E is fixed at 0, Kaplan et al. 2020's pure power laws L = (X_c/X)^α (eqs. 1.1–1.3), X_c = A^(1/α)."""

    variable: str = "params"
    saturating: bool = True
    name: str = ""
    variables: tuple[str, ...] = ()
    raw_names: tuple[str, ...] = ()
    param_names: tuple[str, ...] = ()
    bounds: tuple[tuple[float, float], ...] = ()
    grid: tuple[tuple[str, tuple[float, ...]], ...] = ()

    def __post_init__(self) -> None:
        if self.variable not in ("params", "tokens", "flops"):
            raise ConfigError(f"power law variable must be params, tokens or flops, not {self.variable!r}")
        alphas = (0.0, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.0)
        amps = tuple(2.5 * i for i in range(11))
        sets = {
            "name": self.name or (f"power-{self.variable}" if self.saturating else f"kaplan-{self.variable}"),
            "variables": (self.variable,),
            "formula": f"L = E + A*{self.variable}^-alpha"
            if self.saturating
            else f"L = A*{self.variable}^-alpha",
            "citation": self.citation
            or "Kaplan et al. 2020, Scaling Laws for Neural Language Models, eqs. 1.1-1.3",
            "scale_pairs": (("a", "alpha", self.variable),),
        }
        if self.saturating:
            sets |= {
                "raw_names": ("e", "a", "alpha"),
                "param_names": ("E", "A", "alpha"),
                "bounds": ((-10.0, 5.0), (-10.0, 60.0), (0.0, 5.0)),
                "grid": (("e", (-1.0, -0.5, 0.0, 0.5, 1.0)), ("a", amps), ("alpha", alphas)),
            }
        else:
            sets |= {
                "raw_names": ("a", "alpha"),
                "param_names": ("A", "alpha"),
                "bounds": ((-10.0, 60.0), (0.0, 5.0)),
                "grid": (("a", amps), ("alpha", alphas)),
            }
        for k, v in sets.items():
            object.__setattr__(self, k, v)
        super().__post_init__()

    @property
    def positive_params(self) -> tuple[str, ...]:
        return self.param_names

    def log_predict_grad(self, theta, logx):
        theta = np.atleast_2d(theta)
        lx = logx[0]
        if not self.saturating:
            a, al = theta[:, 0, None], theta[:, 1, None]
            f = a - al * lx
            return f, np.stack([np.ones_like(f), -np.broadcast_to(lx, f.shape)], axis=1)
        e, a, al = (theta[:, i, None] for i in range(3))
        f, (w1, w2) = _lse(a - al * lx, np.broadcast_to(e, (theta.shape[0], lx.shape[0])))
        return f, np.stack([w2, w1, -w1 * lx], axis=1)

    def to_public(self, theta):
        theta = np.asarray(theta, dtype=float)
        if not self.saturating:
            return {"A": np.exp(theta[..., 0]), "alpha": theta[..., 1]}
        return {"E": np.exp(theta[..., 0]), "A": np.exp(theta[..., 1]), "alpha": theta[..., 2]}

    def from_public(self, params):
        self.check_public(params)
        head = [math.log(params["E"])] if self.saturating else []
        return np.array([*head, math.log(params["A"]), params["alpha"]], dtype=float)


@dataclass(frozen=True, kw_only=True)
class KaplanJointLaw(LawForm):
    """L(N, D) = [(N_c/N)^(α_N/α_D) + D_c/D]^α_D (Kaplan et al. 2020, eq. 1.5), fitted as
    log L̂ = α_D·LSE((α_N/α_D)(n_c − log N), d_c − log D) with N_c = e^n_c, D_c = e^d_c."""

    name: str = "kaplan-joint"
    variables: tuple[str, ...] = ("params", "tokens")
    raw_names: tuple[str, ...] = ("n_c", "d_c", "alpha_N", "alpha_D")
    param_names: tuple[str, ...] = ("N_c", "D_c", "alpha_N", "alpha_D")
    bounds: tuple[tuple[float, float], ...] = ((0.0, 100.0), (0.0, 100.0), (1e-3, 5.0), (1e-3, 5.0))
    grid: tuple[tuple[str, tuple[float, ...]], ...] = (
        ("n_c", tuple(math.log(10.0**k) for k in (8, 10, 12, 14, 16))),
        ("d_c", tuple(math.log(10.0**k) for k in (8, 10, 12, 14, 16))),
        ("alpha_N", (0.05, 0.1, 0.2, 0.4, 0.8)),
        ("alpha_D", (0.05, 0.1, 0.2, 0.4, 0.8)),
    )
    formula: str = "L = ((N_c/N)^(alpha_N/alpha_D) + D_c/D)^alpha_D"
    citation: str = "Kaplan et al. 2020, Scaling Laws for Neural Language Models, eq. 1.5"

    @property
    def positive_params(self) -> tuple[str, ...]:
        return self.param_names

    def log_predict_grad(self, theta, logx):
        theta = np.atleast_2d(theta)
        n_c, d_c, an, ad = (theta[:, i, None] for i in range(4))
        dn = n_c - logx[0]
        u1 = an / ad * dn
        s, (w1, w2) = _lse(u1, d_c - logx[1])
        f = ad * s
        jac = np.stack([an * w1, ad * w2, w1 * dn, s - w1 * u1], axis=1)
        return f, jac

    def to_public(self, theta):
        theta = np.asarray(theta, dtype=float)
        return {
            "N_c": np.exp(theta[..., 0]),
            "D_c": np.exp(theta[..., 1]),
            "alpha_N": theta[..., 2],
            "alpha_D": theta[..., 3],
        }

    def from_public(self, params):
        self.check_public(params)
        return np.array(
            [math.log(params["N_c"]), math.log(params["D_c"]), params["alpha_N"], params["alpha_D"]],
            dtype=float,
        )

    @property
    def has_frontier(self) -> bool:
        return True

    def exponents(self, theta):
        theta = np.asarray(theta, dtype=float)
        an, ad = theta[..., 2], theta[..., 3]
        return ad / (an + ad), an / (an + ad)

    def log_params_opt(self, theta, log_flops):
        # d/dlogN of (N_c/N)^r + 6·N·D_c/C = 0, r = α_N/α_D:
        # (1 + r)·log N_opt = log r + r·n_c − d_c − log 6 + log C
        theta = np.atleast_2d(theta)
        n_c, d_c, an, ad = (theta[:, i, None] for i in range(4))
        r = an / ad
        return (np.log(r) + r * n_c - d_c - LOG6 + np.asarray(log_flops)[None, :]) / (1.0 + r)


# --- registry ----------------------------------------------------------------------------------------
LAWS: dict[str, LawForm] = {}


def register_law(form: LawForm, *, overwrite: bool = False) -> LawForm:
    """Add a law form under ``form.name`` (lower case); refuses to replace one unless ``overwrite``."""
    if not isinstance(form, LawForm):
        raise ConfigError(f"register_law needs a LawForm instance, not {type(form).__name__}")
    key = form.name.lower()
    if key in LAWS and not overwrite:
        raise ConfigError(f"law {key!r} is already registered; pass overwrite=True to replace it")
    LAWS[key] = form
    return form


# Built-in laws defined in their own modules, which register them when imported. The package loads its
# names lazily (so `scalebench --help` stays fast), so they are imported here before a name is looked up.
_BUILTIN_LAW_MODULES = ("scalebench.laws.broken", "scalebench.laws.datalimited")


def _load_builtin_laws() -> None:
    import importlib

    for module in _BUILTIN_LAW_MODULES:
        importlib.import_module(module)


def get_law(law: str | LawForm) -> LawForm:
    """The registered form called ``law`` (case-insensitive), or ``law`` itself if it is a form."""
    if isinstance(law, LawForm):
        return law
    form = LAWS.get(str(law).lower())
    if form is None:
        _load_builtin_laws()
        form = LAWS.get(str(law).lower())
    if form is None:
        raise ConfigError(f"unknown law {law!r}; known laws: {', '.join(sorted(LAWS))}")
    return form


for _form in (
    ChinchillaLaw(),
    KaplanJointLaw(),
    *(PowerLaw(variable=v) for v in ("params", "tokens", "flops")),
    *(PowerLaw(variable=v, saturating=False) for v in ("params", "tokens", "flops")),
):
    register_law(_form)

# The other registered forms live in their own modules; importing them here registers them whichever
# module is imported first (the package's names load lazily).
from scalebench.laws import broken, datalimited  # noqa: E402,F401
