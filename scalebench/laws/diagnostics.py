"""Whether a fit can be believed: a verdict (``reliable``, ``weak``, ``undetermined``), its reasons, and the
runs that would settle it.

A scaling-law fit can converge to a tight-looking optimum and still say nothing: five parameters from eight
runs on two budgets fit any smooth surface. Each check below looks at one way a fit fails and, when it
fires, adds a reason (at level ``weak`` or ``undetermined``) and a concrete suggestion, or a caution that
is shown but does not lower the verdict. The verdict is the worst level fired; ``reliable`` means no check
lowered it. Thresholds are stated with each check.

* points per parameter: n < 2·P undetermined, n < 3·P weak (Hoffmann et al. fit 5 parameters to ~400 runs);
* distinct values per variable: fewer than 3 values of a variable with its own scale and exponent cannot
  separate the exponent from the irreducible loss (weak; 1 value undetermined);
* convergence and bounds: not converged, or an exponent on its bound, is undetermined; a scale on its
  bound is weak;
* exponents outside a plausible range (0.05–1.0 for data/parameter exponents of language models; the
  published fits are 0.28–0.37) are weak;
* bootstrap: a scale whose interval spans more than two orders of magnitude, an exponent whose interval
  is wider than 0.5, a frontier exponent a or b wider than 0.3, or more than a quarter of the refits that
  never left the warm start (intervals that sit on the point estimate) are weak;
* correlations: |r| > 0.999 between two parameters (from the Jacobian at the optimum, each coefficient
  taken at the data's centre so that log A and alpha do not correlate through the units alone) is weak;
  a singular Jacobian (a parameter the data do not touch) is undetermined;
* off-law runs: a run among the largest quarter by compute with a residual above 2% and above 4× the
  median absolute residual is a *caution*, not a downgrade: a robust (Huber) fit bounds a single run's
  pull, and whether it bends the extrapolation is what leave-one-out and the backtest measure (their
  errors do lower the verdict). Epoch AI's 240 reconstructed Chinchilla runs have two such runs and a law
  that holds;
* leave-one-out (n ≤ 60) and backtest errors above 3% are weak;
* disagreement between approaches: frontier exponents a from Approaches 1 or 2 that differ from the
  parametric one by more than 0.1 (and by more than the bootstrap interval's half width) are weak;
* a known floor (a sweep whose task knows its Bayes loss exactly: the synthetic language, the teacher
  task): E whose interval lies wholly more than 2% below it is weak (the law predicts the impossible).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from scalebench.laws.forms import LawForm

VERDICTS = ("reliable", "weak", "undetermined")
EXPONENT_RANGE = (0.05, 1.0)
LOO_MAX_POINTS = 60
ERROR_LIMIT = 0.03
FRONTIER_WIDTH_LIMIT = 0.3
APPROACH_GAP = 0.1


@dataclass(frozen=True, kw_only=True)
class Diagnostics:
    """``verdict`` (reliable, weak, undetermined), the ``reasons`` behind it (each one lowered the verdict),
    ``cautions`` (findings worth reading that did not lower it: a couple of runs off the law, an E above a
    known floor, a dropped budget), ``suggestions`` (runs or options that would settle it) and the numbers the
    checks used in ``checks``."""

    verdict: str
    reasons: tuple[str, ...] = ()
    suggestions: tuple[str, ...] = ()
    checks: dict[str, Any] = field(default_factory=dict)
    cautions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"Diagnostics.verdict must be one of {VERDICTS}, not {self.verdict!r}")

    @property
    def reliable(self) -> bool:
        return self.verdict == "reliable"

    def summary(self) -> dict[str, Any]:
        from scalebench._util import json_safe

        return {"verdict": self.verdict, "reasons": list(self.reasons), "cautions": list(self.cautions),
                "suggestions": list(self.suggestions), "checks": json_safe(self.checks)}

    @classmethod
    def from_summary(cls, d: dict[str, Any]) -> Diagnostics:
        return cls(verdict=d["verdict"], reasons=tuple(d.get("reasons") or ()),
                   suggestions=tuple(d.get("suggestions") or ()), checks=dict(d.get("checks") or {}),
                   cautions=tuple(d.get("cautions") or ()))

    def text(self) -> str:
        lines = [f"verdict: {self.verdict.upper()}"]
        lines += [f"  - {r}" for r in self.reasons]
        if self.cautions:
            lines.append("cautions (not lowering the verdict):")
            lines += [f"  - {r}" for r in self.cautions]
        if self.suggestions:
            lines.append("to settle it:")
            lines += [f"  - {s}" for s in self.suggestions]
        return "\n".join(lines)


class _Collector:
    def __init__(self) -> None:
        self.level = 0
        self.reasons: list[str] = []
        self.cautions: list[str] = []
        self.suggestions: list[str] = []
        self.checks: dict[str, Any] = {}

    def add(self, level: str, reason: str, suggestion: str = "") -> None:
        self.level = max(self.level, VERDICTS.index(level))
        self.reasons.append(reason)
        if suggestion and suggestion not in self.suggestions:
            self.suggestions.append(suggestion)

    def caution(self, text: str, suggestion: str = "") -> None:
        """A finding that does not lower the verdict."""
        self.cautions.append(text)
        if suggestion and suggestion not in self.suggestions:
            self.suggestions.append(suggestion)

    def result(self) -> Diagnostics:
        return Diagnostics(verdict=VERDICTS[self.level], reasons=tuple(self.reasons), cautions=tuple(self.cautions),
                           suggestions=tuple(self.suggestions), checks=self.checks)


def _exponent_names(form: LawForm) -> list[str]:
    out = []
    for name in form.param_names:
        low = name.lower()
        if (low.startswith("alpha") or low.startswith("beta")) and not low[-1].isdigit():
            out.append(name)
    return out


def _sig(x: float) -> str:
    return f"{x:.3g}"


def _check_design(c: _Collector, form: LawForm, frame: pd.DataFrame) -> None:
    n, p = len(frame), form.n_params
    c.checks["points_per_param"] = n / p
    if n < 2 * p:
        c.add("undetermined", f"{n} points for {p} free parameters (fewer than 2 per parameter)",
              f"add at least {3 * p - n} runs, spread over 4 or more sizes and 3 or more budgets")
    elif n < 3 * p:
        c.add("weak", f"{n} points for {p} free parameters (fewer than 3 per parameter)",
              f"add at least {3 * p - n} runs, spread over 4 or more sizes and 3 or more budgets")
    if len(form.variables) < 2:
        return
    for var in form.variables:
        values = np.sort(frame[var].unique())
        c.checks[f"distinct_{var}"] = int(values.size)
        what = "sizes" if var == "params" else f"{var} values"
        lo, hi = float(values[0]), float(values[-1])
        more = (f"add runs at 3 or more {what} over a 10× range or wider "
                f"(e.g. {_sig(lo / 2)}, {_sig(math.sqrt(lo * hi))}, {_sig(hi * 2)})")
        if values.size < 3:
            c.add("weak", f"only {values.size} distinct {what}: the exponent of {var} cannot be told apart from "
                  "the irreducible loss", more)
        span = hi / lo
        c.checks[f"span_{var}"] = span
        if values.size >= 3 and span < 4:
            c.add("weak", f"{what} span only {span:.2g}× ({_sig(lo)} to {_sig(hi)})", more)


def _check_optimum(c: _Collector, result: Any) -> None:
    if not result.success:
        c.add("undetermined", f"the optimiser did not converge ({result.message})",
              "add runs or fix a parameter (--fix) so that the optimum is well defined")
    exps = set(_exponent_names(result.form))
    for name in result.on_bound:
        level = "undetermined" if name in exps else "weak"
        c.add(level, f"{name} = {_sig(result.params[name])} sits on its bound: the data do not determine it",
              ("add runs long enough that the largest models' losses flatten (so the irreducible loss shows), or "
               "fix E if it is known for this data (--fix E=...)") if name == "E" else
              f"add runs over a wider range of what {name} scales, or fix it (--fix {name}=...)")
    lo, hi = EXPONENT_RANGE
    for name in exps:
        value = result.params.get(name)
        if value is not None and math.isfinite(value) and not lo <= value <= hi and name not in result.on_bound:
            c.add("weak", f"{name} = {value:.3g} is outside the plausible range {lo:g}–{hi:g} (published language-"
                  "model fits: 0.28–0.37)", "widen the ranges of sizes and budgets so that both terms are "
                  "measured well inside the data")


def _check_bootstrap(c: _Collector, result: Any) -> None:
    thetas = result.bootstrap_thetas
    if thetas is None or not len(thetas):
        c.checks["bootstrap"] = 0
        return
    form, ci = result.form, result.intervals
    audited, disagree = result.metadata.get("bootstrap_audited"), result.metadata.get("bootstrap_disagree")
    if audited:  # the warm refits were checked against the full grid on a sample of resamples
        c.checks["bootstrap_audited"] = audited
        c.checks["bootstrap_disagree_share"] = disagree / audited
        if disagree:
            c.add("weak", f"{disagree} of {audited} bootstrap resamples checked against the full start grid found a "
                  "lower optimum there than from the warm starts: other resamples may have missed it too, so the "
                  "intervals may be off", "refit with the full grid on every resample (fit(..., "
                  "bootstrap_method='full'); slow), or add runs so that the optimum is unique")
    stuck = float(np.mean(np.max(np.abs(thetas - result.theta[None, :]), axis=1) < 1e-7))
    c.checks["bootstrap_stuck_share"] = stuck
    if stuck > 0.25:
        c.add("weak", f"{stuck:.0%} of the bootstrap refits never left the warm start: the intervals sit on the "
              "point estimate and understate the uncertainty", "add runs; the objective is flat around the optimum")
    exps = set(_exponent_names(form))
    for name, (low, high) in ci.items():
        if not (math.isfinite(low) and math.isfinite(high)):
            continue
        if name in ("a", "b"):
            width = high - low
            c.checks[f"width_{name}"] = width
            if width > FRONTIER_WIDTH_LIMIT:
                c.add("weak", f"the {100 * result.confidence:g}% interval of {name} is [{low:.3f}, {high:.3f}], "
                      f"wider than {FRONTIER_WIDTH_LIMIT:g}", "add a larger size and a larger budget (2× the "
                      "sweep's largest) and a third budget between the others")
        elif name in exps and high - low > 0.5:
            c.add("weak", f"the interval of {name} is [{low:.3g}, {high:.3g}], wider than 0.5",
                  "widen the range of the variable it multiplies")
        elif name in result.params and form.is_log_scaled(name) and low > 0 and high / low > 100:
            c.add("weak", f"the interval of {name} spans {math.log10(high / low):.1f} orders of magnitude "
                  f"([{low:.3g}, {high:.3g}])", "add runs at the extremes of size and budget")


def _jacobian(result: Any, frame: pd.DataFrame) -> np.ndarray:
    logx = np.log(frame[list(result.form.variables)].to_numpy(dtype=float).T)
    return result.form.log_predict_grad(result.theta[None, :], logx)[1][0].T  # (n, P)


def _centre_scales(form: Any, jac: np.ndarray, frame: pd.DataFrame) -> np.ndarray:
    """The Jacobian in the parametrisation where each term c − e·log x is written c' − e·(log x − m), m the
    data's mean log x (c' = the term at the data's centre). log A and alpha correlate near ±1 for any data far
    from x = 1 — an artefact of the units, not a lack of information — while c' and e do only when the data
    cannot separate them. Holding c' fixed, ∂/∂e = ∂/∂e|_c + m·∂/∂c."""
    jac = jac.copy()
    for coef, exponent, variable in form.scale_pairs:
        if coef in form.raw_names and exponent in form.raw_names and variable in frame:
            m = float(np.log(frame[variable].to_numpy(dtype=float)).mean())
            jac[:, form.raw_names.index(exponent)] += m * jac[:, form.raw_names.index(coef)]
    return jac


def _check_correlations(c: _Collector, result: Any, frame: pd.DataFrame) -> None:
    form = result.form
    try:
        jac = _jacobian(result, frame)
    except (NotImplementedError, ValueError):
        return
    active = [i for i, raw in enumerate(form.raw_names) if form.public_name(raw) not in result.on_bound]
    if len(active) < 2:
        return
    jac = _centre_scales(form, jac, frame)
    j = jac[:, active]
    norms = np.linalg.norm(j, axis=0)
    dead = [form.public_name(form.raw_names[active[i]]) for i in np.flatnonzero(norms < 1e-10)]
    if dead:
        c.add("undetermined", f"the data do not constrain {', '.join(dead)} at the optimum (zero sensitivity)",
              f"fix {dead[0]} (--fix {dead[0]}=...) or add runs where it matters")
        return
    info = (j / norms).T @ (j / norms)
    try:
        cov = np.linalg.inv(info)
    except np.linalg.LinAlgError:
        c.add("undetermined", "the parameters are not separately identifiable (singular Jacobian)",
              "fix a parameter (--fix) or add runs that vary size and budget independently")
        return
    d = np.sqrt(np.abs(np.diag(cov)))
    corr = cov / np.outer(d, d)
    np.fill_diagonal(corr, 0.0)
    k = int(np.argmax(np.abs(corr)))
    i, jj = divmod(k, corr.shape[0])
    r = float(corr[i, jj])
    names = [form.public_name(form.raw_names[active[x]]) for x in (i, jj)]
    c.checks["max_correlation"] = {"params": names, "r": r}
    if abs(r) > 0.999:
        c.add("weak", f"{names[0]} and {names[1]} are almost interchangeable (correlation {r:+.4f}): the data "
              "determine only a combination of them", f"widen the range of the variable {names[0]} or {names[1]} "
              "acts on, or fix one of them")


def _check_residuals(c: _Collector, result: Any, frame: pd.DataFrame) -> None:
    res = result.residuals
    if res is None or not len(res) or "flops" not in res:
        return
    r = res["residual"].to_numpy(dtype=float)
    med = float(np.median(np.abs(r)))
    cut = float(np.quantile(res["flops"], 0.75))
    big = res[(res["flops"] >= cut) & (np.abs(r) > max(0.02, 4 * med))]
    c.checks["median_abs_residual"] = med
    for _, row in big.iterrows():
        name = str(row["run_id"]) if "run_id" in row and pd.notna(row.get("run_id")) else (
            f"params {_sig(row['params'])}, tokens {_sig(row['tokens'])}" if "params" in row else f"{row['flops']:.3g} FLOPs")
        c.caution(f"run {name} (among the largest by compute) is off the law by {100 * row['residual']:+.1f}% "
                  f"while the median run is off by {100 * med:.1f}%", f"rerun {name} with another seed, and add "
                  "runs around its size and budget")


def leave_one_out(result: Any, frame: pd.DataFrame) -> np.ndarray | None:
    """Relative error (predicted − actual)/actual of each point predicted by a refit without it, warm-started
    from the full fit; None when there are more than ``LOO_MAX_POINTS`` points."""
    from scalebench.laws.optimize import blas_single_thread, refine_rows

    n = len(frame)
    if n > LOO_MAX_POINTS or n < result.form.n_params + 2:
        return None
    form = result.form
    logx = np.log(frame[list(form.variables)].to_numpy(dtype=float).T)
    logy = np.log(frame["loss"].to_numpy(dtype=float))
    weights = 1.0 - np.eye(n)  # row i leaves point i out; all n refits in one vectorised search
    with blas_single_thread():
        thetas = refine_rows(form, np.repeat(result.theta[None, :], n, axis=0), logx, logy, result.huber_delta,
                             weights).theta
    pred = np.array([form.log_predict(thetas[i][None, :], logx[:, i : i + 1])[0, 0] for i in range(n)])
    return np.expm1(pred - logy)


def _check_errors(c: _Collector, result: Any, frame: pd.DataFrame, loo: bool) -> None:
    if loo:
        errors = leave_one_out(result, frame)
        if errors is not None:
            worst = int(np.argmax(np.abs(errors)))
            c.checks["loo_mape"] = float(np.mean(np.abs(errors)))
            c.checks["loo_max_error"] = float(errors[worst])
            cut = float(np.quantile(frame["flops"], 0.75)) if "flops" in frame else -np.inf
            large = frame["flops"].to_numpy() >= cut if "flops" in frame else np.ones(len(frame), bool)
            bad = np.abs(errors) > ERROR_LIMIT
            if (bad & large).any():
                k = int(np.flatnonzero(bad & large)[np.argmax(np.abs(errors[bad & large]))])
                row = frame.iloc[k]
                label = str(row["run_id"]) if "run_id" in frame else f"{row.get('flops', float('nan')):.3g} FLOPs"
                c.add("weak", f"left out, run {label} is predicted {100 * errors[k]:+.1f}% off (leave-one-out): the "
                      "fit depends on single large runs", "add runs at the largest size and budget (2 or more)")
    bt = result.backtest
    if bt is not None and math.isfinite(bt.mape):
        c.checks["backtest_mape"] = bt.mape
        if bt.mape > ERROR_LIMIT:
            c.add("weak", f"backtest: fitted below {bt.below_flops:.3g} FLOPs it predicts the {bt.n_test} larger "
                  f"runs with {100 * bt.mape:.1f}% mean error", "add runs at larger compute before extrapolating")


def _check_approaches(c: _Collector, result: Any, others: dict[str, float]) -> None:
    a3 = result.a
    if a3 is None or not others:
        return
    half = 0.0
    if "a" in result.intervals:
        lo, hi = result.intervals["a"]
        half = 0.5 * (hi - lo) if math.isfinite(lo) and math.isfinite(hi) else 0.0
    c.checks["a_by_approach"] = {"3": a3, **others}
    for label, a in others.items():
        if a is None or not math.isfinite(a):
            continue
        gap = abs(a - a3)
        if gap > max(APPROACH_GAP, half):
            c.add("weak", f"Approach {label} gives a = {a:.3f} against the parametric fit's a = {a3:.3f}",
                  "add sizes on both sides of each budget's optimum (an isoFLOP layout) so the approaches can agree")


FLOOR_TOLERANCE = 0.02  # relative: E this far from a known floor is a finding, not rounding


def _check_known_floor(c: _Collector, result: Any, floor: float) -> None:
    """No model beats the Bayes loss, so a law whose E lies below a known floor predicts the impossible;
    an E above it is what a family that cannot reach the floor would show (noted, not flagged)."""
    c.checks["known_floor"] = floor
    e = result.params.get("E")
    if e is None:
        return
    high = result.intervals.get("E", (e, e))[1]
    if high < floor * (1 - FLOOR_TOLERANCE):
        c.add("weak", f"E = {e:.4g} (interval up to {high:.4g}) is below the data's known irreducible loss "
              f"{floor:.4g}: the law predicts losses no model can reach", f"fix E at the known floor "
              f"(--fix E={floor:.6g}) or add runs close enough to the floor for the data to show it")
    elif e > floor * (1 + FLOOR_TOLERANCE):
        c.caution(f"E = {e:.4g} lies above the data's known irreducible loss {floor:.4g} (this family's limit, "
                  "or the law's extrapolation)")


def diagnose(
    result: Any,
    frame: pd.DataFrame,
    *,
    loo: bool = True,
    other_exponents: dict[str, float] | None = None,
    known_floor: float | None = None,
) -> Diagnostics:
    """The verdict on ``result`` (a `FitResult` fitted to ``frame``); ``other_exponents`` maps an approach
    label ("1", "2") to its frontier exponent a, for the disagreement check; ``known_floor`` is the data's
    exact irreducible loss, where the task knows it (checked against E)."""
    c = _Collector()
    _check_design(c, result.form, frame)
    _check_optimum(c, result)
    _check_bootstrap(c, result)
    _check_correlations(c, result, frame)
    _check_residuals(c, result, frame)
    _check_errors(c, result, frame, loo)
    _check_approaches(c, result, dict(other_exponents or {}))
    if known_floor is not None:
        _check_known_floor(c, result, known_floor)
    if result.bootstrap_thetas is None and c.level == 0:
        c.suggestions.append("run a bootstrap (--bootstrap 200) to check the intervals")
    return c.result()


def diagnose_isoflop(result: Any) -> Diagnostics:
    """The verdict on an isoFLOP analysis (Approach 1 or 2): enough compute levels, budgets dropped, the
    bootstrap interval of a, and how many resamples could be refitted."""
    c = _Collector()
    n = result.n_budgets
    what = "budgets" if result.approach == 2 else "compute levels"
    c.checks["n_levels"] = n
    if n < 3:
        c.add("weak", f"a rests on {n} {what}: nothing checks that N_opt follows a power law",
              "add a third budget (3× above the largest), with sizes on both sides of its optimum")
    if result.approach == 2:
        total = n + len(result.dropped)
        c.checks["n_dropped"] = len(result.dropped)
        for flops, why in result.dropped:
            level = "weak" if len(result.dropped) * 2 >= total else "reliable"
            if level == "weak":
                c.add("weak", f"budget {flops:.3g} FLOPs dropped: {why}",
                      "place each budget's sizes around its expected optimum (2 or more on each side)")
            else:
                c.caution(f"budget {flops:.3g} FLOPs dropped: {why}")
    samples = result.bootstrap_ab
    if samples is not None and len(samples):
        failed = float(np.mean(~np.isfinite(samples).all(axis=1)))
        c.checks["bootstrap_failed_share"] = failed
        if failed > 0.25:
            c.add("weak", f"{failed:.0%} of the bootstrap resamples left fewer than 2 usable {what}",
                  "add sizes around each budget's optimum")
        ci = result.intervals.get("a")
        if ci is not None:
            width = ci[1] - ci[0]
            c.checks["width_a"] = width
            if width > FRONTIER_WIDTH_LIMIT:
                c.add("weak", f"the {100 * result.confidence:g}% interval of a is [{ci[0]:.3f}, {ci[1]:.3f}], "
                      f"wider than {FRONTIER_WIDTH_LIMIT:g}", "add budgets over a wider compute range")
    else:
        c.suggestions.append("run a bootstrap (--bootstrap 200) to check the intervals")
    lo, hi = 0.05, 0.95
    if not lo <= result.a <= hi:
        c.add("weak", f"a = {result.a:.3f} is outside {lo:g}–{hi:g}", "check the budgets' grids of sizes")
    return c.result()
