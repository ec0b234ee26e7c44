"""Render `ReportData` into one self-contained HTML page with the jinja2 template (autoescape on).

Numbers are formatted here into strings; the template only lays them out. Every string from the sweep
(name, notes, run ids, errors, paths) reaches the page through autoescaping; the only markup inserted
unescaped is the SVG that ``figures`` produced (matplotlib escapes the text inside it).
"""

from __future__ import annotations

import datetime as _dt
import json
import math
from typing import Any

import pandas as pd
from markupsafe import Markup

from scalebench.report import figures as _figures
from scalebench.report import narrative
from scalebench.report.data import ReportData

__all__ = ["render_html"]

GIB = 2.0**30


def _num(x: Any, digits: int = 3) -> str:
    try:
        x = float(x)
    except (TypeError, ValueError):
        return "–"
    return f"{x:.{digits}g}" if math.isfinite(x) else "–"


def _interval(row: Any, col: str, fmt=narrative.si) -> str:
    lo, hi = row.get(f"{col}_low"), row.get(f"{col}_high")
    if lo is None or hi is None or not (math.isfinite(lo) and math.isfinite(hi)):
        return ""
    return f"[{fmt(lo)}, {fmt(hi)}]"


def _bytes(x: Any) -> str:
    try:
        x = float(x)
    except (TypeError, ValueError):
        return "–"
    return f"{x / GIB:.3g} GiB" if math.isfinite(x) else "–"


def _pct(x: Any) -> str:
    try:
        x = float(x)
    except (TypeError, ValueError):
        return "–"
    return f"{100 * x:.1f}%" if math.isfinite(x) else "–"


def _fit_context(data: ReportData) -> dict[str, Any]:
    fit = data.fit
    if fit is None:
        return {}
    values = {**fit.params, **({"a": fit.a, "b": fit.b} if fit.a is not None else {})}
    rows = [{"name": k, "value": _num(v, 4),
             "interval": (f"[{_num(fit.intervals[k][0], 4)}, {_num(fit.intervals[k][1], 4)}]"
                          if k in fit.intervals else "")} for k, v in values.items()]
    ctx: dict[str, Any] = {"formula": fit.form.formula, "law": fit.law, "params": rows, "n_points": fit.n_points,
                           "converged": bool(fit.success), "message": fit.message}
    preds = []
    if data.predictions is not None:
        for _, p in data.predictions.iterrows():
            preds.append({"factor": f"{p['factor']:g}×", "flops": f"{p['flops']:.3g}",
                          "params": narrative.si(p["params"]), "params_ci": _interval(p, "params"),
                          "tokens": narrative.si(p["tokens"]), "tokens_ci": _interval(p, "tokens"),
                          "tpp": _num(p["tokens_per_param"]), "tpp_ci": _interval(p, "tokens_per_param", _num),
                          "loss": _num(p["loss"], 4), "loss_ci": _interval(p, "loss", lambda v: _num(v, 4))})
    ctx["predictions"] = preds
    if fit.form.has_frontier and data.max_flops:
        at = fit.compute_optimal([data.max_flops]).iloc[0]
        ctx["tpp_at_max"] = {"flops": f"{data.max_flops:.3g}", "value": _num(at["tokens_per_param"]),
                             "interval": _interval(at, "tokens_per_param", _num)}
    return ctx


def _backtest_context(data: ReportData) -> dict[str, Any] | None:
    bt = data.backtest
    if bt is None:
        return None
    rows = [{"params": narrative.si(r["params"]), "tokens": narrative.si(r["tokens"]), "flops": f"{r['flops']:.3g}",
             "loss": _num(r["loss"], 4), "predicted": _num(r["predicted"], 4),
             "error": f"{100 * r['rel_error']:+.2f}%"} for _, r in bt.errors.iterrows()]
    return {"mape": f"{100 * bt.mape:.2f}%", "n_train": bt.n_train, "n_test": bt.n_test,
            "below": f"{bt.below_flops:.3g}", "rows": rows}


def _runs_context(data: ReportData) -> list[dict[str, str]]:
    rows = []
    for _, r in data.results.sort_values(["params", "flops"]).iterrows():
        rows.append({
            "run_id": str(r["run_id"]), "status": str(r["status"]), "size": str(r["size"] or ""),
            "params": narrative.si(r["params"]), "tokens": narrative.si(r["tokens"]), "flops": _num(r["flops"]),
            "loss": _num(r[data.loss_col], 4), "tokens_per_s": narrative.si(r["tokens_per_s"]),
            "mfu": _pct(r["mfu"]), "mem": _bytes(r["peak_mem_bytes"]),
            "energy": f"{_num(r['energy_j'] / 3.6e6)} kWh" if pd.notna(r["energy_j"]) else "–",
            "wall": _num(r["wall_time_s"]) + " s" if pd.notna(r["wall_time_s"]) else "–",
        })
    return rows


def _bottleneck_context(data: ReportData) -> list[dict[str, str]]:
    b = data.bottlenecks
    if b is None:
        return []
    rows = []
    for _, r in b.iterrows():
        evidence = []
        for key, label, fmt in (("mfu", "MFU", _pct), ("idle_share", "idle", _pct),
                                ("median_kernel_us", "median kernel", lambda v: f"{_num(v)} µs"),
                                ("compute_share", "matmul+attn", _pct), ("memory_share", "elementwise+copy", _pct),
                                ("data_wait_share", "data wait", _pct), ("comm_share", "comm", _pct)):
            v = r.get(key)
            if v is not None and pd.notna(v):
                evidence.append(f"{label} {fmt(v)}")
        rows.append({"run_id": str(r["run_id"]), "params": narrative.si(r["params"]), "verdict": str(r["verdict"]),
                     "rule": str(r["rule"] or ""), "also": str(r["also"] or ""), "evidence": ", ".join(evidence),
                     "recommendation": str(r["recommendation"] or "")})
    return rows


def _plan_context(data: ReportData) -> dict[str, Any] | None:
    p = data.plan
    if p is None:
        return None
    rows = []
    for _, r in p.iterrows():
        loss = _num(r["predicted_loss"], 4)
        if pd.notna(r.get("predicted_loss_lo")) and pd.notna(r.get("predicted_loss_hi")):
            loss += f" [{_num(r['predicted_loss_lo'], 4)}, {_num(r['predicted_loss_hi'], 4)}]"
        cost = f"${r['cost_usd']:,.0f}" if pd.notna(r["cost_usd"]) and r["cost_usd"] >= 1 else (
            f"${r['cost_usd']:.3g}" if pd.notna(r["cost_usd"]) else "–")
        rows.append({
            "factor": f"{r['factor']:g}×", "flops": f"{r['flops']:.3g}", "params": narrative.si(r["params"]),
            "tokens": narrative.si(r["tokens"]), "gpus": _num(r["num_gpus"], 6), "mfu": _pct(r["mfu"]),
            "mfu_source": str(r["mfu_source"]), "mem": _bytes(r["memory_total_bytes"]),
            "time": _duration(r["wall_clock_s"]), "gpu_hours": _num(r["gpu_hours"]), "cost": cost,
            "energy": f"{_num(r['energy_kwh'])} kWh", "loss": loss, "notes": str(r["notes"] or ""),
        })
    cal = data.calibration
    calib = None
    if cal is not None:
        calib = (f"MFU calibrated on {cal.n_runs} {cal.gpu} runs of this sweep: MFU = {cal.mfu_intercept:.3f} + "
                 f"{cal.mfu_slope:.3f}·log10(N), measured {cal.mfu_min_observed:.0%}–{cal.mfu_max_observed:.0%}"
                 + (f"; power {cal.power_fraction:.0%} of TDP" if cal.power_fraction else "")
                 + (f"; measured/modelled memory {cal.memory_ratio:.2f}" if cal.memory_ratio else "") + ".")
    return {"gpu": data.plan_gpu, "rows": rows, "calibration": calib}


def _duration(s: Any) -> str:
    try:
        s = float(s)
    except (TypeError, ValueError):
        return "–"
    if not math.isfinite(s):
        return "–"
    for unit, size in (("days", 86400), ("h", 3600), ("min", 60)):
        if s >= size:
            return f"{s / size:.3g} {unit}"
    return f"{s:.3g} s"


def _repro_context(data: ReportData) -> dict[str, Any]:
    meta = data.meta
    env = meta.get("env") or {}
    corpus = meta.get("corpus") or {}

    def flat(d: dict) -> list[tuple[str, str]]:
        return [(str(k), v if isinstance(v, str) else json.dumps(v)) for k, v in sorted(d.items())]

    bad = data.results[data.results["status"].isin(["failed", "diverged", "pending", "running"])]
    problems = [{"run_id": str(r["run_id"]), "status": str(r["status"]), "size": str(r["size"] or ""),
                 "budget": str(r["budget"] or ""), "attempts": str(r["attempts"]),
                 "error": str(r["error"] or "(no error text recorded)")} for _, r in bad.iterrows()]
    events = [{"run_id": str(e["run_id"] or ""), "kind": str(e["kind"]), "message": str(e["message"]),
               "t": _dt.datetime.fromtimestamp(float(e["t"]), _dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")}
              for _, e in data.events.head(200).iterrows()]
    return {"spec": json.dumps(meta.get("spec") or {}, indent=2, sort_keys=True), "env": flat(env),
            "corpus": flat(corpus), "problems": problems, "events": events, "n_events": len(data.events),
            "plan_notes": [str(n) for n in meta.get("plan_notes") or []]}


def render_html(data: ReportData, *, generated_at: str | None = None) -> str:
    """The complete HTML page for ``data``."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("scalebench.report", "templates"),
        autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
    )
    figs = _figures.render_figures(data)
    svgs = {k: Markup(f.svg) if f.svg else None for k, f in figs.items()}
    spend = data.spend
    ctx = {
        "name": data.name, "notes": data.notes, "sweep_dir": str(data.sweep_dir),
        "generated_at": generated_at or _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "version": (data.meta.get("env") or {}).get("scalebench", ""),
        "figures": figs, "svgs": svgs, "missing": data.missing, "fit_notes": list(data.notes_fit),
        "fit_sentences": narrative.fit_summary(data), "fit": _fit_context(data), "loss_col": data.loss_col,
        "backtest": _backtest_context(data), "n_bootstrap": data.n_bootstrap,
        "confidence": f"{100 * data.options.confidence:g}%",
        "spend": {"runs": spend.n_runs, "by_status": ", ".join(f"{n} {s}" for s, n in spend.by_status.items()),
                  "kind": spend.device_kind, "hours": _num(spend.device_hours),
                  "energy": f"{_num(spend.energy_kwh)} kWh" if spend.energy_kwh is not None else None,
                  "flops": f"{spend.flops:.3g}"},
        "runs": _runs_context(data), "bottleneck_text": narrative.bottleneck_summary(data),
        "bottlenecks": _bottleneck_context(data), "plan": _plan_context(data), "repro": _repro_context(data),
    }
    return env.get_template("report.html").render(**ctx)
