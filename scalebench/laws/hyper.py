"""Hyperparameter laws: each cell's best learning rate (or batch) and a power law of it in N (and D).

A cell is one size at one budget. Through a cell's runs at several values h of the hyperparameter, loss is
close to a parabola in log h near its minimum (the shape of every published lr sweep: DeepSeek LLM fig. 3,
Porian et al. 2024 fig. 8), so the cell's optimum is the vertex of the parabola through the values around its best one (``WINDOW``), log h* = -b / 2c, with its
standard error by the delta method from the weighted least-squares covariance. Seeds of one point
(``[ladder] seeds``) are averaged and their spread weighs the point (1/variance); without seeds, every point
weighs the same and the residual scatter sets the scale. The law is then

    log h*(N[, D]) = log k + a·log N [+ b·log D]

by weighted least squares over cells (weights 1/se²), its intervals from the covariance scaled by the reduced
chi-square when the cells scatter more than their errors say (Birge ratio), and a diagnosis in the loss laws'
words (reliable, weak, undetermined) with reasons: too few cells, optima at the edge of the grid (the true
optimum may lie outside it), cells without a minimum, a wide exponent interval.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from scalebench.errors import FitError

HYPERS = {"lr": "lr", "batch": "batch"}  # the grid axis and the column that holds it
MIN_POINTS = 3  # distinct values a cell needs for a parabola
WINDOW = 2  # values each side of a cell's best sampled one that its parabola goes through
WIDE_EXPONENT = 0.5  # an exponent interval wider than this says little
HYPER_FILE = "hyper_{hyper}.json"


@dataclass(frozen=True, kw_only=True)
class CellOptimum:
    params: float
    tokens: float
    budget: str
    log_opt: float | None  # natural log of h*, None without an interior minimum
    se: float | None  # standard error of log_opt
    points: int
    edge: bool  # the vertex lies outside the sampled range, or at its end point
    best_sampled: float  # the sampled value with the lowest loss
    note: str = ""

    @property
    def opt(self) -> float | None:
        return math.exp(self.log_opt) if self.log_opt is not None else None


@dataclass(frozen=True, kw_only=True)
class HyperLaw:
    """h*(N, D) = k·N^a·D^b (b = 0 when ``variables`` is ("params",))."""

    hyper: str
    variables: tuple[str, ...]
    coef: dict[str, float]  # log_k, a[, b]
    cov: np.ndarray
    dof: int
    cells: tuple[CellOptimum, ...]
    verdict: str
    reasons: tuple[str, ...] = ()
    suggestions: tuple[str, ...] = ()
    confidence: float = 0.95
    checks: dict[str, Any] = field(default_factory=dict)

    def _t(self) -> float:
        return float(stats.t.ppf(0.5 + self.confidence / 2, max(1, self.dof))) if self.dof > 0 else float("nan")

    def interval(self, name: str) -> tuple[float, float]:
        i = list(self.coef).index(name)
        half = self._t() * math.sqrt(self.cov[i, i])
        return self.coef[name] - half, self.coef[name] + half

    def predict(self, params: float, tokens: float | None = None) -> dict[str, float]:
        """h* at N (and D) with its interval (the law's, not a new run's scatter)."""
        x = np.array([1.0, math.log(params)] + ([math.log(tokens)] if "tokens" in self.variables else []))
        if "tokens" in self.variables and tokens is None:
            raise FitError(f"the {self.hyper} law depends on tokens: give the target's tokens too")
        mean = float(x @ np.array(list(self.coef.values())))
        half = self._t() * math.sqrt(float(x @ self.cov @ x))
        return {"value": math.exp(mean), "low": math.exp(mean - half), "high": math.exp(mean + half)}

    def summary(self) -> dict[str, Any]:
        from scalebench._util import json_safe

        return json_safe({
            "hyper": self.hyper, "variables": list(self.variables), "law": self.formula(),
            "coef": self.coef, "intervals": {k: list(self.interval(k)) for k in self.coef if k != "log_k"},
            "confidence": self.confidence, "k": math.exp(self.coef["log_k"]), "cov": self.cov.tolist(),
            "dof": self.dof, "verdict": self.verdict, "reasons": list(self.reasons),
            "suggestions": list(self.suggestions), "checks": self.checks,
            "cells": [{"params": c.params, "tokens": c.tokens, "budget": c.budget, "optimum": c.opt,
                       "log_se": c.se, "points": c.points, "edge": c.edge, "best_sampled": c.best_sampled,
                       "note": c.note} for c in self.cells]})

    def formula(self) -> str:
        terms = f"N^{self.coef['a']:.3f}" + (f"·D^{self.coef['b']:.3f}" if "b" in self.coef else "")
        return f"{self.hyper}* = {math.exp(self.coef['log_k']):.4g}·{terms}"

    def report(self) -> str:
        lines = [f"{self.hyper} law: {self.formula()}"]
        for name, label in (("a", "N"), ("b", "D")):
            if name in self.coef:
                lo, hi = self.interval(name)
                lines.append(f"  exponent of {label}: {self.coef[name]:.3f}  [{lo:.3f}, {hi:.3f}] "
                             f"({self.confidence:.0%})")
        lines.append(f"cells ({len(self.cells)}): best {self.hyper} per size and budget (parabola in log {self.hyper})")
        for c in self.cells:
            if c.log_opt is None:
                lines.append(f"  N={c.params:.4g} {c.budget}: no interior minimum ({c.note}); best sampled "
                             f"{c.best_sampled:.4g}")
            else:
                se = f" x/÷ {math.exp(c.se):.2f}" if c.se is not None else ""
                lines.append(f"  N={c.params:.4g} {c.budget}: {c.opt:.4g}{se} from {c.points} values"
                             + (" (edge of the grid)" if c.edge else ""))
        lines.append(f"verdict: {self.verdict.upper()}")
        lines += [f"  - {r}" for r in self.reasons]
        if self.suggestions:
            lines.append("to settle it:")
            lines += [f"  - {s}" for s in self.suggestions]
        return "\n".join(lines)


def _parabola(h: np.ndarray, loss: np.ndarray, var: np.ndarray | None) -> dict[str, Any]:
    """Weighted parabola through (log h, loss): the vertex, its unscaled variance g'(X'WX)^-1 g, the weighted
    residual sum of squares and its degrees of freedom (or a note why there is no vertex)."""
    x = np.log(np.asarray(h, float))
    y = np.asarray(loss, float)
    if len(np.unique(x)) < MIN_POINTS:
        return {"note": f"{len(np.unique(x))} distinct values, a parabola needs {MIN_POINTS}"}
    w = 1.0 / np.asarray(var, float) if var is not None else np.ones_like(x)
    xc = x - x.mean()  # centred: a well-conditioned design
    design = np.stack([np.ones_like(xc), xc, xc**2], axis=1)
    try:
        inv = np.linalg.inv(design.T @ (design * w[:, None]))
    except np.linalg.LinAlgError:
        return {"note": "singular design"}
    beta = inv @ ((design * w[:, None]).T @ y)
    _, b, c = beta
    if not c > 0:
        return {"note": "loss is not convex in log h: the minimum lies outside the grid", "edge": True}
    resid = y - design @ beta
    grad = np.array([0.0, -1 / (2 * c), b / (2 * c * c)])
    log_opt = float(-b / (2 * c) + x.mean())
    if not x.min() <= log_opt <= x.max():  # a vertex outside the values tried is a guess, not a measurement
        side = "below" if log_opt < x.min() else "above"
        return {"note": f"the parabola's minimum lies {side} the values tried", "edge": True}
    edge = int(np.argmin(y)) in (int(np.argmin(x)), int(np.argmax(x)))
    return {"log_opt": log_opt, "gvar": float(grad @ inv @ grad), "rss": float(resid @ (w * resid)),
            "dof": len(x) - 3, "edge": edge, "note": ""}


def cell_optimum(h: np.ndarray, loss: np.ndarray, var: np.ndarray | None = None) -> tuple[float | None, float | None, bool, str]:
    """(log h*, its standard error, edge, note) from a weighted parabola through (log h, loss) alone."""
    p = _parabola(h, loss, var)
    if "log_opt" not in p:
        return None, None, bool(p.get("edge")), p["note"]
    scale = (max(1.0, p["rss"] / p["dof"]) if var is not None else p["rss"] / p["dof"]) if p["dof"] > 0 else float("nan")
    se = math.sqrt(p["gvar"] * scale) if math.isfinite(scale) else None
    return p["log_opt"], se, p["edge"], ""


def cell_optima(frame: pd.DataFrame, hyper: str, loss_col: str = "loss", window: int = WINDOW) -> list[CellOptimum]:
    """One :class:`CellOptimum` per (params, budget) from the ``window`` values each side of the best sampled
    one (far from the minimum, loss is no parabola: a too-high lr blows up). Seeds of one point are averaged
    and weigh it by their mean's variance; without seeds the residual scatter is pooled over the cells (one
    sweep, one noise level), so a cell whose few points happen to fall on a parabola is not trusted alone."""
    fits = []
    seeded = "seed" in frame and frame.groupby(["params", "budget", hyper]).size().max() > 1
    for (n, budget), cell in frame.groupby(["params", "budget"], sort=True):
        pts = cell.groupby(hyper)[loss_col].agg(["mean", "var", "count"]).reset_index().sort_values(hyper)
        best = int(np.argmin(pts["mean"].to_numpy()))
        lo = min(max(0, best - window), max(0, len(pts) - (2 * window + 1)))
        pts = pts.iloc[lo:lo + 2 * window + 1].reset_index(drop=True)  # the values around the minimum
        var = None
        if seeded:
            pooled = float(np.nanmean(pts["var"])) if pts["var"].notna().any() else float("nan")
            var = (pts["var"].fillna(pooled).clip(lower=pooled * 0.1 + 1e-12) / pts["count"]).to_numpy(float)
        fits.append((n, budget, cell, pts, _parabola(pts[hyper].to_numpy(float), pts["mean"].to_numpy(float), var)))
    rss = sum(p["rss"] for *_, p in fits if "log_opt" in p)
    dof = sum(p["dof"] for *_, p in fits if "log_opt" in p)
    pooled_scale = (max(1.0, rss / dof) if seeded else rss / dof) if dof else float("nan")
    out = []
    for n, budget, cell, pts, p in fits:
        se = math.sqrt(p["gvar"] * pooled_scale) if "log_opt" in p and math.isfinite(pooled_scale) else None
        out.append(CellOptimum(params=float(n), tokens=float(cell["tokens"].median()), budget=str(budget),
                               log_opt=p.get("log_opt"), se=se, points=len(pts), edge=bool(p.get("edge")),
                               note=p.get("note", ""), best_sampled=float(pts.loc[pts["mean"].idxmin(), hyper])))
    return out


def fit_hyper_frame(frame: pd.DataFrame, hyper: str = "lr", *, variables: tuple[str, ...] | None = None,
                    loss_col: str = "loss", confidence: float = 0.95) -> HyperLaw:
    """The law of ``hyper``'s optimum over the cells of ``frame`` (columns params, tokens, budget, hyper, loss)."""
    for col in ("params", "tokens", hyper, loss_col):
        if col not in frame:
            raise FitError(f"fit --hyper {hyper}: no column {col!r}; columns are {list(frame.columns)}")
    if "budget" not in frame:
        frame = frame.assign(budget=np.round(np.log(frame["tokens"].astype(float)), 1).astype(str))
    frame = frame[np.isfinite(frame[loss_col].astype(float))]
    cells = cell_optima(frame, hyper, loss_col)
    usable = [c for c in cells if c.log_opt is not None]
    budgets = {c.budget for c in usable}
    if variables is None:
        variables = ("params", "tokens") if len(budgets) > 1 and len({c.params for c in usable}) > 1 else ("params",)
    reasons, suggestions, level = [], [], 0
    missing = [c for c in cells if c.log_opt is None]
    for c in missing:
        reasons.append(f"N={c.params:.4g} {c.budget}: no optimum ({c.note}); left out")
    if missing:
        level = 1
        suggestions.append(f"widen the grid of {hyper} where the minimum was not bracketed")
    n_coef = 1 + len(variables)
    if len(usable) < n_coef + 1:
        raise FitError(f"fit --hyper {hyper}: {len(usable)} cell(s) with an optimum, a law in "
                       f"{' and '.join(variables)} needs at least {n_coef + 1}; add sizes or {hyper} values"
                       + "".join(f"; {r}" for r in reasons))
    log_opt = np.array([c.log_opt for c in usable])
    x = np.stack([np.ones(len(usable))] + [np.log([getattr(c, v) for c in usable]) for v in variables], axis=1)
    se = np.array([c.se if c.se is not None and c.se > 0 else np.nan for c in usable])
    have_se = np.isfinite(se).all()
    w = 1.0 / se**2 if have_se else np.ones(len(usable))
    xtwx = x.T @ (x * w[:, None])
    inv = np.linalg.inv(xtwx)
    beta = inv @ (x.T @ (w * log_opt))
    resid = log_opt - x @ beta
    dof = len(usable) - n_coef
    chi2 = float(resid @ (w * resid))
    scale = (max(1.0, chi2 / dof) if have_se else chi2 / dof) if dof > 0 else float("nan")
    cov = inv * scale
    names = ["log_k", "a", "b"][:n_coef]
    law = HyperLaw(hyper=hyper, variables=tuple(variables), coef=dict(zip(names, map(float, beta), strict=True)),
                   cov=cov, dof=dof, cells=tuple(cells), verdict="reliable", confidence=confidence)
    edges = [c for c in usable if c.edge]
    for c in edges:
        reasons.append(f"N={c.params:.4g} {c.budget}: the best {hyper} ({c.opt:.4g}) is at the edge of the grid; "
                       "the optimum may lie outside it")
    if edges:
        level = max(level, 1)
        suggestions.append(f"add {hyper} values beyond the edge at the cells named")
    if dof <= 0:
        level = 2
        reasons.append(f"{len(usable)} cells fit {n_coef} coefficients exactly: no interval")
    else:
        lo, hi = law.interval("a")
        if hi - lo > WIDE_EXPONENT:
            level = max(level, 1)
            reasons.append(f"the exponent of N is {beta[1]:.3f} within [{lo:.3f}, {hi:.3f}], wider than "
                           f"{WIDE_EXPONENT}")
            suggestions.append("add sizes further apart, or seeds ([ladder] seeds) to pin each cell down")
    if not have_se:
        reasons.append("note: some cells have no standard error (3 values and no seeds); cells weigh the same")
    checks = {"cells": len(cells), "used": len(usable), "chi2": chi2, "reduced_chi2": chi2 / dof if dof > 0 else None,
              "weighted": bool(have_se)}
    return HyperLaw(**{**law.__dict__, "verdict": ("reliable", "weak", "undetermined")[level],
                       "reasons": tuple(reasons), "suggestions": tuple(suggestions), "checks": checks})


def load_hyper_frame(source: Any, hyper: str, loss_col: str | None = None) -> tuple[pd.DataFrame, str]:
    """Done runs of a sweep folder (probes left out: laws/io.py) or a CSV, with the hyper's column."""
    import warnings

    from scalebench.laws.io import _read

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        frame, loss_name = _read(source, loss_col)
    col = HYPERS.get(hyper)
    if col is None:
        raise FitError(f"--hyper {hyper!r}: one of {', '.join(HYPERS)}")
    if col not in frame:
        raise FitError(f"{source}: no {col!r} column: sweep it with [grid] {col} = [...] (at least {MIN_POINTS} "
                       "values) across sizes")
    keep = [c for c in ("params", "tokens", "budget", col, "seed", loss_name) if c in frame]
    out = frame[keep].copy()
    for c in ("params", "tokens", col, loss_name):
        out[c] = pd.to_numeric(out[c], errors="coerce")
    return out.dropna(subset=["params", "tokens", col, loss_name]).rename(columns={loss_name: "loss"}), col


def fit_hyper(source: Any, hyper: str = "lr", *, loss_col: str | None = None, variables: tuple[str, ...] | None = None,
              confidence: float = 0.95) -> HyperLaw:
    frame, col = load_hyper_frame(source, hyper, loss_col)
    return fit_hyper_frame(frame, col, variables=variables, confidence=confidence)


def save_hyper(law: HyperLaw, sweep_dir: str | Path) -> Path:
    path = Path(sweep_dir) / HYPER_FILE.format(hyper=law.hyper)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(law.summary(), indent=2, allow_nan=False))
    tmp.replace(path)
    return path


def load_hyper(path: str | Path, hyper: str = "lr") -> HyperLaw:
    """A saved law (``hyper_lr.json`` in a sweep folder, or the file itself) for plan and estimate."""
    p = Path(path)
    if p.is_dir():
        p = p / HYPER_FILE.format(hyper=hyper)
    if not p.is_file():
        raise FitError(f"{p}: no saved {hyper} law; run `scalebench fit DIR --hyper {hyper}` first")
    d = json.loads(p.read_text())
    cells = tuple(CellOptimum(params=c["params"], tokens=c["tokens"], budget=c["budget"],
                              log_opt=math.log(c["optimum"]) if c["optimum"] else None, se=c["log_se"],
                              points=c["points"], edge=c["edge"], best_sampled=c["best_sampled"], note=c["note"])
                  for c in d["cells"])
    return HyperLaw(hyper=d["hyper"], variables=tuple(d["variables"]), coef=d["coef"], cov=np.array(d["cov"]),
                    dof=d["dof"], cells=cells, verdict=d["verdict"], reasons=tuple(d["reasons"]),
                    suggestions=tuple(d["suggestions"]), confidence=d["confidence"], checks=d["checks"])


def laws_at_target(source: str | Path, params: float, tokens: float | None) -> dict[str, Any]:
    """The saved lr and batch laws of a sweep folder (``fit DIR --hyper lr|batch``) at a target run, each
    with its interval and its law's verdict: what ``plan`` and ``estimate --hyper-law DIR`` report."""
    p = Path(source)
    found = {h: p / HYPER_FILE.format(hyper=h) for h in HYPERS} if p.is_dir() else {None: p}
    out = {}
    for path in found.values():
        if not path.is_file():
            continue
        law = load_hyper(path)
        inside = min(c.params for c in law.cells) <= params <= max(c.params for c in law.cells)
        out[law.hyper] = {**law.predict(params, tokens), "law": law.formula(), "verdict": law.verdict,
                          "extrapolated": not inside}
    if not out:
        raise FitError(f"{source}: no saved lr or batch law; run `scalebench fit DIR --hyper lr` (or batch) first")
    return out


def target_lines(found: dict[str, Any], params: float) -> list[str]:
    lines = []
    for hyper, v in found.items():
        note = f", extrapolated from the ladder to N={params:.3g}" if v["extrapolated"] else ""
        lines.append(f"{hyper} for this run: {v['value']:.4g}  [{v['low']:.4g}, {v['high']:.4g}] from {v['law']} "
                     f"(verdict {v['verdict']}{note})")
    return lines
