"""The report's figures: matplotlib (object API, no pyplot state), rendered to inline SVG.

Each ``fig_*`` function takes a `ReportData` and returns an SVG string, or raises `NoFigure` with the reason
when the sweep lacks what the figure needs. Sizes are coloured with viridis (perceptually uniform and
colour-blind safe) on a log scale; categories use a colour-blind safe palette (``PALETTE``).

Rendering is the page's slowest part, so it does each thing once: the style is a plain rc dict (no seaborn
import, which pulls in scipy.stats: about a second cold), each figure is laid out by constrained layout and
saved without a second "tight" drawing pass, log axes carry no minor ticks (invisible in this style, yet each
one was laid out), and with ``workers`` > 1 the figures are drawn in forked processes. ``REFERENCE`` turns
all of that off: the page path before these changes, kept for ``benchmarks/report_speed.py`` and for the
test that the page's numbers do not depend on the renderer.
"""

from __future__ import annotations

import io
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from scalebench.report.data import ReportData, mfu_basis, rss_note

__all__ = ["FAST", "FIGURES", "REFERENCE", "NoFigure", "RenderMode", "RenderedFigure", "render_figures"]

CMAP = "viridis"
GIB = 2.0**30
_MAX_CURVE_POINTS = 300


class NoFigure(Exception):
    """The sweep lacks what a figure needs; the message says what."""


@dataclass(frozen=True, kw_only=True)
class RenderedFigure:
    key: str
    title: str
    caption: str
    svg: str | None  # None when missing
    missing: str | None = None
    note: str | None = None  # what the figure cannot show on this sweep, and why


# The colour-blind safe categorical palette (seaborn 0.13's "colorblind", as the page used when it imported seaborn).
PALETTE = ("#0173b2", "#de8f05", "#029e73", "#d55e00", "#cc78bc", "#ca9161", "#fbafe4", "#949494", "#ece133",
           "#56b4e9")

# A white background with a light grid, no tick marks, dark-grey text, fonts at 0.85x of a notebook's.
_RC = {
    "axes.axisbelow": True, "axes.edgecolor": ".8", "axes.facecolor": "white", "axes.grid": True,
    "axes.labelcolor": ".15", "axes.labelsize": 10.2, "axes.linewidth": 1.25, "axes.titlesize": 11,
    "figure.facecolor": "white", "font.size": 10.2, "grid.color": ".8", "grid.linestyle": "-", "grid.linewidth": 1,
    "legend.fontsize": 9.35, "legend.title_fontsize": 10.2, "lines.linewidth": 1.5, "lines.markersize": 6,
    "lines.solid_capstyle": "round", "patch.edgecolor": "w", "patch.force_edgecolor": True, "patch.linewidth": 1,
    "text.color": ".15", "xtick.bottom": False, "xtick.top": False, "ytick.left": False, "ytick.right": False,
    "xtick.color": ".15", "ytick.color": ".15", "xtick.labelsize": 9.35, "ytick.labelsize": 9.35,
    "xtick.major.size": 6, "ytick.major.size": 6, "xtick.minor.size": 4, "ytick.minor.size": 4,
    "xtick.major.width": 1.25, "ytick.major.width": 1.25, "xtick.minor.width": 1, "ytick.minor.width": 1,
}


@dataclass(frozen=True, kw_only=True)
class RenderMode:
    """How the figures are rendered (the page's content is the same in every mode). ``workers``: processes
    drawing figures (forked; 1 draws in this process); ``tight_bbox``: a second drawing pass to crop the
    margins; ``minor_ticks``: keep log axes' (invisible) minor ticks; ``seaborn_style``: take the style from
    seaborn (imports it)."""

    workers: int = 1
    tight_bbox: bool = False
    minor_ticks: bool = False
    seaborn_style: bool = False

    def __post_init__(self) -> None:
        if not (isinstance(self.workers, int) and self.workers >= 1):
            raise ValueError(f"RenderMode.workers must be a positive integer, not {self.workers!r}")


FAST = RenderMode()
REFERENCE = RenderMode(tight_bbox=True, minor_ticks=True, seaborn_style=True)  # the page path before speed work


def default_mode() -> RenderMode:
    """The page's rendering: FAST in this process. Two forked workers (``RenderMode(workers=2)``) were no faster
    on the shared 2-core machine (quickstart figures 1.93 s against 1.85 s at load 4), so they are not the default."""
    return FAST


def _style(mode: RenderMode = FAST) -> dict:
    if mode.seaborn_style:
        import seaborn as sns

        rc = dict(sns.axes_style("whitegrid"))
        rc.update(sns.plotting_context("notebook", font_scale=0.85))
    else:
        rc = dict(_RC)
    rc.update({"svg.fonttype": "none", "font.family": ["DejaVu Sans", "sans-serif"], "axes.titlesize": 11,
               "axes.prop_cycle": mpl.cycler(color=list(PALETTE))})
    return rc


def _palette(n: int | None = None) -> list[str]:
    """``n`` categorical colours (the palette repeats past its 10), or all of them."""
    return list(PALETTE) if n is None else [PALETTE[i % len(PALETTE)] for i in range(max(1, n))]


def _text(s: object) -> str:
    """A label safe from mathtext: matplotlib treats $…$ as TeX."""
    return str(s).replace("$", r"\$")


def _svg(fig: Figure, key: str, title: str, *, tight: bool = False) -> str:
    buf = io.StringIO()
    with mpl.rc_context({"svg.hashsalt": f"sb-{key}"}):  # distinct ids per figure in one document
        # constrained layout already fits the labels inside the figure: "tight" would only draw it twice
        fig.savefig(buf, format="svg", bbox_inches="tight" if tight else None)
    svg = buf.getvalue()
    svg = svg[svg.index("<svg"):]
    svg = re.sub(r"<metadata>.*?</metadata>", "", svg, count=1, flags=re.S)
    label = title.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")
    return svg.replace("<svg ", f'<svg role="img" aria-label="{label}" class="fig" ', 1)


def _size_norm(params: pd.Series) -> LogNorm:
    p = pd.to_numeric(params, errors="coerce").dropna()
    lo, hi = float(p.min()), float(p.max())
    return LogNorm(lo / 1.01, hi * 1.01)


def _colorbar(fig: Figure, ax, norm: LogNorm, label: str = "parameters N (non-embedding)") -> None:
    sm = mpl.cm.ScalarMappable(norm=norm, cmap=CMAP)
    bar = fig.colorbar(sm, ax=ax, label=label, pad=0.01)
    ticks = log_ticks(norm.vmin, norm.vmax, max_labels=6)
    bar.set_ticks(ticks, labels=[human(t) for t in ticks])
    bar.ax.yaxis.set_minor_formatter(mpl.ticker.NullFormatter())
    bar.ax.yaxis.set_minor_locator(mpl.ticker.NullLocator())


def _done(data: ReportData, *cols: str) -> pd.DataFrame:
    """The done runs with numeric ``cols`` coerced and rows missing any of them dropped."""
    df = data.done.copy()
    for c in cols:
        df[c] = pd.to_numeric(df[c], errors="coerce")
    return df.dropna(subset=list(cols)) if cols else df


def human(v: float, kind: str = "count") -> str:
    """A tick or legend number in words: ``count`` 750k, 1.2M, 3B; ``sci`` 1e15, 3e15; ``plain`` 2.5."""
    if kind == "plain" or v == 0:
        return f"{v:g}"
    if kind == "count" and 1e3 <= abs(v) < 1e15:
        for scale, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
            if abs(v) >= scale:
                return f"{v / scale:.3g}{suffix}"
    if kind == "count" and abs(v) < 1e3:
        return f"{v:.3g}"
    mant, exp = f"{v:.1e}".split("e")
    mant = mant.rstrip("0").rstrip(".")
    return f"{mant}e{int(exp)}"


_STEPS = ((1,), (1, 3), (1, 2, 5), (1, 2, 3, 5), (1, 1.5, 2, 3, 4, 5, 7), (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 7, 8, 9))


def log_ticks(lo: float, hi: float, max_labels: int = 7) -> list[float]:
    """Tick values for a log axis from ``lo`` to ``hi``: powers of ten (every k-th when many decades),
    else the densest of 1-3, 1-2-5, … per decade that keeps at least two and at most ``max_labels`` labels."""
    if not (lo > 0 and hi > lo):
        return []
    if hi / lo < 5:  # a narrow range reads best with evenly spaced round numbers, as on a linear axis
        ticks = mpl.ticker.MaxNLocator(nbins=5, steps=[1, 2, 2.5, 5, 10]).tick_values(lo, hi)
        return [float(t) for t in ticks if lo <= t <= hi]
    d0, d1 = int(np.floor(np.log10(lo))), int(np.ceil(np.log10(hi)))
    decades = [10.0**d for d in range(d0, d1 + 1) if lo <= 10.0**d <= hi]
    if len(decades) >= 3:
        step = int(np.ceil(len(decades) / max_labels))
        return decades[::step]
    best: list[float] = decades
    for subs in _STEPS:
        ticks = [m * 10.0**d for d in range(d0 - 1, d1 + 1) for m in subs if lo <= m * 10.0**d <= hi]
        if len(ticks) > max_labels:
            break
        best = ticks
        if len(ticks) >= 4:
            break
    return best


def _log_axis(axis, kind: str, *, minor: bool = False) -> None:
    """Readable labels on a log axis: a few ticks in words, no crowd of tiny minor labels (and, unless
    ``minor``, no minor ticks at all: the style draws no tick marks and no minor grid, so they only cost time)."""
    lo, hi = sorted(axis.get_view_interval())
    ticks = log_ticks(lo, hi)
    if len(ticks) < 2:  # a sliver of a decade: label its ends
        ticks = [lo, hi] if hi > lo > 0 else ticks
    axis.set_major_locator(mpl.ticker.FixedLocator(ticks))
    axis.set_major_formatter(mpl.ticker.FuncFormatter(lambda v, _: human(v, kind)))
    axis.set_minor_formatter(mpl.ticker.NullFormatter())
    if not minor:
        axis.set_minor_locator(mpl.ticker.NullLocator())


def _readable(fig: Figure, *, minor: bool = False) -> None:
    """Every log axis of the figure gets readable ticks: losses plain, FLOPs as 1e15, counts as 750k."""
    for ax in fig.axes:
        for axis, getlabel in ((ax.xaxis, ax.get_xlabel), (ax.yaxis, ax.get_ylabel)):
            if axis.get_scale() != "log":
                continue
            label = getlabel().lower()
            kind = "plain" if any(u in label for u in ("loss", "gib", "mib", "kwh")) else \
                "sci" if "flop" in label and "/s" not in label else "count"
            _log_axis(axis, kind, minor=minor)


def _plain_y(ax) -> None:
    """Loss axes on a log scale read better as 3.5, 4 than as 4×10⁰ (ticks are set in `_readable`)."""


def _legend(ax, **kw) -> None:
    if ax.get_legend_handles_labels()[0]:
        ax.legend(**kw)


def _band(ax, x, lo, hi, color, label=None) -> None:
    ax.fill_between(x, lo, hi, color=color, alpha=0.2, linewidth=0, label=label)


def _pct(data: ReportData) -> str:
    return f"{100 * data.options.confidence:g}%"


# ------------------------------------------------------------------------------------------ scaling
def fig_groups(data: ReportData, fig: Figure) -> None:
    """Loss against compute per group of the grouping axis, each with its own fitted frontier."""
    g = data.groups
    if g is None:
        raise NoFigure("the runs have no grouping axis with two or more values")
    df = _done(data, "flops", data.loss_col).dropna(subset=[g.by])  # the axis may be text (family): not coerced
    ax = fig.subplots()
    pal = _palette(df[g.by].nunique())
    fr = data.group_frontiers
    for color, (value, sub) in zip(pal, df.groupby(g.by, sort=True), strict=False):
        ax.plot(sub["flops"], sub[data.loss_col], "o", color=color, ms=5, label=_text(f"{g.by} = {value}"))
        if fr is not None:
            line = fr[fr["group"] == value]
            if len(line):
                ax.plot(line["flops"], line["loss"], "-", color=color, lw=1.4)
    ax.set(xscale="log", yscale="log", xlabel="training compute C (FLOPs)",
           ylabel=f"{data.loss_col.replace('_', ' ')} ({'bits/byte' if data.loss_col == 'eval_bpb' else 'nats/token'})")
    _plain_y(ax)
    _legend(ax, loc="upper right", fontsize=8)


def fig_loss_compute(data: ReportData, fig: Figure) -> None:
    df = _done(data, "flops", data.loss_col, "params")
    if df.empty:
        raise NoFigure("no finished run with a loss")
    ax = fig.subplots()
    norm = _size_norm(df["params"])
    ax.scatter(df["flops"], df[data.loss_col], c=df["params"], cmap=CMAP, norm=norm, s=45, edgecolor="black",
               linewidth=0.4, zorder=3)
    if data.frontier is not None:
        f = data.frontier
        ax.plot(f["flops"], f["loss"], color="black", lw=1.5, label="fitted compute-optimal frontier")
        if "loss_low" in f:
            _band(ax, f["flops"], f["loss_low"], f["loss_high"], "black", f"{_pct(data)} bootstrap band")
    if data.predictions is not None:
        p = data.predictions
        yerr = None
        if "loss_low" in p:
            yerr = np.vstack([p["loss"] - p["loss_low"], p["loss_high"] - p["loss"]]).clip(min=0)
        ax.errorbar(p["flops"], p["loss"], yerr=yerr, fmt="D", color=PALETTE[3],
                    capsize=3, label="prediction at 10×/100× compute", zorder=4)
    ax.set(xscale="log", yscale="log", xlabel="training compute C (FLOPs)",
           ylabel=f"{data.loss_col.replace('_', ' ')} (nats/token)")
    _plain_y(ax)
    _legend(ax, loc="upper right", fontsize=8)
    _colorbar(fig, ax, norm)


def fig_isoflop(data: ReportData, fig: Figure) -> None:
    s = data.isoflop_slices
    if s is None or s.empty:
        raise NoFigure(data.missing.get("isoflop", "no isoFLOP profile could be formed"))
    ax = fig.subplots()
    levels = sorted(s["level"].unique())
    colors = _palette(len(levels))
    minima = data.isoflop_minima if data.isoflop_minima is not None else pd.DataFrame(columns=["level"])
    for level, color in zip(levels, colors, strict=True):
        g = s[s["level"] == level].sort_values("params")
        ax.plot(g["params"], g["loss"], "o", color=color, ms=5, label=f"C = {human(level, 'sci')} FLOPs",
                ls="-" if data.isoflop_source == "curves" else "none", lw=0.8, alpha=0.9)
        m = minima[np.isclose(minima["level"].astype(float), level, rtol=1e-6)]
        if len(m) and pd.notna(m["c2"].iloc[0]):
            x = np.geomspace(g["params"].min(), g["params"].max(), 80)
            c0, c1, c2 = (float(m[k].iloc[0]) for k in ("c0", "c1", "c2"))
            ax.plot(x, c0 + c1 * np.log(x) + c2 * np.log(x) ** 2, color=color, lw=1.2, ls="--")
            ax.plot(m["params"], m["loss"], "*", color=color, ms=13, markeredgecolor="black", zorder=4)
    ax.set(xscale="log", xlabel="parameters N (non-embedding)", ylabel="loss (nats/token)")
    _legend(ax, fontsize=7, ncol=2 if len(levels) > 5 else 1)


def _group_curve(fit, g: pd.DataFrame, along: str) -> tuple[np.ndarray, np.ndarray]:
    """The fitted loss along a group of runs: ``along`` varies, the other variable follows the group's trend."""
    other = "tokens" if along == "params" else "params"
    x = np.log(g[along].to_numpy(float))
    y = np.log(g[other].to_numpy(float))
    slope, icpt = (np.polyfit(x, y, 1) if np.ptp(x) > 0 and len(g) > 1 else (0.0, float(y.mean())))
    xs = np.linspace(x.min(), x.max(), 60)
    kw = {along: np.exp(xs), other: np.exp(icpt + slope * xs)}
    return np.exp(xs), np.asarray(fit.predict(**kw))


def fig_loss_params_tokens(data: ReportData, fig: Figure) -> None:
    df = _done(data, "params", "tokens", data.loss_col)
    if df.empty:
        raise NoFigure("no finished run with a loss")
    ax1, ax2 = fig.subplots(1, 2, sharey=True)
    for ax, along, label in ((ax1, "params", "parameters N (non-embedding)"), (ax2, "tokens", "training tokens D")):
        group = _grouping(df, along)
        groups = list(df.groupby(group, sort=False)) if group else [("all runs", df)]
        colors = _palette(len(groups))
        for (name, g), color in zip(groups, colors, strict=True):
            g = g.sort_values(along)
            ax.plot(g[along], g[data.loss_col], "o", color=color, ms=5, label=_group_words(group, name, g))
            if data.fit is not None and len(g) > 1:
                x, y = _group_curve(data.fit, g, along)
                ax.plot(x, y, color=color, lw=1.2)
        ax.set(xscale="log", yscale="log", xlabel=label)
        _plain_y(ax)
        if len(groups) <= 12:
            _legend(ax, fontsize=7, title={"budget": "budget", "size": "model size"}.get(group), title_fontsize=7)
    ax1.set_ylabel("loss (nats/token)")


def budget_words(label: object) -> str:
    """A budget label in words: t7.5e5 -> "750k tokens", tpp20 -> "20 tokens/param", C1e15 -> "C = 1e15 FLOPs"."""
    m = re.fullmatch(r"(tpp|t|c)([0-9.]+(?:e[-+]?[0-9]+)?)", str(label), flags=re.I)
    if not m:
        return _text(label)
    kind, value = m.group(1).lower(), float(m.group(2))
    if kind == "t":
        return f"{human(value)} tokens"
    if kind == "c":
        return f"C = {human(value, 'sci')} FLOPs"
    if kind == "tpp":
        return f"{human(value)} tokens/param"
    return _text(label)


def _group_words(group: str | None, name: object, g: pd.DataFrame) -> str:
    if group == "budget":
        return budget_words(name)
    if group == "size":
        n = pd.to_numeric(g["params"], errors="coerce").median()
        return f"{_text(name)} ({human(n)} params)" if pd.notna(n) and str(name) != human(n) else _text(name)
    return _text(name)


def _grouping(df: pd.DataFrame, along: str) -> str | None:
    """The label column whose groups vary ``along`` the most (budget or size), so each group is a curve."""
    best, best_n = None, 1.0
    for col in ("budget", "size"):
        if df[col].notna().all():
            n = float(df.groupby(col)[along].nunique().mean())
            if n > best_n:
                best, best_n = col, n
    return best


def fig_optimal(data: ReportData, fig: Figure) -> None:
    f = data.frontier
    if f is None:
        raise NoFigure(data.missing.get("fit", "no fitted law with a compute-optimal frontier"))
    df = _done(data, "flops", "params", "tokens")
    axes = fig.subplots(1, 2)
    pal = _palette()
    for ax, col, label in ((axes[0], "params", "N_opt (parameters)"), (axes[1], "tokens", "D_opt (tokens)")):
        ax.plot(f["flops"], f[col], color=pal[0], lw=1.8, label="parametric fit")
        if f"{col}_low" in f:
            _band(ax, f["flops"], f[f"{col}_low"], f[f"{col}_high"], pal[0], f"{_pct(data)} bootstrap band")
        for res, marker, name, color in ((data.isoflop, "s", "isoFLOP minima (Approach 2)", pal[1]),
                                         (data.approach1, "^", "curve envelope (Approach 1)", pal[2])):
            if res is not None and len(res.frontier):
                pts = res.frontier[res.frontier["flops"] >= df["flops"].min() / 3]  # not the warm-up region
                ax.plot(pts["flops"], pts[col], marker, color=color, ms=6, label=name,
                        markeredgecolor="black", markeredgewidth=0.4)
        ax.plot(df["flops"], df[col], ".", color="grey", ms=5, alpha=0.6, label="runs in the sweep")
        ax.set(xscale="log", yscale="log", xlabel="training compute C (FLOPs)", ylabel=label)
    _legend(axes[0], fontsize=7)


def fig_residuals(data: ReportData, fig: Figure) -> None:
    fit = data.fit
    if fit is None or fit.residuals is None:
        raise NoFigure(data.missing.get("fit", "no fitted law"))
    r = fit.residuals
    bt = data.backtest
    axes = fig.subplots(1, 2 if bt is not None else 1, squeeze=False)[0]
    norm = _size_norm(r["params"])
    ax = axes[0]
    ax.axhline(0, color="black", lw=0.8)
    ax.scatter(r["flops"], 100 * (np.exp(r["residual"]) - 1), c=r["params"], cmap=CMAP, norm=norm,
               edgecolor="black", linewidth=0.4, s=40, zorder=3)
    ax.set(xscale="log", xlabel="training compute C (FLOPs)", ylabel="fit − measured (% of loss)",
           title="in-sample residuals")
    if bt is not None:
        ax = axes[1]
        e = bt.errors
        lo, hi = float(min(e["loss"].min(), e["predicted"].min())), float(max(e["loss"].max(), e["predicted"].max()))
        pad = 0.02 * (hi - lo + 1e-9)
        ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="black", lw=0.8, ls="--", label="perfect")
        ax.scatter(e["loss"], e["predicted"], c=e["params"], cmap=CMAP, norm=norm, edgecolor="black", s=45,
                   linewidth=0.4, zorder=3, label=f"held-out runs (MAPE {100 * bt.mape:.2f}%)")
        ax.set(xlabel="measured loss (nats/token)", ylabel="predicted loss (nats/token)",
               title=f"backtest: fit below {bt.below_flops:.2g} FLOPs")
        _legend(ax, fontsize=7)
    _colorbar(fig, list(axes), norm)


def _thin(g: pd.DataFrame, n: int = _MAX_CURVE_POINTS) -> pd.DataFrame:
    if len(g) <= n:
        return g
    idx = np.unique(np.geomspace(1, len(g), n).astype(int) - 1)
    return g.iloc[idx]


def fig_curves(data: ReportData, fig: Figure) -> None:
    steps = data.steps
    if steps.empty:
        raise NoFigure("no training curves in the store")
    meta = data.results[["run_id", "params", "status"]]
    s = steps.merge(meta, on="run_id")
    s = s[(s["tokens"] > 0) & s["loss"].notna()]
    if s.empty:
        raise NoFigure("no training curves with a loss")
    ax = fig.subplots()
    norm = _size_norm(s["params"])
    cmap = mpl.colormaps[CMAP]
    for _run_id, g in s.groupby("run_id", sort=False):
        g = _thin(g.sort_values("step"))
        bad = g["status"].iloc[0] in ("failed", "diverged")
        ax.plot(g["tokens"], g["loss"], color=cmap(norm(g["params"].iloc[0])), lw=1.0,
                ls=":" if bad else "-", alpha=0.85)
    ax.set(xscale="log", yscale="log", xlabel="tokens seen D", ylabel="training loss (nats/token)")
    _plain_y(ax)
    _colorbar(fig, ax, norm)


# ------------------------------------------------------------------------------------------ performance
def fig_throughput(data: ReportData, fig: Figure) -> None:
    df = _done(data, "params", "tokens_per_s")
    if df.empty:
        raise NoFigure("no run measured its throughput")
    col, _ = mfu_basis(data)
    mfu = pd.to_numeric(df[col], errors="coerce") if col else pd.Series(np.nan, index=df.index)
    axes = fig.subplots(1, 2 if mfu.notna().any() else 1, squeeze=False)[0]
    norm = _size_norm(df["params"])
    axes[0].scatter(df["params"], df["tokens_per_s"], c=df["params"], cmap=CMAP, norm=norm, edgecolor="black",
                    linewidth=0.4, s=40)
    axes[0].set(xscale="log", yscale="log", xlabel="parameters N (non-embedding)",
                ylabel="throughput (tokens/s, median step)")
    if len(axes) > 1:
        ok = mfu <= 1
        axes[1].scatter(df["params"][ok], 100 * mfu[ok], c=df["params"][ok], cmap=CMAP, norm=norm,
                        edgecolor="black", linewidth=0.4, s=40)
        label = "MFU (% of datasheet peak FLOP/s)" if col == "mfu" else "MFU (% of measured peak FLOP/s)"
        axes[1].set(xscale="log", xlabel="parameters N (non-embedding)", ylabel=label)
        axes[1].set_ylim(bottom=0)
        over = mfu > 1
        if over.any():  # impossible values: the peak is understated; shown as such, not as measurements
            axes[1].axhline(100, color="black", lw=0.8, ls="--")
            axes[1].scatter(df["params"][over], np.full(int(over.sum()), 100.0), marker="^", s=70,
                            facecolor="none", edgecolor="#c0392b", linewidth=1.2, zorder=4,
                            label=f"{int(over.sum())} run(s) above 100%: the peak is understated, not a measurement")
            axes[1].set_ylim(0, 115)
            axes[1].legend(fontsize=7, loc="lower right")


def _throughput_note(data: ReportData) -> str | None:
    col, basis = mfu_basis(data)
    notes = [basis] if basis else []
    if col:
        mfu = pd.to_numeric(data.done[col], errors="coerce")
        over = data.done.loc[mfu > 1, "run_id"].tolist()
        if over:
            why = ("the catalog's datasheet peak for this device and precision is understated, or the FLOP count "
                   "is too high: check the catalog entry" if col == "mfu" else
                   "a calibration taken while the machine was busy understates the peak: rerun `scalebench env "
                   "--calibrate` on an idle machine")
            notes.append(f"MFU above 100% ({', '.join(map(str, over))}) is impossible, so those runs are drawn as "
                         f"open triangles at 100%, not as measurements: {why}.")
    return " ".join(notes) or None


def fig_memory(data: ReportData, fig: Figure) -> None:
    df = data.results.copy()
    for c in ("params", "peak_mem_bytes", "peak_reserved_bytes", "memory_model_bytes"):
        df[c] = pd.to_numeric(df[c], errors="coerce")
    has = {c: df[c].notna().any() for c in ("peak_mem_bytes", "peak_reserved_bytes", "memory_model_bytes")}
    if not any(has.values()):
        raise NoFigure("no memory measurement and no estimator figure for these runs")
    ax = fig.subplots()
    pal = _palette()
    top = max(float(df[c].max()) for c in has if has[c])
    unit, scale = ("MiB, 2²⁰ B", 2.0**20) if top < GIB else ("GiB, 2³⁰ B", GIB)  # tiny models: no 0.006 GiB
    for (col, label, marker), color in zip(
        (("peak_mem_bytes", "measured peak allocated", "o"), ("peak_reserved_bytes", "measured peak reserved", "s"),
         ("memory_model_bytes", "estimator: weights + grads + optimizer + activations", "x")), pal, strict=False):
        if has[col]:
            g = df.dropna(subset=[col, "params"]).sort_values("params")
            ax.plot(g["params"], g[col] / scale, marker, color=color, label=label, ms=6, ls="none")
    what = "device memory" if has["peak_mem_bytes"] or has["peak_reserved_bytes"] else "modelled training memory"
    ax.set(xscale="log", yscale="log", xlabel="parameters N (non-embedding)", ylabel=f"{what} ({unit})")
    _legend(ax, fontsize=7)


def _cpu_nvml(data: ReportData) -> str:
    reason = (data.meta.get("env") or {}).get("nvml_reason")
    return f" (NVML here: {reason})" if reason else ""


def fig_energy(data: ReportData, fig: Figure) -> None:
    df = _done(data, "params")
    power = pd.to_numeric(df["avg_power_w"], errors="coerce")
    energy = pd.to_numeric(df["energy_j"], errors="coerce")
    if power.isna().all() and energy.isna().all():
        if data.spend.device_kind == "CPU":
            raise NoFigure(f"on a CPU: power and energy come from NVML, which measures NVIDIA GPUs, and "
                           f"these runs trained on the CPU{_cpu_nvml(data)}")
        raise NoFigure("no run measured power or energy (NVML energy counter unavailable)")
    axes = fig.subplots(1, 2)
    norm = _size_norm(df["params"])
    kw = {"c": df["params"], "cmap": CMAP, "norm": norm, "edgecolor": "black", "linewidth": 0.4, "s": 40}
    axes[0].scatter(df["params"], power, **kw)
    axes[0].set(xscale="log", xlabel="parameters N (non-embedding)", ylabel="average power (W)")
    axes[1].scatter(pd.to_numeric(df["flops"], errors="coerce"), energy / 3.6e6, **kw)
    axes[1].set(xscale="log", yscale="log", xlabel="training compute C (FLOPs)", ylabel="energy per run (kWh)")


def fig_telemetry(data: ReportData, fig: Figure) -> None:
    t = data.telemetry
    if t.empty:
        if data.spend.device_kind == "CPU":
            raise NoFigure(f"on a CPU: GPU utilisation, power, memory and clocks are NVML samples of an "
                           f"NVIDIA GPU, and these runs trained on the CPU{_cpu_nvml(data)}")
        raise NoFigure(data.missing.get("telemetry", "no GPU telemetry"))
    cols = [(c, lab, scale) for c, lab, scale in (("gpu_util", "GPU utilisation (%)", 1.0),
                                                   ("power_w", "power (W)", 1.0),
                                                   ("mem_used_bytes", "memory used (GiB)", 1 / GIB),
                                                   ("sm_clock_mhz", "SM clock (MHz)", 1.0)) if t[c].notna().any()]
    if not cols:
        raise NoFigure("telemetry samples carry no values")
    axes = fig.subplots(len(cols), 1, sharex=True, squeeze=False)[:, 0]
    params = data.results.set_index("run_id")["params"]
    norm = _size_norm(params)
    cmap = mpl.colormaps[CMAP]
    t0 = float(t["t_s"].min())
    for run_id, g in t.groupby("run_id", sort=False):
        color = cmap(norm(params.get(run_id, np.nan))) if pd.notna(params.get(run_id)) else "grey"
        for ax, (c, _, scale) in zip(axes, cols, strict=True):
            ax.plot((g["t_s"] - t0) / 60.0, g[c] * scale, color=color, lw=0.9)
    for ax, (_, label, _) in zip(axes, cols, strict=True):
        ax.set_ylabel(label, fontsize=8)
    axes[-1].set_xlabel("time since the first sample (minutes)")


# ------------------------------------------------------------------------------------------ bottlenecks
def fig_kernels(data: ReportData, fig: Figure) -> None:
    k = data.kernel_time
    if (k is None or k.empty) and data.spend.device_kind == "CPU":
        raise NoFigure("no profiler trace: on CPU the profiler window runs only in runs of at least 5 times its "
                       "length (profiling.profiler = 'auto'), and these were shorter; set profiling.profiler = "
                       "'on' for a time-by-operator breakdown (the verdicts then come from step timing)")
    if k is None or k.empty:
        raise NoFigure(data.missing.get("kernel_time", data.missing.get("bottlenecks", "no profiler breakdown")))
    table = k.pivot_table(index="run_id", columns="category", values="seconds", aggfunc="sum", fill_value=0.0)
    order = k.drop_duplicates("run_id").sort_values("params")["run_id"]
    table = table.loc[list(order)]
    share = table.div(table.sum(axis=1), axis=0) * 100
    cats = [c for c in ("matmul", "attention", "elementwise", "memcpy", "communication", "other", "idle")
            if c in share] + [c for c in share if c not in ("matmul", "attention", "elementwise", "memcpy",
                                                            "communication", "other", "idle")]
    colors: dict[str, object] = dict(zip(cats, _palette(len(cats)), strict=True))
    if "idle" in colors:
        colors["idle"] = (0.85, 0.85, 0.85)
    ax = fig.subplots()
    left = np.zeros(len(share))
    y = np.arange(len(share))
    for c in cats:
        ax.barh(y, share[c], left=left, color=colors[c], label=c, edgecolor="white", linewidth=0.3)
        left += share[c].to_numpy()
    ax.set_yticks(y, [_text(r) for r in share.index], fontsize=7 if len(share) > 20 else 8)
    ax.invert_yaxis()
    ax.set(xlim=(0, 100), xlabel="share of the profiled window (%; idle = device waiting)")
    ax.legend(ncol=min(len(cats), 7), fontsize=7, loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)


# key -> a sentence under the figure on what this sweep cannot show (or None)
NOTES: dict[str, Callable[[ReportData], str | None]] = {
    "throughput": _throughput_note,
    "memory": rss_note,
}

# key -> (title, caption, function, figure size in inches (w, h) or a function of the data)
FIGURES: dict[str, tuple[str, str, Callable, Callable[[ReportData], tuple[float, float]]]] = {
    "groups": ("Loss against compute by group",
               "Each group's runs (points) and its own fitted compute-optimal frontier (line).",
               fig_groups, lambda d: (7.5, 4.2)),
    "loss_compute": ("Loss against compute",
                     "Every finished run, coloured by model size; the line is the fitted law's compute-optimal "
                     "frontier with its bootstrap band; diamonds are the predictions at 10× and 100× the sweep's "
                     "largest compute.", fig_loss_compute, lambda d: (8.0, 4.6)),
    "isoflop": ("IsoFLOP profiles",
                "Loss against model size at fixed compute; dashed parabolas (in log N) and stars mark each "
                "profile's fitted minimum.", fig_isoflop, lambda d: (8.0, 4.4)),
    "loss_params_tokens": ("Loss against parameters and against tokens",
                           "Points are runs; lines are the fitted law along each group (left: per budget, "
                           "right: per size).", fig_loss_params_tokens, lambda d: (10.0, 4.2)),
    "optimal": ("Compute-optimal parameters and tokens",
                "N_opt(C) and D_opt(C) from the fitted law with bootstrap bands, and the isoFLOP estimates "
                "where the sweep supports them.", fig_optimal, lambda d: (10.0, 4.2)),
    "residuals": ("Residuals and backtest",
                  "Left: the fit's in-sample error per run. Right: a fit on the smaller-compute runs predicting "
                  "the larger ones.", fig_residuals, lambda d: (10.0, 4.0)),
    "curves": ("Training curves", "Training loss against tokens seen, one line per run, coloured by size "
               "(dotted: failed or diverged).", fig_curves, lambda d: (8.0, 4.6)),
    "throughput": ("Throughput and MFU against size", "Median-step throughput and model FLOPs utilisation (MFU: "
                   "achieved model FLOP/s over the device's peak).",
                   fig_throughput, lambda d: (10.0, 4.0)),
    "memory": ("Memory against size", "Measured peak device memory and the estimator's modelled bytes.",
               fig_memory, lambda d: (8.0, 4.0)),
    "energy": ("Power and energy per run", "Average board power (NVML) and energy per run.", fig_energy,
               lambda d: (10.0, 4.0)),
    "telemetry": ("GPU telemetry timeline", "NVML samples over the sweep, coloured by the run's model size.",
                  fig_telemetry, lambda d: (10.0, 6.0)),
    "kernels": ("Device time by kernel category",
                "Share of each run's profiled window by kernel category (idle: the device waited).",
                fig_kernels, lambda d: (9.0, 1.2 + 0.22 * max(1, len(d.kernel_time["run_id"].unique()))
                                        if d.kernel_time is not None else 3.0)),
}


def _render_one(data: ReportData, key: str, mode: RenderMode) -> RenderedFigure:
    title, caption, draw, size = FIGURES[key]
    fig = Figure(figsize=size(data), layout="constrained")
    note = NOTES[key](data) if key in NOTES else None
    try:
        draw(data, fig)
        _readable(fig, minor=mode.minor_ticks)
    except NoFigure as exc:
        return RenderedFigure(key=key, title=title, caption=caption, svg=None, missing=str(exc), note=note)
    return RenderedFigure(key=key, title=title, caption=caption, svg=_svg(fig, key, title, tight=mode.tight_bbox),
                          note=note)


_FORKED: tuple[ReportData, RenderMode] | None = None  # what a forked worker draws from (inherited, not pickled)


def _render_forked(key: str) -> RenderedFigure:
    assert _FORKED is not None
    return _render_one(_FORKED[0], key, _FORKED[1])


def _render_parallel(data: ReportData, keys: list[str], mode: RenderMode) -> dict[str, RenderedFigure]:
    """Draw ``keys`` in ``mode.workers`` forked processes; each inherits ``data`` and the style in effect."""
    import multiprocessing

    global _FORKED
    _FORKED = (data, mode)
    try:
        with multiprocessing.get_context("fork").Pool(min(mode.workers, len(keys))) as pool:
            done = pool.map(_render_forked, keys, chunksize=1)
    finally:
        _FORKED = None
    return dict(zip(keys, done, strict=True))


def render_figures(data: ReportData, mode: RenderMode = FAST) -> dict[str, RenderedFigure]:
    """Every figure of the report, as inline SVG or with the reason it is missing; ``mode`` says how
    (the figures' content does not depend on it)."""
    keys = list(FIGURES)
    with mpl.rc_context(_style(mode)):
        if mode.workers > 1 and sys.platform.startswith("linux"):  # fork: no re-import, no pickled data
            return _render_parallel(data, keys, mode)
        return {key: _render_one(data, key, mode) for key in keys}
