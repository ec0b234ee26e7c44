"""The report's sentences: what the fit says, what the bottlenecks look like, what to distrust."""

from __future__ import annotations

import math

import pandas as pd

from scalebench.report.data import ReportData

__all__ = ["bottleneck_summary", "fit_summary", "si", "verdict_sentence"]

_BOUND = {
    "compute": "compute-bound",
    "memory-bandwidth": "memory-bandwidth-bound",
    "host-overhead": "host-overhead bound",
    "data-loading": "data-loading bound",
    "communication": "communication-bound",
    "memory-capacity": "memory-capacity bound",
}
_COUNT = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight", 9: "nine"}


def si(x: float | None, digits: int = 3) -> str:
    """1.23M, 4.5e+21 style: SI prefixes up to T, scientific beyond."""
    if x is None or not isinstance(x, (int, float)) or not math.isfinite(x):
        return "–"
    ax = abs(x)
    for scale, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if 1e15 > ax >= scale:
            return f"{x / scale:.{digits}g}{suffix}"
    if ax >= 1e15 or (0 < ax < 1e-3):
        return f"{x:.{digits}g}"
    return f"{x:.{digits}g}"


def _count(n: int) -> str:
    return _COUNT.get(n, str(n))


VERDICT_TEXT = {
    "reliable": "The data determine this fit: no diagnostic check fired.",
    "weak": "This fit is weak: read its numbers as indicative, not as measurements.",
    "undetermined": "This fit is undetermined: the runs do not pin down the law, so its parameters, predictions "
                    "and plan are not supported by the data.",
}


def verdict_sentence(data: ReportData) -> str | None:
    fit = data.fit
    if fit is None or fit.diagnostics is None:
        return None
    return VERDICT_TEXT[fit.diagnostics.verdict]


def fit_summary(data: ReportData) -> list[str]:
    """Two to four sentences on the fitted law and what it implies."""
    fit = data.fit
    if fit is None:
        return [f"No scaling law could be fitted: {data.missing.get('fit', 'unknown reason')}."]
    pct = f"{100 * data.options.confidence:g}%"
    origin = " (the fit saved by scalebench fit)" if data.fit_origin == "saved" else ""
    out = [f"A {fit.law} law ({fit.form.formula}) was fitted to {fit.n_points} finished runs by robust "
           f"(Huber) regression on log loss{origin}."]
    if fit.a is not None:
        ci = fit.intervals
        a = f"a = {fit.a:.3f}" + (f" [{ci['a'][0]:.3f}, {ci['a'][1]:.3f}]" if "a" in ci else "")
        b = f"b = {fit.b:.3f}" + (f" [{ci['b'][0]:.3f}, {ci['b'][1]:.3f}]" if "b" in ci else "")
        out.append(f"Compute-optimal scaling: N_opt ∝ C^a with {a} and D_opt ∝ C^b with {b}"
                   + (f" ({pct} bootstrap intervals over {data.n_bootstrap} resamples)." if ci else "."))
    if data.predictions is not None and len(data.predictions):
        p = data.predictions.iloc[-1]
        caveat = "" if fit.verdict in (None, "reliable") else f"If the {fit.verdict} fit held, then a"
        out.append(f"{caveat or 'A'}t {p['factor']:g}× the sweep's largest compute ({p['flops']:.3g} FLOPs) the fit predicts a "
                   f"loss of {p['loss']:.3f} with {si(p['params'])} parameters on {si(p['tokens'])} tokens "
                   f"({p['tokens_per_param']:.3g} tokens per parameter).")
    if data.backtest is not None:
        bt = data.backtest
        out.append(f"Backtest: fitted on the {bt.n_train} runs below {bt.below_flops:.3g} FLOPs, it predicts the "
                   f"{bt.n_test} larger ones with a mean absolute error of {100 * bt.mape:.2f}%.")
    return out


def bottleneck_summary(data: ReportData) -> str | None:
    """The pattern of verdicts across model sizes, e.g. 'The three smallest models are host-overhead bound;
    the two largest are compute-bound.'"""
    b = data.bottlenecks
    if b is None or b.empty:
        return None
    by_size = (b.assign(params=pd.to_numeric(b["params"], errors="coerce")).dropna(subset=["params"])
               .groupby("params")["verdict"].agg(lambda s: s.mode().iloc[0] if s.notna().any() else "undetermined")
               .sort_index())
    if by_size.empty:
        return None
    groups: list[tuple[str, int]] = []
    for verdict in by_size:
        if groups and groups[-1][0] == verdict:
            groups[-1] = (verdict, groups[-1][1] + 1)
        else:
            groups.append((verdict, 1))
    word = {v: _BOUND.get(v, "without a verdict") for v, _ in groups}
    if len(groups) == 1:
        text = f"Every model size in the sweep is {word[groups[0][0]]}."
    else:
        parts = []
        for i, (verdict, n) in enumerate(groups):
            models = "model" if n == 1 else f"{_count(n)} models"
            if i == 0:
                where = f"the smallest {models}" if n == 1 else f"the {_count(n)} smallest models"
            elif i == len(groups) - 1:
                where = f"the largest {models}" if n == 1 else f"the {_count(n)} largest models"
            else:
                where = f"the next {models}"
            verb = "is" if n == 1 else "are"
            parts.append(f"{where} {verb} {word[verdict]}")
        text = "; ".join(parts)
        text = text[0].upper() + text[1:] + "."
    mfu = pd.to_numeric(b["mfu"], errors="coerce").dropna() if "mfu" in b else pd.Series(dtype=float)
    if len(mfu):
        text += f" MFU ranges from {mfu.min():.0%} to {mfu.max():.0%}."
    first = groups[0][0]
    if first == "host-overhead" and len(groups) > 1:
        text += (" Small models leave the device waiting on kernel launches: fuse with torch.compile or raise the "
                 "micro-batch before reading their throughput as a property of the hardware.")
    elif any(v == "memory-capacity" for v, _ in groups):
        text += " Runs at the memory limit were slowed by the allocator: see the per-run recommendations."
    return text
