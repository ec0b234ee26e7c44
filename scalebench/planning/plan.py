"""``plan``: from one constraint to the model size, the tokens, and the :class:`Estimate` of that run.

Constraints (exactly one): ``flops`` (C), ``budget_usd``, ``gpu_hours``, ``deadline_s`` (needs
``num_gpus``), or ``target_loss``. The compute C = 6·N·D is then split into N and D:

* compute-optimal under the law (a preset, a ``FitResult``, or a saved fit: a ``fit.json`` or a fitted sweep
  folder; default ``chinchilla-epoch``, Besiroglu et al.'s refit; Hoffmann's rounded
  constants stay available as ``chinchilla``): ``law.compute_optimal(C)`` — for the Chinchilla form
  N_opt = G·(C/6)^a, D_opt = G⁻¹·(C/6)^b with a = β/(α+β), b = α/(α+β), G = (αA/βB)^(1/(α+β))
  (Hoffmann et al. 2022, eq. 4); presets ``chinchilla`` (Hoffmann et al. 2022) and ``chinchilla-epoch``
  (Besiroglu et al. 2024), or any ``FitResult`` from ``scalebench.laws.fit``;
* over-trained: a fixed ``params`` (D = C/6N), a fixed ``tokens_per_param`` (N = √(C/6r)), or both (no
  constraint needed: C = 6·r·N²).

Dollar, GPU-hour and deadline budgets depend on C through the whole estimate (the GPU count that fits,
its scaling efficiency, recomputation), so C is found by bisection on log C; the answer never exceeds the
budget. A budget larger than the most expensive run that fits on any number of the GPUs is an error
(ConfigError), not silently the largest run that fits.
"""

from __future__ import annotations

import math
import numbers
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from scalebench._util import json_safe
from scalebench.errors import ConfigError, FitError
from scalebench.planning.estimate import Estimate, _estimate, _resolve_law, _si, estimate

__all__ = ["Plan", "plan", "fitted_law", "CONSTRAINTS"]

CONSTRAINTS = ("flops", "budget_usd", "gpu_hours", "deadline_s", "target_loss")
_METRIC = {"budget_usd": "cost_usd", "gpu_hours": "gpu_hours", "deadline_s": "wall_clock_s"}
_RESERVED = ("params", "tokens", "model", "family", "n_layer", "d_model", "n_head", "law")


@dataclass(frozen=True, kw_only=True)
class Plan:
    """A planned run: the split of compute into params and tokens, and its estimate."""

    constraint: str
    constraint_value: float | None
    allocation: str
    law: str | None
    citation: str | None
    flops: float  # 6·N·D, the compute the law speaks of
    params: float
    tokens: float
    tokens_per_param: float
    predicted_loss: float | None
    estimate: Estimate
    caveats: tuple[str, ...] = ()  # why N, D and the loss are not facts (laws.trust); empty when they are

    def to_dict(self) -> dict[str, Any]:
        return json_safe({
            "constraint": self.constraint, "constraint_value": self.constraint_value,
            "allocation": self.allocation, "law": self.law, "citation": self.citation, "flops": self.flops,
            "params": self.params, "tokens": self.tokens, "tokens_per_param": self.tokens_per_param,
            "predicted_loss": self.predicted_loss, "trusted": not self.caveats, "caveats": list(self.caveats),
            "estimate": self.estimate.to_dict(),
        })

    def report(self) -> str:
        given = "" if self.constraint_value is None else f" = {self.constraint_value:.4g}"
        head = [
            f"plan: {self.constraint}{given}; {self.allocation}" + (f" under {self.law}" if self.law else ""),
            f"  params {_si(self.params)}, tokens {_si(self.tokens)} ({self.tokens_per_param:.1f} tokens/param), "
            f"C = 6ND = {self.flops:.3g} FLOPs",
        ]
        if self.predicted_loss is not None:
            head.append(f"  predicted loss {self.predicted_loss:.3f}")
        if self.citation:
            head.append(f"  law: {self.citation}")
        head += [f"  caution: {c}" for c in self.caveats]
        return "\n".join(head) + "\n" + self.estimate.report()

    __str__ = report


def plan(
    *, law: Any = "chinchilla-epoch", flops: float | None = None, budget_usd: float | None = None,
    gpu_hours: float | None = None, deadline_s: float | None = None, target_loss: float | None = None,
    params: float | None = None, tokens_per_param: float | None = None, **estimate_kwargs: Any,
) -> Plan:
    """Plan a run from one constraint; ``estimate_kwargs`` (``gpu`` required) go to :func:`estimate`."""
    given = {k: v for k, v in dict(flops=flops, budget_usd=budget_usd, gpu_hours=gpu_hours,
                                   deadline_s=deadline_s, target_loss=target_loss).items() if v is not None}
    for name, value in {**given, "params": params, "tokens_per_param": tokens_per_param}.items():
        if value is not None and not (isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))
                                      and math.isfinite(value) and value > 0):
            raise ConfigError(f"{name} must be a positive number, got {value!r}")
    given = {k: float(v) for k, v in given.items()}  # numpy integers would overflow in 6·r·N²
    params = None if params is None else float(params)
    tokens_per_param = None if tokens_per_param is None else float(tokens_per_param)
    fixed_both = params is not None and tokens_per_param is not None
    if len(given) > 1:
        raise ConfigError(f"plan takes one constraint, got {', '.join(given)}")
    if not given and not fixed_both:
        raise ConfigError(f"plan needs one constraint: {', '.join(CONSTRAINTS)} "
                          "(or params and tokens_per_param for a fixed over-trained run)")
    if fixed_both and given:
        raise ConfigError("params and tokens_per_param fix the run already; drop the constraint "
                          f"{next(iter(given))}")
    bad = set(estimate_kwargs) & set(_RESERVED)
    if bad:
        raise ConfigError(f"plan chooses {', '.join(sorted(bad))} itself; pass params=/tokens_per_param= to fix the size")
    if "deadline_s" in given and estimate_kwargs.get("num_gpus") is None:
        raise ConfigError("deadline_s needs num_gpus (the deadline is on a given number of GPUs)")
    fit, law_name = _resolve_law(fitted_law(law))
    if fit is None and params is None and tokens_per_param is None:
        raise ConfigError("a compute-optimal plan needs a law (a preset name such as 'chinchilla' or a FitResult)")
    citation = (getattr(fit, "metadata", None) or {}).get("citation") if fit is not None else None
    allocation = ("fixed params and tokens_per_param" if fixed_both else "fixed params" if params is not None
                  else "fixed tokens_per_param" if tokens_per_param is not None else "compute-optimal")

    def split(c: float) -> tuple[float, float]:
        if params is not None:
            return float(params), c / (6.0 * params)
        if tokens_per_param is not None:
            n = math.sqrt(c / (6.0 * tokens_per_param))
            return n, tokens_per_param * n
        row = fit.compute_optimal(c).iloc[0]
        return float(row["params"]), float(row["tokens"])

    def run(c: float) -> Estimate:
        n, d = split(c)
        return _estimate(None, dict(params=n, tokens=d, law=fit, **estimate_kwargs), advice=False)

    constraint = next(iter(given), "params and tokens_per_param")
    if fixed_both:
        c = 6.0 * tokens_per_param * params**2
    elif "flops" in given:
        c = given["flops"]
    elif "target_loss" in given:
        c = _flops_for_loss(fit, given["target_loss"], params, tokens_per_param)
    else:
        metric, target = _METRIC[constraint], float(given[constraint])
        c = _bisect(lambda x: getattr(run(x), metric), target, constraint)
    n, d = split(c)
    est = estimate(params=n, tokens=d, law=fit, **estimate_kwargs)
    from scalebench.laws.trust import caveats

    marks = caveats(fit, flops=6.0 * n * d, tokens_per_param=d / n) if fit is not None else ()
    if marks:
        warnings.warn("plan: " + "; ".join(marks) + " (Plan.caveats)", stacklevel=2)
    return Plan(caveats=marks, constraint=constraint, constraint_value=None if fixed_both else float(given[constraint]),
                allocation=allocation, law=law_name if fit is not None else None, citation=citation,
                flops=6.0 * n * d, params=n, tokens=d, tokens_per_param=d / n,
                predicted_loss=est.predicted_loss, estimate=est)


def fitted_law(law: Any) -> Any:
    """``law`` as the planner takes it: a preset name or a `FitResult` as given; a path to a ``fit.json``
    (``scalebench fit`` saves one) or to a sweep folder holding one is loaded (``plan --law FIT.json|DIR``)."""
    if not isinstance(law, (str, Path)):
        return law
    path = Path(law)
    if not path.exists():
        if isinstance(law, str) and "/" not in law and not law.endswith(".json"):
            return law  # a preset name: the presets say whether it exists
        raise ConfigError(f"--law {law}: no such file or folder; give a preset (chinchilla-epoch, chinchilla), a "
                          "fit.json, or a sweep folder fitted with `scalebench fit DIR`")
    from scalebench.laws.result import FIT_FILE, load_fit

    if path.is_dir():
        if not (path / FIT_FILE).is_file():
            raise ConfigError(f"--law {law}: the folder holds no {FIT_FILE}; run `scalebench fit {law}` first")
        path = path / FIT_FILE
    try:
        return load_fit(path)
    except FitError as exc:
        raise ConfigError(f"--law {law}: {exc}") from None


def _bisect(f, target: float, name: str, lo: float = 1e9, hi: float = 1e33) -> float:
    """Largest C in [lo, hi] with f(C) <= target, for f non-decreasing.

    NaN means the run fits on no number of GPUs (the model grows with C). If the search ends against that
    wall rather than against the budget, the budget buys more than any configuration that fits: raise
    instead of returning the largest run that fits as if the budget had been spent.
    """
    def ok(c: float) -> bool:
        value = f(c)
        return value == value and value <= target

    first = f(lo)
    if first != first:
        raise ConfigError(f"{name} = {target:.4g}: even a {lo:.0e}-FLOP run fits on no number of these GPUs")
    if not first <= target:
        raise ConfigError(f"{name} = {target:.4g} is too small: even {lo:.0e} FLOPs exceed it")
    if ok(hi):
        raise ConfigError(f"{name} = {target:.4g} buys more than {hi:.0e} FLOPs; the planner does not go beyond")
    a, b = math.log(lo), math.log(hi)
    for _ in range(100):
        mid = 0.5 * (a + b)
        if ok(math.exp(mid)):
            a = mid
        else:
            b = mid
        if b - a < 1e-10:  # relative precision of C
            break
    above = f(math.exp(b))
    if above != above:  # stopped by "fits on no GPU count", not by the budget
        best = f(math.exp(a))
        raise ConfigError(
            f"{name} = {target:.4g} buys more than any configuration that fits: beyond C = {math.exp(a):.3g} "
            f"FLOPs the model fits on no number of these GPUs, and the largest run that fits needs only "
            f"{name} = {best:.4g}; lower the constraint, fix params=/tokens_per_param= for a smaller, "
            "longer-trained model, or change checkpointing, micro_batch or seq_len")
    return math.exp(a)


def _flops_for_loss(fit: Any, target: float, params: float | None, ratio: float | None) -> float:
    if fit is None:
        raise ConfigError("target_loss needs a law")
    if params is None and ratio is None:
        row = fit.compute_for_loss(target).iloc[0]
        if not math.isfinite(row["flops"]):
            raise ConfigError(f"target_loss {target} is unreachable under this law (at or below its irreducible loss)")
        return float(row["flops"])
    # over-trained: solve loss(N, D) = target along the fixed line; loss falls as the free variable grows
    def loss_at(x: float) -> float:
        n, d = (params, x) if params is not None else (x, ratio * x)
        try:
            return float(fit.predict(params=n, tokens=d))
        except FitError:
            return math.inf

    a, b = math.log(1.0), math.log(1e30)
    if loss_at(math.exp(b)) > target:
        raise ConfigError(f"target_loss {target} is unreachable with "
                          + (f"params = {params:.3g}" if params is not None else f"tokens_per_param = {ratio:g}"))
    for _ in range(200):
        mid = 0.5 * (a + b)
        if loss_at(math.exp(mid)) > target:
            a = mid
        else:
            b = mid
    x = math.exp(b)
    n, d = (params, x) if params is not None else (x, ratio * x)
    return 6.0 * n * d
