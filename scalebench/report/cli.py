"""`scalebench report DIR [--out FILE] [--open]`: write the sweep's self-contained HTML report."""

from __future__ import annotations

import argparse

MAX_BOOTSTRAP = 100_000  # as scalebench fit allows


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number of resamples, got {text!r}") from None
    if not 0 <= value <= MAX_BOOTSTRAP:
        raise argparse.ArgumentTypeError(f"must be from 0 to {MAX_BOOTSTRAP:,} resamples, got {text!r}")
    return value




def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "report",
        help="write a sweep's HTML report (one self-contained file)",
        description="Render a sweep's analysis as one self-contained HTML page (inline CSS and figures, no "
        "scripts, no network requests): DIR/index.html unless --out is given. The page shows what DIR/fit.json "
        "holds (`scalebench fit DIR` saves it; when it is missing or stale the same fit is made and saved first) "
        "and the proposal `scalebench next DIR` saved in DIR/next.json.",
    )
    p.add_argument("sweep_dir", metavar="DIR", help="the sweep folder (holds scalebench.sqlite)")
    p.add_argument("--out", default=None, metavar="FILE", help="where to write the page (default DIR/index.html)")
    p.add_argument("--open", action="store_true", help="open the page in the default web browser")
    p.add_argument("--law", default="chinchilla", help="law to fit (default: chinchilla)")
    p.add_argument("--bootstrap", type=_count, default=200, metavar="N",
                   help="bootstrap resamples when the report fits (default 200, as `scalebench fit`)")
    p.add_argument("--refit", action="store_true",
                   help="fit again instead of using the fit `scalebench fit DIR` saved in DIR/fit.json")
    p.add_argument("--group-by", default=None, metavar="COL",
                   help="compare groups of runs by this column (default: family, optimizer, ... when they vary)")
    p.add_argument("--gpu", default=None, help="catalog GPU for the plan (default: the sweep's GPU, else H100-SXM)")
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    import webbrowser

    from scalebench.report import ReportOptions, write_report

    if args.gpu is not None:  # checked before anything is computed: an unknown name is bad input, not a gap
        from scalebench.hardware.catalog import get_gpu

        get_gpu(args.gpu)
    options = ReportOptions(law=args.law, bootstrap=args.bootstrap, plan_gpu=args.gpu,
                            use_saved_fit=not args.refit, group_by=args.group_by)
    from scalebench._ticker import working

    with working(f"report: fitting {args.law} or reading the saved fit, drawing, writing"):
        path = write_report(args.sweep_dir, args.out, options=options)
    print(f"report written to {path}")
    if args.open:
        webbrowser.open(path.resolve().as_uri())
    return 0
