"""`scalebench fit DIR --hyper lr|batch`: the hyperparameter law and, with --at-params, its value for a target."""

from __future__ import annotations

import argparse


def handle_hyper(args: argparse.Namespace) -> int:
    import json
    import sys
    from pathlib import Path

    from scalebench.errors import ConfigError
    from scalebench.laws.health import ladder_health
    from scalebench.laws.hyper import fit_hyper, save_hyper
    from scalebench.laws.io import SWEEP_STORE_FILE

    if not args.hyper:
        raise ConfigError("--at-params and --at-tokens go with --hyper lr|batch (loss laws: --at-flops)")
    if args.at_tokens is not None and args.at_params is None:
        raise ConfigError("--at-tokens needs --at-params (the target's parameter count)")
    for flag, value in (("--at-params", args.at_params), ("--at-tokens", args.at_tokens)):
        if value is not None and not 1 <= value < 1e30:
            raise ConfigError(f"{flag} must be a count within [1, 1e30), got {value:g}")
    law = fit_hyper(args.source, args.hyper, loss_col=args.loss_col, confidence=args.confidence)
    path = Path(args.source)
    sweep = path.is_dir() and (path / SWEEP_STORE_FILE).exists()
    health = ladder_health(path) if sweep else None
    summary, text = law.summary(), law.report()
    if health is not None:
        summary["health"] = health.summary()
        text += "\n" + health.report()
    if args.at_params is not None:
        pred = law.predict(args.at_params, args.at_tokens)
        summary["target"] = {"params": args.at_params, "tokens": args.at_tokens, **pred}
        at = f"N={args.at_params:.3g}" + (f", D={args.at_tokens:.3g}" if args.at_tokens else "")
        text += (f"\nat {at}: {args.hyper} = {pred['value']:.4g}  [{pred['low']:.4g}, {pred['high']:.4g}] "
                 f"({law.confidence:.0%}; the law's interval, extrapolated: check the verdict)")
    print(json.dumps(summary, indent=2, allow_nan=False) if args.json else text)
    if sweep and not args.no_save:
        try:
            print(f"law saved to {save_hyper(law, path)} (plan/estimate --hyper-law DIR read it)", file=sys.stderr)
        except OSError as exc:
            print(f"note: law not saved in {path} ({exc})", file=sys.stderr)
    return 0
