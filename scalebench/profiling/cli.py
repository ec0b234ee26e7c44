"""``scalebench profile``: profile one configuration without a sweep (a shell over ``profile_config``)."""

from __future__ import annotations

import argparse
from typing import Any

from scalebench.errors import ConfigError


def _schedule(text: str) -> tuple[int, int, int]:
    try:
        parts = tuple(int(p) for p in text.split(","))
    except ValueError:
        parts = ()
    if len(parts) != 3 or min(parts) < 0 or parts[2] < 1:
        raise argparse.ArgumentTypeError(f"expected WAIT,WARMUP,ACTIVE (e.g. 1,1,3), got {text!r}")
    return parts  # type: ignore[return-value]


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "profile",
        help="profile one configuration: throughput, memory, telemetry, kernel breakdown, bottleneck",
        description="Train one configuration for a few steps under the profiler and print the breakdown and "
        "the bottleneck verdict.",
    )
    p.add_argument("--family", default="gpt", help="model family (default: gpt)")
    p.add_argument("--size", default="124m", help="flavour name (124m, debug) or parameter count (3e6)")
    p.add_argument("--batch", type=int, default=32, help="micro-batch size (default: 32)")
    p.add_argument("--seq-len", type=int, default=None, help="sequence length (default: the family's)")
    p.add_argument("--steps", type=int, default=20, help="training steps (default: 20)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    p.add_argument("--precision", default="auto", choices=("auto", "fp32", "tf32", "bf16"))
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument(
        "--profiler", type=_schedule, default=(1, 1, 3), metavar="WAIT,WARMUP,ACTIVE", help="default 1,1,3"
    )
    p.add_argument("--out", default=None, help="directory for trace.json.gz (default: reports/profile/...)")
    p.add_argument("--no-telemetry", action="store_true", help="do not sample NVML")
    p.add_argument("--json", action="store_true", help="print the report as JSON instead of text")
    p.set_defaults(func=_handler)


def _handler(args: argparse.Namespace) -> int:
    import json

    from scalebench.train.profile import profile_config

    if args.steps < 2:
        raise ConfigError(f"--steps must be at least 2, got {args.steps}")
    report = profile_config(
        family=args.family,
        size=args.size,
        batch=args.batch,
        seq_len=args.seq_len,
        steps=args.steps,
        device=args.device,
        precision=args.precision,
        compile=args.compile,
        profiler=args.profiler,
        out_dir=args.out,
        telemetry=not args.no_telemetry,
    )
    if args.json:
        print(json.dumps(report.as_dict(), indent=2, default=str))
    else:
        print(report.report())
    return 0
