"""Benchmark: the cost estimator against documented training runs (issue 12's acceptance table).

    python benchmarks/published_runs.py [--json]

For every run in ``scalebench.planning.evidence.PUBLISHED_RUNS`` (source in each row) it prints the
published GPU-hours, the estimate at default settings (only the published setup is passed: model preset,
accelerator, precision, and the GPU count and global batch where the authors published them), their ratio,
whether the published figure lies inside the estimate's ``gpu_hours_range``, the estimate with the
published utilisation given (``mfu=``, and ``goodput=`` where the authors state their effective training
time) where one is published, and that ratio. Below it, the default-MFU
table's leave-one-out error: each run's MFU predicted from the table without its own row.

Targets (issue 12): defaults within about 1.33x and inside the range; with the published MFU within
about 6%.
"""

from __future__ import annotations

import argparse
import json
import math

import numpy as np
import pandas as pd

from scalebench.planning import estimate
from scalebench.planning.evidence import PUBLISHED_RUNS, leave_one_out


def _kwargs(run) -> dict:
    kw = dict(model=run.model, gpu=run.gpu, precision=run.precision, tokens=run.train_tokens)
    if run.num_gpus:
        kw["num_gpus"] = run.num_gpus
    if run.global_batch_tokens:
        kw["global_batch"] = max(1, round(run.global_batch_tokens / run.arch.seq_len))
    return kw


def table() -> pd.DataFrame:
    rows = []
    for run in PUBLISHED_RUNS:
        kw = _kwargs(run)
        e = estimate(**kw)
        lo, hi = e.gpu_hours_range
        row = {"run": run.name, "gpu": run.gpu, "published_gpu_hours": run.gpu_hours,
               "ours_default": e.gpu_hours, "ratio_default": e.gpu_hours / run.gpu_hours,
               "range_low": lo, "range_high": hi, "inside_range": bool(lo <= run.gpu_hours <= hi),
               "default_mfu": e.mfu, "layout": " ".join(f"{k}{v}" for k, v in (e.layout or {}).items()),
               "layout_loss": (e.layout_overheads or {}).get("loss", math.nan),
               "published_mfu": run.published_mfu, "ours_published_mfu": math.nan, "ratio_published_mfu": math.nan,
               "source": run.source}
        if run.published_mfu:
            g = estimate(**kw, mfu=run.published_mfu, goodput=run.published_goodput)
            row["ours_published_mfu"] = g.gpu_hours
            row["ratio_published_mfu"] = g.gpu_hours / run.gpu_hours
            row["published_mfu_source"] = run.published_mfu_source
        rows.append(row)
    return pd.DataFrame(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print the tables as JSON records")
    args = ap.parse_args()
    t, loo = table(), leave_one_out()
    loo["loo_ratio"] = loo["implied_mfu"] / loo["loo_mfu"]  # published / predicted MFU = ours / published hours
    if args.json:
        print(json.dumps({"runs": t.to_dict("records"), "leave_one_out": loo.to_dict("records")}, indent=2, default=str))
        return
    print(f"{'run':<15} {'GPU':<10} {'published':>12} {'ours@default':>13} {'ratio':>6} {'range':>23} {'in?':>4} "
          f"{'pub. MFU':>8} {'ours@pub.MFU':>13} {'ratio':>6}  layout (loss)")
    for r in t.itertuples():
        has = r.published_mfu is not None and math.isfinite(r.published_mfu)
        pub = f"{r.published_mfu:8.3f}" if has else f"{'-':>8}"
        ours_pub = f"{r.ours_published_mfu:13,.0f}" if has else f"{'-':>13}"
        ratio_pub = f"{r.ratio_published_mfu:6.3f}" if has else f"{'-':>6}"
        print(f"{r.run:<15} {r.gpu:<10} {r.published_gpu_hours:12,.0f} {r.ours_default:13,.0f} {r.ratio_default:6.3f} "
              f"{r.range_low:11,.0f}-{r.range_high:<11,.0f} {'yes' if r.inside_range else 'NO':>4} {pub} {ours_pub} "
              f"{ratio_pub}  {r.layout} ({r.layout_loss:.0%})")
    worst = max(t["ratio_default"].max(), 1 / t["ratio_default"].min())
    print(f"\nat defaults: worst factor {worst:.3f}x, {int((np.maximum(t.ratio_default, 1 / t.ratio_default) <= 1.33).sum())}"
          f"/{len(t)} within 1.33x, {int(t.inside_range.sum())}/{len(t)} inside the range")
    given = t.dropna(subset=["ratio_published_mfu"])
    print(f"with the published MFU: {len(given)} runs, ratios {', '.join(f'{x:.3f}' for x in given.ratio_published_mfu)}")
    print("\nsources:")
    for r in t.itertuples():
        extra = f"; MFU: {r.published_mfu_source}" if isinstance(getattr(r, "published_mfu_source", None), str) else ""
        print(f"  {r.run}: {r.source}{extra}")
    print("\ndefault-MFU table, leave-one-out (each run's MFU predicted without its own row):")
    print(f"{'run':<15} {'generation':<10} {'prec':<5} {'implied MFU':>11} {'table':>7} {'LOO':>7} {'LOO ratio':>9}  basis")
    for r in loo.itertuples():
        print(f"{r.run:<15} {r.generation:<10} {r.precision:<5} {r.implied_mfu:11.3f} {r.table_mfu:7.3f} "
              f"{r.loo_mfu:7.3f} {r.loo_ratio:9.3f}  {r.loo_basis}")
    err = np.abs(np.log(loo["loo_ratio"]))
    print(f"\nleave-one-out: median |error| {np.expm1(np.median(err)):.1%}, mean {np.expm1(err.mean()):.1%}, "
          f"worst {np.expm1(err.max()):.1%} ({loo.loc[err.idxmax(), 'run']}); "
          f"{int((err <= math.log(1.33)).sum())}/{len(loo)} within 1.33x")


if __name__ == "__main__":
    main()
