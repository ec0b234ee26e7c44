"""``scalebench estimate`` and ``scalebench plan``: thin shells over :func:`estimate` and :func:`plan`."""

from __future__ import annotations

import argparse
import json
import math


def _positive(kind):
    def parse(text: str):
        try:
            value = kind(float(text)) if kind is int else float(text)
        except (TypeError, ValueError, OverflowError):
            raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}") from None
        if not math.isfinite(value) or value <= 0 or (kind is int and value != float(text)):
            what = "a positive integer" if kind is int else "a positive number"
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
        return value

    parse.__name__ = "positive number"
    return parse


_FLOAT, _INT = _positive(float), _positive(int)

MFU_RANGE = (1e-3, 1.0)  # MFU is a share of the peak: above 1 is impossible, below 0.1% a typo (a percentage?)


def _mfu(text: str) -> float:
    value = _FLOAT(text)
    lo, hi = MFU_RANGE
    if not lo <= value <= hi:
        hint = f" (a percentage? {value:g}% is --mfu {value / 100:g})" if 1 < value <= 100 else ""
        raise argparse.ArgumentTypeError(f"must be a fraction of the peak from {lo:g} to {hi:g}, got {text!r}{hint}")
    return value


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--gpu", required=True, help="catalog name, e.g. H100-SXM, A100-80GB (an unknown name lists all)")
    p.add_argument("--num-gpus", type=_INT, help="GPUs (data-parallel size); default: the least that fits")
    p.add_argument("--precision", default="bf16", choices=["fp32", "tf32", "bf16", "fp16", "fp8"])
    p.add_argument("--optimizer", default="adamw", choices=["adamw", "sgd"])
    p.add_argument("--zero", default="3", choices=["0", "1", "2", "3", "fsdp"], help="ZeRO stage (default 3 = FSDP)")
    p.add_argument("--checkpointing", default="auto", choices=["auto", "none", "selective", "full"])
    p.add_argument("--seq-len", type=_INT, help="sequence length (default 2048, or the preset's)")
    p.add_argument("--micro-batch", type=_INT, default=1, help="sequences per GPU per micro-step")
    p.add_argument("--global-batch", type=_INT, help="sequences per optimizer step")
    p.add_argument("--mfu", type=_mfu, help="model FLOPs utilisation 0-1 (default 0.40; fp8 0.30)")
    p.add_argument("--calibrate", metavar="SWEEP_DIR", help="take MFU (and power) from a sweep's measurements")
    p.add_argument("--price", type=_FLOAT, dest="price_usd_per_hour", help="USD per GPU-hour (default: catalog)")
    p.add_argument("--grid-intensity", type=_FLOAT, dest="grid_gco2_per_kwh", help="g CO2e per kWh, for CO2")
    p.add_argument("--pue", type=_FLOAT, help="data-centre PUE (default 1)")
    p.add_argument("--json", action="store_true", help="print to_dict() as JSON")


def register(subparsers: argparse._SubParsersAction) -> None:
    e = subparsers.add_parser("estimate", help="FLOPs, memory, GPUs, time, cost and energy of a training run",
                              description="Estimate one training run. Give --params and --tokens, or --model.")
    e.add_argument("--params", type=_FLOAT, help="parameter count, e.g. 7e9")
    e.add_argument("--tokens", type=_FLOAT, help="training tokens, e.g. 1.4e12")
    e.add_argument("--model", help="an architecture preset: gpt3-175b, bert-large, llama2-7b, llama2-70b, "
                                   "llama3-8b, llama3-70b, chinchilla-70b")
    e.add_argument("--law", help="a scaling-law preset for the predicted loss (chinchilla, chinchilla-epoch)")
    _common(e)
    e.set_defaults(func=handle_estimate)

    p = subparsers.add_parser("plan", help="compute-optimal model size and tokens for a budget, with its estimate",
                              description="Plan a run from one constraint under a scaling law.")
    c = p.add_mutually_exclusive_group()
    c.add_argument("--flops", type=_FLOAT, help="compute budget C in FLOPs")
    c.add_argument("--budget-usd", type=_FLOAT, help="dollar budget")
    c.add_argument("--gpu-hours", type=_FLOAT, help="GPU-hour budget")
    c.add_argument("--deadline-days", type=_FLOAT, help="wall-clock deadline in days (needs --num-gpus)")
    c.add_argument("--target-loss", type=_FLOAT, help="the loss to reach")
    p.add_argument("--law", default="chinchilla", help="law preset (chinchilla, chinchilla-epoch); default chinchilla")
    p.add_argument("--params", type=_FLOAT, help="fix the model size (over-trained plans)")
    p.add_argument("--tokens-per-param", type=_FLOAT, help="fix the tokens-per-parameter ratio")
    _common(p)
    p.set_defaults(func=handle_plan)


def _estimate_kwargs(args: argparse.Namespace) -> dict:
    kw = dict(gpu=args.gpu, num_gpus=args.num_gpus, precision=args.precision, optimizer=args.optimizer,
              zero=args.zero, checkpointing=args.checkpointing, seq_len=args.seq_len, micro_batch=args.micro_batch,
              global_batch=args.global_batch, price_usd_per_hour=args.price_usd_per_hour,
              grid_gco2_per_kwh=args.grid_gco2_per_kwh, pue=args.pue, mfu=args.mfu)
    if args.calibrate:
        if args.mfu is not None:
            from scalebench.errors import ConfigError

            raise ConfigError("give --mfu or --calibrate, not both")
        from scalebench.planning.calibrate import calibrate

        kw["mfu"] = calibrate(args.calibrate)
    return {k: v for k, v in kw.items() if v is not None}


def _emit(result, as_json: bool) -> None:
    print(json.dumps(result.to_dict(), indent=2) if as_json else result.report())


def handle_estimate(args: argparse.Namespace) -> int:
    from scalebench.planning.estimate import estimate

    kw = _estimate_kwargs(args)
    for k in ("params", "tokens", "model", "law"):
        if getattr(args, k) is not None:
            kw[k] = getattr(args, k)
    _emit(estimate(**kw), args.json)
    return 0


def handle_plan(args: argparse.Namespace) -> int:
    from scalebench.planning.plan import plan

    kw = _estimate_kwargs(args)
    constraint = dict(flops=args.flops, budget_usd=args.budget_usd, gpu_hours=args.gpu_hours,
                      deadline_s=None if args.deadline_days is None else args.deadline_days * 86400.0,
                      target_loss=args.target_loss)
    kw.update({k: v for k, v in constraint.items() if v is not None})
    _emit(plan(law=args.law, params=args.params, tokens_per_param=args.tokens_per_param, **kw), args.json)
    return 0
