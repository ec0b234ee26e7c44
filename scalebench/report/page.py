"""Render `ReportData` into one self-contained HTML page with the jinja2 template (autoescape on).

Numbers are formatted here into strings; the template only lays them out. Every string from the sweep
(name, notes, run ids, errors, paths) reaches the page through autoescaping; the only markup inserted
unescaped is the SVG that ``figures`` produced (matplotlib escapes the text inside it).
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import re
from typing import Any

import pandas as pd
from markupsafe import Markup, escape

from scalebench.report import figures as _figures
from scalebench.report import narrative
from scalebench.report.advice import advice_context
from scalebench.report.data import FAR_EXTRAPOLATION, ReportData, mfu_basis, rss_note

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
    diag = fit.diagnostics
    ctx: dict[str, Any] = {"formula": fit.form.formula, "law": fit.law, "params": rows, "n_points": fit.n_points,
                           "converged": bool(fit.success), "message": fit.message,
                           "verdict": diag.verdict if diag else "not diagnosed",
                           "verdict_text": narrative.verdict_sentence(data) or "",
                           "reasons": list(diag.reasons) if diag else [],
                           "cautions": list(diag.cautions) if diag else [],
                           "suggestions": list(diag.suggestions) if diag else [],
                           "origin": data.fit_origin, "trusted": diag is None or diag.verdict == "reliable"}
    preds = []
    if data.predictions is not None:
        for _, p in data.predictions.iterrows():
            preds.append({"factor": f"{p['factor']:g}×", "flops": f"{p['flops']:.3g}",
                          "params": narrative.si(p["params"]), "params_ci": _interval(p, "params"),
                          "tokens": narrative.si(p["tokens"]), "tokens_ci": _interval(p, "tokens"),
                          "tpp": _num(p["tokens_per_param"]), "tpp_ci": _interval(p, "tokens_per_param", _num),
                          "loss": _num(p["loss"], 4), "loss_ci": _interval(p, "loss", lambda v: _num(v, 4)),
                          "caveats": [c for c in p.get("caveats", ()) if not c.startswith(("from a ", "from an "))]})
    ctx["predictions"] = preds
    if fit.form.has_frontier and data.max_flops:
        at = fit.compute_optimal([data.max_flops]).iloc[0]
        ctx["tpp_at_max"] = {"flops": f"{data.max_flops:.3g}", "value": _num(at["tokens_per_param"]),
                             "interval": _interval(at, "tokens_per_param", _num)}
    return ctx


def _approaches_context(data: ReportData) -> list[dict[str, str]]:
    """Approaches 1, 2 and 3 side by side: a and b with their intervals and each one's verdict."""
    rows = []
    pct = f"{100 * data.options.confidence:g}%"

    def ci(intervals: dict, k: str) -> str:
        lo, hi = intervals.get(k, (math.nan, math.nan))
        return f"[{_num(lo, 3)}, {_num(hi, 3)}]" if math.isfinite(lo) and math.isfinite(hi) else "–"

    fit = data.fit
    if fit is not None and fit.a is not None:
        rows.append({"name": "3: parametric law", "a": _num(fit.a, 3), "a_ci": ci(fit.intervals, "a"),
                     "b": _num(fit.b, 3), "b_ci": ci(fit.intervals, "b"), "verdict": fit.verdict or "–",
                     "basis": f"{fit.n_points} runs"})
    for res, name, why in ((data.isoflop, "2: isoFLOP profiles", "isoflop"),
                           (data.approach1, "1: training-curve envelope", "approach1")):
        if res is None:
            rows.append({"name": name, "a": "–", "a_ci": "", "b": "–", "b_ci": "", "verdict": "–",
                         "basis": data.missing.get(why, "not possible on these runs")})
            continue
        unit = "budgets" if res.approach == 2 else "compute levels"
        rows.append({"name": name, "a": _num(res.a, 3), "a_ci": ci(res.intervals, "a"), "b": _num(res.b, 3),
                     "b_ci": ci(res.intervals, "b"), "verdict": res.verdict or "–",
                     "basis": f"{res.n_budgets} {unit}" + (f", {len(res.dropped)} dropped" if res.dropped else "")})
    for r in rows:
        r["pct"] = pct
    return rows


def _groups_context(data: ReportData) -> dict[str, Any] | None:
    g = data.groups
    if g is None:
        return None
    comp = g.comparison()
    rows = []
    for group, sub in comp.groupby("group", sort=False):
        cells = {}
        for row in sub.itertuples(index=False):
            ci = f"[{_num(row.low, 3)}, {_num(row.high, 3)}]" if math.isfinite(row.low) else ""
            cells[row.quantity] = f"{_num(row.value, 3)} {ci}".strip()
        rows.append({"group": str(group), "cells": cells, "n": int(sub["n_points"].iloc[0]),
                     "verdict": str(sub["verdict"].iloc[0])})
    quantities = list(dict.fromkeys(comp["quantity"]))
    return {"by": g.by, "rows": rows, "quantities": quantities, "differences": g.differences(),
            "errors": [f"{k}: {v}" for k, v in g.errors.items()]}


def _backtest_context(data: ReportData) -> dict[str, Any] | None:
    bt = data.backtest
    if bt is None:
        return None
    rows = [{"params": narrative.si(r["params"]), "tokens": narrative.si(r["tokens"]), "flops": f"{r['flops']:.3g}",
             "loss": _num(r["loss"], 4), "predicted": _num(r["predicted"], 4),
             "error": f"{100 * r['rel_error']:+.2f}%"} for _, r in bt.errors.iterrows()]
    return {"mape": f"{100 * bt.mape:.2f}%", "n_train": bt.n_train, "n_test": bt.n_test,
            "below": f"{bt.below_flops:.3g}", "rows": rows}


def _runs_context(data: ReportData) -> dict[str, Any]:
    mfu_col, mfu_text = mfu_basis(data)
    rss_only = rss_note(data) is not None
    rows = []
    for _, r in data.results.sort_values(["params", "flops"]).iterrows():
        mem = _bytes(r["peak_mem_bytes"])
        if mem == "–" and rss_only and pd.notna(r.get("peak_rss_bytes")):
            mem = f"{float(r['peak_rss_bytes']) / 2**20:,.0f} MiB RSS"
        rows.append({
            "run_id": str(r["run_id"]), "status": str(r["status"]), "size": str(r["size"] or ""),
            "params": narrative.si(r["params"]), "tokens": narrative.si(r["tokens"]), "flops": _num(r["flops"]),
            "loss": _num(r[data.loss_col], 4), "tokens_per_s": narrative.si(r["tokens_per_s"]),
            "mfu": _pct(r[mfu_col]) if mfu_col else "–", "mem": mem,
            "energy": f"{_num(r['energy_j'] / 3.6e6)} kWh" if pd.notna(r["energy_j"]) else "–",
            "wall": _num(r["wall_time_s"]) + " s" if pd.notna(r["wall_time_s"]) else "–",
        })
    notes = [mfu_text] if mfu_text else []
    if rss_only:
        notes.append("Peak memory: device memory is not measured on a CPU; RSS is the worker process's peak "
                     "resident memory, which includes the Python and torch runtime.")
    return {"rows": rows, "notes": notes,
            "mfu_header": "MFU (measured peak)" if mfu_col == "mfu_measured_peak" else "MFU",
            "mem_header": "peak memory"}


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
                     "recommendation": str(r["recommendation"] or ""),
                     "traces": r.get("traces") if isinstance(r.get("traces"), str) else ""})
    return rows


def _amount(x: Any, unit: str = "", *, money: bool = False) -> str:
    """A quantity for the plan: '< 0.01' rather than 4.87e-05 when it rounds to nothing."""
    try:
        x = float(x)
    except (TypeError, ValueError):
        return "–"
    if not math.isfinite(x):
        return "–"
    sign, tail = ("$", "") if money else ("", f" {unit}" if unit else "")
    if x < 0.01:
        return f"< {sign}0.01{tail}"
    if x < 100:
        return f"{sign}{x:.3g}{tail}"
    return f"{sign}{x:,.0f}{tail}"


def _ratio(x: float) -> str:
    return f"{x:.2g}×".replace("e+0", "e").replace("e+", "e") if x >= 1e4 else f"{x:,.0f}×"


def _plan_context(data: ReportData) -> dict[str, Any] | None:
    p = data.plan
    if p is None:
        return None
    lists = [tuple(x) for x in p["note_list"]] if "note_list" in p else [
        (str(n),) if n else () for n in p["notes"]]
    common = [n for n in dict.fromkeys(n for ls in lists for n in ls) if all(n in ls for ls in lists)]
    footnotes: list[str] = []
    rows = []
    for (_, r), notes in zip(p.iterrows(), lists, strict=True):
        marks = []
        for n in notes:
            if n in common:
                continue
            if n not in footnotes:
                footnotes.append(n)
            marks.append(footnotes.index(n) + 1)
        interval = ""
        if pd.notna(r.get("predicted_loss_lo")) and pd.notna(r.get("predicted_loss_hi")):
            interval = f"[{_num(r['predicted_loss_lo'], 3)}, {_num(r['predicted_loss_hi'], 3)}]"
        rows.append({
            "target": str(r["target"]), "kind": str(r["kind"]), "flops": f"{r['flops']:.3g}",
            "beyond": _ratio(float(r["factor"])), "far": bool(r["far"]), "params": narrative.si(r["params"]),
            "tokens": narrative.si(r["tokens"]), "gpus": _num(r["num_gpus"], 6), "mfu": _pct(r["mfu"]),
            "mem": _bytes(r["memory_total_bytes"]), "time": _duration(r["wall_clock_s"]),
            "gpu_hours": _amount(r["gpu_hours"]), "cost": _amount(r["cost_usd"], money=True),
            "energy": _amount(r["energy_kwh"], "kWh"), "loss": _num(r["predicted_loss"], 4), "loss_ci": interval,
            "marks": marks, "title": "; ".join(notes),
        })
    if data.calibration is not None:
        mfu_source = "MFU from the calibration below"
    else:
        mfu_source = "MFU " + ", ".join(f"{_pct(v)} assumed" for v in sorted(set(p["mfu"].round(4))))
    clusters = []
    c = data.plan_clusters
    sizes = sorted(int(n) for n in c["num_gpus"].unique()) if c is not None else []
    if c is not None:
        for target, g in c.groupby("target", sort=False):
            by_n = {int(n): (bool(f), t) for n, f, t in zip(g["num_gpus"], g["fits"], g["wall_clock_s"], strict=True)}
            clusters.append({"target": str(target), "flops": f"{float(g['flops'].iloc[0]):.3g}",
                             "times": [(_duration(by_n[n][1]) if by_n[n][0] else "does not fit")
                                       if n in by_n else "–" for n in sizes]})
    cal = data.calibration
    calib = None
    if cal is not None:
        calib = (f"MFU calibrated on {cal.n_runs} {cal.gpu} runs of this sweep: MFU = {cal.mfu_intercept:.3f} + "
                 f"{cal.mfu_slope:.3f}·log10(N), measured {cal.mfu_min_observed:.0%}–{cal.mfu_max_observed:.0%}"
                 + (f"; power {cal.power_fraction:.0%} of TDP" if cal.power_fraction else "")
                 + (f"; measured/modelled memory {cal.memory_ratio:.2f}" if cal.memory_ratio else "") + ".")
    opts = data.options
    return {"gpu": data.plan_gpu, "rows": rows, "calibration": calib, "common": common, "footnotes": footnotes,
            "mfu_source": mfu_source, "max_days": f"{opts.plan_max_days:g}",
            "max_flops": f"{data.max_flops:.3g}" if data.max_flops else "–",
            "far": f"{FAR_EXTRAPOLATION:g}", "absolute": ", ".join(f"{f:.0e}".replace("e+", "e") for f in
                                                          sorted(opts.plan_flops)),
            "min_ratio": f"{opts.plan_min_ratio:g}", "n_absolute": opts.plan_n_absolute, "cluster_sizes": sizes, "clusters": clusters}


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
    return f"{s:.3g} s" if s >= 1 else "< 1 s"


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


def _code(text: Any) -> Markup:
    """Escape ``text`` and show its `backticked` spans as code."""
    return Markup(re.sub(r"`([^`<>]+)`", r"<code>\1</code>", str(escape(text))))


def render_html(data: ReportData, *, generated_at: str | None = None, mode: Any = None) -> str:
    """The complete HTML page for ``data``; ``mode``: how its figures are rendered (a
    ``figures.RenderMode``; default ``figures.default_mode()``), which changes no number on the page."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("scalebench.report", "templates"),
        autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
    )
    env.filters["code"] = _code
    figs = _figures.render_figures(data, _figures.default_mode() if mode is None else mode)
    svgs = {k: Markup(f.svg) if f.svg else None for k, f in figs.items()}
    spend = data.spend
    ctx = {
        "name": data.name, "notes": data.notes, "sweep_dir": str(data.sweep_dir),
        "generated_at": generated_at or _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "version": (data.meta.get("env") or {}).get("scalebench", ""),
        "figures": figs, "svgs": svgs, "missing": data.missing, "fit_notes": list(data.notes_fit),
        "fit_sentences": narrative.fit_summary(data), "fit": _fit_context(data), "loss_col": data.loss_col, "params_col": data.params_col,
        "backtest": _backtest_context(data), "n_bootstrap": data.n_bootstrap,
        "approaches": _approaches_context(data), "groups": _groups_context(data),
        "confidence": f"{100 * data.options.confidence:g}%",
        "spend": {"runs": spend.n_runs, "by_status": ", ".join(f"{n} {s}" for s, n in spend.by_status.items()),
                  "kind": spend.device_kind, "hours": _num(spend.device_hours),
                  "energy": f"{_num(spend.energy_kwh)} kWh" if spend.energy_kwh is not None else None,
                  "flops": f"{spend.flops:.3g}"},
        "runs": _runs_context(data), "bottleneck_text": narrative.bottleneck_summary(data),
        "bottlenecks": _bottleneck_context(data), "plan": _plan_context(data), "repro": _repro_context(data),
        "advice": advice_context(data.sweep_dir, fit=data.fit, max_flops=data.max_flops),  # saved by `next`
    }
    return env.get_template("report.html").render(**ctx)
