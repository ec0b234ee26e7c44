"""`scalebench fit`: fit a scaling law (or an isoFLOP analysis) to a CSV or a sweep directory and print it.

Approach 3 (the parametric law, ``--law``) is the default; ``--approach 2`` runs isoFLOP profiles and
``--approach 1`` the training-curve envelope. ``--group-by COL`` fits one law per value of a column;
``--compare`` fits several laws and ranks them. A sweep directory is fitted as ``scalebench.Sweep(dir).fit``
fits it (``laws.sweepfit``: one set of inputs everywhere) and gets the result saved as ``fit.json``
(Approach 3, ungrouped), which ``scalebench report`` renders.
"""

from __future__ import annotations

import argparse

DEFAULT_BOOTSTRAP = 200


def _law_names() -> list[str]:
    from scalebench.laws.forms import LAWS

    return sorted(LAWS)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "fit",
        help="fit a scaling law (Chinchilla, Kaplan, power, broken power, data-constrained) or an isoFLOP analysis",
        description="Fit a scaling law robustly (Huber on log loss, multi-start L-BFGS-B) to a CSV (columns params, "
        "tokens, loss) or a sweep directory (done runs, eval_loss), with bootstrap intervals and a diagnosis "
        "(reliable, weak or undetermined, with reasons). A sweep directory gets the fit saved as DIR/fit.json for "
        "`scalebench report`. Exit status 1 when the optimiser did not converge (the result is still printed).",
    )
    p.add_argument("source", help="CSV/Parquet file or sweep directory")
    p.add_argument("--approach", type=int, choices=(1, 2, 3), default=3,
                   help="3: parametric law (default); 2: isoFLOP profiles; 1: training-curve envelope")
    p.add_argument("--law", default="chinchilla", metavar="LAW",
                   help="law form for approach 3 (default chinchilla): " + ", ".join(_law_names()))
    p.add_argument("--breaks", type=int, default=None, metavar="K",
                   help="breaks of a broken-power-* law (default 1)")
    p.add_argument("--fix", default=None, metavar="NAME=VALUE,...", help="hold parameters fixed, e.g. E=1.8,alpha=0.34")
    p.add_argument("--tie", default=None, metavar="NAME=OTHER,...", help="make a parameter equal another, e.g. alpha=beta")
    p.add_argument("--compare", nargs="?", const="auto", default=None, metavar="LAW,LAW,...",
                   help="fit several laws (default: every law the columns allow) and rank them by backtest and BIC")
    p.add_argument("--group-by", default=None, metavar="COL",
                   help="fit one law per value of column COL (e.g. family, optimizer) and compare the exponents")
    p.add_argument("--bootstrap", type=int, default=DEFAULT_BOOTSTRAP, metavar="N",
                   help=f"bootstrap resamples over runs for intervals (default {DEFAULT_BOOTSTRAP}; 0: none)")
    p.add_argument("--bootstrap-method", choices=("warm", "full"), default="warm",
                   help="warm (default): refit resamples from the full fit's optima, checking a sample against the "
                        "full start grid; full: the whole grid on every resample (slow, the reference)")
    p.add_argument("--confidence", type=float, default=0.95, help="interval confidence (default 0.95)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    p.add_argument("--backtest-below", type=float, default=None, metavar="FLOPS",
                   help="also fit on runs below FLOPS and report errors predicting the rest")
    p.add_argument("--budget-col", default=None, metavar="COL",
                   help="approach 2: column naming each run's isoFLOP budget (default: cluster the flops)")
    p.add_argument("--window", type=int, default=None, metavar="K",
                   help="approach 2: sizes on each side of a budget's minimum used for its parabola (default 3)")
    p.add_argument("--loss-col", default=None, help="loss column (default: loss; eval_loss for sweeps)")
    p.add_argument("--params-col", default="params", metavar="COL", help="column holding parameter counts")
    p.add_argument("--tokens-col", default="tokens", metavar="COL", help="column holding training tokens")
    p.add_argument("--flops-col", default="flops", metavar="COL", help="column holding training FLOPs")
    p.add_argument("--huber-delta", type=float, default=1e-3, help="Huber delta on log-loss residuals")
    p.add_argument("--no-save", action="store_true", help="do not save the fit in the sweep directory")
    p.add_argument("--json", action="store_true", help="print the JSON summary instead of the text report")
    p.add_argument("--at-flops", type=float, default=None, metavar="C",
                   help="also report the compute-optimal point at C FLOPs with intervals (JSON: optimum)")
    p.add_argument("--hyper", choices=("lr", "batch"), default=None,
                   help="fit the law of the best lr (or batch) per size and budget from a [grid] lr sweep instead "
                   "of a loss law (saved as DIR/hyper_lr.json); see docs/hyperparameters.md")
    p.add_argument("--at-params", type=float, default=None, metavar="N",
                   help="with --hyper: the fitted value at N parameters (and --at-tokens D) with its interval")
    p.add_argument("--at-tokens", type=float, default=None, metavar="D", help="with --hyper and --at-params")
    p.set_defaults(func=handle)


def _form(args: argparse.Namespace):
    from scalebench.errors import ConfigError
    from scalebench.laws.broken import BrokenPowerLaw
    from scalebench.laws.constraints import constrain, parse_fix, parse_tie
    from scalebench.laws.forms import get_law

    form = get_law(args.law)
    if args.breaks is not None:
        if not isinstance(form, BrokenPowerLaw):
            raise ConfigError(f"--breaks applies to the broken-power-* laws, not {args.law!r}")
        form = BrokenPowerLaw(variable=form.variable, n_breaks=args.breaks)
    fix = parse_fix(args.fix) if args.fix else None
    tie = parse_tie(args.tie) if args.tie else None
    return constrain(form, fix, tie)


def _columns(args: argparse.Namespace) -> dict:
    return {"loss_col": args.loss_col, "params_col": args.params_col, "tokens_col": args.tokens_col,
            "flops_col": args.flops_col}


def _curves_source(source: str, loss_col: str | None):
    """Approach 1 reads training curves: a sweep's logged steps, or a CSV of checkpoints."""
    from pathlib import Path

    from scalebench.laws.io import SWEEP_STORE_FILE

    path = Path(source)
    if path.is_dir() and (path / SWEEP_STORE_FILE).exists():
        from scalebench.laws.isoflop import sweep_curves

        return sweep_curves(path), "loss"
    return source, loss_col


def _print(result, as_json: bool) -> None:
    import json

    print(json.dumps(result.summary(), indent=2, allow_nan=False) if as_json else result.report())


def handle(args: argparse.Namespace) -> int:
    import sys

    from tqdm import tqdm

    from scalebench.errors import ConfigError
    from scalebench.laws.fitting import fit

    if args.hyper or args.at_params is not None or args.at_tokens is not None:
        from scalebench.laws.hyper_cli import handle_hyper

        return handle_hyper(args)
    if args.bootstrap < 0:
        raise ConfigError(f"--bootstrap must be a non-negative count of resamples, not {args.bootstrap}")
    if args.approach != 3 and (args.compare or args.group_by or args.fix or args.tie):
        raise ConfigError("--compare, --group-by, --fix and --tie apply to approach 3 (the parametric law)")
    if args.approach == 2:
        from scalebench.laws.isoflop import DEFAULT_WINDOW, isoflop_approach2

        result = isoflop_approach2(args.source, loss_col=args.loss_col, budget_col=args.budget_col,
                                   window=args.window or DEFAULT_WINDOW, bootstrap=args.bootstrap, seed=args.seed,
                                   confidence=args.confidence)
        _print(result, args.json)
        return 0
    if args.approach == 1:
        from scalebench.laws.isoflop import isoflop_approach1

        source, loss_col = _curves_source(args.source, args.loss_col)
        result = isoflop_approach1(source, loss_col=loss_col, bootstrap=args.bootstrap, seed=args.seed,
                                   confidence=args.confidence)
        _print(result, args.json)
        return 0

    form = _form(args)
    options = {"bootstrap": args.bootstrap, "seed": args.seed, "confidence": args.confidence,
               "huber_delta": args.huber_delta, "bootstrap_method": args.bootstrap_method}
    sweep = _sweep(args.source)
    if args.compare:
        return _compare(args, sweep, options)
    if args.group_by:
        if sweep is not None:
            from scalebench.laws.sweepfit import fit_sweep_groups

            grouped = fit_sweep_groups(sweep, form, by=args.group_by, **_columns(args), **options,
                                       backtest_below=args.backtest_below)
        else:
            from scalebench.laws.groups import fit_groups

            grouped = fit_groups(args.source, form, by=args.group_by, **_columns(args), **options,
                                 backtest_below=args.backtest_below)
        _print(grouped, args.json)
        return 0 if all(r.success for r in grouped.results.values()) else 1

    bar = tqdm(total=args.bootstrap, desc="bootstrap", unit="resample",
               disable=not args.bootstrap or not sys.stderr.isatty())
    with bar:
        step = {"progress": lambda done, total: bar.update(done - bar.n), "backtest_below": args.backtest_below}
        if sweep is not None:  # the one way to fit a sweep (Sweep.fit's: the report renders what it saves)
            from scalebench.laws.sweepfit import fit_sweep

            result = fit_sweep(sweep, form, **_columns(args), **options, **step)
        else:
            result = fit(args.source, form, **_columns(args), **options, **step)
    if args.at_flops is not None:  # scalebench next's target, with its intervals
        import json

        from scalebench._util import json_safe
        from scalebench.laws.intervals import format_optimum, optimum

        summary, text = result.summary(), result.report()
        summary["optimum"] = optimum(result, args.at_flops, confidence=args.confidence)
        text += "\n" + format_optimum(summary["optimum"])
        print(json.dumps(json_safe(summary), indent=2, allow_nan=False) if args.json else text)
    else:
        _print(result, args.json)
    if sweep is not None and not args.no_save:
        from scalebench.laws.result import save_fit

        try:
            saved = save_fit(result, sweep.path)
        except (OSError, ConfigError) as exc:  # a read-only sweep folder (an archive): the fit itself stands
            print(f"note: fit not saved in {sweep.path} ({exc}); scalebench report needs it (pass --no-save to "
                  "skip saving)", file=sys.stderr)
        else:
            print(f"fit saved to {saved} (scalebench report renders it)", file=sys.stderr)
    return 0 if result.success else 1


def _sweep(source: str):
    from scalebench.laws.io import is_sweep_dir

    if not is_sweep_dir(source):
        return None
    from scalebench.store import SweepTables

    return SweepTables(source)


def _compare(args: argparse.Namespace, sweep, options: dict) -> int:
    """Several laws ranked; on a sweep each is fitted by the one path, so its verdict is `--law`'s."""
    import json

    from scalebench.laws.compare import compare_laws

    laws = None if args.compare == "auto" else [s.strip() for s in args.compare.split(",") if s.strip()]
    table = compare_laws(sweep if sweep is not None else args.source, laws, **_columns(args), **options)
    if args.json:
        print(json.dumps({"compare": json.loads(table.to_json(orient="records"))}, indent=2))
    else:
        print(table.to_string(index=False, float_format=lambda x: f"{x:.4g}"))
    return 0
