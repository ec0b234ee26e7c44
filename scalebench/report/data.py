"""Everything the report shows, computed from a sweep's store: one `ReportData` value, no drawing.

Optional parts (the fit, isoFLOP analyses, the backtest, bottlenecks, the plan) are computed
independently; one that cannot be computed leaves ``None`` and a reason in ``ReportData.missing`` under
its section key, so the page says what is missing and why instead of failing.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from scalebench.errors import ConfigError, FitError, ScalebenchError
from scalebench.laws.analysis import GROUP_AXES, group_axis  # the page's grouping rule is the analysis's
from scalebench.laws.trust import MAX_EXTRAPOLATION as FAR_EXTRAPOLATION  # one extrapolation rule: laws.trust
from scalebench.planning.targets import MAX_PLAN_GPUS  # the plan's GPU counts

__all__ = ["GROUP_AXES", "ReportData", "ReportOptions", "Spend", "build_report_data", "group_axis", "mfu_basis", "rss_note"]

# Errors an optional component may raise on data it cannot use; anything else is a bug and propagates.
_EXPECTED = (ScalebenchError, ValueError, KeyError, ImportError, np.linalg.LinAlgError)



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


def _caveats(fit: Any, flops: Any, tokens_per_param: Any) -> list[tuple[str, ...]]:
    """``laws.trust.caveats`` of each (compute, tokens per parameter): the marks every surface gives."""
    from scalebench.laws.trust import caveats

    return [caveats(fit, flops=float(c), tokens_per_param=float(r)) for c, r in zip(flops, tokens_per_param,
                                                                                    strict=True)]


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
    est_notes = est["note_list"] if "note_list" in est else est["notes"].map(lambda n: (n,) if n else ())
    marks = _caveats(fit, est["flops"], est["tokens"] / est["params"])  # the verdict leads the section itself
    lists = [tuple(p for p in (note, e, *ns, *(m for m in ms if not m.startswith(("from a ", "from an ")))) if p)
             for ns, e, ms in zip(est_notes, extra, marks, strict=True)]
    est["note_list"] = pd.Series(lists, dtype=object, index=est.index)
    est["notes"] = ["; ".join(p) for p in lists]
    clusters["target"] = targets["target"].to_numpy()[clusters["target"].to_numpy()]
    return est.reset_index(drop=True), clusters.reset_index(drop=True), gpu, calibration


# ------------------------------------------------------------------------------------------ public
def build_report_data(sweep_dir: Any, options: ReportOptions | None = None) -> ReportData:
    """Everything the page shows for a sweep (a folder or a ``scalebench.Sweep``): the laws' analysis as
    ``fit.json`` holds it (``laws.analysis.analyse`` completes and saves it first, by the one fitting path,
    when it is missing or stale), the bottlenecks and the plan. Nothing here fits a law."""
    from scalebench.laws.analysis import analyse
    from scalebench.laws.sweepfit import as_sweep

    opts = options or ReportOptions()
    t = time.perf_counter()
    sweep = as_sweep(sweep_dir)
    results, steps, telemetry, events, meta = sweep.results, sweep.steps, sweep.telemetry, sweep.events, sweep.meta
    timings: dict[str, float] = {"load": time.perf_counter() - t}
    missing: dict[str, str] = {}
    out: dict[str, Any] = {}

    try:
        from scalebench.planning.targets import modelled_memory_bytes

        results = results.assign(memory_model_bytes=modelled_memory_bytes(results))
    except _EXPECTED as exc:
        results = results.assign(memory_model_bytes=np.nan)
        missing["memory_model"] = _reason(exc)

    t = time.perf_counter()
    analysis = analyse(sweep, opts.law, use_saved=opts.use_saved_fit, group_by=opts.group_by,
                       bootstrap=opts.bootstrap, seed=opts.seed, confidence=opts.confidence, n_refine=opts.n_refine)
    timings["analysis"] = time.perf_counter() - t
    missing |= analysis.missing
    for part in ("isoflop", "isoflop_source", "isoflop_slices", "isoflop_minima", "approach1", "groups"):
        out[part] = getattr(analysis, part)
    loss_col = analysis.loss_col
    params_col = str((analysis.fit.metadata.get("params_col") if analysis.fit is not None else None) or "params")
    done = results[results["status"] == "done"]
    flops = pd.to_numeric(done["flops"], errors="coerce").dropna()
    max_flops = float(flops.max()) if len(flops) else None
    result = analysis.fit
    if result is not None and analysis.group_by is not None:  # never a pooled headline from mixed groups
        values = ", ".join(str(v) for v in sorted(done[analysis.group_by].dropna().unique(), key=str))
        missing["fit"] = (f"the runs mix values of {analysis.group_by} ({values}): one law fitted to them pooled "
                          f"describes none of them, so this page shows one law per {analysis.group_by} (the "
                          f"comparison below); `scalebench fit {sweep.path} --group-by {analysis.group_by}` prints "
                          "them")
        result = None
    if result is not None:
        out |= {"fit": result, "fit_origin": analysis.fit_origin,
                "n_bootstrap": 0 if result.bootstrap_thetas is None else len(result.bootstrap_thetas)}
        if result.form.has_frontier and max_flops is not None:
            pred = result.compute_optimal([max_flops * f for f in opts.scale_factors])
            out["predictions"] = pred.assign(factor=list(opts.scale_factors), caveats=_caveats(
                result, pred["flops"], pred["tokens_per_param"]))
            grid = np.logspace(math.log10(float(flops.min()) / 3),
                               math.log10(max_flops * max(opts.scale_factors) * 1.5), 60)
            out["frontier"] = result.compute_optimal(grid)
        if result.backtest is not None:
            out["backtest"] = result.backtest
        else:
            missing["backtest"] = (f"a backtest needs more than {result.form.n_params + 1} runs (the law's "
                                   "parameters + 1) at distinct compute so that some are left to predict; this "
                                   f"sweep has {result.n_points} finished runs")
    else:
        missing["backtest"] = "no fitted law to backtest" + (
            f" (one law per {analysis.group_by}: see the comparison)" if analysis.group_by else "")
    if out.get("groups") is not None:
        out["group_frontiers"] = _group_frontiers(out["groups"], flops)

    try:
        out["bottlenecks"], out["kernel_time"] = _bottlenecks(results)
        if out["kernel_time"] is None:
            missing["kernel_time"] = "the verdicts carry no time by kernel category (no profiler trace)"
    except _EXPECTED as exc:
        missing["bottlenecks"] = _reason(exc)

    t = time.perf_counter()
    if result is not None and result.form.has_frontier and max_flops is not None:
        try:
            out["plan"], out["plan_clusters"], out["plan_gpu"], out["calibration"] = _plan(
                result, results, max_flops, opts)
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
        sweep_dir=sweep.path, name=sweep.name, notes=str(sweep.spec.get("notes") or ""), options=opts, meta=meta,
        results=results, steps=steps, telemetry=telemetry, events=events, spend=_spend(results),
        loss_col=loss_col, params_col=params_col, missing=missing, notes_fit=analysis.notes, timings_s=timings, **out,
    )


def _group_frontiers(grouped: Any, flops: pd.Series) -> pd.DataFrame | None:
    """Each determined group's compute-optimal frontier over the sweep's compute (derived from its fit)."""
    rows = []
    lo, hi = float(flops.min()) / 3, float(flops.max()) * 3
    for g, r in grouped.results.items():
        if r.form.has_frontier:
            opt = r.compute_optimal(np.logspace(math.log10(lo), math.log10(hi), 40))
            rows.append(opt[["flops", "loss"]].assign(group=g))
    return pd.concat(rows, ignore_index=True) if rows else None


def grid_axes(sweep_dir: Path) -> tuple[str, ...]:
    """The names of the sweep's grid axes (a run's ``axes``: optimizer, lr, ...), in first-seen order."""
    from scalebench.laws.sweepfit import as_sweep

    try:
        return as_sweep(sweep_dir).axes
    except (ScalebenchError, OSError):
        return ()
