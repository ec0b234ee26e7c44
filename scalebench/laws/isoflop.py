"""IsoFLOP analyses of Hoffmann et al. 2022 (§3.1, §3.2): compute-optimal scaling without a parametric law.

Approach 1 — training-curve envelope. Each run's loss curve is a function of compute C = 6·N·D (D the
tokens seen so far). At each compute level the run with the lowest loss gives N_opt(C); a power law
N_opt = k·C^a is fitted to those points (least squares in log-log), and D_opt = C/(6·N_opt).
Biases: a curve read mid-schedule is worse than a run trained to that length with its own schedule
(Hoffmann et al. §3.1), which favours the longer-trained small models at low compute and pulls a down;
levels won by the smallest or largest size are dropped (the optimum may lie beyond); with few sizes the
envelope moves in steps, so a is quantised. Intervals: percentile bootstrap over runs (whole curves).

Approach 2 — isoFLOP profiles. Runs are grouped by compute budget; each budget's minimum over log N gives
N_opt(C); then N_opt ∝ C^a, D_opt ∝ C^b. Biases and the choices made against them:

* The loss along an isoFLOP line is not a parabola in log N: with α ≠ β it is an asymmetric valley, and
  on wide grids the far side is steep (undertrained large models, or tiny models far up the profile). A
  parabola through all of a budget's points is pulled toward the shallow side, and by a different amount
  at each budget when the grids are placed differently: public grids gave errors in a of up to +0.4.
  So each budget's parabola is fitted only near its minimum: the lowest-loss size and ``window`` sizes on
  each side (default 3: seven points, fewer where the grid ends sooner on one side, so the window stays
  symmetric), where any smooth valley is close to a parabola.
* A budget whose lowest loss is at the smallest or largest sampled size has its optimum at or beyond the
  grid's edge: its vertex would be an extrapolation, so the budget is dropped, with a warning naming it.
* Intervals for a and b: percentile bootstrap, resampling runs within each budget (a budget's profile is
  refitted from its resampled runs; budgets that become unusable are left out of that replicate).

Approach 3 is the parametric fit (``scalebench.laws.fit``); compare all three: they disagree when the
design cannot support them (``FitResult.diagnostics`` checks this).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from scalebench.errors import ConfigError, FitError
from scalebench.laws.io import load_data
from scalebench.laws.result import json_float

LOG6 = math.log(6.0)


DEFAULT_WINDOW = 3  # sizes on each side of a budget's lowest-loss size used for its parabola


@dataclass(frozen=True, kw_only=True, eq=False)
class IsoFlopResult:
    """N_opt(C) = exp(log_params_coef)·C^a and D_opt(C) = exp(log_tokens_coef)·C^b, with bootstrap
    ``intervals`` for ``a`` and ``b``, the budgets ``dropped`` (with why) and ``diagnostics``."""

    approach: int
    a: float
    b: float
    log_params_coef: float
    log_tokens_coef: float
    frontier: pd.DataFrame = field(repr=False)  # flops, params, tokens, loss: the optimum per budget / bin
    profiles: pd.DataFrame | None = field(default=None, repr=False)  # Approach 2: one parabola per budget
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    confidence: float = 0.95
    n_bootstrap: int = 0
    bootstrap_ab: np.ndarray | None = field(default=None, repr=False)  # (B, 2): a, b per resample
    dropped: tuple[tuple[float, str], ...] = ()  # (budget FLOPs, reason)
    window: int | None = None
    diagnostics: Any = field(default=None, repr=False)

    @property
    def n_budgets(self) -> int:
        return int(len(self.frontier))

    @property
    def verdict(self) -> str | None:
        return None if self.diagnostics is None else self.diagnostics.verdict

    def params_opt(self, flops: Any) -> np.ndarray:
        return np.exp(self.log_params_coef + self.a * np.log(np.asarray(flops, dtype=float)))

    def tokens_opt(self, flops: Any) -> np.ndarray:
        return np.exp(self.log_tokens_coef + self.b * np.log(np.asarray(flops, dtype=float)))

    def summary(self) -> dict[str, Any]:
        return {
            "approach": self.approach,
            "diagnostics": None if self.diagnostics is None else self.diagnostics.summary(),
            "a": json_float(self.a),
            "b": json_float(self.b),
            "ci": {k: [json_float(lo), json_float(hi)] for k, (lo, hi) in self.intervals.items()},
            "confidence": float(self.confidence),
            "n_bootstrap": int(self.n_bootstrap),
            "log_params_coef": json_float(self.log_params_coef),
            "log_tokens_coef": json_float(self.log_tokens_coef),
            "n_points": len(self.frontier),
            "frontier": [{k: json_float(v) for k, v in row.items()} for row in
                         self.frontier[["flops", "params", "tokens", "loss"]].to_dict("records")],
            "dropped": [{"flops": json_float(c), "reason": r} for c, r in self.dropped],
            **({"window": self.window} if self.approach == 2 else {}),
        }

    def report(self) -> str:
        name = {1: "Approach 1 (training-curve envelope)", 2: "Approach 2 (isoFLOP profiles)"}[self.approach]
        lines = [] if self.diagnostics is None else [self.diagnostics.text(), ""]
        lines.append(f"{name}: N_opt ∝ C^a, D_opt ∝ C^b from {self.n_budgets} compute levels")
        pct = f"{100 * self.confidence:g}%"
        for k in ("a", "b"):
            ci = self.intervals.get(k)
            text = f"  {k} = {getattr(self, k):.4f}"
            if ci:
                text += f"   [{ci[0]:.4f}, {ci[1]:.4f}] ({pct}, {self.n_bootstrap} bootstrap resamples)"
            lines.append(text)
        for c, why in self.dropped:
            lines.append(f"  dropped budget {c:.3g} FLOPs: {why}")
        return "\n".join(lines)


def _power_fit(frontier: pd.DataFrame, approach: int) -> tuple[float, float, float, float]:
    if len(frontier) < 2 or frontier["flops"].nunique() < 2:
        raise FitError(
            f"isoFLOP approach {approach}: need optima at 2 or more compute levels, got {len(frontier)}"
        )
    log_c = np.log(frontier["flops"].to_numpy())
    a, k_n = np.polyfit(log_c, np.log(frontier["params"].to_numpy()), 1)
    b, k_d = np.polyfit(log_c, np.log(frontier["tokens"].to_numpy()), 1)
    return float(a), float(b), float(k_n), float(k_d)


def _ab_intervals(samples: np.ndarray, confidence: float) -> dict[str, tuple[float, float]]:
    from scalebench.laws.result import _percentiles

    ok = samples[np.isfinite(samples).all(axis=1)]
    if len(ok) < 2:
        return {}
    low, high = _percentiles(ok, confidence)
    return {"a": (float(low[0]), float(high[0])), "b": (float(low[1]), float(high[1]))}


def _check_bootstrap(bootstrap: object, confidence: object) -> None:
    if isinstance(bootstrap, bool) or not isinstance(bootstrap, (int, np.integer)) or bootstrap < 0:
        raise ConfigError(f"bootstrap must be a non-negative integer count of resamples, not {bootstrap!r}")
    if not (isinstance(confidence, (int, float)) and 0 < confidence < 1):
        raise ConfigError(f"confidence must be a number in (0, 1), e.g. 0.95, not {confidence!r}")


# --- Approach 1 ------------------------------------------------------------------------------------------
def _curves(frame: pd.DataFrame) -> list[tuple[float, np.ndarray, np.ndarray]]:
    key = "run_id" if "run_id" in frame else "params"
    curves = []
    for _, run in frame.groupby(key, sort=False):
        run = run.sort_values("flops")
        if len(run) >= 2:
            curves.append((float(run["params"].iloc[0]), np.log(run["flops"].to_numpy()),
                           np.log(run["loss"].to_numpy())))
    return curves


def _envelope(curves, n_bins: int, min_runs: int, drop_edge: bool) -> pd.DataFrame:
    lo = min(c[1][0] for c in curves)
    hi = max(c[1][-1] for c in curves)
    levels = np.linspace(lo, hi, n_bins)
    losses = np.full((len(curves), n_bins), np.inf)
    for i, (_, lc, ll) in enumerate(curves):
        inside = (levels >= lc[0]) & (levels <= lc[-1])
        losses[i, inside] = np.interp(levels[inside], lc, ll)
    sizes = np.array([c[0] for c in curves])
    covered = np.isfinite(losses).sum(axis=0) >= min_runs
    winner = np.argmin(losses, axis=0)
    keep = covered.copy()
    if drop_edge:
        keep &= (sizes[winner] > sizes.min()) & (sizes[winner] < sizes.max())
    flops = np.exp(levels[keep])
    params = sizes[winner[keep]]
    return pd.DataFrame({"flops": flops, "params": params, "tokens": flops / (6.0 * params),
                         "loss": np.exp(losses[winner[keep], np.flatnonzero(keep)])})


def isoflop_approach1(
    source: object,
    *,
    loss_col: str | None = None,
    n_bins: int = 30,
    min_runs: int = 2,
    drop_edge: bool = True,
    bootstrap: int = 0,
    seed: int = 0,
    confidence: float = 0.95,
    diagnostics: bool = True,
) -> IsoFlopResult:
    """Approach 1 from training curves: rows are (run, checkpoint) with ``params``, ``tokens`` seen so far
    and ``loss``; runs are identified by ``run_id`` (else by ``params``). Losses are interpolated in log C
    at ``n_bins`` log-spaced compute levels; a level counts when at least ``min_runs`` curves cover it.
    ``drop_edge`` drops levels won by the smallest or largest model, whose true optimum may lie beyond.
    ``bootstrap`` resamples whole runs for intervals on a and b."""
    _check_bootstrap(bootstrap, confidence)
    frame = load_data(source, ("params", "tokens"), loss_col=loss_col)
    curves = _curves(frame)
    if len(curves) < 2:
        raise FitError("isoFLOP approach 1 needs training curves (2+ checkpoints) from 2 or more runs")
    frontier = _envelope(curves, n_bins, min_runs, drop_edge)
    a, b, k_n, k_d = _power_fit(frontier, 1)
    samples = None
    if bootstrap:
        rng = np.random.default_rng(seed)
        samples = np.full((int(bootstrap), 2), np.nan)
        for i in range(int(bootstrap)):
            pick = [curves[j] for j in rng.integers(0, len(curves), len(curves))]
            try:
                env = _envelope(pick, n_bins, min_runs, drop_edge)
                samples[i] = _power_fit(env, 1)[:2]
            except FitError:
                continue
    result = IsoFlopResult(approach=1, a=a, b=b, log_params_coef=k_n, log_tokens_coef=k_d,
                           frontier=frontier.reset_index(drop=True), confidence=confidence,
                           intervals=_ab_intervals(samples, confidence) if samples is not None else {},
                           n_bootstrap=int(bootstrap), bootstrap_ab=samples)
    return _with_diagnostics(result) if diagnostics else result


# --- Approach 2 ------------------------------------------------------------------------------------------
def budget_clusters(flops: np.ndarray, rtol: float) -> np.ndarray:
    """Cluster compute values: a new budget starts when C exceeds the current one's first by > rtol."""
    order = np.argsort(flops)
    labels = np.empty(flops.size, dtype=int)
    label, start = -1, -np.inf
    for i in order:
        if flops[i] > start * (1.0 + rtol):
            label, start = label + 1, flops[i]
        labels[i] = label
    return labels


def budget_labels(
    frame: pd.DataFrame, budget_col: str | None = None, rtol: float = 0.1
) -> np.ndarray:
    """Each row's isoFLOP budget as an integer label: from ``budget_col`` when given, else clusters of
    ``flops`` within ``rtol``."""
    if budget_col is not None:
        labels = pd.factorize(frame[budget_col].to_numpy())[0]
        if (labels < 0).any():
            raise FitError(f"budget_col {budget_col!r} has {int((labels < 0).sum())} missing value(s)")
        return labels
    return budget_clusters(frame["flops"].to_numpy(), rtol)


@dataclass(frozen=True)
class _Profile:
    flops: float
    row: dict[str, Any]  # the profiles table row
    optimum: dict[str, float] | None  # the frontier row, or None when dropped
    why: str = ""  # why dropped


def _profile(log_n: np.ndarray, loss: np.ndarray, weight: np.ndarray, budget: float,
             window: int | None) -> _Profile:
    """The vertex of one budget's local parabola (``log_n`` sorted, unique)."""
    row: dict[str, Any] = {"flops": budget, "n_runs": int(weight.sum()), "n_sizes": int(log_n.size)}
    if log_n.size < 3:
        return _Profile(budget, row | {"c0": np.nan, "c1": np.nan, "c2": np.nan, "vertex_inside": False},
                        None, "fewer than 3 model sizes")
    best = int(np.argmin(loss))
    if best in (0, log_n.size - 1):
        side = "smallest" if best == 0 else "largest"
        return _Profile(budget, row | {"c0": np.nan, "c1": np.nan, "c2": np.nan, "vertex_inside": False,
                                       "edge": side}, None,
                        f"its lowest loss is at the {side} size ({math.exp(log_n[best]):.3g} params): the optimum "
                        "lies at or beyond the grid's edge; add sizes beyond it")
    # symmetric in index around the lowest loss: a lopsided window would tilt the parabola
    half = None if window is None else min(window, best, log_n.size - 1 - best)
    lo, hi = (0, log_n.size) if half is None else (best - half, best + half + 1)
    x, y, w = log_n[lo:hi], loss[lo:hi], weight[lo:hi]
    c2, c1, c0 = np.polyfit(x, y, 2, w=np.sqrt(w))
    row |= {"c0": c0, "c1": c1, "c2": c2, "n_window": int(x.size), "log_n_lo": float(x[0]),
            "log_n_hi": float(x[-1])}
    if not c2 > 0:
        return _Profile(budget, row | {"vertex_inside": False}, None, "its parabola opens downward (no minimum)")
    vertex = -c1 / (2.0 * c2)
    inside = bool(x[0] <= vertex <= x[-1])
    row["vertex_inside"] = inside
    if not inside:
        return _Profile(budget, row, None, "the minimum lies outside the sampled sizes (extrapolated); extend "
                        "the grid of sizes")
    n_opt = math.exp(vertex)
    return _Profile(budget, row, {"flops": budget, "params": n_opt, "tokens": budget / (6.0 * n_opt),
                                  "loss": c0 - c1 * c1 / (4.0 * c2)})


def _profiles(frame: pd.DataFrame, labels: np.ndarray, weights: np.ndarray, window: int | None) -> list[_Profile]:
    out = []
    for label in np.unique(labels):
        sel = (labels == label) & (weights > 0)
        if not sel.any():
            continue
        g = pd.DataFrame({"log_n": np.log(frame["params"].to_numpy()[sel]), "loss": frame["loss"].to_numpy()[sel],
                          "w": weights[sel], "flops": frame["flops"].to_numpy()[sel]})
        budget = float(np.median(frame["flops"].to_numpy()[labels == label]))
        g["wl"] = g["loss"] * g["w"]
        agg = g.groupby("log_n", sort=True).agg(wl=("wl", "sum"), w=("w", "sum"))
        out.append(_profile(agg.index.to_numpy(), (agg["wl"] / agg["w"]).to_numpy(), agg["w"].to_numpy(),
                            budget, window))
    return out


def _optima(profiles: list[_Profile]) -> pd.DataFrame:
    return pd.DataFrame([p.optimum for p in profiles if p.optimum is not None],
                        columns=["flops", "params", "tokens", "loss"])


def isoflop_approach2(
    source: object,
    *,
    loss_col: str | None = None,
    budget_col: str | None = None,
    rtol: float = 0.1,
    window: int | None = DEFAULT_WINDOW,
    bootstrap: int = 0,
    seed: int = 0,
    confidence: float = 0.95,
    diagnostics: bool = True,
) -> IsoFlopResult:
    """Approach 2 from final losses of runs on isoFLOP lines (``params``, ``tokens`` or ``flops``, ``loss``).
    Budgets come from ``budget_col`` when given, else by clustering ``flops`` within ``rtol``. Each budget's
    parabola in log N is fitted to its lowest-loss size and ``window`` sizes on each side (None: all sizes);
    budgets whose lowest loss is at the grid's edge, with fewer than 3 sizes, or without an interior vertex
    are dropped with a warning naming them. ``bootstrap`` resamples runs within budgets for intervals on a
    and b. See the module docs for the method's biases."""
    if not rtol > 0:
        raise ConfigError(f"rtol must be positive, not {rtol!r}")
    if window is not None and (isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 1):
        raise ConfigError(f"window must be a positive integer number of sizes on each side (or None), not {window!r}")
    _check_bootstrap(bootstrap, confidence)
    extra = () if budget_col is None else (budget_col,)
    frame = load_data(source, ("params", "tokens"), loss_col=loss_col, extra_cols=extra)
    from scalebench.laws.io import drop_duplicate_runs

    frame = drop_duplicate_runs(frame, ("params", "tokens"), "isoFLOP data")
    labels = budget_labels(frame, budget_col, rtol)
    profiles = _profiles(frame, labels, np.ones(len(frame)), window)
    for p in profiles:
        if p.optimum is None:
            warnings.warn(f"isoFLOP budget {p.flops:.3g} FLOPs dropped: {p.why}", stacklevel=2)
    optima = _optima(profiles)
    a, b, k_n, k_d = _power_fit(optima, 2)
    samples = None
    if bootstrap:
        samples = _bootstrap_ab(frame, labels, window, int(bootstrap), seed)
    result = IsoFlopResult(
        approach=2, a=a, b=b, log_params_coef=k_n, log_tokens_coef=k_d, frontier=optima.reset_index(drop=True),
        profiles=pd.DataFrame([p.row for p in profiles]), confidence=confidence,
        intervals=_ab_intervals(samples, confidence) if samples is not None else {}, n_bootstrap=int(bootstrap),
        bootstrap_ab=samples, dropped=tuple((p.flops, p.why) for p in profiles if p.optimum is None), window=window,
    )
    return _with_diagnostics(result) if diagnostics else result


def _bootstrap_ab(frame: pd.DataFrame, labels: np.ndarray, window: int | None, n: int, seed: int) -> np.ndarray:
    """(n, 2) a, b refitted on resamples of the runs within each budget (NaN where fewer than 2 survive)."""
    rng = np.random.default_rng(seed)
    members = [np.flatnonzero(labels == lab) for lab in np.unique(labels)]
    out = np.full((n, 2), np.nan)
    for i in range(n):
        weights = np.zeros(len(frame))
        for idx in members:
            np.add.at(weights, rng.choice(idx, idx.size, replace=True), 1.0)
        optima = _optima(_profiles(frame, labels, weights, window))
        if len(optima) >= 2 and optima["flops"].nunique() >= 2:
            out[i] = _power_fit(optima, 2)[:2]
    return out


def _with_diagnostics(result: IsoFlopResult) -> IsoFlopResult:
    from dataclasses import replace

    from scalebench.laws.diagnostics import diagnose_isoflop

    return replace(result, diagnostics=diagnose_isoflop(result))


# --- training curves from a sweep, and isoFLOP slices through them -----------------------------------------
def smoothed_curves(steps: pd.DataFrame, results: pd.DataFrame, window: int = 9) -> pd.DataFrame:
    """Training curves of finished runs (``run_id``, ``params``, ``tokens`` so far, ``flops`` = 6·N·D,
    ``loss``) from a sweep's step log, the loss smoothed by a running median over ``window`` logged steps
    (train loss is noisy step to step; the median keeps the envelope from following single good batches)."""
    done = results[results["status"] == "done"][["run_id", "params"]]
    curves = steps.merge(done, on="run_id")
    curves = curves[(curves["tokens"] > 0) & curves["loss"].notna()].sort_values(["run_id", "step"])
    curves["loss"] = curves.groupby("run_id")["loss"].transform(
        lambda s: s.rolling(window, min_periods=1).median())
    curves["flops"] = 6.0 * curves["params"] * curves["tokens"]
    return curves[["run_id", "params", "tokens", "flops", "loss"]].reset_index(drop=True)


def sweep_curves(sweep_dir: Any) -> pd.DataFrame:
    """:func:`smoothed_curves` of a sweep directory's store."""
    from scalebench.store import load_results, load_steps

    steps = load_steps(sweep_dir)
    if steps.empty:
        raise FitError(f"{sweep_dir}: the store holds no training curves (no logged steps)")
    return smoothed_curves(steps, load_results(sweep_dir))


def curve_slices(curves: pd.DataFrame, n_levels: int = 5) -> pd.DataFrame:
    """IsoFLOP slices through training curves: each run's loss interpolated (in log C) at ``n_levels``
    compute levels inside the range every largest-run curve covers; for one size with several schedule
    lengths the lower loss (the envelope) is kept. Columns ``level``, ``params``, ``loss``, ``run_id``.
    Mid-schedule losses are worse than runs trained to that length: read the slices as a guide."""
    spans = curves.groupby("run_id")["flops"].agg(["min", "max"])
    lo, hi = np.log(spans["min"].max()), np.log(spans["max"].max())
    rows = []
    for level in np.exp(np.linspace(lo, hi, n_levels + 2)[1:-1]):
        for run_id, g in curves.groupby("run_id"):
            f = g["flops"].to_numpy()
            if f[0] <= level <= f[-1]:
                loss = float(np.exp(np.interp(np.log(level), np.log(f), np.log(g["loss"].to_numpy()))))
                rows.append({"level": float(level), "params": float(g["params"].iloc[0]), "loss": loss,
                             "run_id": run_id})
    out = pd.DataFrame(rows, columns=["level", "params", "loss", "run_id"])
    return out.sort_values("loss").drop_duplicates(["level", "params"]).sort_values(["level", "params"])


def slice_minima(slices: pd.DataFrame, window: int | None = DEFAULT_WINDOW) -> pd.DataFrame:
    """Each slice level's minimum by the same local parabola as Approach 2 (columns ``level``, ``params``,
    ``loss``, ``c0``, ``c1``, ``c2``); levels without an interior minimum are left out."""
    rows = []
    for level, g in slices.groupby("level"):
        g = g.sort_values("params")
        p = _profile(np.log(g["params"].to_numpy(float)), g["loss"].to_numpy(float), np.ones(len(g)),
                     float(level), window)
        if p.optimum is not None:
            rows.append({"level": level, "params": p.optimum["params"], "loss": p.optimum["loss"],
                         "c0": p.row["c0"], "c1": p.row["c1"], "c2": p.row["c2"]})
    return pd.DataFrame(rows, columns=["level", "params", "loss", "c0", "c1", "c2"])


def approach_exponents(frame: pd.DataFrame, curves: pd.DataFrame | None = None) -> dict[str, float]:
    """The frontier exponent a by Approach 2 (when ``frame``'s runs form 3+ usable isoFLOP budgets) and by
    Approach 1 (when training ``curves`` are given and give 3+ compute levels), for the diagnostics'
    disagreement check; approaches the data do not support are left out."""
    out: dict[str, float] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            iso = isoflop_approach2(frame, diagnostics=False)
            if iso.n_budgets >= 3:
                out["2"] = iso.a
        except (FitError, ConfigError, ValueError, np.linalg.LinAlgError):
            pass
        if curves is not None and len(curves):
            try:
                env = isoflop_approach1(curves, diagnostics=False)
                if env.n_budgets >= 3:
                    out["1"] = env.a
            except (FitError, ConfigError, ValueError, np.linalg.LinAlgError):
                pass
    return out
