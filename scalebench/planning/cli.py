"""``scalebench estimate`` and ``scalebench plan``: thin shells over :func:`estimate` and :func:`plan`."""

from __future__ import annotations

import argparse
import json


def _num(name: str):
    """The argparse type of a number flag: its row of the argument table (range, message, unit)."""
    from scalebench.planning.estimate.arguments import cli_type

    return cli_type(name)


def _common(p: argparse.ArgumentParser) -> None:
    """Every estimate() option (defaults None: the library's defaults apply and the output names them)."""
    hw = p.add_argument_group("hardware and price")
    hw.add_argument("--gpu", required=True, help="catalog name, e.g. H100-SXM, A100-80GB (an unknown name lists all)")
    hw.add_argument("--num-gpus", type=_num("num_gpus"), help="GPUs; default: the fewest that fit at full efficiency")
    hw.add_argument("--price-usd-per-hour", "--price", type=_num("price_usd_per_hour"), dest="price_usd_per_hour",
                    help="USD per GPU-hour (default: catalog); named as the Python argument price_usd_per_hour")
    shape = p.add_argument_group("model shape (a preset supplies these)")
    for flag, what in (("--n-layer", "layers"), ("--d-model", "model width"), ("--n-head", "attention heads"),
                       ("--n-kv-head", "key/value heads (GQA/MQA)"), ("--d-ff", "MLP width"),
                       ("--vocab-size", "vocabulary"), ("--n-experts", "routed experts (MoE)"),
                       ("--top-k", "experts per token (MoE)"), ("--head-dim", "attention head width (default d_model / n_head)")):
        shape.add_argument(flag, type=_num(flag[2:].replace("-", "_")), help=what)
    shape.add_argument("--params-active", type=_num("params_active"), help="parameters one token passes through (MoE; FLOPs)")
    shape.add_argument("--expert-params", type=_num("expert_params"), help="parameters in routed experts (MoE; default derived)")
    shape.add_argument("--family", help="a model family (e.g. gpt) whose own formulas count params and FLOPs")
    tr = p.add_argument_group("training")
    tr.add_argument("--precision", choices=["fp32", "tf32", "bf16", "fp16", "fp8"], help="default bf16")
    tr.add_argument("--optimizer", choices=["adamw", "sgd"], help="default adamw")
    tr.add_argument("--checkpointing", choices=["auto", "none", "selective", "full"], help="default auto")
    tr.add_argument("--flash-attention", choices=["true", "false"], help="default true")
    tr.add_argument("--framework", choices=["megatron", "deepspeed", "fsdp2", "autocast", "zero"],
                    help="how model states are held (default megatron: bf16 weights, fp32 gradients and master, "
                         "18 bytes/param; fsdp2 and autocast 16 with fp32 weights)")
    tr.add_argument("--grad-dtype", choices=["bf16", "fp16", "fp32"], help="gradient type (default: the framework's)")
    tr.add_argument("--master-dtype", choices=["fp32", "none"], help="master-weight copy (default: the framework's)")
    tr.add_argument("--dropout", type=_num("dropout"), help="dropout probability (default 0: no masks kept)")
    tr.add_argument("--seq-len", type=_num("seq_len"), help="sequence length (default 2048, or the preset's)")
    tr.add_argument("--micro-batch", type=_num("micro_batch"), help="sequences per GPU per micro-step (default 1)")
    tr.add_argument("--global-batch", type=_num("global_batch"), help="sequences per optimizer step (default 4M tokens' worth, at least one micro-batch per GPU)")
    lay = p.add_argument_group("parallel layout (each searched when not given)")
    lay.add_argument("--tp", type=_num("tp"), help="tensor-parallel size")
    lay.add_argument("--pp", type=_num("pp"), help="pipeline-parallel size")
    lay.add_argument("--cp", type=_num("cp"), help="context (sequence) parallel size")
    lay.add_argument("--ep", type=_num("ep"), help="expert-parallel size (MoE)")
    lay.add_argument("--zero", choices=["auto", "0", "1", "2", "3", "fsdp"], help="ZeRO stage over data parallelism (default auto)")
    ef = p.add_argument_group("efficiency, energy, memory")
    ef.add_argument("--mfu", type=_num("mfu"), help="model FLOPs utilisation 0-1 as PaLM defines it "
                                               "(default: the published-runs table for the GPU generation)")
    ef.add_argument("--hfu", type=_num("hfu"), help="hardware FLOPs utilisation 0-1, recomputation counted (a Megatron-style "
                                               "TFLOP/s over the peak): 3/4 of it is the MFU under full recomputation")
    ef.add_argument("--calibrate", metavar="SWEEP_DIR", nargs="?", const=PROFILE,
                    help="with a sweep folder: take MFU (and power) from its measurements; alone: take the GEMM "
                         "efficiency of --gpu from the profile `scalebench env --calibrate` saved on that card")
    ef.add_argument("--gemm-efficiency", type=_num("gemm_efficiency"),
                    help="measured GEMM rate over the datasheet peak (default: the generation's kernel benchmark)")
    ef.add_argument("--scaling-efficiency", type=_num("scaling_efficiency"), help="a further multiplier on throughput (default 1)")
    ef.add_argument("--goodput", type=_num("goodput"), help="share of reserved GPU time spent training, restarts and repeated "
                                                   "steps excluded (default 1: the default MFU's hours contain them)")
    ef.add_argument("--power-fraction", type=_num("power_fraction"), help="average power as a fraction of TDP (default 1)")
    ef.add_argument("--pue", type=_num("pue"), help="data-centre PUE (default 1)")
    ef.add_argument("--grid-intensity", type=_num("grid_gco2_per_kwh"), dest="grid_gco2_per_kwh", help="g CO2e per kWh, for CO2")
    ef.add_argument("--allocator-overhead", type=_num("allocator_overhead"), help="allocator/fragmentation fraction (default 0.10)")
    ef.add_argument("--reserve-gib", type=_num("context_bytes"), dest="context_bytes", metavar="GIB", help="per-GPU memory reserve in GiB (default 1): usable = card - reserve")
    p.add_argument("--json", action="store_true", help="print to_dict() as JSON")


_PASS = ("gpu", "num_gpus", "price_usd_per_hour", "n_layer", "d_model", "n_head", "n_kv_head", "d_ff", "vocab_size",
         "n_experts", "top_k", "params_active", "expert_params", "head_dim", "family", "precision", "optimizer", "checkpointing", "flash_attention",
         "seq_len", "micro_batch", "global_batch", "tp", "pp", "cp", "ep", "zero", "mfu", "hfu", "scaling_efficiency",
         "goodput", "power_fraction", "pue", "grid_gco2_per_kwh", "allocator_overhead", "context_bytes",
         "framework", "grad_dtype", "master_dtype", "dropout", "gemm_efficiency")


def register(subparsers: argparse._SubParsersAction) -> None:
    e = subparsers.add_parser("estimate", help="FLOPs, memory, layout, GPUs, time, cost and energy of a training "
                                               "run, or the memory, speed and price of serving a model",
                              description="Estimate one training run (give --params and --tokens, or --model), "
                                          "or, with --mode inference, serving it.")
    e.add_argument("--mode", choices=["training", "inference"], default="training")
    e.add_argument("--params", type=_num("params"), help="parameter count, e.g. 7e9 (all weights for a mixture of experts)")
    e.add_argument("--tokens", type=_num("tokens"), help="training tokens, e.g. 1.4e12")
    e.add_argument("--model", help="an architecture preset, e.g. llama3-405b, deepseek-v3, mixtral-8x7b, "
                                   "gpt3-175b, llama2-70b, llama3-8b, bloom-176b, palm-540b")
    e.add_argument("--law", help="a scaling-law preset for the predicted loss (chinchilla, chinchilla-epoch)")
    inf = e.add_argument_group("inference (--mode inference)")
    inf.add_argument("--context", type=_num("context"), help="tokens per sequence, prompt plus output (default 4096)")
    inf.add_argument("--input-tokens", type=_num("input_tokens"),
                     help="prompt tokens per request (with --output-tokens; default: context - output)")
    inf.add_argument("--request-rate", type=_num("request_rate"),
                     help="requests per second: concurrency by Little's law, instead of --batch")
    inf.add_argument("--batch", type=_num("batch"), help="sequences decoded together (default: the largest that fits)")
    inf.add_argument("--output-tokens", type=_num("output_tokens"), help="generated tokens per request, for latency (default 256)")
    inf.add_argument("--weights", choices=["bf16", "fp16", "fp8", "int8", "int4"], help="weight storage (default bf16)")
    inf.add_argument("--activations", choices=["bf16", "fp16", "fp8", "int8"],
                     help="matmul type: fp8/int8 = weight-and-activation quantization (default fp8 for fp8 weights, else bf16)")
    inf.add_argument("--kv-dtype", choices=["bf16", "fp16", "fp8"], help="KV-cache type (default bf16)")
    inf.add_argument("--sparsity", choices=["2:4"], help="2:4 structured sparsity (cards whose catalog entry accelerates it)")
    inf.add_argument("--decode-efficiency", type=_num("decode_efficiency"), help="fraction of memory bandwidth decode reaches (default 0.89, a measured copy)")
    inf.add_argument("--prefill-mfu", type=_num("prefill_mfu"), help="MFU of the prefill (default: timed by the hardware model)")
    _common(e)
    e.add_argument("--hyper-law", metavar="DIR", help="a sweep folder with fitted lr/batch laws (fit DIR --hyper lr): "
                   "report their values for this run")
    e.set_defaults(func=handle_estimate)

    p = subparsers.add_parser("plan", help="compute-optimal model size and tokens for a budget, with its estimate",
                              description="Plan a run from one constraint under a scaling law.")
    c = p.add_mutually_exclusive_group()
    c.add_argument("--flops", type=_num("flops"), help="compute budget C in FLOPs")
    c.add_argument("--budget-usd", type=_num("budget_usd"), help="dollar budget")
    c.add_argument("--gpu-hours", type=_num("gpu_hours"), help="GPU-hour budget")
    c.add_argument("--deadline-days", type=_num("deadline_days"), help="wall-clock deadline in days (needs --num-gpus)")
    c.add_argument("--target-loss", type=_num("target_loss"), help="the loss to reach")
    p.add_argument("--law", default="chinchilla-epoch", metavar="PRESET|FIT.json|DIR",
                   help="the fitted law to plan with: a preset, chinchilla-epoch (Besiroglu et al. 2024 refit, "
                        "default) or chinchilla (Hoffmann et al. 2022 rounded constants); or your own fit: a "
                        "fit.json or a sweep folder `scalebench fit DIR` fitted (a plan from a weak fit, or "
                        "outside the fitted runs, is marked)")
    p.add_argument("--params", type=_num("params"), help="fix the model size (over-trained plans)")
    p.add_argument("--tokens-per-param", type=_num("tokens_per_param"), help="fix the tokens-per-parameter ratio")
    p.add_argument("--max-days", type=_num("max_days"), default=None,
                   help=f"without --num-gpus: the fewest GPUs (powers of two) that finish within this many days "
                        f"(default {DEFAULT_MAX_DAYS:g})")
    _common(p)
    p.add_argument("--hyper-law", metavar="DIR", help="a sweep folder with fitted lr/batch laws (fit DIR --hyper lr): "
                   "report their values for the planned run")
    p.set_defaults(func=handle_plan)


PROFILE = "(hardware profile)"  # --calibrate without a folder


def _profile_efficiency(args: argparse.Namespace) -> float:
    """The GEMM efficiency of --gpu from the saved hardware profile (scalebench env --calibrate)."""
    from scalebench.errors import ConfigError
    from scalebench.hardware.calibrate import calibration_path, gemm_efficiency, load_profiles
    from scalebench.hardware.catalog import get_gpu, match_device_name

    spec = get_gpu(args.gpu)
    precision = args.precision or "bf16"
    for cal in load_profiles():
        matched = match_device_name(cal.device_name)
        if matched is not None and matched.name == spec.name:
            eff = gemm_efficiency(cal, precision, spec.peak_for(precision) or 0.0)
            if eff is None:
                raise ConfigError(f"the profile of {cal.device_name} in {calibration_path()} has no {precision} "
                                  "matmul grid; rerun `scalebench env --calibrate` on that machine")
            return eff
    raise ConfigError(f"no hardware profile of {spec.name} in {calibration_path()}: run `scalebench env --calibrate` "
                      "on a machine with that card (or give --calibrate SWEEP_DIR)")


def _estimate_kwargs(args: argparse.Namespace) -> dict:
    kw = {k: getattr(args, k) for k in _PASS}
    if args.calibrate == PROFILE:
        kw["gemm_efficiency"] = _profile_efficiency(args)
    elif args.calibrate:
        if args.mfu is not None or args.hfu is not None:
            from scalebench.errors import ConfigError

            raise ConfigError(f"give --{'mfu' if args.mfu is not None else 'hfu'} or --calibrate, not both")
        from scalebench.planning.calibrate import calibrate

        kw["mfu"] = calibrate(args.calibrate)
    return {k: v for k, v in kw.items() if v is not None}


_INFERENCE = ("context", "input_tokens", "request_rate", "batch", "output_tokens", "weights", "activations", "kv_dtype", "sparsity",
              "decode_efficiency", "prefill_mfu")
_TRAINING_ONLY = ("tokens", "law", "precision", "optimizer", "checkpointing", "flash_attention", "seq_len",
                  "micro_batch", "global_batch", "pp", "cp", "ep", "zero", "mfu", "hfu", "calibrate", "scaling_efficiency",
                  "goodput", "power_fraction", "pue", "grid_gco2_per_kwh", "allocator_overhead", "family", "d_ff", "vocab_size",
                  "framework", "grad_dtype", "master_dtype", "dropout", "hyper_law", "gemm_efficiency")


def _hyper_laws(result, hyper_law: str | None) -> dict | None:
    """The lr / batch laws a sweep fitted (scalebench/laws/hyper.py), at this run's N and D."""
    if not hyper_law:
        return None
    from scalebench.errors import ConfigError
    from scalebench.laws.hyper import laws_at_target

    d = result.to_dict()
    if not d.get("params") or not d.get("tokens"):
        raise ConfigError("--hyper-law needs a training run with params and tokens")
    return laws_at_target(hyper_law, float(d["params"]), float(d["tokens"]))


def _print_hyper(result, found: dict | None) -> None:
    if found:
        from scalebench.laws.hyper import target_lines

        print("\n".join(target_lines(found, float(result.to_dict()["params"]))))


def _emit(result, as_json: bool, hyper_law: str | None = None) -> None:
    found = _hyper_laws(result, hyper_law)
    if as_json:
        d = result.to_dict()
        print(json.dumps({**d, "hyperparameters": found} if found else d, indent=2))
        return
    print(result.report())
    _print_hyper(result, found)


def handle_estimate(args: argparse.Namespace) -> int:
    from scalebench.errors import ConfigError
    from scalebench.planning.estimate import estimate

    if args.mode == "inference":
        wrong = [k for k in _TRAINING_ONLY if getattr(args, k, None) not in (None, False)]
        if wrong:
            raise ConfigError(f"--mode inference does not take {', '.join('--' + k.replace('_', '-') for k in wrong)}")
        kw = {k: getattr(args, k) for k in ("gpu", "num_gpus", "price_usd_per_hour", "n_layer", "d_model", "n_head",
                                            "n_kv_head", "n_experts", "top_k", "params_active", "expert_params",
                                            "head_dim", "params", "model", "context_bytes", *_INFERENCE)}
        if args.tp is not None:
            if args.num_gpus is not None and args.num_gpus != args.tp:
                raise ConfigError("--mode inference serves with tensor parallelism only: give --tp or --num-gpus")
            kw["num_gpus"] = args.tp
        _emit(estimate(mode="inference", **{k: v for k, v in kw.items() if v is not None}), args.json)
        return 0
    wrong = [k for k in _INFERENCE if getattr(args, k, None) is not None]
    if wrong:
        raise ConfigError(f"{', '.join('--' + k.replace('_', '-') for k in wrong)} need --mode inference")
    kw = _estimate_kwargs(args)
    for k in ("params", "tokens", "model", "law"):
        if getattr(args, k) is not None:
            kw[k] = getattr(args, k)
    _emit(estimate(**kw), args.json, args.hyper_law)
    return 0


def handle_plan(args: argparse.Namespace) -> int:
    from scalebench.planning.plan import plan

    kw = _estimate_kwargs(args)
    constraint = dict(flops=args.flops, budget_usd=args.budget_usd, gpu_hours=args.gpu_hours,
                      deadline_s=None if args.deadline_days is None else args.deadline_days * 86400.0,
                      target_loss=args.target_loss)
    kw.update({k: v for k, v in constraint.items() if v is not None})
    common = dict(law=args.law, params=args.params, tokens_per_param=args.tokens_per_param)
    result = plan(**common, **kw)
    rule = None
    if args.num_gpus is None and args.deadline_days is None:
        result, rule = _within_days(result, common, kw, args.max_days or DEFAULT_MAX_DAYS, args.max_days is None)
    found = _hyper_laws(result, args.hyper_law)
    if args.json:
        extra = {"hyperparameters": found} if found else {}
        print(json.dumps({**result.to_dict(), "gpu_count_rule": rule, **extra}, indent=2))
    else:
        print((rule + "\n" if rule else "") + result.report())
        _print_hyper(result, found)
    return 0


DEFAULT_MAX_DAYS = 90.0  # a plan without --num-gpus finishes within this (a stated default, --max-days)


def _within_days(result, common: dict, kw: dict, days: float, default: bool):
    """The plan again on the fewest GPUs (node x powers of two) whose estimate of the planned run finishes
    within ``days``, where the fewest that fit would take longer; the rule is said in one line."""
    import numpy as np

    from scalebench.hardware.catalog import get_gpu
    from scalebench.planning.estimate import estimate

    e = result.estimate
    said = f"{days:g} days" + (" (the default deadline; --max-days to change it)" if default else " (--max-days)")
    if e.num_gpus is None or e.wall_clock_s <= days * 86400.0:
        return result, None
    node = get_gpu(e.gpu).node_size
    counts = node * 2 ** np.arange(0, 18)
    counts = counts[(counts > e.num_gpus) & (counts <= 2**20)]
    fixed = {k: v for k, v in kw.items() if k not in ("num_gpus", "flops", "budget_usd", "gpu_hours", "target_loss")}
    table = estimate(params=result.params, tokens=result.tokens, num_gpus=counts, **fixed)
    ok = table[table["fits"].astype(bool) & (table["wall_clock_s"] <= days * 86400.0)]
    if len(ok):
        n = int(ok["num_gpus"].min())
        rule = f"GPUs: {n}, the fewest (in powers of two per node) that finish within {said}"
    else:
        n = int(table.loc[table["wall_clock_s"].idxmin(), "num_gpus"])
        rule = f"GPUs: {n}, the fastest layout found; none finishes within {said}"
    from scalebench.planning.plan import plan

    return plan(**common, **{**kw, "num_gpus": n}), rule
