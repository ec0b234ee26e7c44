"""`scalebench report DIR [--out FILE] [--open]`: write the sweep's self-contained HTML report."""

from __future__ import annotations

import argparse

MAX_BOOTSTRAP = 100_000  # as scalebench fit allows
MAX_BOOTSTRAP_TIME_S = 3600.0


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number of resamples, got {text!r}") from None
    if not 0 <= value <= MAX_BOOTSTRAP:
        raise argparse.ArgumentTypeError(f"must be from 0 to {MAX_BOOTSTRAP:,} resamples, got {text!r}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 <= value <= MAX_BOOTSTRAP_TIME_S:  # also refuses nan and inf
        raise argparse.ArgumentTypeError(f"must be seconds from 0 to {MAX_BOOTSTRAP_TIME_S:g}, got {text!r}")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "report",
        help="write a sweep's HTML report (one self-contained file)",
        description="Fit, analyse and plot a sweep and write one self-contained HTML page (inline CSS and "
        "figures, no scripts, no network requests): DIR/index.html unless --out is given.",
    )
    p.add_argument("sweep_dir", metavar="DIR", help="the sweep folder (holds scalebench.sqlite)")
    p.add_argument("--out", default=None, metavar="FILE", help="where to write the page (default DIR/index.html)")
    p.add_argument("--open", action="store_true", help="open the page in the default web browser")
    p.add_argument("--law", default="chinchilla", help="law to fit (default: chinchilla)")
    p.add_argument("--bootstrap", type=_count, default=100, metavar="N",
                   help="bootstrap resamples for intervals (default 100, time-boxed by --bootstrap-time)")
    p.add_argument("--bootstrap-time", type=_seconds, default=4.0, metavar="S",
                   help="seconds the bootstrap may take at most (default 4)")
    p.add_argument("--gpu", default=None, help="catalog GPU for the plan (default: the sweep's GPU, else H100-SXM)")
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    import webbrowser

    from scalebench.report import ReportOptions, write_report

    if args.gpu is not None:  # checked before anything is computed: an unknown name is bad input, not a gap
        from scalebench.hardware.catalog import get_gpu

        get_gpu(args.gpu)
    options = ReportOptions(law=args.law, bootstrap=args.bootstrap, bootstrap_time_s=args.bootstrap_time,
                            plan_gpu=args.gpu)
    from scalebench._ticker import working

    with working(f"report: fitting {args.law} (bootstrap up to {args.bootstrap_time:g} s), drawing, writing"):
        path = write_report(args.sweep_dir, args.out, options=options)
    print(f"report written to {path}")
    if args.open:
        webbrowser.open(path.resolve().as_uri())
    return 0
