"""Everything the laws say about a sweep, as the page shows it, saved in ``DIR/fit.json``: the fit (with
residuals and backtest), one fit per group of the sweep's axis, and the isoFLOP analyses (Approach 2 on the
runs' budgets, else slices through the training curves; Approach 1 on the curves).

``scalebench fit DIR`` writes the fit; :func:`analyse` completes the rest with the same inputs
(``laws.sweepfit``) and saves it beside the fit, so the report renders saved results and computes no fit of
its own. A part that cannot be computed is recorded with its reason (``missing``) and the page says why.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from scalebench.errors import ConfigError, ScalebenchError
from scalebench.store import NOT_GROUPS

ANALYSIS_KEY = "analysis"  # the key of fit.json that holds the rest of the analysis
NEXT_FILE = "next.json"  # where `scalebench next DIR` saves its proposal (the page's "Next runs")
# Columns that name a configuration axis of a sweep; with 2+ values among done runs the page compares them.
GROUP_AXES = ("family", "optimizer", "schedule", "dataset", "group")
# Errors an optional analysis may raise on data it cannot use; anything else is a bug and propagates.
EXPECTED = (ScalebenchError, ValueError, KeyError, ImportError, np.linalg.LinAlgError)


@dataclass(frozen=True, kw_only=True, eq=False)
class SweepAnalysis:
    """``fit`` (a `FitResult`, or None with ``missing["fit"]``) and where it came from (``fit_origin``:
    ``saved`` or ``refit: why``); ``groups`` (a `GroupedFit`) over column ``group_by``; ``isoflop`` (Approach
    2) or slices through the curves (``isoflop_source`` ``runs`` or ``curves``), ``approach1``; ``missing``
    maps a part to why it is absent; ``notes`` are the warnings the analyses raised."""

    law: str
    loss_col: str
    fit: Any = None
    fit_origin: str = ""
    groups: Any = None
    group_by: str | None = None
    isoflop: Any = None
    isoflop_source: str = ""
    isoflop_slices: pd.DataFrame | None = None
    isoflop_minima: pd.DataFrame | None = None
    approach1: Any = None
    missing: dict[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    saved_to: str | None = None  # fit.json, or None when the folder could not be written (and why in notes)


def reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text if isinstance(exc, ScalebenchError) else f"{type(exc).__name__}: {text}"


def group_axis(results: pd.DataFrame, wanted: str | None = None, axes: tuple[str, ...] = ()) -> str | None:
    """The column compared by group: ``wanted``, else ``group`` where the runs differ in several grid axes (the
    store names each combination), else the first of the sweep's grid ``axes`` and then ``GROUP_AXES`` with two
    or more values among the done runs (None when there is none)."""
    done = results[results["status"] == "done"]
    if wanted is not None:
        if wanted not in done:
            raise ConfigError(f"group_by: no column {wanted!r} in the results; columns are {list(done.columns)}")
        return wanted
    for col in dict.fromkeys(("group", *axes, *GROUP_AXES)):
        if col in NOT_GROUPS:  # replicates of one cell, not groups with laws of their own
            continue
        if col in done and done[col].dropna().nunique() >= 2:
            return col
    return None


# --- isoFLOP analyses -------------------------------------------------------------------------------------
def _isoflop_parts(frame: pd.DataFrame, curves: pd.DataFrame | None, bootstrap: int, seed: int,
                   confidence: float, missing: dict[str, str], notes: list[str]) -> dict[str, Any]:
    from scalebench.laws.isoflop import (
        budget_labels,
        curve_slices,
        isoflop_approach1,
        isoflop_approach2,
        slice_minima,
    )

    out: dict[str, Any] = {}
    curves = curves if curves is not None else pd.DataFrame()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            iso = isoflop_approach2(frame, bootstrap=bootstrap, seed=seed, confidence=confidence)
            out["isoflop"], out["isoflop_source"] = iso, "runs"
            labels = budget_labels(frame)
            flops = frame["flops"].to_numpy(float)
            level = {lab: float(np.median(flops[labels == lab])) for lab in np.unique(labels)}
            out["isoflop_slices"] = frame.assign(level=[level[x] for x in labels])[["level", "params", "loss",
                                                                                   "run_id"]]
            prof = iso.profiles[iso.profiles["c2"] > 0] if iso.profiles is not None else pd.DataFrame()
            out["isoflop_minima"] = iso.frontier.rename(columns={"flops": "level"}).merge(
                prof[["flops", "c0", "c1", "c2"]].rename(columns={"flops": "level"}), on="level", how="left")
            notes += [f"isoFLOP Approach 2: budget {c:.3g} FLOPs dropped: {why}" for c, why in iso.dropped]
        except EXPECTED as exc:
            why = reason(exc)
            if len(curves) and curves["run_id"].nunique() >= 3:
                out["isoflop_slices"] = curve_slices(curves)
                out["isoflop_minima"] = slice_minima(out["isoflop_slices"])
                out["isoflop_source"] = "curves"
                notes.append(f"isoFLOP Approach 2 not possible ({why}); isoFLOP profiles are slices "
                             "through the training curves instead (mid-schedule losses: read them as a guide)")
            else:
                missing["isoflop"] = why
        try:
            if len(curves):
                out["approach1"] = isoflop_approach1(curves, bootstrap=bootstrap, seed=seed, confidence=confidence)
            else:
                missing["approach1"] = "no training curves in the store"
        except EXPECTED as exc:
            missing["approach1"] = reason(exc)
    return out


def isoflop_doc(result: Any) -> dict[str, Any] | None:
    from scalebench._util import json_safe
    from scalebench.laws.result import frame_doc

    if result is None:
        return None
    return json_safe({
        "approach": result.approach, "a": result.a, "b": result.b, "log_params_coef": result.log_params_coef,
        "log_tokens_coef": result.log_tokens_coef, "frontier": frame_doc(result.frontier),
        "profiles": frame_doc(result.profiles), "intervals": {k: list(v) for k, v in result.intervals.items()},
        "confidence": result.confidence, "n_bootstrap": result.n_bootstrap,
        "bootstrap_ab": None if result.bootstrap_ab is None else result.bootstrap_ab.tolist(),
        "dropped": [list(d) for d in result.dropped], "window": result.window,
        "diagnostics": None if result.diagnostics is None else result.diagnostics.summary(),
    })


def isoflop_from_doc(doc: dict[str, Any] | None) -> Any:
    from scalebench.laws.diagnostics import Diagnostics
    from scalebench.laws.isoflop import IsoFlopResult
    from scalebench.laws.result import doc_frame, json_nan

    if doc is None:
        return None
    boot = doc.get("bootstrap_ab")
    return IsoFlopResult(
        approach=int(doc["approach"]), a=json_nan(doc["a"]), b=json_nan(doc["b"]),
        log_params_coef=json_nan(doc["log_params_coef"]), log_tokens_coef=json_nan(doc["log_tokens_coef"]),
        frontier=doc_frame(doc["frontier"]), profiles=doc_frame(doc.get("profiles")),
        intervals={k: (json_nan(v[0]), json_nan(v[1])) for k, v in (doc.get("intervals") or {}).items()},
        confidence=float(doc["confidence"]), n_bootstrap=int(doc["n_bootstrap"]),
        bootstrap_ab=None if boot is None else np.array(boot, dtype=float).reshape(-1, 2),
        dropped=tuple((float(c), str(w)) for c, w in doc.get("dropped") or ()), window=doc.get("window"),
        diagnostics=None if doc.get("diagnostics") is None else Diagnostics.from_summary(doc["diagnostics"]),
    )


# --- groups -----------------------------------------------------------------------------------------------
def groups_doc(grouped: Any) -> dict[str, Any] | None:
    from scalebench._util import json_safe
    from scalebench.laws.result import fit_doc

    if grouped is None:
        return None
    return {"by": grouped.by, "fits": [{"value": json_safe(v), "fit": fit_doc(r)} for v, r in grouped.results.items()],
            "errors": [{"value": json_safe(v), "error": e} for v, e in grouped.errors.items()]}


def groups_from_doc(doc: dict[str, Any] | None, where: str) -> Any:
    from scalebench.laws.groups import GroupedFit
    from scalebench.laws.result import fit_from_doc

    if doc is None:
        return None
    return GroupedFit(by=doc["by"], results={f["value"]: fit_from_doc(f["fit"], where) for f in doc["fits"]},
                      errors={e["value"]: e["error"] for e in doc.get("errors") or ()})


# --- the whole analysis, saved and loaded -------------------------------------------------------------------
def _key(fit: Any, group_by: str | None, bootstrap: int, seed: int, confidence: float) -> dict[str, Any]:
    """What the saved analysis was computed from: the fit's data and law, and the options."""
    return {"law": fit.law if fit is not None else None,
            "data_fingerprint": None if fit is None else fit.metadata.get("data_fingerprint"),
            "group_by": group_by, "bootstrap": bootstrap, "seed": seed, "confidence": confidence}


def analysis_doc(a: SweepAnalysis, key: dict[str, Any]) -> dict[str, Any]:
    from scalebench.laws.result import frame_doc

    return {"key": key, "loss_col": a.loss_col, "group_by": a.group_by, "groups": groups_doc(a.groups),
            "isoflop": isoflop_doc(a.isoflop), "isoflop_source": a.isoflop_source,
            "isoflop_slices": frame_doc(a.isoflop_slices), "isoflop_minima": frame_doc(a.isoflop_minima),
            "approach1": isoflop_doc(a.approach1), "missing": dict(a.missing), "notes": list(a.notes)}


def _saved(sweep: Any) -> tuple[Any, dict[str, Any] | None, str]:
    """(the saved fit or None, its analysis section or None, why there is no usable fit)."""
    import json

    from scalebench.errors import FitError
    from scalebench.laws.result import FIT_FILE, fit_from_doc

    path = sweep.path / FIT_FILE
    if not path.is_file():
        return None, None, f"no {FIT_FILE} (`scalebench fit {sweep.path}` saves one)"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        return fit_from_doc(doc, path), doc.get(ANALYSIS_KEY), ""
    except (OSError, ValueError, FitError) as exc:
        return None, None, f"{FIT_FILE} unreadable ({exc})"


def _current(sweep: Any, saved: Any, law: str, loss_col: str | None) -> str:
    """Why ``saved`` is not this sweep's fit of ``law`` now ('' when it is)."""
    from scalebench.laws.forms import get_law
    from scalebench.laws.io import data_fingerprint  # not laws.fitting: a saved fit is checked without scipy
    from scalebench.laws.result import FIT_FILE
    from scalebench.laws.sweepfit import _frame

    if getattr(saved.form, "base", saved.form).name != get_law(law).name:
        return f"{FIT_FILE} holds law {saved.law!r}, the report was asked for {get_law(law).name!r}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            frame, col = _frame(sweep, saved.form, loss_col or saved.metadata.get("loss_col"),
                                {"params_col": saved.metadata.get("params_col") or "params"})
        except EXPECTED as exc:
            return f"the runs cannot be fitted now ({reason(exc)})"
        from scalebench.laws.io import drop_duplicate_runs

        current = data_fingerprint(drop_duplicate_runs(frame, saved.form.variables), saved.form.variables)
    if saved.metadata.get("data_fingerprint") != current:
        return f"{FIT_FILE} was fitted to other runs than the store holds now (the sweep changed since)"
    return ""


def analyse(sweep: Any, law: str = "chinchilla", *, use_saved: bool = True, group_by: str | None = None,
            bootstrap: int = 200, seed: int = 0, confidence: float = 0.95, n_refine: int = 64,
            save: bool = True) -> SweepAnalysis:
    """The sweep's analysis: the saved one where it is current (same law, same runs, same options), else
    computed by the one path (``laws.sweepfit``) and saved in ``fit.json`` (when ``save`` and the folder is
    writable). ``use_saved=False`` refits the law even when a current fit is saved."""
    from scalebench.laws.sweepfit import as_sweep, fit_sweep, fit_sweep_groups, sweep_curves

    sweep = as_sweep(sweep)
    missing: dict[str, str] = {}
    notes: list[str] = []
    saved, section, why = _saved(sweep) if use_saved else (None, None, "asked to refit")
    if saved is not None:
        why = _current(sweep, saved, law, None)
    fit, origin, changed = (saved, "saved", False) if saved is not None and not why else (None, "", True)
    if fit is None:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                columns = {} if saved is None else {  # the columns `scalebench fit DIR` was asked for, kept
                    "loss_col": saved.metadata.get("loss_col"), "params_col": saved.metadata.get("params_col") or "params"}
                fit = fit_sweep(sweep, law, bootstrap=bootstrap, seed=seed, confidence=confidence,
                                n_refine=n_refine, **columns)
                origin = f"refit: {why}"
            except EXPECTED as exc:
                missing["fit"] = reason(exc)
        notes += [str(w.message) for w in caught]
    loss_col = (fit.metadata.get("loss_col") if fit is not None else None) or "eval_loss"
    try:
        axis = group_axis(sweep.results, group_by, sweep.axes)
    except ConfigError as exc:
        axis, missing["groups"] = None, reason(exc)
    key = _key(fit, axis, bootstrap, seed, confidence)
    if section is not None and not changed and _same_key(section.get("key") or {}, key):
        return _from_section(section, law, fit, origin, sweep)
    out: dict[str, Any] = {}
    if axis is not None:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                out["groups"] = fit_sweep_groups(sweep, law, by=axis, bootstrap=bootstrap, seed=seed,
                                                 confidence=confidence, n_refine=n_refine, loss_col=loss_col)
        except EXPECTED as exc:
            missing["groups"] = reason(exc)
    frame = _fit_frame(sweep, loss_col)
    curves = sweep_curves(sweep)
    if len(frame):
        out |= _isoflop_parts(frame, curves, bootstrap, seed, confidence, missing, notes)
    else:
        missing["isoflop"] = "no finished run with a loss"
    analysis = SweepAnalysis(law=law, loss_col=loss_col, fit=fit, fit_origin=origin, group_by=axis,
                             missing=missing, notes=tuple(dict.fromkeys(notes)), **out)
    if save and fit is not None:
        analysis = _save(sweep, analysis, key)
    return analysis


def _same_key(saved: dict[str, Any], key: dict[str, Any]) -> bool:
    """A saved analysis serves when it is of the same fit, axis, seed and confidence (its resamples count,
    like the saved fit's, is what was asked when it was made)."""
    return all(saved.get(k) == key[k] for k in ("law", "data_fingerprint", "group_by", "seed", "confidence"))


def _fit_frame(sweep: Any, loss_col: str) -> pd.DataFrame:
    done = sweep.done
    if "probe" in done:  # [ladder] lr probes check the ladder (laws/health.py); the analyses leave them out
        done = done[done["probe"].isna()]
    if loss_col not in done:
        return pd.DataFrame(columns=["run_id", "params", "tokens", "flops", "loss"])
    frame = done[["run_id", "params", "tokens", "flops", loss_col]].rename(columns={loss_col: "loss"})
    frame = frame.apply(lambda s: pd.to_numeric(s, errors="coerce") if s.name != "run_id" else s)
    return frame.dropna().reset_index(drop=True)


def _from_section(section: dict[str, Any], law: str, fit: Any, origin: str, sweep: Any) -> SweepAnalysis:
    from scalebench.laws.result import FIT_FILE, doc_frame

    where = str(sweep.path / FIT_FILE)
    return SweepAnalysis(
        law=law, loss_col=section.get("loss_col") or "eval_loss", fit=fit, fit_origin=origin,
        groups=groups_from_doc(section.get("groups"), where), group_by=section.get("group_by"),
        isoflop=isoflop_from_doc(section.get("isoflop")), isoflop_source=section.get("isoflop_source") or "",
        isoflop_slices=doc_frame(section.get("isoflop_slices")), isoflop_minima=doc_frame(section.get("isoflop_minima")),
        approach1=isoflop_from_doc(section.get("approach1")), missing=dict(section.get("missing") or {}),
        notes=tuple(section.get("notes") or ()), saved_to=where)


def _save(sweep: Any, a: SweepAnalysis, key: dict[str, Any]) -> SweepAnalysis:
    import dataclasses

    from scalebench.laws.result import save_fit

    try:
        path = save_fit(a.fit, sweep.path, extra={ANALYSIS_KEY: analysis_doc(a, key)})
    except (OSError, ConfigError) as exc:  # a read-only folder (an archive): the analysis stands, unsaved
        return dataclasses.replace(a, notes=(*a.notes, f"analysis not saved ({exc})"))
    return dataclasses.replace(a, saved_to=str(path))


def save_next(advice: Any, folder: Any) -> Any:
    """Write a proposal of ``scalebench next`` (an ``Advice``) to ``folder/next.json``; returns the path.
    ConfigError naming the file when the folder cannot be written."""
    import json
    from pathlib import Path

    from scalebench._util import write_text_atomic

    path = Path(folder) / NEXT_FILE
    write_text_atomic(path, json.dumps(advice.summary(), indent=1, allow_nan=False), what="proposal file")
    return path
