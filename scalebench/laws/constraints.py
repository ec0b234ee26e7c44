"""Fixed and tied parameters for any law: ``constrain(law, fix={"E": 1.8}, tie={"alpha": "beta"})``.

A constrained law is itself a `LawForm` whose raw parameters are the free ones; it expands them to the base
law's raw vector as ``full = offset + M·free`` (fixed values in ``offset``; a tied parameter shares the
column of the parameter it is tied to), so predictions, the analytic Jacobian (``J_free = J_full·M``), the
bootstrap and the frontier all work unchanged. A fixed public value is converted to the raw one by the base
law (logarithm for scales such as E, A, B). Ties join parameters of the same kind (two exponents, or two
scales); the tied parameter takes the other's value, with the intersection of both bounds.

CLI syntax (``parse_fix``, ``parse_tie``): ``--fix E=1.8,alpha=0.34`` and ``--tie alpha=beta``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from scalebench.errors import ConfigError
from scalebench.laws.forms import LawForm, get_law


def _check_name(base: LawForm, name: object, what: str) -> str:
    if not isinstance(name, str) or name not in base.param_names:
        raise ConfigError(f"law {base.name!r} has no parameter {name!r} to {what}; its parameters are {list(base.param_names)}")
    return name


@dataclass(frozen=True, kw_only=True)
class ConstrainedLaw(LawForm):
    """``base`` with some public parameters ``fixed`` (name -> value) and some ``tied`` (name -> name)."""

    base: LawForm
    fixed: tuple[tuple[str, float], ...] = ()
    tied: tuple[tuple[str, str], ...] = ()
    name: str = ""
    variables: tuple[str, ...] = ()
    raw_names: tuple[str, ...] = ()
    param_names: tuple[str, ...] = ()
    bounds: tuple[tuple[float, float], ...] = ()
    grid: tuple[tuple[str, tuple[float, ...]], ...] = ()
    _matrix: np.ndarray = field(init=False, repr=False, compare=False, default=None)  # type: ignore[assignment]
    _offset: np.ndarray = field(init=False, repr=False, compare=False, default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        base = self.base
        if not isinstance(base, LawForm):
            raise ConfigError(f"constrain needs a law form, not {type(base).__name__}")
        fixed = {_check_name(base, n, "fix"): base.raw_value(n, v) for n, v in self.fixed}
        ties: dict[str, str] = {}
        for name, other in self.tied:
            _check_name(base, name, "tie")
            _check_name(base, other, "tie to")
            if name == other:
                raise ConfigError(f"law {base.name!r}: cannot tie {name!r} to itself")
            if name in fixed or other in fixed:
                raise ConfigError(f"law {base.name!r}: {name!r}={other!r} ties a fixed parameter; fix both instead")
            if base.is_log_scaled(name) != base.is_log_scaled(other):
                raise ConfigError(f"law {base.name!r}: cannot tie {name!r} to {other!r}: one is a scale, the other "
                                  "an exponent")
            ties[name] = other
        root = {}
        for name in ties:
            seen, cur = {name}, ties[name]
            while cur in ties:
                if ties[cur] in seen:
                    raise ConfigError(f"law {base.name!r}: tied parameters form a cycle through {sorted(seen)}")
                seen.add(cur)
                cur = ties[cur]
            root[name] = cur
        free = [n for n in base.param_names if n not in fixed and n not in root]
        if not free:
            raise ConfigError(f"law {base.name!r}: every parameter is fixed or tied; nothing is left to fit")
        raw_of = dict(zip(base.param_names, base.raw_names, strict=True))
        matrix = np.zeros((base.n_params, len(free)))
        offset = np.zeros(base.n_params)
        for j, n in enumerate(base.param_names):
            if n in fixed:
                offset[j] = fixed[n]
            else:
                matrix[j, free.index(root.get(n, n))] = 1.0
        base_bounds = dict(zip(base.param_names, base.bounds, strict=True))
        bounds = []
        for n in free:
            members = [n, *(m for m, r in root.items() if r == n)]
            lo = max(base_bounds[m][0] for m in members)
            hi = min(base_bounds[m][1] for m in members)
            if not lo < hi:
                raise ConfigError(f"law {base.name!r}: tied parameters {members} have disjoint bounds")
            bounds.append((lo, hi))
        base_grid = dict(base.grid)
        desc = [f"{n} = {v:g} fixed" for n, v in self.fixed] + [f"{n} = {o}" for n, o in self.tied]
        sets = {
            "name": self.name or base.name,
            "variables": base.variables,
            "raw_names": tuple(raw_of[n] for n in free),
            "param_names": base.param_names,
            "bounds": tuple(bounds),
            "grid": tuple((raw_of[n], base_grid[raw_of[n]]) for n in free),
            "formula": f"{base.formula} with {', '.join(desc)}" if desc else base.formula,
            "citation": base.citation,
            "scale_pairs": _scale_pairs(base, free, root),
            "_matrix": matrix,
            "_offset": offset,
        }
        for key, value in sets.items():
            object.__setattr__(self, key, value)
        super().__post_init__()

    @property
    def n_free(self) -> int:
        return len(self.raw_names)

    def expand(self, theta: np.ndarray) -> np.ndarray:
        """Full raw parameters of the base law from the free ones; shape (..., P_free) -> (..., P)."""
        return np.asarray(theta, dtype=float) @ self._matrix.T + self._offset

    def log_predict_grad(self, theta, logx):
        f, jac = self.base.log_predict_grad(self.expand(np.atleast_2d(theta)), logx)
        return f, np.einsum("spn,pk->skn", jac, self._matrix)

    def log_predict(self, theta, logx):
        return self.base.log_predict(self.expand(np.atleast_2d(theta)), logx)

    def adapt_grid(self, logx):
        keep = set(self.raw_names)
        return {k: v for k, v in self.base.adapt_grid(logx).items() if k in keep}

    def public_name(self, raw: str) -> str:
        return self.base.public_name(raw)

    def is_log_scaled(self, name: str) -> bool:
        return self.base.is_log_scaled(name)

    def raw_value(self, name: str, value: float) -> float:
        return self.base.raw_value(name, value)

    @property
    def positive_params(self) -> tuple[str, ...]:
        return self.base.positive_params

    def to_public(self, theta):
        return self.base.to_public(self.expand(theta))

    def from_public(self, params):
        full = self.base.from_public(params)
        free_idx = [self.base.raw_names.index(r) for r in self.raw_names]
        return full[free_idx]

    @property
    def has_frontier(self) -> bool:
        return self.base.has_frontier

    def exponents(self, theta):
        return self.base.exponents(self.expand(theta))

    def log_params_opt(self, theta, log_flops):
        return self.base.log_params_opt(self.expand(np.atleast_2d(theta)), log_flops)

    def constraints(self) -> dict[str, dict]:
        """``{"fixed": {name: value}, "tied": {name: name}}`` (JSON-safe)."""
        return {"fixed": {n: float(v) for n, v in self.fixed}, "tied": dict(self.tied)}


def constrain(
    law: str | LawForm, fix: Mapping[str, float] | None = None, tie: Mapping[str, str] | None = None
) -> LawForm:
    """``law`` with public parameters fixed (``fix={"E": 1.8}``) and/or tied (``tie={"alpha": "beta"}``: alpha
    takes beta's value). Without either, ``law`` itself."""
    base = get_law(law)
    if fix is not None and not isinstance(fix, Mapping):
        raise ConfigError(f"fix must map parameter names to values, e.g. {{'E': 1.8}}, not {fix!r}")
    if tie is not None and not isinstance(tie, Mapping):
        raise ConfigError(f"tie must map a parameter to the one it equals, e.g. {{'alpha': 'beta'}}, not {tie!r}")
    if not fix and not tie:
        return base
    if isinstance(base, ConstrainedLaw):
        fix = {**dict(base.fixed), **dict(fix or {})}
        tie = {**dict(base.tied), **dict(tie or {})}
        base = base.base
    return ConstrainedLaw(base=base, fixed=tuple((fix or {}).items()), tied=tuple((tie or {}).items()))


def _pairs(text: str, flag: str) -> list[tuple[str, str]]:
    out = []
    for part in (p.strip() for p in str(text).split(",")):
        if not part:
            continue
        name, sep, value = part.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise ConfigError(f"{flag}: expected NAME=VALUE pairs separated by commas, got {part!r}")
        out.append((name.strip(), value.strip()))
    if not out:
        raise ConfigError(f"{flag}: give at least one NAME=VALUE pair")
    return out


def parse_fix(text: str) -> dict[str, float]:
    """``"E=1.8,alpha=0.34"`` -> ``{"E": 1.8, "alpha": 0.34}``."""
    out = {}
    for name, value in _pairs(text, "--fix"):
        try:
            number = float(value)
        except ValueError:
            raise ConfigError(f"--fix: {name}={value!r} is not a number") from None
        if not math.isfinite(number):
            raise ConfigError(f"--fix: {name}={value!r} must be finite")
        out[name] = number
    return out


def parse_tie(text: str) -> dict[str, str]:
    """``"alpha=beta"`` -> ``{"alpha": "beta"}``."""
    return dict(_pairs(text, "--tie"))


def _scale_pairs(base: LawForm, free: list[str], root: dict[str, str]) -> tuple[tuple[str, str, str], ...]:
    """The base law's (coefficient, exponent, variable) terms in the constrained parameters: an exponent tied
    to another is centred through the one it is tied to (the shared column gets every term's m·∂/∂c); a
    fixed coefficient or exponent has nothing to centre, and a coefficient tied to another cannot be centred
    on two variables at once, so those terms are left as they are."""
    raw_of = dict(zip(base.param_names, base.raw_names, strict=True))
    tied_coefs = set(root) | set(root.values())
    out = []
    for coef, exponent, variable in base.scale_pairs:
        c, e = base.public_name(coef), root.get(base.public_name(exponent), base.public_name(exponent))
        if c in free and e in free and c not in tied_coefs:
            out.append((raw_of[c], raw_of[e], variable))
    return tuple(out)
