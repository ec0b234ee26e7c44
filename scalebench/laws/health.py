"""Ladder health: does the ladder's training deserve a law? Checks of the runs, not of the curve.

* **lr probes** (``[ladder] probe = true``): the smallest and largest size also train at x0.5 and x2 of their
  learning rate. A probe that beats its rung by more than the measured noise means that rung was untuned,
  and an exponent fitted to untuned rungs is an artefact (Porian et al. 2024 show an untuned lr alone moves
  the compute-optimal exponent). The finding names the rung and the better value.
* **loss spikes**: a logged training loss whose z-score over the trailing window (mean and spread of the
  previous ``SPIKE_WINDOW`` logged losses) exceeds ``SPIKE_Z`` and that sits ``SPIKE_RISE`` above that mean,
  the z-score rule of OLMo-core's stability monitoring.
* **crossing curves**: at the same tokens, a larger model should not end above a smaller one trained the same
  way (nanochat's rule of thumb: if curves of different sizes cross, the setup is wrong). Compared on the
  smoothed training curves over the last quarter of the tokens both saw; in an lr sweep, each size at its
  best lr.
* **diverged, failed and missing cells**: listed, each said to be excluded from the fit and how to re-run it.
* **seed noise** (``[ladder] seeds = K``): the spread of the held-out loss between seeds of one cell, pooled;
  it sets the threshold of the probe check and weighs the cells of ``fit --hyper``.

``ladder_health(sweep_dir)`` returns a :class:`Health`; :func:`join` adds its findings to a fit's diagnostics
(a finding at level ``weak`` makes a reliable verdict weak), which is how they reach ``fit`` and the page.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

SPIKE_WINDOW = 20  # logged steps before the one judged
SPIKE_Z = 6.0
SPIKE_RISE = 0.05  # and at least 5 % above the trailing mean (a smooth curve's tiny spread is no spike)
CROSS_SHARE = 0.25  # the last quarter of the common tokens decides a crossing
FALLBACK_NOISE = 0.005  # relative noise assumed without seeds (and said)
GROUP_SKIP = ("run_id", "seed", "probe")


@dataclass(frozen=True, kw_only=True)
class Finding:
    kind: str  # untuned, spike, crossing, diverged, failed, missing, noise, tuned
    level: str  # weak or note
    message: str
    suggestion: str = ""
    where: str = ""  # run id or size


@dataclass(frozen=True, kw_only=True)
class Health:
    findings: tuple[Finding, ...] = ()
    noise: dict[str, Any] = field(default_factory=dict)  # sigma (nats), relative, cells, source

    @property
    def level(self) -> str:
        return "weak" if any(f.level == "weak" for f in self.findings) else "ok"

    def summary(self) -> dict[str, Any]:
        return {"level": self.level, "noise": self.noise,
                "findings": [{"kind": f.kind, "level": f.level, "message": f.message, "suggestion": f.suggestion,
                              "where": f.where} for f in self.findings]}

    def report(self) -> str:
        lines = [f"ladder health: {'no findings' if not self.findings else self.level}"]
        if self.noise:
            lines.append(f"  noise: {self.noise['sigma']:.4g} nats ({self.noise['relative']:.2%}) from "
                         f"{self.noise['source']}")
        lines += [f"  - [{f.kind}] {f.message}" for f in self.findings]
        return "\n".join(lines)


def ladder_health(sweep_dir: str | Path, loss_col: str = "eval_loss") -> Health:
    """Every check above on one sweep folder."""
    from scalebench.store import ResultStore, load_results, load_steps

    results = load_results(sweep_dir)
    with ResultStore(sweep_dir, readonly=True) as store:  # the lr each run trained at (recipes vary it per size)
        trained = {r["run_id"]: (r["spec"].get("train") or {}).get("lr") for r in store.runs()}
    results["train_lr"] = results["run_id"].map(trained)
    steps = load_steps(sweep_dir)
    return health_of(results, steps, loss_col=loss_col)


def health_of(results: pd.DataFrame, steps: pd.DataFrame | None = None, *, loss_col: str = "eval_loss") -> Health:
    noise = seed_noise(results, loss_col)
    findings = status_findings(results)
    findings += probe_findings(results, noise, loss_col)
    if steps is not None and not steps.empty:
        findings += spike_findings(steps, results)
        findings += crossing_findings(steps, results, noise)
    return Health(findings=tuple(findings), noise=noise)


def _cell_columns(results: pd.DataFrame) -> list[str]:
    """Columns naming one ladder cell's settings (size, budget and grid axes), seeds and probes aside."""
    axes = [c for c in ("family", "optimizer", "momentum", "lr", "batch", "precision") if c in results]
    return ["size", "budget", *axes]


def _base(results: pd.DataFrame) -> pd.DataFrame:
    out = results
    if "probe" in out:
        out = out[out["probe"].isna()]
    return out


def seed_noise(results: pd.DataFrame, loss_col: str = "eval_loss") -> dict[str, Any]:
    """Pooled standard deviation of ``loss_col`` between seeds of one cell; a fallback when there are none."""
    done = _base(results)
    done = done[(done["status"] == "done") & done[loss_col].notna()] if loss_col in done else done.iloc[:0]
    if "seed" in done and done["seed"].notna().any():
        cols = [c for c in _cell_columns(done) if c in done and c != "lr"] + (["lr"] if "lr" in done else [])
        groups = done.groupby([c for c in cols if done[c].notna().any()], dropna=False)[loss_col]
        var, dof = 0.0, 0
        for _, g in groups:
            if len(g) > 1:
                var += float(g.var(ddof=1)) * (len(g) - 1)
                dof += len(g) - 1
        if dof:
            sigma = math.sqrt(var / dof)
            return {"sigma": sigma, "relative": sigma / float(done[loss_col].mean()), "cells": int(groups.ngroups),
                    "dof": dof, "source": f"seeds ({dof} degrees of freedom)"}
    mean = float(done[loss_col].mean()) if len(done) else float("nan")
    return {"sigma": FALLBACK_NOISE * mean, "relative": FALLBACK_NOISE, "cells": 0, "dof": 0,
            "source": f"no seeds: {FALLBACK_NOISE:.1%} of the loss assumed ([ladder] seeds = 2 measures it)"}


def status_findings(results: pd.DataFrame) -> list[Finding]:
    out = []
    # said, not judged: the fit's own checks weigh the cells that remain
    for status, level, fix in (("diverged", "note", "lower train.lr for it (or use a recipe) and run the sweep again"),
                               ("failed", "note", "see `scalebench status DIR`; `scalebench run` re-runs it"),
                               ("pending", "note", "`scalebench run` resumes the sweep and trains it"),
                               ("running", "note", "wait for it, or resume the sweep if it was stopped")):
        rows = results[results["status"] == status]
        if len(rows):
            ids = ", ".join(rows["run_id"].astype(str).head(6)) + (" ..." if len(rows) > 6 else "")
            kind = "missing" if status in ("pending", "running") else status
            out.append(Finding(kind=kind, level=level, where=ids, suggestion=fix,
                               message=f"{len(rows)} {status} cell(s) excluded from the fit ({ids}): {fix}"))
    return out


def probe_findings(results: pd.DataFrame, noise: dict[str, Any], loss_col: str = "eval_loss") -> list[Finding]:
    """A rung beaten by its x0.5 or x2 lr probe by more than the noise of a difference of two runs."""
    if "probe" not in results or results["probe"].isna().all() or loss_col not in results:
        return []
    done = results[(results["status"] == "done") & results[loss_col].notna()]
    base = done[done["probe"].isna()]
    if "seed" in base:
        base = base[base["seed"].fillna(0) == 0]
    threshold = 2 * math.sqrt(2) * noise["sigma"]
    out = []
    keys = [c for c in _cell_columns(done) if c != "lr" and c in done and done[c].notna().any()]
    for _, probes in done[done["probe"].notna()].groupby(keys, dropna=False):
        first = probes.iloc[0]
        match = base
        for k in keys:
            match = match[match[k] == first[k]]
        if match.empty:
            continue
        rung = match.iloc[0]
        best = probes.loc[probes[loss_col].idxmin()]
        gain = float(rung[loss_col] - best[loss_col])
        lr_col = "train_lr" if "train_lr" in done else "lr" if "lr" in done else None
        rung_lr = float(rung[lr_col]) if lr_col and pd.notna(rung.get(lr_col)) else float("nan")
        better = rung_lr * float(best["probe"]) if math.isfinite(rung_lr) else float("nan")
        where = f"{rung['size']} {rung['budget']}"
        if gain > threshold:
            out.append(Finding(kind="untuned", level="weak", where=where,
                               message=f"untuned rung {where}: lr x{best['probe']:g}"
                               + (f" ({better:.3g})" if math.isfinite(better) else "")
                               + f" reaches {best[loss_col]:.4f}, {gain:.4f} below the rung's {rung[loss_col]:.4f} "
                               f"(more than the noise threshold {threshold:.4f})",
                               suggestion=f"tune the lr at {rung['size']} (try {better:.3g}), or use a recipe / mup, "
                               "and refit"))
        else:
            out.append(Finding(kind="tuned", level="note", where=where,
                               message=f"rung {where}: no probe beats it by more than the noise ({threshold:.4f})"))
    return out


def spike_findings(steps: pd.DataFrame, results: pd.DataFrame) -> list[Finding]:
    out = []
    fitted = set(_base(results).loc[lambda r: r["status"] == "done", "run_id"])
    for run_id, g in steps.dropna(subset=["loss"]).groupby("run_id"):
        if run_id not in fitted:
            continue
        loss = g.sort_values("step")["loss"].to_numpy(float)
        hits = spikes(loss)
        if hits:
            step_of = g.sort_values("step")["step"].to_numpy()
            at = ", ".join(f"step {int(step_of[i])} (z {z:.0f})" for i, z in hits[:3])
            out.append(Finding(kind="spike", level="weak", where=str(run_id),
                               message=f"{run_id}: {len(hits)} loss spike(s) at {at}",
                               suggestion="lower the lr or raise the warm-up at this size, or clip gradients"))
    return out


def spikes(loss: np.ndarray, window: int = SPIKE_WINDOW, z: float = SPIKE_Z, rise: float = SPIKE_RISE) -> list[tuple[int, float]]:
    """(index, z-score) of each logged loss above its trailing window's mean by ``z`` spreads and ``rise``."""
    out = []
    for i in range(window, len(loss)):
        prev = loss[i - window:i]
        mu, sd = float(prev.mean()), float(prev.std())
        score = (loss[i] - mu) / max(sd, 1e-12)
        if score > z and loss[i] > mu * (1 + rise):
            out.append((i, score))
    return out


def crossing_findings(steps: pd.DataFrame, results: pd.DataFrame, noise: dict[str, Any]) -> list[Finding]:
    from scalebench.laws.isoflop import smoothed_curves

    base = _base(results)
    if "seed" in base:
        base = base[base["seed"].fillna(0) == 0]
    base = base[base["status"] == "done"]
    if base.empty:
        return []
    keys = [c for c in _cell_columns(base) if c != "size" and c in base and base[c].notna().any()]
    if "lr" in keys and "eval_loss" in base:  # an lr sweep mistunes most points on purpose: each size at its best
        keys.remove("lr")
        base = base.loc[base.groupby(["size", *keys], dropna=False)["eval_loss"].idxmin().dropna()]
    curves = smoothed_curves(steps, base)
    out = []
    for _, group in base.groupby(keys, dropna=False) if keys else [(None, base)]:
        ordered = group.sort_values("params")
        for (_, small), (_, large) in zip(ordered.iterrows(), ordered.iloc[1:].iterrows(), strict=False):
            a = curves[curves["run_id"] == small["run_id"]]
            b = curves[curves["run_id"] == large["run_id"]]
            if a.empty or b.empty:
                continue
            end = min(a["tokens"].max(), b["tokens"].max())
            grid = np.linspace(end * (1 - CROSS_SHARE), end, 8)
            la = np.interp(grid, a["tokens"], a["loss"])
            lb = np.interp(grid, b["tokens"], b["loss"])
            if (lb > la + 2 * noise["sigma"]).all():
                out.append(Finding(kind="crossing", level="weak", where=f"{small['size']}/{large['size']}",
                                   message=f"curves cross: {large['size']} ends {float(lb[-1] - la[-1]):.4f} above "
                                   f"{small['size']} at {end:.3g} tokens ({small['budget']}); the larger model "
                                   "trains worse at equal data",
                                   suggestion=f"check the lr and batch at {large['size']} (a probe or fit --hyper lr)"))
    return out


def join(diagnostics: Any, health: Health) -> Any:
    """``diagnostics`` (a laws.diagnostics.Diagnostics) with the ladder's findings among its reasons."""
    from dataclasses import replace

    from scalebench.laws.diagnostics import VERDICTS

    reasons = list(diagnostics.reasons)
    suggestions = list(diagnostics.suggestions)
    level = VERDICTS.index(diagnostics.verdict)
    for f in health.findings:
        if f.kind == "tuned":
            continue
        reasons.append(f"ladder: {f.message}" if f.level == "weak" else f"note: ladder: {f.message}")
        if f.suggestion and f.suggestion not in suggestions:
            suggestions.append(f.suggestion)
        if f.level == "weak":
            level = max(level, 1)
    checks = {**diagnostics.checks, "ladder_health": health.summary()}
    return replace(diagnostics, verdict=VERDICTS[level], reasons=tuple(reasons), suggestions=tuple(suggestions),
                   checks=checks)


def with_health(result: Any, sweep_dir: str | Path, loss_col: str = "eval_loss") -> Any:
    """A fit result whose diagnostics carry the sweep's ladder health (unchanged without diagnostics)."""
    from dataclasses import replace

    if getattr(result, "diagnostics", None) is None:
        return result
    return replace(result, diagnostics=join(result.diagnostics, ladder_health(sweep_dir, loss_col)))
