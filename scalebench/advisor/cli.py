"""`scalebench next`: propose the runs that most narrow a compute-optimal target per unit of cost."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "next",
        help="propose the next runs: the most certainty on the compute-optimal point per FLOP, device-hour or dollar",
        description="Fit the law to the runs done, then propose a sweep extension (new sizes x budgets) that most "
        "narrows the interval on the compute-optimal size, token count or loss at --target-flops within the "
        "budget. Costs come from the sweep's measured throughput (a sweep folder) or from FLOPs (a CSV).",
    )
    p.add_argument("source", help="sweep directory or CSV/Parquet file of runs")
    p.add_argument("--law", default="chinchilla", choices=("chinchilla", "kaplan-joint"))
    p.add_argument("--target-flops", type=float, required=True, metavar="C", help="the compute budget of interest")
    p.add_argument("--target", default="params", choices=("params", "tokens", "loss"),
                   help="what to know at C: compute-optimal params (default), tokens, or the loss reached")
    budget = p.add_mutually_exclusive_group(required=True)
    budget.add_argument("--budget-flops", type=float, metavar="B", help="FLOPs to spend on new runs")
    budget.add_argument("--budget-hours", type=float, metavar="H",
                        help="hours of the device the sweep ran on (GPU-hours; CPU core-hours on a CPU sweep)")
    budget.add_argument("--budget-gpu-hours", type=float, metavar="H",
                        help="GPU-hours to spend (a GPU sweep's measured speed; a CSV with --gpu and --mfu)")
    budget.add_argument("--budget-usd", type=float, metavar="U", help="dollars to spend (measured speed x price)")
    p.add_argument("--max-runs", type=int, default=None, help="at most this many new runs")
    p.add_argument("--confidence", type=float, default=0.95, help="interval confidence (default 0.95)")
    p.add_argument("--bootstrap", type=int, default=32, metavar="N", help="bootstrap refits for the ensemble")
    p.add_argument("--replicates", type=int, default=None, metavar="N",
                   help="simulated refits per candidate design in the final choice (default 4; 0: rank the "
                   "candidates by the linearised width alone, faster)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--loss-col", default=None, help="loss column (default: loss; eval_loss for sweeps)")
    p.add_argument("--gpu", default=None, help="CSV sources with hour/dollar budgets: a catalog GPU name")
    p.add_argument("--mfu", type=float, default=None, help="CSV sources with hour/dollar budgets: expected MFU")
    p.add_argument("--price-usd-per-hour", type=float, default=None, help="price per GPU-hour (default: catalog)")
    p.add_argument("--json", action="store_true", help="print the JSON summary")
    p.add_argument("--write", metavar="EXTENSION.toml", default=None,
                   help="write the proposal as a sweep extension: scalebench run EXTENSION.toml --out DIR")
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    import json
    import sys

    from scalebench.advisor.advise import advise

    extra = {k: getattr(args, k) for k in ("gpu", "mfu", "price_usd_per_hour", "replicates")
             if getattr(args, k) is not None}
    options = dict(law=args.law, target_flops=args.target_flops, target=args.target,
                   budget_flops=args.budget_flops, budget_hours=args.budget_hours,
                   budget_gpu_hours=args.budget_gpu_hours,
                   budget_usd=args.budget_usd, max_runs=args.max_runs, seed=args.seed,
                   confidence=args.confidence, bootstrap=args.bootstrap, loss_col=args.loss_col, **extra)
    from scalebench.laws.io import is_sweep_dir

    advice = advise(args.source, **options)
    if is_sweep_dir(args.source):  # saved as DIR/next.json, which the report shows (Sweep.next does the same)
        from scalebench.errors import ConfigError
        from scalebench.laws.analysis import save_next

        try:
            save_next(advice, args.source)
        except (OSError, ConfigError) as exc:
            print(f"note: proposal not saved in {args.source} ({exc})", file=sys.stderr)
    path = advice.write_extension(args.write) if args.write else None  # before printing: a refusal exits 2
    print(json.dumps(advice.summary(), indent=2) if args.json else advice.report())
    if path is not None:
        print(f"wrote {path}: scalebench run {path} --out {args.source}", file=sys.stderr)
    return 0
