"""`advise`: the runs that most narrow the interval on a compute-optimal target, per unit of cost.

Given the runs already done, a law, a target compute C* and what the user wants to know there — the
compute-optimal size N_opt(C*) (``params``), its token count D_opt(C*) (``tokens``; the same relative width,
since N·D = C*/6) or the loss it reaches (``loss``) — and a budget in FLOPs, device-hours or dollars, the
advisor proposes new runs and says how much narrower the target's interval should become.

Method (details and citations in ``design.py``, ``space.py`` and ``scalebench/laws/optimum.py``):

1. Fit the law (``laws.fit``) with a small bootstrap; the fit and its refits form an ensemble of parameter
   values. σ, the noise of log loss per run, comes from the fit's residuals.
2. Candidates are *sweep extensions*: a set of new sizes crossed with a set of budget values of one kind
   (``tokens``, ``tokens_per_param`` or isoFLOP ``flops``), because that is what a sweep spec runs (and what
   ``--write`` writes). Sizes follow the ladder's own rule (``space.ladder_sizes``); cells that would exceed
   the epochs cap, train fewer than ``min_steps`` batches or not fit the device's memory are excluded.
3. The design criterion is the c-optimal variance of the target, linearised at each ensemble member and
   averaged as mean log variance (pseudo-Bayesian design), with a weak prior so it is finite before the law
   is identified. A greedy sequential search adds the size or budget value (all its cells) with the largest
   drop of the criterion per unit cost (also per √cost and per run, keeping the best of the three, a guard
   against the ratio rule's known failure on knapsacks), until nothing more fits the budget or ``max_runs``.
   The proposal never costs more than the budget.
4. The final choice is made on the interval `fit` will report, by simulation (``simulate.py``): the
   search's two best designs (by the linearised bootstrap width, ``Criterion.bootstrap_value``) and the
   designs a person picks first — the ladder's next size at its tokens per parameter (``larger size``) and
   every ladder size once more at a longer ratio (``ratios extended``) — are each added to the runs done with
   losses drawn from a few members of the fit's ensemble, refitted with a bootstrap, and scored by the
   interval of ``laws.intervals.interval``. The larger size is proposed unless another design's simulated
   interval is 10% narrower (``BEAT_MARGIN``). ``replicates=0`` ranks by the linearisation instead.
5. Expected width: the current width, as `fit --at-flops` reports it (``laws.intervals.interval``), times the
   chosen design's predicted ratio of log-widths (simulated, or linearised with ``replicates=0``).

When the current data do not identify the law (a parameter whose variance the data barely shrink below the
prior's, or a fit that cannot be made at all) the advice says so. With a fit, the cheapest design that
settles the target (the greedy search stopped at the first design that does) joins the candidates of step 4;
without any fit, it proposes the cheapest product design that gives at least three sizes, three token
counts and two points per parameter.

Assumptions: independent noise of equal variance in log loss for every run (small runs are often noisier);
the law's form is right (a misspecified law is narrowed to the wrong answer); the linearisation holds over
the ensemble's spread; costs scale as measured (see ``space.py``). ``benchmarks/advisor_sim.py`` checks
the method by simulation against the designs a person would pick.
"""

from __future__ import annotations

import itertools
import math
import os
import tempfile
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from scalebench._util import json_safe
from scalebench.advisor import design
from scalebench.advisor.simulate import REPLICATES
from scalebench.advisor.space import (
    BUDGET_KINDS,
    Cells,
    CostModel,
    Space,
    build_cells,
    default_axes,
    flops_cost_model,
    measured_cost_model,
    run_id,
    sweep_devices,
    sweep_space,
    to_toml,
)
from scalebench.errors import ConfigError, FitError
from scalebench.laws import optimum
from scalebench.laws.forms import get_law
from scalebench.laws.intervals import interval
from scalebench.laws.result import FitResult

ENSEMBLE = 16  # ensemble members: the fit plus up to 15 bootstrap refits
IDENTIFIED = 0.01  # posterior/prior variance at or below which a parameter counts as identified
SETTLED = 1.5  # the target is determined when a 10x wider prior grows its variance less than this
DEFAULT_MIN_RUNS = 6  # max_runs defaults to max(this, the runs done)
RATIO_SPAN = 3.0  # default trusted tokens per parameter: the runs' range widened this factor each way
BEAT_MARGIN = math.log(1.1)  # another design replaces the larger-size one when it predicts a 10% narrower
# interval: the prediction is a small simulation (or a linearisation), and a person's design wins the ties
ADVISOR_CANDIDATES = 2  # the search's best designs (by the linearised width) that go on to the simulation
SCORES = (1.0, 0.5, 0.0)  # greedy gain / cost**λ for each λ; the best final design wins


@dataclass(frozen=True, kw_only=True)
class ProposedRun:
    params: float
    tokens: float
    flops: float
    cost: float
    size: Any  # the size as the extension writes it: a flavour, a shape table or a parameter count
    run_id: str  # the id the sweep's planner gives the run
    shape: dict[str, Any]
    epochs: float
    memory_bytes: float

    def summary(self) -> dict[str, Any]:
        return json_safe({"run_id": self.run_id, "params": self.params, "tokens": self.tokens, "flops": self.flops,
                          "cost": self.cost, "size": self.size, "shape": self.shape, "epochs": self.epochs,
                          "memory_bytes": self.memory_bytes})


@dataclass(frozen=True, kw_only=True)
class Advice:
    """The advisor's proposal. ``summary()`` is JSON-safe; ``report()`` is text; ``extension_toml()`` the
    sweep extension that runs the proposal (sweep folders only)."""

    law: str
    target: str
    target_flops: float
    confidence: float
    budget: float
    cost_unit: str
    cost_source: str
    runs: tuple[ProposedRun, ...]
    design_kind: str | None  # budget kind of the extension: tokens | tokens_per_param | flops
    design_sizes: tuple[Any, ...]  # as written under model.<ladder_kind>
    design_budgets: tuple[float, ...]
    estimate: float  # the target's current point estimate at C*
    current_interval: tuple[float, float]
    current_width: float
    expected_width: float
    width_method: str  # bootstrap | delta
    verdict: str  # determined | undetermined
    reasons: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    design_name: str = "advisor"  # advisor, or a person's design it could not beat: larger size | ratios extended
    candidates: tuple[tuple[str, float], ...] = ()  # (design, predicted width ratio after / now) of each compared
    ladder_kind: str = "params"  # the sweep's model key the sizes are written under: sizes | shapes | params
    spec: dict[str, Any] | None = field(default=None, repr=False)
    spec_changes: dict[str, Any] = field(default_factory=dict, repr=False)
    sweep_dir: str | None = None

    def __post_init__(self) -> None:
        if self.target not in optimum.TARGETS:
            raise ConfigError(f"target must be one of {optimum.TARGETS}, not {self.target!r}")
        if self.verdict not in ("determined", "undetermined"):
            raise ConfigError(f"verdict must be determined or undetermined, not {self.verdict!r}")
        if not (self.budget > 0 and self.target_flops > 0 and 0 < self.confidence < 1):
            raise ConfigError("Advice needs a positive budget and target_flops and a confidence in (0, 1)")
        if self.total_cost > self.budget * (1 + 1e-9):
            raise ConfigError(f"Advice: the runs cost {self.total_cost:g}, over the budget of {self.budget:g}")

    @property
    def total_cost(self) -> float:
        return float(sum(r.cost for r in self.runs))

    @property
    def total_flops(self) -> float:
        return float(sum(r.flops for r in self.runs))

    def summary(self) -> dict[str, Any]:
        return json_safe({
            "law": self.law, "target": self.target, "target_flops": self.target_flops,
            "confidence": self.confidence, "verdict": self.verdict, "reasons": list(self.reasons),
            "estimate": self.estimate, "current_interval": list(self.current_interval),
            "current_width": self.current_width, "expected_width": self.expected_width,
            "width_ratio": self.current_width / self.expected_width if self.expected_width else None,
            "width_method": self.width_method,
            "budget": self.budget, "cost_unit": self.cost_unit, "cost_source": self.cost_source,
            "total_cost": self.total_cost, "total_flops": self.total_flops,
            "design": {"name": self.design_name, "kind": self.design_kind, "ladder_key": self.ladder_kind,
                       "sizes": list(self.design_sizes), "budgets": list(self.design_budgets),
                       "candidates": {name: ratio for name, ratio in self.candidates}},
            "runs": [r.summary() for r in self.runs], "notes": list(self.notes),
        })

    def report(self) -> str:
        pct = f"{100 * self.confidence:g}%"
        lo, hi = self.current_interval
        lines = [f"advice for {self.law}: {self.target} at C* = {self.target_flops:.3g} FLOPs"]
        if math.isfinite(self.estimate):
            band = (f"[{lo:.4g}, {hi:.4g}] ({pct}, {self.width_method}), width {self.current_width:.4g}"
                    if math.isfinite(self.current_width) else "[no interval: undetermined]")
            lines.append(f"  now: {self.estimate:.4g}  {band}")
        else:
            lines.append("  now: no fit")
        if self.verdict == "undetermined":
            lines.append("  the current data do NOT determine the law: " + "; ".join(self.reasons))
        if not self.runs:
            lines.append(f"  no admissible design fits the budget of {self.budget:.4g} {self.cost_unit}")
        else:
            if math.isfinite(self.expected_width) and self.expected_width > 0:
                lines.append(f"  expected width after the runs below: {self.expected_width:.4g} "
                             f"({self.current_width / self.expected_width:.2f}x narrower)")
            design = "" if self.design_name == "advisor" else f", the {self.design_name} design: nothing found beats it"
            lines.append(f"  {len(self.runs)} runs ({self.design_kind} budgets{design}), cost {self.total_cost:.4g} "
                         f"of {self.budget:.4g} {self.cost_unit} ({self.cost_source})")
            width = max(6, *(len(r.run_id) for r in self.runs))
            lines.append(f"  {'run':<{width}} {'params':>10} {'tokens':>10} {'flops':>10} {'cost':>10} {'epochs':>7}")
            for r in self.runs:
                lines.append(f"  {r.run_id:<{width}} {r.params:>10.4g} {r.tokens:>10.4g} {r.flops:>10.4g} "
                             f"{r.cost:>10.4g} {r.epochs:>7.2f}")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)

    def extension_spec(self, path: str | Path | None = None) -> dict[str, Any]:
        """What the extension changes, as a spec table: ``extends`` (the sweep folder; relative to ``path``'s
        folder when the TOML is written there), the new sizes under the ladder's own key, the budgets of the
        design's kind, and any setting the new runs must share with the old (a wsd sweep's warm-up)."""
        if self.spec is None or self.sweep_dir is None:
            raise ConfigError("a sweep extension needs a sweep folder as the source (this advice came from a "
                              "file of runs); write the runs yourself from summary()['runs']")
        if not self.runs:
            raise ConfigError("nothing to write: the advice proposes no runs")
        where = Path(self.sweep_dir).resolve()
        if path is not None:
            where = Path(os.path.relpath(where, Path(path).resolve().parent))
        out: dict[str, Any] = {"extends": where.as_posix(), **{k: dict(v) for k, v in self.spec_changes.items()}}
        out["model"] = {self.ladder_kind: list(self.design_sizes)}
        out["budget"] = {self.design_kind: list(self.design_budgets)}
        return out

    def extension_toml(self, path: str | Path | None = None) -> str:
        from scalebench.config import load_sweep

        spec = self.extension_spec(path)
        header = (f"Sweep extension from `scalebench next` ({self.law}, {self.target} at {self.target_flops:.3g} "
                  f"FLOPs): {len(self.runs)} runs,\n{self.total_cost:.4g} {self.cost_unit}. It holds only what "
                  f"changes; the rest is the sweep's own spec.\nRun it into the same folder: "
                  f"scalebench run {Path(path).name if path is not None else 'THIS.toml'} --out {self.sweep_dir}")
        text = to_toml(spec, header)
        with tempfile.TemporaryDirectory() as tmp:  # what we write must load, from where it is written
            probe = Path(path).resolve().parent if path is not None else Path(tmp)
            check = probe / f".scalebench-next-{os.getpid()}.toml" if path is not None else Path(tmp) / "ext.toml"
            try:
                check.write_text(text, encoding="utf-8")
                load_sweep(check)
            finally:
                check.unlink(missing_ok=True)
        return text

    def write_extension(self, path: str | Path) -> Path:
        path = Path(path)
        text = self.extension_toml(path)
        try:
            path.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"--write {path}: cannot write the extension ({exc.strerror or exc})") from None
        return path


# --- inputs -----------------------------------------------------------------------------------------------
def _budget(budget_flops, budget_hours, budget_gpu_hours, budget_usd) -> tuple[str, float]:
    given = {k: v for k, v in (("flops", budget_flops), ("hours", budget_hours), ("gpu_hours", budget_gpu_hours),
                               ("usd", budget_usd)) if v is not None}
    if len(given) != 1:
        raise ConfigError("give exactly one budget: budget_flops, budget_hours, budget_gpu_hours or budget_usd "
                          f"(got {sorted(given) or 'none'})")
    kind, value = next(iter(given.items()))
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"budget_{kind} must be a positive number, not {value!r}")
    return kind, float(value)


def _load(source, form, loss_col, kind, options) -> tuple[pd.DataFrame, Space, CostModel]:
    from scalebench.laws.io import SWEEP_STORE_FILE, load_data

    frame = load_data(source, form.variables, loss_col=loss_col)
    cost_kind = "hours" if kind == "gpu_hours" else kind
    is_sweep = isinstance(source, (str, Path)) and (Path(source) / SWEEP_STORE_FILE).exists()
    if not is_sweep:
        space = Space(family=options.get("family"), shape_context=dict(options.get("shape_context") or {}),
                      batch_tokens=int(options.get("batch_tokens") or 1),
                      min_steps=int(options.get("min_steps") or 1),
                      max_epochs=float(options.get("max_epochs") or math.inf),
                      corpus_tokens=options.get("corpus_tokens"), memory_bytes=options.get("memory_bytes"))
        cost = flops_cost_model(cost_kind, gpu=options.get("gpu"), mfu=options.get("mfu"),
                                price_usd_per_hour=options.get("price_usd_per_hour"))
        return frame, space, cost
    from scalebench.store import load_meta, load_results

    results = load_results(source)
    done = results[results["status"] == "done"]
    space = sweep_space(Path(source), done, memory_bytes=options.get("memory_bytes"))
    overrides = {k: options[k] for k in ("corpus_tokens", "max_epochs") if options.get(k) is not None}
    if overrides:
        space = _replace(space, **overrides)
    device, per_run, price = sweep_devices(done, space.spec or {}, load_meta(source).get("env") or {})
    if kind == "gpu_hours" and device != "GPU":
        raise ConfigError(f"{source}: the sweep ran on {device}, so its runs cost {device}-hours, not GPU-hours; "
                          "give the budget as --budget-hours (budget_hours=...), in hours of the device it ran on")
    if options.get("price_usd_per_hour") is not None:
        price = options["price_usd_per_hour"]
    cost = measured_cost_model(done, cost_kind, device=device, devices_per_run=per_run, price_usd_per_hour=price)
    return frame, space, cost


def _replace(space: Space, **changes) -> Space:
    import dataclasses

    return dataclasses.replace(space, **changes)


def _check_target(target: str, target_flops: object, form) -> float:
    if target not in optimum.TARGETS:
        raise ConfigError(f"target must be one of {', '.join(optimum.TARGETS)}, not {target!r}")
    if isinstance(target_flops, bool) or not isinstance(target_flops, (int, float)) or not target_flops > 0 \
            or not math.isfinite(target_flops):
        raise ConfigError(f"target_flops must be a positive FLOP count, e.g. 1e21, not {target_flops!r}")
    if not form.has_frontier:
        raise ConfigError(f"law {form.name!r} has no compute-optimal frontier; advise needs a law in params and "
                          "tokens: 'chinchilla' or 'kaplan-joint'")
    return float(target_flops)


# --- the search -------------------------------------------------------------------------------------------
@dataclass
class _State:
    sizes: list[int]
    budgets: list[int]
    cells: list[int]
    cost: float
    value: float


def _move_cells(cells: Cells, sizes: list[int], budgets: list[int]) -> list[int] | None:
    """Flat indices of the runs of sizes × budgets; None when one of them is not admissible."""
    out, n_j = [], cells.budget_values.size
    for i, j in itertools.product(sizes, budgets):
        if cells.valid[i, j]:
            out.append(i * n_j + j)
        elif not cells.dropped[i, j]:
            return None
    return out


def _moves(cells: Cells, state: _State) -> list[tuple[list[int], list[int], list[int]]]:
    """(new sizes, new budgets, their new runs) for every extension of the state by one size or budget."""
    n_i, n_j = cells.params.size, cells.budget_values.size
    moves = []
    if not state.sizes:
        for j in range(n_j):
            for i1, i2 in itertools.combinations(range(n_i), 2):
                runs = _move_cells(cells, [i1, i2], [j])
                if runs:
                    moves.append(([i1, i2], [j], runs))
        return moves
    for i in set(range(n_i)) - set(state.sizes):
        runs = _move_cells(cells, [i], state.budgets)
        if runs:
            moves.append(([i], [], runs))
    for j in set(range(n_j)) - set(state.budgets):
        runs = _move_cells(cells, state.sizes, [j])
        if runs:
            moves.append(([], [j], runs))
    return moves


def _greedy(crit: design.Criterion, cells: Cells, budget: float, max_runs: int, lam: float, objective,
            stop=None) -> _State:
    flat_cost = cells.cost.ravel()
    state = _State(sizes=[], budgets=[], cells=[], cost=0.0, value=float(objective(crit.base)))
    while stop is None or not stop(state):
        moves = [m for m in _moves(cells, state)
                 if state.cost + flat_cost[m[2]].sum() <= budget and len(state.cells) + len(m[2]) <= max_runs]
        if not moves:
            break
        current = crit.info_of(state.cells)
        infos = np.stack([current + crit.cell_info[:, m[2]].sum(axis=1) for m in moves])
        values = objective(infos)
        costs = np.array([flat_cost[m[2]].sum() for m in moves])
        gains = state.value - values
        if not np.any(gains > 1e-9):
            break
        score = np.where(gains > 1e-9, gains / np.maximum(costs, 1e-300) ** lam, -np.inf)
        if lam == 0.0:
            score = np.where(gains > 1e-9, gains / np.array([len(m[2]) for m in moves]), -np.inf)
        k = int(np.argmax(score))
        sizes, budgets, runs = moves[k]
        state = _State(sizes=state.sizes + sizes, budgets=state.budgets + budgets, cells=state.cells + runs,
                       cost=state.cost + float(costs[k]), value=float(values[k]))
    return state


def _settled(crit: design.Criterion, cells: list[int]) -> bool:
    return crit.prior_sensitivity(crit.info_of(cells)) <= SETTLED


def _unidentified(crit: design.Criterion, info: np.ndarray, form) -> list[str]:
    rel = crit.relative_variance(info)
    return _public(form, [n for n, r in zip(form.raw_names, rel, strict=True) if r > IDENTIFIED])


# --- the advisor ----------------------------------------------------------------------------------------
def advise(
    source: object,
    *,
    law: str = "chinchilla",
    target_flops: float,
    target: str = "params",
    budget_flops: float | None = None,
    budget_hours: float | None = None,
    budget_gpu_hours: float | None = None,
    budget_usd: float | None = None,
    candidates: Mapping[str, Any] | None = None,
    max_runs: int | None = None,
    seed: int = 0,
    confidence: float = 0.95,
    bootstrap: int = 32,
    fit: FitResult | None = None,
    loss_col: str | None = None,
    kinds: tuple[str, ...] = BUDGET_KINDS,
    replicates: int = REPLICATES,
    **context: Any,
) -> Advice:
    """Propose the runs that most narrow the ``target`` interval at ``target_flops`` within the budget.

    ``source``: a sweep folder (costs from its measured throughput, candidates within its corpus, memory and
    family) or a CSV/DataFrame of runs (costs from FLOPs; for GPU-hours or dollars give ``gpu=`` and
    ``mfu=``). Exactly one of ``budget_flops``, ``budget_hours`` (hours of the device the sweep ran on: GPU-hours,
    or CPU core-hours), ``budget_gpu_hours`` (the same, refused for a sweep that ran on CPU), ``budget_usd``. ``candidates``: axis
    values to choose from instead of the default grids, ``{"params": [...], "tokens": [...]}`` (or
    ``"tokens_per_param"`` / ``"flops"`` as the budget axis). ``max_runs`` caps the number of new runs.
    ``fit``: an already fitted result of the same data (skips the fit). ``replicates``: simulated refits per
    candidate design in the final choice (``simulate``; 0 ranks the candidates by the linearisation alone). Further keywords describe the space
    for file sources or override a sweep's: ``family`` (file sources: None = sizes are exact counts costing
    6·N·D; a family name = sizes from its shape rule and FLOPs per token), ``shape_context``, ``corpus_tokens``, ``max_epochs``,
    ``memory_bytes``, ``batch_tokens``, ``min_steps``, ``gpu``, ``mfu``, ``price_usd_per_hour``.
    """
    form = get_law(law)
    target_flops = _check_target(target, target_flops, form)
    kind, budget = _budget(budget_flops, budget_hours, budget_gpu_hours, budget_usd)
    unknown = set(context) - {"family", "shape_context", "corpus_tokens", "max_epochs", "memory_bytes",
                              "batch_tokens", "min_steps", "gpu", "mfu", "price_usd_per_hour",
                              "tokens_per_param_range"}
    if unknown:
        raise ConfigError(f"advise: unknown option(s) {sorted(unknown)}")
    if isinstance(replicates, bool) or not isinstance(replicates, int) or replicates < 0:
        raise ConfigError(f"replicates must be an integer >= 0 (0: no simulated refits), not {replicates!r}")
    if max_runs is not None and (isinstance(max_runs, bool) or not isinstance(max_runs, int) or max_runs < 2):
        raise ConfigError(f"max_runs must be an integer >= 2 (a sweep has at least two sizes), not {max_runs!r}")
    frame, space, cost_model = _load(source, form, loss_col, kind, context)
    space = _replace(space, tokens_per_param_range=_ratio_range(frame, context.get("tokens_per_param_range")))
    if max_runs is None:
        max_runs = max(DEFAULT_MIN_RUNS, len(frame))
    axes = _axes(candidates, _own_kinds(space, kinds, source))
    log_c = math.log(target_flops)
    try:
        result = fit if fit is not None else _fit(frame, form, bootstrap, seed, confidence)
    except FitError as exc:
        return _unfittable(frame, form, space, cost_model, axes, str(exc), law=form.name, target=target,
                           target_flops=target_flops, confidence=confidence, budget=budget,
                           max_runs=max_runs)
    return _advise_fitted(result, frame, form, space, cost_model, axes, target=target, log_c=log_c,
                          target_flops=target_flops, confidence=confidence, budget=budget,
                          max_runs=max_runs, seed=seed, replicates=replicates,
                          people_too=candidates is None and "tokens_per_param" in axes)


def _own_kinds(space: Space, kinds: tuple[str, ...], source: object) -> tuple[str, ...]:
    """The budget kinds a proposal may use: a sweep folder's extension keeps the sweep's own budget kind (one
    folder, one setup: ``scalebench run`` refuses another), so only that one of ``kinds``."""
    own = [k for k in BUDGET_KINDS if ((space.spec or {}).get("budget") or {}).get(k)]
    if not own:
        return kinds
    keep = tuple(k for k in kinds if k in own)
    if not keep:
        raise ConfigError(f"{source}: the sweep's budgets are budget.{own[0]}, and an extension keeps them; "
                          f"ask for kinds that include {own[0]!r} (got {', '.join(kinds)})")
    return keep


def _ratio_range(frame: pd.DataFrame, given) -> tuple[float, float]:
    if given is not None:
        try:
            lo, hi = (float(x) for x in given)
        except (TypeError, ValueError):
            raise ConfigError(f"tokens_per_param_range must be two numbers (low, high), not {given!r}") from None
        if not 0 <= lo < hi:
            raise ConfigError(f"tokens_per_param_range must have 0 <= low < high, not {given!r}")
        return lo, hi
    ratio = frame["tokens"].to_numpy(dtype=float) / frame["params"].to_numpy(dtype=float)
    return float(ratio.min() / RATIO_SPAN), float(ratio.max() * RATIO_SPAN)


def _axes(candidates, kinds) -> dict[str, tuple[np.ndarray | None, np.ndarray | None]]:
    for k in kinds:
        if k not in BUDGET_KINDS:
            raise ConfigError(f"kinds: {k!r} is not a budget kind ({', '.join(BUDGET_KINDS)})")
    if candidates is None:
        return {k: (None, None) for k in kinds}
    if not isinstance(candidates, Mapping) or "params" not in candidates:
        raise ConfigError("candidates must map 'params' (sizes) and one of 'tokens', 'tokens_per_param', 'flops' "
                          "to lists of values")
    given = [k for k in BUDGET_KINDS if k in candidates]
    extra = set(candidates) - {"params", *BUDGET_KINDS}
    if len(given) != 1 or extra:
        raise ConfigError(f"candidates: give 'params' and exactly one of {BUDGET_KINDS}; got {sorted(candidates)}")
    values = {}
    for key in ("params", given[0]):
        arr = np.asarray(candidates[key], dtype=float).ravel()
        if arr.size == 0 or not np.all(np.isfinite(arr) & (arr > 0)):
            raise ConfigError(f"candidates[{key!r}] must be a non-empty list of positive numbers")
        values[key] = arr
    return {given[0]: (values["params"], values[given[0]])}


def _fit(frame: pd.DataFrame, form, bootstrap: int, seed: int, confidence: float) -> FitResult:
    from scalebench.laws.fitting import fit_frame

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fit_frame(frame, form, bootstrap=bootstrap, seed=seed, confidence=confidence)


def _ensemble(result: FitResult, seed: int) -> np.ndarray:
    members = [np.asarray(result.theta, dtype=float)]
    boot = result.bootstrap_thetas
    if boot is not None and len(boot):
        rng = np.random.default_rng(seed)
        pick = rng.choice(len(boot), size=min(ENSEMBLE - 1, len(boot)), replace=False)
        members += [boot[i] for i in pick]
    return np.array(members)


def _current(result: FitResult, target, target_flops, confidence) -> tuple[float, tuple, str]:
    """The target now and its interval: the one definition (``laws.intervals.interval``), which is what
    `scalebench fit --at-flops` prints."""
    iv = interval(result, target, target_flops, confidence)
    return iv.point, (iv.low, iv.high), iv.method


def _advise_fitted(result, frame, form, space, cost_model, axes, *, target, log_c, target_flops, confidence,
                   budget, max_runs, seed, replicates, people_too=True) -> Advice:
    """``people_too``: a person's designs (tokens per parameter, default sizes) compete; not when the caller
    gave the candidates or left that budget kind out."""
    logx_old = np.log(frame[list(form.variables)].to_numpy(dtype=float).T)
    resid = result.residuals["residual"].to_numpy() if result.residuals is not None else np.array([])
    sigma = optimum.noise_sigma(resid, form.n_params)
    notes = list(space.notes)
    if not (math.isfinite(sigma) and sigma > 0):
        sigma = 0.01
        notes.append("no spare points to estimate the noise: assumed σ = 0.01 in log loss")
    v = optimum.huber_variance(sigma, result.huber_delta)
    ensemble = _ensemble(result, seed)
    n_opt = float(np.exp(optimum.target_log(form, result.theta, "params", log_c)[0]))
    d_opt = target_flops / (6.0 * n_opt)
    point, now, method = _current(result, target, target_flops, confidence)
    if not result.success:
        notes.append(f"the fit did not converge ({result.message}); the advice linearises it all the same")
    found, reasons = [], []
    for kind, (sizes, values) in axes.items():
        if sizes is None:
            sizes, values = default_axes(kind, frame, n_opt, d_opt, target_flops, _flops_hint(cost_model, budget),
                                         space)
        cells = build_cells(space, kind, sizes, values, cost_model, done=frame)
        crit = design.Criterion(form, ensemble, logx_old, _cells_logx(cells), v=v, target=target, log_c=log_c)
        reasons = _undetermined_reasons(crit, form, target)
        found += [(key, state, cells, crit) for key, state in _search(crit, cells, budget, max_runs,
                                                                       settle=bool(reasons))]
    width = now[1] - now[0]
    if not people_too:
        notes.append("the designs a person picks first (tokens per parameter) were not compared: the budget "
                     "kind (the sweep's own, or the one asked for) or the candidates were fixed")
    named = [] if not people_too else [
        (name, *made) for name, made in
        (("larger size", _larger_size(frame, space, cost_model, budget, max_runs)),
         ("ratios extended", _ratios_extended(frame, space, cost_model, budget, max_runs))) if made is not None]
    people = [(name, state, cells, design.Criterion(form, ensemble, logx_old, _cells_logx(cells), v=v,
                                                     target=target, log_c=log_c))
              for name, cells, state in named]
    searched = _searched([f for f in found if f[0][0] == 2], confidence, seed)
    settle_state = None
    if reasons:  # the cheapest design that settles the target competes beside the ones that spend the budget
        _, state, cells, crit = min((f for f in found if f[0][0] < 2), key=lambda f: f[0])
        if state.cells:
            settle_state = state
            searched.insert(0, ("advisor (settles)", state, cells, crit, math.nan))
    pick = _Pick(confidence=confidence, seed=seed, replicates=replicates, sigma=sigma, target=target,
                 target_flops=target_flops, now_log_width=_log_width(now))
    state, best_cells, best_crit, ratio, design_name, scored = pick.choose(searched, people, result, frame,
                                                                           default=found[0][1:])
    if scored and replicates:
        notes.append(f"design chosen among {len(scored)} candidates by {replicates} simulated refits each "
                     "(bootstrap intervals, as `fit --at-flops` reports them)")
    expected = width * ratio if state.cells else width
    verdict = "undetermined" if reasons else "determined"
    if reasons:
        if state.cells and state is settle_state and _settled(best_crit, state.cells):
            notes.append("the proposal is the cheapest design found that determines the target; fit again "
                         "after it and ask for more")
        elif state.cells and _settled(best_crit, state.cells):
            notes.append("the proposal should determine the target; fit again after it")
        else:
            notes.append("no design within the budget determines the target; this one helps most")
    return _make_advice(result.law, target, target_flops, confidence, budget, cost_model, best_cells, state,
                        point, now, width, expected, method, verdict, reasons, notes, space, design_name, scored)


def _log_width(bounds: tuple[float, float]) -> float:
    lo, hi = bounds
    return math.log(hi / lo) if math.isfinite(lo) and math.isfinite(hi) and 0 < lo < hi else math.nan


def _searched(found: list, confidence: float, seed: int, keep: int = ADVISOR_CANDIDATES) -> list:
    """The search's ``keep`` best distinct designs by the linearised bootstrap width: (name, state, cells,
    criterion, value)."""
    ranked = sorted(((crit.bootstrap_value(state.cells, confidence, seed=seed), i, state, cells, crit)
                     for i, (_, state, cells, crit) in enumerate(found) if state.cells), key=lambda r: r[:2])
    out, seen = [], set()
    for value, _, state, cells, crit in ranked:
        runs = frozenset(_runs_of(cells, state))
        if runs not in seen and len(out) < keep:
            seen.add(runs)
            out.append((f"advisor {len(out) + 1}" if out else "advisor", state, cells, crit, value))
    return out


def _runs_of(cells: Cells, state: _State) -> list[tuple[float, float]]:
    n_j = cells.budget_values.size
    return [(float(cells.params[f // n_j]), float(cells.tokens.ravel()[f])) for f in state.cells]


@dataclass(frozen=True, kw_only=True)
class _Pick:
    """The final choice among the search's designs and a person's (``larger size``, ``ratios extended``)."""

    confidence: float
    seed: int
    replicates: int
    sigma: float
    target: str
    target_flops: float
    now_log_width: float

    def choose(self, searched: list, people: list, result: FitResult, frame: pd.DataFrame, default: tuple) -> tuple:
        """(state, cells, criterion, predicted width ratio, design name, ((candidate, predicted ratio), ...)).

        Every candidate is scored by the mean log of its simulated log-widths (``simulate``; with 0 replicates
        by the linearised bootstrap width). A design other than the larger size must predict an interval
        ``BEAT_MARGIN`` narrower than it: the prediction is noisy, and a person's design wins the ties."""
        cands = [(name, state, cells, crit) for name, state, cells, crit, _ in searched]
        cands += [c for c in people if c[1].cells]
        if not cands:  # nothing affordable: the search's (empty) design
            state, cells, crit = default
            return state, cells, crit, 1.0, "advisor", ()
        if self.replicates > 0:
            from scalebench.advisor.simulate import scores, simulated_log_widths

            widths = simulated_log_widths(result, frame, [tuple(np.array(_runs_of(c[2], c[1])).T) for c in cands],
                                          sigma=self.sigma, target=self.target, target_flops=self.target_flops,
                                          confidence=self.confidence, replicates=self.replicates, seed=self.seed)
            finite = widths[np.isfinite(widths)]
            worst = max([*finite.tolist(), self.now_log_width if math.isfinite(self.now_log_width) else 0.0, 1e-6])
            value = scores(widths, 2.0 * worst)
            base = math.log(self.now_log_width) if math.isfinite(self.now_log_width) else math.nan
        else:
            value = np.array([crit.bootstrap_value(state.cells, self.confidence, seed=self.seed)
                              for _, state, _, crit in cands])
            base = cands[0][3].bootstrap_value([], self.confidence, seed=self.seed)
        adjusted = value + np.array([0.0 if name == "larger size" else BEAT_MARGIN for name, *_ in cands])
        k = int(np.argmin(adjusted))
        ratios = np.exp(value - base) if math.isfinite(base) else np.full(len(cands), math.nan)
        name, state, cells, crit = cands[k]
        ratio = float(ratios[k]) if math.isfinite(ratios[k]) else 1.0
        label = "advisor" if name.startswith("advisor") else name
        return state, cells, crit, ratio, label, tuple((c[0], float(r)) for c, r in zip(cands, ratios, strict=True))


def _cells_logx(cells: Cells) -> np.ndarray:
    """log (params, tokens) of every cell, flattened (0-token cells are invalid anyway)."""
    return np.log(np.vstack([np.repeat(cells.params, cells.budget_values.size),
                             np.maximum(cells.tokens.ravel(), 1.0)]))


def _larger_size(frame: pd.DataFrame, space: Space, cost_model: CostModel, budget: float,
                 max_runs: int) -> tuple[Cells, _State] | None:
    """The design a person picks first: the ladder's next size (its own size step above its largest) at the
    tokens per parameter of the largest size's runs; the nearest size above the largest that fits the budget,
    or None."""
    sizes = np.unique(frame["params"].to_numpy(dtype=float))
    if sizes.size < 2:
        return None
    top, step = sizes[-1], sizes[-1] / sizes[-2]
    ratios = frame.loc[frame["params"] == top, "tokens"].to_numpy(dtype=float) / top
    try:
        cells = build_cells(space, "tokens_per_param", top * np.geomspace(1.0001, step**2, 24), ratios, cost_model)
    except ConfigError:  # no size of the ladder's family above its largest
        return None
    n_j = cells.budget_values.size
    options = []
    for i in range(cells.params.size):
        if cells.params[i] > top and cells.valid[i].all() and n_j <= max_runs:
            cost = float(cells.cost[i].sum())
            if cost <= budget:
                options.append((abs(math.log(cells.params[i] / (top * step))), i, cost))
    if not options:
        return None
    _, i, cost = min(options)
    return cells, _State(sizes=[i], budgets=list(range(n_j)), cells=[i * n_j + j for j in range(n_j)], cost=cost,
                         value=math.nan)


def _ratios_extended(frame: pd.DataFrame, space: Space, cost_model: CostModel, budget: float,
                     max_runs: int) -> tuple[Cells, _State] | None:
    """The other design a person picks: every size of the ladder once more, at one tokens per parameter — the
    longest the budget buys within the trusted range (usually past the ladder's longest) — or None."""
    sizes = np.unique(frame["params"].to_numpy(dtype=float))
    if sizes.size < 2 or sizes.size > max_runs:
        return None
    lo, hi = space.tokens_per_param_range
    top = float((frame["tokens"] / frame["params"]).max())
    ratios = np.unique(np.concatenate([np.geomspace(max(lo, 1e-12), hi, 48), top * np.geomspace(1.1, 16.0, 24)]))
    try:
        cells = build_cells(space, "tokens_per_param", sizes, ratios[ratios <= hi], cost_model, done=frame)
    except ConfigError:
        return None
    ladder = [i for i in range(cells.params.size) if np.any(np.isclose(cells.params[i], sizes, rtol=5e-3))]
    if len(ladder) < 2:
        return None
    n_j = cells.budget_values.size
    for j in range(n_j - 1, -1, -1):  # the longest ratio every ladder size can take within the budget
        if cells.valid[ladder, j].all():
            cost = float(cells.cost[ladder, j].sum())
            if cost <= budget:
                return cells, _State(sizes=list(ladder), budgets=[j], cells=[i * n_j + j for i in ladder],
                                     cost=cost, value=math.nan)
    return None


def _undetermined_reasons(crit: design.Criterion, form, target: str) -> list[str]:
    """Why the runs done do not determine the target (empty when they do)."""
    if _settled(crit, []):
        return []
    loose = _unidentified(crit, crit.base, form)
    return [f"the {target} target at C* rests on the prior, not the runs (a 10x wider prior widens it "
            f"{math.sqrt(crit.prior_sensitivity(crit.base)):.3g}x)"
            + (f"; parameters left undetermined: {', '.join(loose)}" if loose else "")]


def _search(crit: design.Criterion, cells: Cells, budget: float, max_runs: int, *, settle: bool):
    """(sort key, state) of the candidate designs of one budget kind.

    The greedy search per cost^λ for each λ in SCORES, keyed ``(2, criterion, cost)``. Undetermined, also the
    greedy search per unit cost stopped once the target is settled, keyed by cost when it settles (``(0, cost,
    …)``: the cheapest such design) and by the criterion when nothing in the budget settles it (``(1, …)``)."""
    for lam in SCORES:
        state = _greedy(crit, cells, budget, max_runs, lam, crit.value)
        yield (2, float(crit.value(crit.info_of(state.cells))), state.cost), state
    if not settle:
        return
    state = _greedy(crit, cells, budget, max_runs, 1.0, crit.value,
                    stop=lambda st: bool(st.cells) and _settled(crit, st.cells))
    value = float(crit.value(crit.info_of(state.cells)))
    settled = bool(state.cells) and _settled(crit, state.cells)
    yield ((0, state.cost, value) if settled else (1, value, state.cost)), state


def _flops_hint(cost_model: CostModel, budget: float) -> float:
    """The most FLOPs one run could buy with the budget (the top of the isoFLOP axis)."""
    if cost_model.kind == "flops":
        return budget
    lo, hi = cost_model.log_params_range
    ends = np.exp(np.clip(np.array([lo, hi]), -700.0, 700.0))
    per_flop = float(np.min(cost_model.cost(ends, np.ones(2))))
    return budget / per_flop if per_flop > 0 else budget


def _public(form, raw: list[str]) -> list[str]:
    mapping = dict(zip(form.raw_names, form.param_names, strict=False))
    return [mapping.get(n, n) for n in raw]


def _make_advice(law, target, target_flops, confidence, budget, cost_model, cells, state, point, interval,
                 width, expected, method, verdict, reasons, notes, space, design_name="advisor",
                 candidates=()) -> Advice:
    n_j = cells.budget_values.size
    runs = []
    for flat in sorted(state.cells, key=lambda f: (cells.params[f // n_j], cells.tokens.ravel()[f])):
        i, j = divmod(flat, n_j)
        runs.append(ProposedRun(params=float(cells.params[i]), tokens=float(cells.tokens[i, j]),
                                flops=float(cells.flops[i, j]), cost=float(cells.cost[i, j]),
                                size=cells.size_entries[i],
                                run_id=run_id(space.family, cells.size_labels[i], cells.kind,
                                              float(cells.budget_values[j])),
                                shape=cells.shapes[i].as_dict() if cells.shapes[i] is not None else {},
                                epochs=float(cells.epochs[i, j]), memory_bytes=float(cells.memory_bytes[i])))
    return Advice(law=law, target=target, target_flops=target_flops, confidence=confidence, budget=budget,
                  cost_unit=cost_model.unit, cost_source=cost_model.source, runs=tuple(runs),
                  design_kind=cells.kind if runs else None,
                  design_sizes=tuple(cells.size_entries[i] for i in sorted(state.sizes, key=lambda i: cells.params[i])),
                  design_budgets=tuple(float(cells.budget_values[j]) for j in sorted(state.budgets)),
                  estimate=point, current_interval=(float(interval[0]), float(interval[1])),
                  current_width=float(width), expected_width=float(expected), width_method=method,
                  verdict=verdict, reasons=tuple(reasons), notes=tuple(notes), spec=space.spec,
                  spec_changes=space.spec_changes, ladder_kind=space.ladder_kind or "params",
                  sweep_dir=space.sweep_dir, design_name=design_name, candidates=tuple(candidates))


def _unfittable(frame, form, space, cost_model, axes, reason, *, law, target, target_flops, confidence, budget,
                max_runs) -> Advice:
    """No fit possible: the cheapest sizes × tokens design that gives >= 3 sizes, >= 3 token counts and two
    points per parameter together with the runs already done."""
    sizes, values = axes.get("tokens", (None, None))
    if sizes is None:
        n0, d0 = float(frame["params"].median()), float(frame["tokens"].median())
        sizes = n0 * np.geomspace(1 / 8, 8, 7)
        values = d0 * np.geomspace(1 / 8, 8, 7)
    cells = build_cells(space, "tokens", sizes, values, cost_model)
    have_n, have_d = set(frame["params"].round()), set(frame["tokens"].round())
    best = None
    n_i, n_j = cells.params.size, cells.budget_values.size
    for k in range(2, min(n_i, 5) + 1):
        for m in range(1, min(n_j, 5) + 1):
            for si in itertools.combinations(range(n_i), k):
                for tj in itertools.combinations(range(n_j), m):
                    runs = _move_cells(cells, list(si), list(tj))
                    if not runs or len(runs) > max_runs:
                        continue
                    n_all = have_n | {round(cells.params[i]) for i in si}
                    d_all = have_d | {round(cells.tokens[i, j]) for i in si for j in tj}
                    if len(n_all) < 3 or len(d_all) < 3 or len(frame) + len(runs) < 2 * form.n_params:
                        continue
                    cost = float(cells.cost.ravel()[runs].sum())
                    if cost <= budget and (best is None or cost < best[0]):
                        best = (cost, list(si), list(tj), runs)
    state = _State(sizes=best[1], budgets=best[2], cells=best[3], cost=best[0], value=math.nan) if best else \
        _State(sizes=[], budgets=[], cells=[], cost=0.0, value=math.nan)
    notes = [*space.notes, "no fit is possible yet, so no interval: run these, fit, then ask again"]
    if best is None:
        notes.append("no design within the budget makes the law fittable; raise the budget")
    return _make_advice(law, target, target_flops, confidence, budget, cost_model, cells, state, math.nan,
                        (math.nan, math.nan), math.nan, math.nan, "none", "undetermined", [reason], notes, space)


REPORT_TARGET_FACTOR = 100.0  # the report's proposal targets this multiple of the sweep's largest run


def sweep_proposal(sweep_dir: str | Path, *, law: str = "chinchilla", target: str = "params",
                   factor: float = REPORT_TARGET_FACTOR, seed: int = 0, bootstrap: int = 32,
                   fit: FitResult | None = None, loss_col: str | None = None) -> Advice:
    """The proposal the report shows: the runs that most narrow ``target`` at ``factor`` times the sweep's
    largest run, for a budget of as many FLOPs again as the sweep's done runs took (doubling the sweep).
    ``fit``: the report's own fit of the same runs and ``loss_col`` (used, not redone, when it is ``law``'s)."""
    from scalebench.laws.io import load_data

    form = get_law(law)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        frame = load_data(sweep_dir, form.variables, loss_col=loss_col)
        if fit is not None and (fit.law != form.name or fit.residuals is None or len(fit.residuals) != len(frame)):
            fit = None
        return advise(sweep_dir, law=law, target=target, target_flops=factor * float(frame["flops"].max()),
                      budget_flops=float(frame["flops"].sum()), seed=seed, bootstrap=bootstrap, fit=fit,
                      loss_col=loss_col)


__all__ = ["Advice", "ProposedRun", "advise", "sweep_proposal"]
