"""Everything the report shows, computed from a sweep's store: one `ReportData` value, no drawing.

Optional parts (the fit, isoFLOP analyses, the backtest, bottlenecks, the plan) are computed
independently; one that cannot be computed leaves ``None`` and a reason in ``ReportData.missing`` under
its section key, so the page says what is missing and why instead of failing.
"""

from __future__ import annotations

import json
import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from scalebench.errors import ConfigError, FitError, ScalebenchError
from scalebench.planning.targets import MAX_PLAN_GPUS  # the plan's GPU counts

__all__ = ["ReportData", "ReportOptions", "Spend", "build_report_data", "mfu_basis", "rss_note"]

# Errors an optional component may raise on data it cannot use; anything else is a bug and propagates.
_EXPECTED = (ScalebenchError, ValueError, KeyError, ImportError, np.linalg.LinAlgError)

# Beyond this multiple of the sweep's largest compute a prediction is read as an order of magnitude.
FAR_EXTRAPOLATION = 1000.0
# Columns that name a configuration axis of a sweep; with 2+ values among done runs the report compares them.
GROUP_AXES = ("family", "optimizer", "schedule", "dataset", "group")


@dataclass(frozen=True, kw_only=True)
class ReportOptions:
    """How much work the report does. ``bootstrap`` resamples (as ``scalebench fit``'s default, so that a
    refit gives the CLI's numbers; a fit saved by ``scalebench fit DIR`` is used as it is);
    ``scale_factors`` multiply the sweep's largest compute for the headline predictions. ``group_by``: the
    column whose groups get a comparison section (default: the first of ``GROUP_AXES`` with 2+ values).

    The plan costs compute-optimal runs at two kinds of target: ``plan_factors`` multiply the sweep's largest
    compute (how far the fit carries), and ``plan_flops`` are absolute budgets a team would consider — about
    1e19 FLOPs (a ~0.3B model, hours on one node), 1e21 (~3B, days on a node), 1e23 (~30B, GPT-3-class
    compute: weeks on hundreds of GPUs) and 1e25 (frontier scale). Of these the lowest ``plan_n_absolute``
    that lie at least ``plan_min_ratio`` (100×) above the sweep's largest run are shown. Each target runs on
    the least power-of-two number of ``plan_gpu`` (a catalog name; default the sweep's GPU, else H100-SXM)
    that holds the model and finishes within ``plan_max_days``; ``plan_clusters`` are fixed GPU counts whose
    wall clock is shown too."""

    law: str = "chinchilla"
    bootstrap: int = 200  # as `scalebench fit`: the page and the CLI must report the same fit
    n_refine: int = 64
    use_saved_fit: bool = True
    group_by: str | None = None
    confidence: float = 0.95
    seed: int = 0
    scale_factors: tuple[float, ...] = (10.0, 100.0)
    plan_factors: tuple[float, ...] = (10.0, 100.0, 1000.0)
    plan_flops: tuple[float, ...] = (1e19, 1e21, 1e23, 1e25)
    plan_n_absolute: int = 3
    plan_min_ratio: float = 100.0
    plan_max_days: float = 30.0
    plan_clusters: tuple[int, ...] = (8, 64, 512)
    plan_gpu: str | None = None

    def __post_init__(self) -> None:
        if not (isinstance(self.bootstrap, int) and self.bootstrap >= 0):
            raise ConfigError(f"ReportOptions.bootstrap must be a non-negative integer, not {self.bootstrap!r}")
        if not (isinstance(self.n_refine, int) and self.n_refine >= 1):
            raise ConfigError(f"ReportOptions.n_refine must be a positive integer, not {self.n_refine!r}")
        if not 0 < self.confidence < 1:
            raise ConfigError(f"ReportOptions.confidence must be in (0, 1), not {self.confidence!r}")
        for name in ("scale_factors", "plan_factors", "plan_flops"):
            if any(not (f > 0 and math.isfinite(f)) for f in getattr(self, name)):
                raise ConfigError(f"ReportOptions.{name} must hold positive numbers, not {getattr(self, name)!r}")
        if not (isinstance(self.plan_n_absolute, int) and self.plan_n_absolute >= 0):
            raise ConfigError(f"ReportOptions.plan_n_absolute must be a non-negative integer, not {self.plan_n_absolute!r}")
        for name in ("plan_min_ratio", "plan_max_days"):
            value = getattr(self, name)
            if not (value > 0 and math.isfinite(value)):
                raise ConfigError(f"ReportOptions.{name} must be a positive number, not {value!r}")
        if any(not (isinstance(n, int) and 1 <= n <= MAX_PLAN_GPUS) for n in self.plan_clusters):
            raise ConfigError(f"ReportOptions.plan_clusters must hold GPU counts from 1 to {MAX_PLAN_GPUS}, "
                              f"not {self.plan_clusters!r}")


@dataclass(frozen=True, kw_only=True)
class Spend:
    """What the sweep itself used."""

    n_runs: int
    by_status: dict[str, int]
    device_kind: str  # "GPU" or "CPU"
    device_hours: float
    energy_kwh: float | None  # None when no run measured energy
    flops: float  # analytic training FLOPs of the finished runs


@dataclass(frozen=True, kw_only=True, eq=False)
class ReportData:
    sweep_dir: Path
    name: str
    notes: str
    options: ReportOptions
    meta: dict[str, Any]
    results: pd.DataFrame  # load_results + memory_model_bytes
    steps: pd.DataFrame
    telemetry: pd.DataFrame
    events: pd.DataFrame
    spend: Spend
    loss_col: str  # the loss that was fitted (eval_loss, else train_loss; eval_bpb by `fit --loss-col` or mixed families)
    params_col: str = "params"  # the N the law uses (`fit --params-col`: params, params_total, params_nonembedding)
    fit: Any = None  # scalebench.laws.FitResult
    n_bootstrap: int = 0
    predictions: pd.DataFrame | None = None  # compute_optimal at scale_factors x the largest compute
    frontier: pd.DataFrame | None = None  # compute_optimal on a grid, for the figures
    backtest: Any = None  # scalebench.laws.BacktestResult
    isoflop: Any = None  # IsoFlopResult of Approach 2 (or None)
    approach1: Any = None  # IsoFlopResult of Approach 1 from the training curves (or None)
    isoflop_slices: pd.DataFrame | None = None  # level, params, loss, run_id
    isoflop_minima: pd.DataFrame | None = None  # level, params, loss
    isoflop_source: str = ""  # "runs" (isoFLOP budgets) or "curves" (slices through training curves)
    fit_origin: str = ""  # "saved" (DIR/fit.json from `scalebench fit`) or "refit" (and why)
    groups: Any = None  # scalebench.laws.GroupedFit when the results have a grouping axis
    group_frontiers: pd.DataFrame | None = None  # group, flops, loss: each group's compute-optimal frontier
    bottlenecks: pd.DataFrame | None = None  # one row per run with a verdict
    kernel_time: pd.DataFrame | None = None  # run_id, params, category, seconds
    calibration: Any = None  # scalebench.planning.Calibration
    plan: pd.DataFrame | None = None  # estimator rows for the plan targets (+ target, kind, factor, far)
    plan_clusters: pd.DataFrame | None = None  # target, flops, num_gpus, fits, wall_clock_s, cost_usd
    plan_gpu: str | None = None
    missing: dict[str, str] = field(default_factory=dict)  # section key -> why it is not shown
    notes_fit: tuple[str, ...] = ()  # warnings from the analyses, shown with the fit
    timings_s: dict[str, float] = field(default_factory=dict)

    @property
    def verdict(self) -> str | None:
        return None if self.fit is None else self.fit.verdict

    @property
    def done(self) -> pd.DataFrame:
        return self.results[self.results["status"] == "done"]

    @property
    def max_flops(self) -> float | None:
        f = pd.to_numeric(self.done["flops"], errors="coerce").dropna()
        return float(f.max()) if len(f) else None


# ------------------------------------------------------------------------------------------ helpers
def mfu_basis(data: ReportData) -> tuple[str | None, str]:
    """Which MFU the report shows, and a sentence on it: ``mfu`` (against the catalog's datasheet peak) when
    any run has it, else ``mfu_measured_peak`` (against the matmul peak `scalebench env --calibrate`
    measured), else ``None`` with the reason."""
    done = data.done
    for col in ("mfu", "mfu_measured_peak"):
        if col in done and pd.to_numeric(done[col], errors="coerce").notna().any():
            if col == "mfu":
                return col, ""
            return col, ("MFU against the measured peak: the matmul FLOP/s `scalebench env --calibrate` measured "
                         "on this machine (there is no catalog datasheet peak for it).")
    if data.spend.device_kind == "CPU":
        return None, ("MFU is not shown: there is no catalog peak for a CPU and no run recorded one against a "
                      "measured peak; run `scalebench env --calibrate` before the sweep and each run records MFU "
                      "against the measured matmul peak.")
    return None, ("MFU is not shown: no run recorded it (the catalog has no peak FLOP/s for this device and "
                  "precision); run `scalebench env --calibrate` before the sweep to measure one.")


def rss_note(data: ReportData) -> str | None:
    """On a CPU sweep no run measures device memory; say so, with the process RSS range, instead of plotting
    RSS (it includes the Python and torch runtime) as if it were device memory."""
    done = data.done
    if "peak_rss_bytes" not in done:
        return None
    rss = pd.to_numeric(done["peak_rss_bytes"], errors="coerce")
    mem = pd.to_numeric(done["peak_mem_bytes"], errors="coerce") if "peak_mem_bytes" in done else rss * np.nan
    if mem.notna().any() or rss.isna().all():
        return None
    lo, hi = rss.min() / 2**20, rss.max() / 2**20
    span = f"{lo:,.0f} MiB" if round(lo) == round(hi) else f"{lo:,.0f}–{hi:,.0f} MiB"
    return (f"Device memory is not measured on a CPU, so only the estimator's modelled bytes are shown. The "
            f"runs' peak process RSS was {span}; it includes the Python and torch runtime, so it is not plotted "
            "as device memory.")


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text if isinstance(exc, ScalebenchError) else f"{type(exc).__name__}: {text}"


def _spend(results: pd.DataFrame) -> Spend:
    # the trainer records torch's device name ("NVIDIA H100 80GB HBM3", "Tesla T4", "AMD Instinct MI300X") or "cpu"
    device = results["device"]
    gpu = device.notna() & ~device.astype(str).str.lower().isin(["cpu", "none", "nan", ""])
    kind = "GPU" if gpu.any() else "CPU"
    wall = pd.to_numeric(results["wall_time_s"], errors="coerce").fillna(0.0)
    energy = pd.to_numeric(results["energy_j"], errors="coerce")
    done = results["status"] == "done"
    return Spend(
        n_runs=len(results),
        by_status={str(k): int(v) for k, v in results["status"].value_counts().items()},
        device_kind=kind,
        device_hours=float(wall.sum() / 3600.0),
        energy_kwh=float(energy.sum() / 3.6e6) if energy.notna().any() else None,
        flops=float(pd.to_numeric(results.loc[done, "flops"], errors="coerce").sum()),
    )


def _saved_columns(sweep_dir: Path) -> dict[str, str]:
    """The loss and parameter columns ``scalebench fit DIR`` used (``--loss-col``, ``--params-col``), if saved."""
    from scalebench.laws import FIT_FILE

    try:
        meta = json.loads((sweep_dir / FIT_FILE).read_text(encoding="utf-8")).get("metadata", {})
    except (OSError, ValueError, AttributeError):
        return {}
    return {k: meta[k] for k in ("loss_col", "params_col") if isinstance(meta.get(k), str)}


def _fit_frame(results: pd.DataFrame, loss_col: str | None = None,
               params_col: str = "params") -> tuple[pd.DataFrame, str, str]:
    from scalebench.laws.io import sweep_loss_col

    done = results[results["status"] == "done"]
    if "probe" in done:  # [ladder] lr probes check the ladder (laws/health.py); the fit leaves them out
        done = done[done["probe"].isna()]
    if loss_col not in done or params_col not in done:
        loss_col, params_col = None, "params"
    if loss_col is None:
        has_eval = pd.to_numeric(done["eval_loss"], errors="coerce").notna().all()
        loss_col = sweep_loss_col(done) if has_eval else "train_loss"
    frame = done[["run_id", params_col, "tokens", "flops", loss_col]].rename(
        columns={loss_col: "loss", params_col: "params"})
    frame = frame.apply(lambda s: pd.to_numeric(s, errors="coerce") if s.name != "run_id" else s)
    return frame.dropna().reset_index(drop=True), loss_col, params_col


def _backtest(frame: pd.DataFrame, form: Any, opts: ReportOptions) -> Any:
    """Fit on the smaller-compute runs (at least P+1 of them, about three quarters), predict the rest."""
    from scalebench.laws.backtest import backtest_frame
    from scalebench.laws.compare import backtest_threshold

    threshold = backtest_threshold(frame["flops"].to_numpy(), form.n_params)
    if threshold is None:
        raise FitError(f"a backtest needs more than {form.n_params + 1} runs (the law's parameters + 1) at distinct "
                       f"compute so that some are left to predict; this sweep has {len(frame)} finished runs")
    return backtest_frame(frame, form, threshold, n_refine=opts.n_refine)


def _load_or_fit(sweep_dir: Path, frame: pd.DataFrame, curves: pd.DataFrame | None,
                 opts: ReportOptions) -> tuple[Any, str, list[str]]:
    """The saved fit of ``scalebench fit DIR`` when it is of this law and these runs; else the same fit,
    made here by ``scalebench.laws`` with the CLI's defaults. Returns (result, origin, notes)."""
    from scalebench.laws import FIT_FILE, get_law, load_fit
    from scalebench.laws.fitting import data_fingerprint, fit_frame
    from scalebench.laws.io import drop_duplicate_runs
    from scalebench.laws.isoflop import approach_exponents

    form = get_law(opts.law)
    notes: list[str] = []
    path = sweep_dir / FIT_FILE
    why = f"no {FIT_FILE} (run `scalebench fit {sweep_dir}` to save one)"
    if opts.use_saved_fit and path.exists():
        try:
            saved = load_fit(path)
        except FitError as exc:
            saved, why = None, str(exc)
        if saved is not None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                current = data_fingerprint(drop_duplicate_runs(frame, saved.form.variables), saved.form.variables)
            if getattr(saved.form, "base", saved.form).name != form.name:
                why = f"{FIT_FILE} holds law {saved.law!r}, the report was asked for {form.name!r}"
            elif saved.metadata.get("data_fingerprint") != current:
                why = f"{FIT_FILE} was fitted to other runs than the store holds now (the sweep changed since)"
            else:
                return saved, "saved", notes
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fit_frame(frame, form, bootstrap=opts.bootstrap, seed=opts.seed, confidence=opts.confidence,
                           n_refine=opts.n_refine, source=str(sweep_dir),
                           other_exponents=approach_exponents(frame, curves) if form.has_frontier else None)
    from scalebench.laws.health import with_health  # the ladder's checks join the verdict, as in `fit DIR`

    result = with_health(result, sweep_dir)
    notes += [str(w.message) for w in caught]
    return result, f"refit: {why}", notes


def _bottlenecks(results: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    if "bottleneck_detail" not in results or results["bottleneck"].isna().all():
        raise FitError("no run recorded a bottleneck verdict (the profiler window did not run: enable "
                       "[profiling] and rerun, or this sweep predates profiling)")
    rows, kernel = [], []
    for _, r in results.sort_values("params").iterrows():
        raw = r.get("bottleneck_detail")
        detail = json.loads(raw) if isinstance(raw, str) and raw else {}
        ev = detail.get("evidence") or {}
        if not detail and not isinstance(r.get("bottleneck"), str):
            continue
        rows.append({
            "run_id": r["run_id"], "size": r["size"], "params": r["params"],
            "verdict": next((v for v in (r.get("bottleneck"), detail.get("bottleneck"))
                             if isinstance(v, str) and v), "undetermined"),  # NaN/None: no rule fired
            "rule": detail.get("rule", ""), "recommendation": detail.get("recommendation", ""),
            "also": ", ".join(detail.get("also") or []),
            # the run's traces folder, relative to the page (DIR/index.html); profiling/trace.py lays it out
            "traces": f"runs/{r['run_id']}/traces/" if isinstance(r.get("trace_path"), str) else None,
            **{k: ev.get(k) for k in ("mfu", "idle_share", "median_kernel_us", "compute_share", "memory_share",
                                      "data_wait_share", "comm_share")},
        })
        for cat, sec in (ev.get("time_by_category_s") or {}).items():
            if sec:
                kernel.append({"run_id": r["run_id"], "params": r["params"], "category": cat, "seconds": float(sec)})
        window, busy = ev.get("window_s"), ev.get("busy_s")
        if kernel and kernel[-1]["run_id"] == r["run_id"] and window and busy is not None and window > busy:
            kernel.append({"run_id": r["run_id"], "params": r["params"], "category": "idle",
                           "seconds": float(window - busy)})
    return pd.DataFrame(rows), (pd.DataFrame(kernel) if kernel else None)


def _plan_gpu(results: pd.DataFrame, wanted: str | None) -> tuple[str, bool]:
    from scalebench.hardware.catalog import get_gpu, match_device_name

    if wanted:
        return get_gpu(wanted).name, False
    for dev in results["device"].dropna().unique():
        spec = match_device_name(str(dev))
        if spec is not None:
            return spec.name, True
    return "H100-SXM", False


def _plan_targets(max_flops: float, opts: ReportOptions) -> pd.DataFrame:
    """The plan's compute targets, sorted: relative (× the largest run) and absolute (FLOPs)."""
    rows = [{"target": f"{f:g}× largest run", "kind": "relative", "flops": max_flops * f}
            for f in opts.plan_factors]
    far_enough = [c for c in sorted(set(opts.plan_flops)) if c >= opts.plan_min_ratio * max_flops]
    rows += [{"target": f"{c:.0e} FLOPs".replace("e+", "e"), "kind": "absolute", "flops": float(c)}
             for c in far_enough[:opts.plan_n_absolute]]
    out = pd.DataFrame(rows, columns=["target", "kind", "flops"]).sort_values("flops", kind="stable")
    return out.reset_index(drop=True)


def _plan(fit: Any, results: pd.DataFrame, max_flops: float,
          opts: ReportOptions) -> tuple[pd.DataFrame, pd.DataFrame, str, Any]:
    """Cost each target's compute-optimal run. GPU count: the least power of two that holds the model and
    finishes within ``opts.plan_max_days`` (at most MAX_PLAN_GPUS); also the wall clock on fixed clusters."""
    from scalebench.planning import calibrate
    from scalebench.planning.targets import cost_compute_targets

    gpu, from_sweep = _plan_gpu(results, opts.plan_gpu)
    calibration, mfu, note = None, 0.40, ""
    if from_sweep:
        calibration = calibrate(results)
        mfu = calibration
    else:
        note = "default MFU 0.40, not calibrated: the sweep ran on no catalogued GPU"
    targets = _plan_targets(max_flops, opts)
    est, clusters, extra = cost_compute_targets(fit, targets["flops"].to_numpy(), gpu=gpu, mfu=mfu,
                                                max_days=opts.plan_max_days, clusters=opts.plan_clusters)
    ratio = targets["flops"].to_numpy() / max_flops
    est.insert(0, "target", targets["target"].to_numpy())
    est.insert(1, "kind", targets["kind"].to_numpy())
    est.insert(2, "factor", ratio)
    est["far"] = ratio > FAR_EXTRAPOLATION
    far = (f"more than {FAR_EXTRAPOLATION:g}× beyond the sweep's largest run ({max_flops:.3g} FLOPs): the fit "
           "was never tested this far, so read N, D and the loss as an order of magnitude")
    est_notes = est["note_list"] if "note_list" in est else est["notes"].map(lambda n: (n,) if n else ())
    lists = [tuple(p for p in (note, e, *ns, far if is_far else "") if p)
             for ns, e, is_far in zip(est_notes, extra, est["far"], strict=True)]
    est["note_list"] = pd.Series(lists, dtype=object, index=est.index)
    est["notes"] = ["; ".join(p) for p in lists]
    clusters["target"] = targets["target"].to_numpy()[clusters["target"].to_numpy()]
    return est.reset_index(drop=True), clusters.reset_index(drop=True), gpu, calibration


# ------------------------------------------------------------------------------------------ public
def build_report_data(sweep_dir: str | Path, options: ReportOptions | None = None) -> ReportData:
    """Load a sweep's store and compute everything the report shows (fits, analyses, plan)."""
    from scalebench.store import load_events, load_meta, load_results, load_steps, load_telemetry

    opts = options or ReportOptions()
    sweep_dir = Path(sweep_dir)
    timings: dict[str, float] = {}
    t = time.perf_counter()
    results = load_results(sweep_dir)
    steps, telemetry, events, meta = (load_steps(sweep_dir), load_telemetry(sweep_dir), load_events(sweep_dir),
                                      load_meta(sweep_dir))
    timings["load"] = time.perf_counter() - t
    spec = meta.get("spec") or {}
    name = str(meta.get("sweep_name") or spec.get("name") or sweep_dir.name)
    missing: dict[str, str] = {}
    notes: list[str] = []
    out: dict[str, Any] = {}

    try:
        from scalebench.planning.targets import modelled_memory_bytes

        results = results.assign(memory_model_bytes=modelled_memory_bytes(results))
    except _EXPECTED as exc:
        results = results.assign(memory_model_bytes=np.nan)
        missing["memory_model"] = _reason(exc)

    frame, loss_col, params_col = _fit_frame(results, **(_saved_columns(sweep_dir) if opts.use_saved_fit else {}))
    max_flops = float(frame["flops"].max()) if len(frame) else None
    from scalebench.laws.isoflop import smoothed_curves

    curves = smoothed_curves(steps, results) if len(steps) else pd.DataFrame()

    # The parametric law (saved by `scalebench fit`, else fitted by scalebench.laws) and its frontier.
    t = time.perf_counter()
    try:
        result, out["fit_origin"], caught = _load_or_fit(sweep_dir, frame, curves if len(curves) else None, opts)
        notes += caught
        out["fit"] = result
        out["n_bootstrap"] = 0 if result.bootstrap_thetas is None else len(result.bootstrap_thetas)
        if result.form.has_frontier:
            out["predictions"] = result.compute_optimal([max_flops * f for f in opts.scale_factors]).assign(
                factor=list(opts.scale_factors))
            lo = float(frame["flops"].min()) / 3
            grid = np.logspace(math.log10(lo), math.log10(max_flops * max(opts.scale_factors) * 1.5), 60)
            out["frontier"] = result.compute_optimal(grid)
    except _EXPECTED as exc:
        missing["fit"] = _reason(exc)
    timings["fit"] = time.perf_counter() - t

    t = time.perf_counter()
    if "fit" in out:
        try:
            out["backtest"] = _backtest(frame, out["fit"].form, opts)
        except _EXPECTED as exc:
            missing["backtest"] = _reason(exc)
    else:
        missing["backtest"] = "no fitted law to backtest"
    timings["backtest"] = time.perf_counter() - t

    t = time.perf_counter()
    out |= _isoflop_parts(frame, curves, opts, missing, notes)
    timings["isoflop"] = time.perf_counter() - t

    t = time.perf_counter()
    out |= _group_parts(results, loss_col, opts, missing, grid_axes(sweep_dir))
    timings["groups"] = time.perf_counter() - t

    try:
        out["bottlenecks"], out["kernel_time"] = _bottlenecks(results)
        if out["kernel_time"] is None:
            missing["kernel_time"] = "the verdicts carry no time by kernel category (no profiler trace)"
    except _EXPECTED as exc:
        missing["bottlenecks"] = _reason(exc)

    t = time.perf_counter()
    if "fit" in out and out["fit"].form.has_frontier:
        try:
            out["plan"], out["plan_clusters"], out["plan_gpu"], out["calibration"] = _plan(
                out["fit"], results, max_flops, opts)
        except _EXPECTED as exc:
            missing["plan"] = _reason(exc)
    else:
        missing["plan"] = "the plan needs a fitted law with a compute-optimal frontier: " + missing.get(
            "fit", f"law {opts.law!r} has none")
    timings["plan"] = time.perf_counter() - t
    if telemetry.empty:
        env = meta.get("env") or {}
        missing["telemetry"] = "no GPU telemetry was recorded" + (
            f" (NVML: {env['nvml_reason']})" if env.get("nvml_reason") else "")

    return ReportData(
        sweep_dir=sweep_dir, name=name, notes=str(spec.get("notes") or ""), options=opts, meta=meta,
        results=results, steps=steps, telemetry=telemetry, events=events, spend=_spend(results),
        loss_col=loss_col, params_col=params_col, missing=missing, notes_fit=tuple(dict.fromkeys(notes)), timings_s=timings, **out,
    )


def _isoflop_parts(frame: pd.DataFrame, curves: pd.DataFrame, opts: ReportOptions, missing: dict[str, str],
                   notes: list[str]) -> dict[str, Any]:
    """Approach 2 on the isoFLOP budgets (else slices through the training curves) and Approach 1 on the
    curves, all from ``scalebench.laws.isoflop``."""
    from scalebench.laws.isoflop import (
        budget_labels,
        curve_slices,
        isoflop_approach1,
        isoflop_approach2,
        slice_minima,
    )

    out: dict[str, Any] = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            iso = isoflop_approach2(frame, bootstrap=opts.bootstrap, seed=opts.seed, confidence=opts.confidence)
            out["isoflop"], out["isoflop_source"] = iso, "runs"
            labels = budget_labels(frame)
            flops = frame["flops"].to_numpy(float)
            level = {lab: float(np.median(flops[labels == lab])) for lab in np.unique(labels)}
            out["isoflop_slices"] = frame.assign(level=[level[x] for x in labels])[["level", "params", "loss", "run_id"]]
            prof = iso.profiles[iso.profiles["c2"] > 0] if iso.profiles is not None else pd.DataFrame()
            out["isoflop_minima"] = iso.frontier.rename(columns={"flops": "level"}).merge(
                prof[["flops", "c0", "c1", "c2"]].rename(columns={"flops": "level"}), on="level", how="left")
            notes += [f"isoFLOP Approach 2: budget {c:.3g} FLOPs dropped: {why}" for c, why in iso.dropped]
        except _EXPECTED as exc:
            reason = _reason(exc)
            if len(curves) and curves["run_id"].nunique() >= 3:
                out["isoflop_slices"] = curve_slices(curves)
                out["isoflop_minima"] = slice_minima(out["isoflop_slices"])
                out["isoflop_source"] = "curves"
                notes.append(f"isoFLOP Approach 2 not possible ({reason}); isoFLOP profiles are slices "
                             "through the training curves instead (mid-schedule losses: read them as a guide)")
            else:
                missing["isoflop"] = reason
        try:
            if len(curves):
                out["approach1"] = isoflop_approach1(curves, bootstrap=opts.bootstrap, seed=opts.seed,
                                                     confidence=opts.confidence)
            else:
                missing["approach1"] = "no training curves in the store"
        except _EXPECTED as exc:
            missing["approach1"] = _reason(exc)
    del caught  # Approach 2's dropped budgets are noted above; the rest repeats what the results say
    return out


def grid_axes(sweep_dir: Path) -> tuple[str, ...]:
    """The names of the sweep's grid axes (a run's ``axes``: optimizer, lr, ...), in first-seen order."""
    from scalebench.store import ResultStore

    names: dict[str, None] = {}
    try:
        with ResultStore(sweep_dir) as store:
            for r in store.runs():
                names.update(dict.fromkeys((r["spec"] or {}).get("axes") or {}))
    except (ScalebenchError, OSError, KeyError, TypeError):
        return ()
    return tuple(names)


def group_axis(results: pd.DataFrame, wanted: str | None = None, axes: tuple[str, ...] = ()) -> str | None:
    """The column the report compares groups by: ``wanted``, else the first of the sweep's grid ``axes`` and
    then ``GROUP_AXES`` with two or more values among the done runs (None when there is none)."""
    done = results[results["status"] == "done"]
    if wanted is not None:
        if wanted not in done:
            raise ConfigError(f"ReportOptions.group_by: no column {wanted!r} in the results; columns are "
                              f"{list(done.columns)}")
        return wanted
    for col in dict.fromkeys((*axes, *GROUP_AXES)):
        if col in done and done[col].dropna().nunique() >= 2:
            return col
    return None


def _group_parts(results: pd.DataFrame, loss_col: str, opts: ReportOptions,
                 missing: dict[str, str], axes: tuple[str, ...] = ()) -> dict[str, Any]:
    """One law per group of the grouping axis (``scalebench.laws.fit_groups``) and each group's frontier."""
    from scalebench.laws.groups import fit_groups

    try:
        axis = group_axis(results, opts.group_by, axes)
    except ConfigError as exc:
        missing["groups"] = _reason(exc)
        return {}
    if axis is None:
        return {}
    done = results[results["status"] == "done"]
    frame = done[["run_id", "params", "tokens", "flops", loss_col, axis]].rename(columns={loss_col: "loss"})
    frame = frame.dropna().reset_index(drop=True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            grouped = fit_groups(frame, opts.law, by=axis, bootstrap=opts.bootstrap, seed=opts.seed,
                                 confidence=opts.confidence, n_refine=opts.n_refine)
    except _EXPECTED as exc:
        missing["groups"] = _reason(exc)
        return {}
    rows = []
    lo, hi = float(frame["flops"].min()) / 3, float(frame["flops"].max()) * 3
    for g, r in grouped.results.items():
        if r.form.has_frontier:
            opt = r.compute_optimal(np.logspace(math.log10(lo), math.log10(hi), 40))
            rows.append(opt[["flops", "loss"]].assign(group=g))
    frontiers = pd.concat(rows, ignore_index=True) if rows else None
    return {"groups": grouped, "group_frontiers": frontiers}
