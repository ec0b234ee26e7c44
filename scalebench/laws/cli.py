"""`scalebench fit`: fit a scaling law to a CSV or a sweep directory and print the result."""

from __future__ import annotations

import argparse

LAW_CHOICES = (
    "chinchilla",
    "kaplan-joint",
    "power-params",
    "power-tokens",
    "power-flops",
    "kaplan-params",
    "kaplan-tokens",
    "kaplan-flops",
)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "fit",
        help="fit a scaling law (Chinchilla, Kaplan, power law) to runs",
        description="Fit a scaling law robustly (Huber on log loss, multi-start L-BFGS-B) to a CSV "
        "(columns params, tokens, loss) or a sweep directory (done runs, eval_loss). Exit status 1 when the "
        "optimiser did not converge (the result is still printed).",
    )
    p.add_argument("source", help="CSV/Parquet file or sweep directory")
    p.add_argument("--law", default="chinchilla", choices=LAW_CHOICES, help="law form (default: chinchilla)")
    p.add_argument(
        "--bootstrap", type=int, default=0, metavar="N", help="bootstrap resamples over runs for intervals"
    )
    p.add_argument("--confidence", type=float, default=0.95, help="interval confidence (default 0.95)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    p.add_argument(
        "--backtest-below",
        type=float,
        default=None,
        metavar="FLOPS",
        help="also fit on runs below FLOPS and report errors predicting the rest",
    )
    p.add_argument("--loss-col", default=None, help="loss column (default: loss; eval_loss for sweeps)")
    p.add_argument("--huber-delta", type=float, default=1e-3, help="Huber delta on log-loss residuals")
    p.add_argument("--json", action="store_true", help="print the JSON summary instead of the text report")
    p.add_argument("--at-flops", type=float, default=None, metavar="C",
                   help="also report the compute-optimal point at C FLOPs with intervals (JSON: optimum)")
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    import json
    import sys

    from tqdm import tqdm

    from scalebench.laws.fitting import fit

    bar = tqdm(
        total=args.bootstrap,
        desc="bootstrap",
        unit="resample",
        disable=not args.bootstrap or not sys.stderr.isatty(),
    )
    with bar:
        result = fit(
            args.source,
            args.law,
            loss_col=args.loss_col,
            bootstrap=args.bootstrap,
            seed=args.seed,
            backtest_below=args.backtest_below,
            confidence=args.confidence,
            huber_delta=args.huber_delta,
            progress=lambda done, total: bar.update(1),
        )
    summary, text = result.summary(), result.report()
    if args.at_flops is not None:  # scalebench next's target, with its intervals
        from scalebench.laws.advise import format_optimum, optimum_at

        summary["optimum"] = optimum_at(result, args.at_flops, confidence=args.confidence)
        text += "\n" + format_optimum(summary["optimum"])
    print(json.dumps(summary, indent=2) if args.json else text)
    return 0 if result.success else 1
