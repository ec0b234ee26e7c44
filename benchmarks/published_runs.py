"""Benchmark: the cost estimator against documented training runs (issue 12's acceptance table).

    python benchmarks/published_runs.py [--json | --markdown]

For every run in ``scalebench.planning.evidence.PUBLISHED_RUNS`` (source in each row) it prints the
published GPU-hours, the estimate at default settings (only the published setup is passed: model preset,
accelerator, precision, and the GPU count and global batch where the authors published them), their ratio,
whether the published figure lies inside the estimate's ``gpu_hours_range``, the estimate with the
published utilisation given where one is published (``mfu=``, or ``hfu=`` for a hardware rate such as
BLOOM's 156 TFLOP/s, which the estimator converts by the run's recomputation; ``goodput=`` where the authors
state their effective training time), and that ratio. A run whose ratio misses 6% gets its reason: what its
published hours contain beyond training at the published rate, and the goodput that would close the gap
(implied, not published). Below it, the hardware model's leave-one-out error: each run's GPU-hours
predicted with the model's two fitted numbers (kernel efficiency, goodput; ``scalebench.planning.evidence``)
fitted without that run.

The defaults are no longer fitted to these rows one by one: the utilisation comes from a model of the
hardware (``scalebench.planning.throughput``), so the leave-one-out figures are the honest out-of-sample error.
With the published utilisation given, the estimate should land within about 6%.
"""

from __future__ import annotations

import argparse
import json
import math
import re

import numpy as np
import pandas as pd

from scalebench.planning import estimate
from scalebench.planning.evidence import PUBLISHED_RUNS, leave_one_out


def _published_utilisation(run) -> dict:
    if run.published_mfu:
        return {"mfu": run.published_mfu}
    if run.published_hfu:
        return {"hfu": run.published_hfu}
    return {}


def table() -> pd.DataFrame:
    rows = []
    for run in PUBLISHED_RUNS:
        kw = run.estimate_kwargs()
        e = estimate(**kw)
        lo, hi = e.gpu_hours_range
        row = {"run": run.name, "gpu": run.gpu, "published_gpu_hours": run.gpu_hours,
               "ours_default": e.gpu_hours, "ratio_default": e.gpu_hours / run.gpu_hours,
               "range_low": lo, "range_high": hi, "inside_range": bool(lo <= run.gpu_hours <= hi),
               "default_mfu": e.mfu, "layout": " ".join(f"{k}{v}" for k, v in (e.layout or {}).items()),
               "layout_loss": (e.layout_overheads or {}).get("loss", math.nan),
               "published_util": math.nan, "util_kind": "", "ours_published": math.nan, "ratio_published": math.nan,
               "published_goodput": run.published_goodput, "within_6pct": None, "implied_goodput": math.nan,
               "source": run.source, "published_util_source": run.published_mfu_source,
               "hours_note": run.hours_note}
        given = _published_utilisation(run)
        if given:
            (kind, value), = given.items()
            g = estimate(**kw, **given, goodput=run.published_goodput)
            ratio = g.gpu_hours / run.gpu_hours
            row.update(published_util=value, util_kind=kind.upper(), ours_published=g.gpu_hours, ratio_published=ratio,
                       within_6pct=bool(abs(ratio - 1) <= 0.06), implied_goodput=ratio * (run.published_goodput or 1.0))
        if not 1 / 1.33 <= row["ratio_default"] <= 1.33:
            row["default_note"] = run.default_note
        rows.append(row)
    return pd.DataFrame(rows)


def _print_runs(t: pd.DataFrame) -> None:
    print(f"{'run':<15} {'GPU':<10} {'published':>12} {'ours@default':>13} {'ratio':>6} {'range':>23} {'in?':>4} "
          f"{'published util.':>15} {'ours@published':>14} {'ratio':>6}  layout (loss)")
    print("  (published util.: MFU, or HFU = a hardware rate with recomputation counted; g = published goodput)")
    for r in t.itertuples():
        has = math.isfinite(r.ratio_published)
        goodput = r.published_goodput if r.published_goodput and math.isfinite(r.published_goodput) else None
        pub = f"{r.util_kind} {r.published_util:.3f}" + (f" g{goodput:.2f}" if goodput else "")
        print(f"{r.run:<15} {r.gpu:<10} {r.published_gpu_hours:12,.0f} {r.ours_default:13,.0f} {r.ratio_default:6.3f} "
              f"{r.range_low:11,.0f}-{r.range_high:<11,.0f} {'yes' if r.inside_range else 'NO':>4} "
              f"{pub if has else '-':>15} {f'{r.ours_published:14,.0f}' if has else f'{chr(45):>14}'} "
              f"{f'{r.ratio_published:6.3f}' if has else f'{chr(45):>6}'}  {r.layout} ({r.layout_loss:.0%})")
    worst = max(t["ratio_default"].max(), 1 / t["ratio_default"].min())
    within = int((np.maximum(t.ratio_default, 1 / t.ratio_default) <= 1.33).sum())
    print(f"\nat defaults: worst factor {worst:.3f}x, {within}/{len(t)} within 1.33x, "
          f"{int(t.inside_range.sum())}/{len(t)} inside the range")
    for r in t.itertuples():
        if isinstance(getattr(r, "default_note", None), str):
            print(f"  outside 1.33x at defaults: {r.run} {r.ratio_default:.3f}: {r.default_note or 'no reason recorded'}")
    given = t.dropna(subset=["ratio_published"])
    ok = given[given.within_6pct.astype(bool)]
    print(f"with the published utilisation: {len(given)} runs, {len(ok)} within 6% "
          f"({', '.join(f'{r.run} {r.ratio_published:.3f}' for r in ok.itertuples())})")
    for r in given[~given.within_6pct.astype(bool)].itertuples():
        print(f"  not within 6%: {r.run} {r.ratio_published:.3f}: {r.hours_note or 'no explanation recorded'}; "
              f"the goodput that would close the gap, {r.implied_goodput:.2f}, is implied, not published")


def _print_loo(loo: pd.DataFrame) -> None:
    from scalebench.planning.evidence import calibrated_goodput, kernel_efficiency, model_range

    lo, hi = model_range()
    print(f"\nhardware model, leave-one-out: kernel efficiency {kernel_efficiency():.3f} (published / modelled "
          f"throughput MFU, geometric mean over the runs that publish one), goodput {calibrated_goodput():.3f} "
          f"(modelled / published GPU-hours); range x{lo:.2f}-x{hi:.2f} of the MFU")
    print(f"{'run':<15} {'GPU':<10} {'layout':<22} {'kernel MFU':>10} {'publ. MFU':>9} {'model MFU':>9} "
          f"{'implied':>7} {'goodput':>7} {'LOO eff.':>8} {'LOO gp':>6} {'LOO ratio':>9}")
    for r in loo.itertuples():
        pub = f"{r.published_mfu:9.3f}" if math.isfinite(r.published_mfu) else f"{'-':>9}"
        print(f"{r.run:<15} {r.gpu:<10} {r.layout:<22} {r.kernel_mfu:10.3f} {pub} {r.modelled_mfu:9.3f} "
              f"{r.implied_mfu:7.3f} {r.implied_goodput:7.3f} {r.loo_efficiency:8.3f} {r.loo_goodput:6.3f} "
              f"{r.loo_ratio:9.3f}")
    err = np.abs(np.log(loo["loo_ratio"]))
    print(f"\nleave-one-out (predicted / published GPU-hours): median |error| {np.expm1(np.median(err)):.1%}, "
          f"geometric mean {np.expm1(err.mean()):.1%}, worst {np.expm1(err.max()):.1%} "
          f"({loo.loc[err.idxmax(), 'run']}); {int((err <= math.log(1.33)).sum())}/{len(loo)} within 1.33x, "
          f"{int((err <= math.log(1.5)).sum())}/{len(loo)} within 1.5x, "
          f"{int((err <= math.log(2.5)).sum())}/{len(loo)} within 2.5x")


_CITATION = re.compile(r":\s")  # "Author year, title (arXiv:id), table N: what" -> the part before ": "


def markdown(t: pd.DataFrame, loo: pd.DataFrame) -> str:
    """The table docs/estimates.md carries (tests/test_planning_evidence.py checks that it is this output)."""
    def util(r) -> str:
        if not math.isfinite(r.ratio_published):
            return "-", "-", "-"
        goodput = r.published_goodput if r.published_goodput and math.isfinite(r.published_goodput) else None
        kind = f"{r.util_kind} {r.published_util:.3f}" + (f", goodput {goodput:.2f}" if goodput else "")
        return kind, f"{r.ours_published:,.0f}", f"{r.ratio_published:.3f}"

    lines = ["| run | accelerator | published GPU-hours | ours at defaults | ratio | in range | published utilisation "
             "| ours with it | ratio | LOO ratio | source |",
             "| --- | --- | ---: | ---: | ---: | --- | --- | ---: | ---: | ---: | --- |"]
    ratios = dict(zip(loo["run"], loo["loo_ratio"], strict=True))
    for r in t.itertuples():
        kind, ours, ratio = util(r)
        lines.append(f"| {r.run} | {r.gpu} | {r.published_gpu_hours:,.0f} | {r.ours_default:,.0f} | {r.ratio_default:.3f} "
                     f"| {'yes' if r.inside_range else 'no'} | {kind} | {ours} | {ratio} | {ratios[r.run]:.3f} "
                     f"| {_CITATION.split(r.source, maxsplit=1)[0]} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print the tables as JSON records")
    ap.add_argument("--markdown", action="store_true", help="print the table docs/estimates.md carries")
    args = ap.parse_args()
    t, loo = table(), leave_one_out()
    if args.json:
        print(json.dumps({"runs": t.to_dict("records"), "leave_one_out": loo.to_dict("records")}, indent=2, default=str))
        return
    if args.markdown:
        print(markdown(t, loo))
        return
    _print_runs(t)
    print("\nsources:")
    for r in t.itertuples():
        extra = f"; utilisation: {r.published_util_source}" if r.published_util_source else ""
        print(f"  {r.run}: {r.source}{extra}")
    _print_loo(loo)


if __name__ == "__main__":
    main()
