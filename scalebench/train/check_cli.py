"""`scalebench check`: the coordinate check of a family's parametrisations (scalebench/train/coordcheck.py)."""

from __future__ import annotations

import argparse


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("check", help="coordinate check: per-layer activation scales across widths per parametrisation",
                       description="Train a few AdamW steps at several widths from one base learning rate and print "
                       "each layer's mean |activation|; under mup/completep they stay flat across widths, under "
                       "standard they drift. Exit status 1 when a parametrisation other than standard drifts.")
    p.add_argument("--family", default="gpt")
    p.add_argument("--parametrization", default="standard,mup,completep", metavar="P,P,...",
                   help="parametrisations to check (default standard,mup,completep)")
    p.add_argument("--widths", type=_ints, default=(32, 64, 128, 256), metavar="D,D,...",
                   help="d_model values, multiples of --head-dim (default 32,64,128,256)")
    p.add_argument("--n-layer", type=int, default=2)
    p.add_argument("--head-dim", type=int, default=16)
    p.add_argument("--base-d-model", type=int, default=None, help="base width (default: the smallest width)")
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--lr", type=float, default=3e-3, help="the base learning rate (default 3e-3)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print the JSON summary")
    p.set_defaults(func=cmd_check)


def cmd_check(args) -> int:
    import json

    from scalebench.errors import ConfigError
    from scalebench.families.parametrization import PARAMETRIZATIONS
    from scalebench.train.coordcheck import coord_check

    kinds = tuple(k.strip().lower() for k in args.parametrization.split(",") if k.strip())
    bad = [k for k in kinds if k not in PARAMETRIZATIONS]
    if bad or not kinds:
        raise ConfigError(f"--parametrization: {bad or kinds!r}; each one of {', '.join(PARAMETRIZATIONS)}")
    result = coord_check(parametrizations=kinds, widths=args.widths, n_layer=args.n_layer, head_dim=args.head_dim,
                         base_d_model=args.base_d_model, steps=args.steps, lr=args.lr, seed=args.seed,
                         family=args.family)
    print(json.dumps(result.summary(), indent=2) if args.json else result.report())
    return 1 if any(result.verdict(k) != "flat" for k in kinds if k != "standard") else 0
