"""All formulas over n scenarios at once: shape, FLOPs, hardware, memory, layout, time, cost, energy, loss.

Training FLOPs: ``6·N·D`` (Kaplan et al. 2020, §2.1) when only a parameter count is known; with a shape
(a preset, or a family plus its shape) the PaLM count ``(6·N + 12·L·T·H·Q)·D`` (Chowdhery et al. 2022,
appendix B; H·Q = n_head · head_dim, = d_model unless a preset says otherwise; the family's own formula
for families and for the presets built by one, the Llama presets, whose N leaves out the untied token
embedding; the attention term whenever n_layer and d_model are given). For a mixture of experts N is
the active parameter count (FLOPs), while memory counts every parameter. Shape fields not given are
inferred from the ones that are: d_model/n_layer = 128 (GPT-3 175B and Llama-2 7B have exactly 128,
Llama-2 70B 102), N ≈ 12·L·d², head dimension 128, GPT-2's 50,257-token vocabulary. Given fields are
kept; the result says ``shape_inferred`` and lists ``inferred_fields``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from scalebench import memory as mem
from scalebench.errors import ConfigError
from scalebench.hardware.catalog import get_gpu
from scalebench.planning import evidence, layout, throughput, timing
from scalebench.planning.estimate.arguments import ARGS, check
from scalebench.planning.estimate.inputs import _categorical, _flags, _missing, _numeric, _take
from scalebench.planning.estimate.loss import _loss
from scalebench.planning.estimate.notes import _notes
from scalebench.planning.estimate.result import MEMORY_KEYS
from scalebench.planning.layout import DEFAULT_GLOBAL_BATCH_TOKENS
from scalebench.planning.presets import get_architecture

HFU_SOURCE = "given as hfu"  # mfu_source of a utilisation given as a hardware rate
MODELLED = "modelled"  # mfu_source of a utilisation from the hardware model (planning.throughput)
INFER_ASPECT_RATIO = 128
INFER_HEAD_DIM = 128
INFER_VOCAB = 50257
DEFAULT_SEQ_LEN = 2048

# ------------------------------------------------------------------------------------------------- core

def _compute(values: dict[str, Any], n: int, strict: bool = True) -> dict[str, Any]:
    """All formulas over n scenarios. ``strict``: raise where a row asks for a dtype its GPU lacks
    (one scenario); otherwise that row gets NaN times and a note (tables of scenarios)."""
    calibrated = hasattr(values["mfu"], "predict_mfu")
    num = {a.name: _numeric(a.name, None if (a.name == "mfu" and calibrated) else values[a.name], n)
           for a in ARGS if a.numeric}
    for k, arr in num.items():
        check(k, arr)
    params, tokens = num["params"], num["tokens"]
    L, d, heads, kv, ff = num["n_layer"], num["d_model"], num["n_head"], num["n_kv_head"], num["d_ff"]
    vocab, seq = num["vocab_size"], num["seq_len"]
    params_total = np.full(n, np.nan)
    flops_per_token = np.full(n, np.nan)
    swiglu = np.zeros(n, dtype=bool)
    active, n_exp, top_k = num["params_active"], num["n_experts"], num["top_k"]
    head_dim, kv_cache = num["head_dim"].copy(), np.full(n, np.nan)
    expert_params = num["expert_params"].copy()

    # published architectures fill what the caller left out
    m_codes, archs = _categorical(values["model"], n, get_architecture)
    for i, arch in enumerate(archs):
        rows = m_codes == i
        given = params[rows]
        clash = ~np.isnan(given) & (np.abs(given / arch.params - 1) > 0.01)
        if clash.any():  # the preset's shape fixes its parameter count; a different one cannot also hold
            raise ConfigError(f"params = {float(given[clash][0]):g} contradicts model {arch.name!r}, which has "
                              f"{arch.params:.4g} parameters; give the preset or params, not both")
        # a preset with a family takes its counts from the family below (one definition for both)
        for arr, v in ((params, None if arch.family else arch.params), (tokens, arch.tokens), (L, arch.n_layer),
                       (d, arch.d_model),
                       (heads, arch.n_head), (kv, arch.n_kv_head), (ff, arch.mlp_width_active),
                       (vocab, arch.vocab_size), (seq, arch.seq_len), (active, arch.params_active),
                       (n_exp, arch.n_experts or None), (top_k, arch.top_k or None), (head_dim, arch.head_dim),
                       (kv_cache, arch.kv_cache_dim), (expert_params, arch.expert_params or None)):
            if v is not None:
                arr[rows & np.isnan(arr)] = v
        swiglu[rows] = arch.mlp == "swiglu"
        if arch.family:  # every weight (the presets' convention for params), FLOPs by the family's formula
            fam = _family(arch.family)
            params[rows] = np.nan  # a given count within 1 % of the preset's: the shape's exact count holds
            _apply_family(fam, np.flatnonzero(rows), L, d, heads, kv, ff, vocab, seq, params, params_total,
                          flops_per_token, swiglu, count=fam.params_total)

    # a model family and its shape: exact counts from the family's own formulas
    f_codes, families = _categorical(values["family"], n, _family)
    shape_only = (f_codes < 0) & (m_codes < 0) & ~np.isnan(L) & np.isnan(params)
    if shape_only.any():  # a bare shape is a GPT shape
        f_codes = np.where(shape_only, len(families), f_codes)
        families = [*families, _family("gpt")]
    for i, fam in enumerate(families):
        rows = np.flatnonzero(f_codes == i)
        _apply_family(fam, rows, L, d, heads, kv, ff, vocab, seq, params, params_total, flops_per_token, swiglu)

    if np.isnan(params).any():
        raise ConfigError("params is required: give params, a model preset (model=...), or family= with its shape")
    if np.isnan(tokens).any():
        raise ConfigError("tokens is required (training tokens; a model preset supplies its published count)")
    seq = np.where(np.isnan(seq), DEFAULT_SEQ_LEN, seq)
    # infer only the fields not given (N ≈ 12·L·d², d/L = 128, head dimension 128), keeping given ones
    inferred = {"n_layer": np.isnan(L), "d_model": np.isnan(d), "n_head": np.isnan(heads)}
    shape_inferred = inferred["n_layer"] | inferred["d_model"] | inferred["n_head"]
    both = inferred["n_layer"] & inferred["d_model"]
    if both.any():
        L[both] = np.maximum(1.0, np.round((params[both] / (12.0 * INFER_ASPECT_RATIO**2)) ** (1.0 / 3.0)))
    only_d = inferred["d_model"]  # n_layer known now (given or just inferred)
    if only_d.any():  # a multiple of 128; of 1024 from 1024 on, so that 8 heads divide it (tensor parallelism)
        raw = np.sqrt(params[only_d] / (12.0 * L[only_d]))
        step = np.where(raw >= 1024, 8 * INFER_HEAD_DIM, INFER_HEAD_DIM)
        d[only_d] = np.maximum(INFER_HEAD_DIM, step * np.round(raw / step))
    only_l = np.isnan(L)  # d_model given, n_layer not
    if only_l.any():
        L[only_l] = np.maximum(1.0, np.round(params[only_l] / (12.0 * d[only_l] ** 2)))
    if inferred["n_head"].any():
        h = inferred["n_head"]
        heads[h] = np.maximum(1.0, np.round(d[h] / INFER_HEAD_DIM))
    kv = np.where(np.isnan(kv), heads, kv)
    ff = np.where(np.isnan(ff), 4.0 * d, ff)
    vocab = np.where(np.isnan(vocab), INFER_VOCAB, vocab)
    params_total = np.where(np.isnan(params_total), params, params_total)
    active, expert_params, n_exp, top_k = _experts(active, expert_params, n_exp, top_k, params_total)
    head_dim = np.where(np.isnan(head_dim), d / heads, head_dim)
    attn_dim = heads * head_dim
    flops_per_token = np.where(
        np.isnan(flops_per_token),
        6.0 * active + np.where(inferred["n_layer"] | inferred["d_model"], 0.0, 12.0 * L * seq * attn_dim),
        flops_per_token
    )
    flops = flops_per_token * tokens

    # hardware: per (gpu, precision) pair
    g_codes, gpus = _categorical(values["gpu"], n, get_gpu)
    if (g_codes < 0).any():
        from scalebench.hardware.catalog import list_gpus

        raise ConfigError(f"gpu is required (a catalog name); known GPUs: {', '.join(list_gpus())}")
    p_codes, precs = _categorical(values["precision"], n, mem.parse_precision)
    o_codes, opts = _categorical(values["optimizer"], n, mem.parse_optimizer)
    z_codes, zeros = _categorical(values["zero"], n, mem.parse_zero)
    c_codes, ckpts = _categorical(values["checkpointing"], n, mem.parse_checkpointing)
    for name, codes in (("precision", p_codes), ("optimizer", o_codes), ("zero", z_codes), ("checkpointing", c_codes)):
        if (codes < 0).any():
            raise ConfigError(f"{name} must not be empty")
    peak = np.empty(n)
    no_unit: list[tuple[np.ndarray, str]] = []
    for gi, spec in enumerate(gpus):
        for pi, prec in enumerate(precs):
            rows = (g_codes == gi) & (p_codes == pi)
            if rows.any():
                value = spec.peak_for(prec)
                if value is None:
                    have = [k for k, v in spec.peak_flops.items() if v]
                    msg = f"{spec.name} has no {prec} unit (catalog peaks: {', '.join(have)}); choose another precision"
                    if strict:
                        raise ConfigError(msg)
                    no_unit.append((rows, msg))
                peak[rows] = np.nan if value is None else value
    capacity = _take(g_codes, [s.memory_bytes for s in gpus], np.nan)
    tdp = _take(g_codes, [s.tdp_w for s in gpus], np.nan)
    catalog_price = _take(g_codes, [np.nan if s.price_usd_per_hour is None else s.price_usd_per_hour for s in gpus], np.nan)
    price = np.where(np.isnan(num["price_usd_per_hour"]), catalog_price, num["price_usd_per_hour"])
    gpu_name = _take(g_codes, [s.name for s in gpus], None, dtype=object)
    prec_name = _take(p_codes, precs, None, dtype=object)

    w, gb, o = _state_bytes(values, n, p_codes, precs, o_codes, opts)
    zero = _take(z_codes, zeros, -1, dtype=int)
    act_scale = _take(p_codes, [mem.ACTIVATION_SCALE[p] for p in precs], np.nan)
    flash = _flags("flash_attention", values["flash_attention"], n, default=True)
    f_over, ctx = np.where(np.isnan(num["allocator_overhead"]), mem.DEFAULT_ALLOCATOR_OVERHEAD, num["allocator_overhead"]), \
        np.where(np.isnan(num["context_bytes"]), mem.DEFAULT_CONTEXT_BYTES, num["context_bytes"])
    micro = np.where(np.isnan(num["micro_batch"]), 1.0, num["micro_batch"])

    specs = _take(g_codes, gpus, None, dtype=object)
    gbatch = num["global_batch"]
    # default: 4M tokens' worth (Llama 1/2), or one micro-batch per GPU where a given GPU count needs more
    per_gpu = micro * np.where(np.isnan(num["num_gpus"]), 1.0, num["num_gpus"])
    gbatch = np.where(np.isnan(gbatch), np.maximum(np.round(DEFAULT_GLOBAL_BATCH_TOKENS / seq), per_gpu), gbatch)
    mfu_in, mfu_source, extrapolated, calibration = _mfu(values["mfu"], num["mfu"], num["hfu"], active, prec_name,
                                                         specs, n)
    ckpt_req = _take(c_codes, ckpts, None, dtype=object)
    dropout = np.where(np.isnan(num["dropout"]), 0.0, num["dropout"])
    acts = {mode: mem.activation_bytes(n_layer=L, d_model=d, n_head=heads, seq_len=seq, micro_batch=micro,
                                       vocab_size=vocab, checkpointing=mode, n_kv_head=kv, d_ff=ff,
                                       swiglu=swiglu, flash_attention=flash, scale=act_scale, dropout=dropout)
            for mode in mem.CHECKPOINTING}
    # the default table and a given hfu are hardware rates: full recomputation keeps the rate and spends
    # a quarter of it on the repeated forward pass (Korthikanti et al. 2022, §5); a given mfu is used as is
    # a given hfu is a hardware rate: full recomputation keeps the rate and spends a quarter of it on the
    # repeated forward pass (Korthikanti et al. 2022, §5); a given mfu is used as is. Modelled rows time
    # their work on the hardware (planning.throughput): 1 here, the layout's factor is then 1/MFU.
    modelled = mfu_source == MODELLED
    mfu_by_mode = {mode: np.where(modelled, 1.0, np.where(mfu_source == HFU_SOURCE,
                                                          mfu_in / timing.RECOMPUTE_FACTOR[mode], mfu_in))
                   for mode in mem.CHECKPOINTING}
    calibrating = evidence.calibrating_efficiency()
    kernel_eff = calibrating if calibrating is not None else (evidence.kernel_efficiency() if modelled.any() else 1.0)
    gen = [s.generation for s in gpus]
    effs = [throughput.efficiency_for(g) for g in gen]
    attn_peak = np.where(prec_name == "fp8", _take(g_codes, [s.peak_for("bf16") or np.nan for s in gpus], np.nan), peak)
    zero_arr = zero.astype(float)
    moe_layers = np.where(n_exp > 0, L, 0.0)
    kv_dim = kv * head_dim
    bw_intra = _take(g_codes, [s.intra_node_bandwidth_bytes_per_s or np.inf for s in gpus], np.nan)
    bw_inter = _take(g_codes, [s.inter_node_bandwidth_bytes_per_s or np.inf for s in gpus], np.nan)
    node = _take(g_codes, [s.node_size for s in gpus], np.nan)
    usable = layout.usable_memory_bytes(capacity, ctx)
    if (usable <= 0).any():
        i = int(np.flatnonzero(usable <= 0)[0])
        raise ConfigError(f"context_bytes (the per-GPU reserve; --reserve-gib on the command line) of "
                          f"{ctx[i] / 2**30:g} GiB leaves no usable memory on {gpu_name[i]} "
                          f"({capacity[i] / 2**30:g} GiB); give a smaller reserve")
    fixed = {k: num[k] for k in ("tp", "pp", "cp", "ep")}
    embed = np.minimum(vocab * d, 0.5 * (params_total - expert_params))  # the first stage's embedding
    inp = layout.LayoutInputs(
        params_total=params_total, expert_params=expert_params, weight_bpp=w, grad_bpp=gb, optimizer_bpp=o,
        zero=zero_arr, activations=acts, usable_bytes=usable,
        allocator_overhead=f_over, flops_per_step=flops_per_token * gbatch * seq, peak=peak,
        mfu_by_mode=mfu_by_mode, n_layer=L, moe_layers=moe_layers, d_model=d, kv_dim=kv_dim, top_k=top_k,
        seq_len=seq, micro_batch=micro, global_batch=gbatch, n_head=heads, n_experts=n_exp, node_size=node,
        bw_intra=bw_intra, bw_inter=bw_inter, num_gpus=num["num_gpus"], fixed=fixed, modes=ckpt_req,
        modelled=modelled, d_ff=ff, swiglu=swiglu, vocab=vocab, q_dim=attn_dim, flash=flash,
        bandwidth=_take(g_codes, [s.bandwidth_bytes_per_s for s in gpus], np.nan),
        units=_take(g_codes, [np.nan if s.compute_units is None else s.compute_units for s in gpus], np.nan),
        gemm_eff=np.where(np.isnan(num["gemm_efficiency"]), _take(g_codes, [e[0] for e in effs], np.nan),
                          num["gemm_efficiency"]),
        attn_eff=_take(g_codes, [e[1] for e in effs], np.nan) * attn_peak / peak, act_bytes=2.0 * act_scale,
        kernel_efficiency=np.full(n, kernel_eff), embedding_params=embed)
    grid = layout.candidates(max_tp=int(np.nanmax(np.where(np.isnan(fixed["tp"]), np.minimum(node, heads), fixed["tp"]))),
                             max_pp=int(np.nanmax(L)), max_cp=int(np.nanmax(seq) // layout.MIN_CP_CHUNK) or 1,
                             max_ep=int(np.nanmax(n_exp)) or 1, fixed=fixed)
    best = layout.search(inp, grid)
    num_gpus, chosen, fits = best["num_gpus"], best["mode"], best["fits"]
    zero_arr = np.where(np.isnan(best["zero"]), np.where(zero_arr < 0, 3, zero_arr), best["zero"])
    zero = zero_arr.astype(int)
    no_layout = np.array([m is None for m in chosen])
    chosen = np.where(no_layout, np.where(ckpt_req == "auto", "full", ckpt_req), chosen)
    memory = _breakdown(best, params_total, expert_params, w, gb, o, zero_arr, f_over, num_gpus, embed)

    # time, cost, energy: time = model FLOPs / (GPUs · peak · mfu), mfu the effective (reported) value
    eff = np.where(np.isnan(num["scaling_efficiency"]), 1.0, num["scaling_efficiency"])
    mfu_mode = np.select([chosen == m for m in mem.CHECKPOINTING], [mfu_by_mode[m] for m in mem.CHECKPOINTING])
    factor = np.where(np.isnan(best["factor"]), 1.0, best["factor"])
    mfu = mfu_mode * eff / factor
    calibrated_goodput = (evidence.calibrated_goodput() if calibrating is None and modelled.any()
                          and np.isnan(num["goodput"]).any() else 1.0)
    goodput = np.where(np.isnan(num["goodput"]), np.where(modelled, calibrated_goodput, timing.DEFAULT_GOODPUT),
                       num["goodput"])
    wall = timing.wall_clock_s(flops=flops, num_gpus=num_gpus, peak_flops=peak, mfu=mfu, scaling_efficiency=goodput)
    hfu = mfu * np.select([chosen == m for m in mem.CHECKPOINTING], [timing.RECOMPUTE_FACTOR[m] for m in mem.CHECKPOINTING])
    gpu_hours = num_gpus * wall / 3600.0
    cost = gpu_hours * price
    power_fraction = num["power_fraction"]
    if calibration is not None and calibration.power_fraction is not None:
        power_fraction = np.where(np.isnan(power_fraction), calibration.power_fraction, power_fraction)
    power_fraction = np.where(np.isnan(power_fraction), 1.0, power_fraction)
    pue = np.where(np.isnan(num["pue"]), 1.0, num["pue"])
    energy = timing.energy_kwh(num_gpus=num_gpus, power_w=tdp * power_fraction, wall_clock_s=wall, pue=pue)
    co2 = energy * num["grid_gco2_per_kwh"] / 1000.0
    lo_ratio, hi_ratio = _mfu_range(values["mfu"], mfu_source, specs, prec_name, active, calibration, n)

    loss, lo, hi, law_name = _loss(values["law"], params, tokens, n)

    out = {
        "model": _take(m_codes, [a.name for a in archs], None, dtype=object),
        "gpu": gpu_name, "num_gpus": num_gpus, "min_gpus": best["min_gpus"], "fits": fits,
        "params": params, "params_total": params_total, "params_active": active, "expert_params": expert_params,
        "tokens": tokens, "flops": flops,
        "precision": prec_name, "optimizer": _take(o_codes, opts, None, dtype=object), "zero": zero,
        "checkpointing": chosen, "seq_len": seq, "micro_batch": micro, "global_batch": gbatch,
        "n_layer": L, "d_model": d, "n_head": heads, "shape_inferred": shape_inferred,
        "inferred_fields": _inferred_fields(inferred, n),
        **{f"memory_{k}_bytes": memory[k] for k in MEMORY_KEYS},
        "gpu_memory_bytes": capacity, "usable_memory_bytes": usable,
        **{k: best[k] for k in ("tp", "pp", "cp", "ep", "dp")}, "micro_batches": best["m"],
        **{f"{k}_fraction": best[k] for k in ("bubble", "tp_comm", "ep_comm", "pp_comm", "cp_comm", "dp_comm", "optimizer",
                                               "exposed", "loss")},
        "layout_factor": factor,
        "mfu": mfu, "hfu": hfu, "mfu_source": mfu_source, "mfu_low": mfu * lo_ratio, "mfu_high": mfu * hi_ratio,
        "scaling_efficiency": eff, "goodput": goodput, "peak_flops": peak,
        "wall_clock_s": wall, "gpu_hours": gpu_hours, "price_usd_per_hour": price, "cost_usd": cost,
        "energy_kwh": energy, "co2_kg": co2,
        **{f"{k}_low": v / hi_ratio for k, v in (("wall_clock_s", wall), ("gpu_hours", gpu_hours),
                                                  ("cost_usd", cost), ("energy_kwh", energy))},
        **{f"{k}_high": v / lo_ratio for k, v in (("wall_clock_s", wall), ("gpu_hours", gpu_hours),
                                                   ("cost_usd", cost), ("energy_kwh", energy))},
        "price_source": np.where(np.isnan(num["price_usd_per_hour"]),
                                 _take(g_codes, [s.price_source or None for s in gpus], None, dtype=object), "given"),
        "predicted_loss": loss, "predicted_loss_lo": lo, "predicted_loss_hi": hi, "law": law_name,
        "defaults": _defaults(values, num, n),
    }
    notes = _notes(out, extrapolated, calibration, n, no_unit, no_layout, specs, strict, values)
    text, lists = np.full(n, "", dtype=object), np.empty(n, dtype=object)
    lists[:] = [()] * n
    for i, msgs in notes.items():
        text[i], lists[i] = "; ".join(msgs), msgs
    out["notes"] = text  # one string per row, for tables; split nothing back out of it
    out["note_list"] = lists  # the messages themselves, a tuple per row
    return out


def _state_bytes(values, n, p_codes, precs, o_codes, opts):
    """(weights, gradients, optimizer) bytes per parameter per row: precision, optimizer, framework and the
    gradient / master-weight overrides (scalebench.memory's table)."""
    f_codes, frames = _categorical(values["framework"], n, mem.parse_framework)
    g_codes, grads = _categorical(values["grad_dtype"], n,
                                  lambda v: mem.parse_dtype_override("grad_dtype", v, ("bf16", "fp16", "fp32")))
    m_codes, masters = _categorical(values["master_dtype"], n,
                                    lambda v: mem.parse_dtype_override("master_dtype", v, ("fp32", "none")))
    key = np.stack([p_codes, o_codes, f_codes, g_codes, m_codes], axis=1)
    uniq, inv = np.unique(key, axis=0, return_inverse=True)
    table = np.array([mem.state_bytes_per_param(
        precs[pc], opts[oc], frames[fc] if fc >= 0 else mem.DEFAULT_FRAMEWORK,
        grads[gc] if gc >= 0 else None, masters[mc] if mc >= 0 else None) for pc, oc, fc, gc, mc in uniq], dtype=float)
    out = table[inv.ravel()]
    return out[:, 0], out[:, 1], out[:, 2]


def _breakdown(best, P, E, w, g, o, zero, f, num_gpus, emb) -> dict[str, np.ndarray]:
    """Weights, gradients, optimizer, activations and overhead per GPU for the chosen layouts (the first
    pipeline stage: its layers and the embedding, planning.layout)."""
    tp, pp, cp, ep, dp = (best[k] for k in ("tp", "pp", "cp", "ep", "dp"))
    whole = (((P - E - emb) + E / ep) / pp + emb) / tp
    shard = ((P - emb) / pp + emb) / (tp * cp * dp)
    parts = {"weights": w * np.where(zero >= 3, shard, whole), "gradients": g * np.where(zero >= 2, shard, whole),
             "optimizer": o * np.where(zero >= 1, shard, whole)}
    unknown = np.isnan(num_gpus)
    out = {k: np.where(unknown, np.nan, v) for k, v in parts.items()}
    out["activations"] = best["act"]
    out["overhead"] = f * (out["weights"] + out["gradients"] + out["optimizer"] + out["activations"])
    out["total"] = out["weights"] + out["gradients"] + out["optimizer"] + out["activations"] + out["overhead"]
    return out


def _defaults(values: dict[str, Any], num: dict[str, np.ndarray], n: int) -> np.ndarray:
    """Per row, the inputs that took a default (the output says so)."""
    keys = ("num_gpus", "tp", "pp", "cp", "ep", "mfu", "global_batch", "seq_len", "price_usd_per_hour",
            "power_fraction", "pue", "scaling_efficiency", "goodput", "micro_batch")
    missing = {k: (np.isnan(num[k]) if k in num else np.full(n, _missing(values[k])))
               for k in keys if not (k == "mfu" and hasattr(values["mfu"], "predict_mfu"))}
    if "mfu" in missing:  # a given hfu sets the utilisation too
        missing["mfu"] &= np.isnan(num["hfu"])
    for k in ("precision", "zero", "checkpointing", "optimizer", "flash_attention"):
        missing[k] = np.full(n, k not in values.get("_given", ()))
    names = list(missing)
    code = sum(missing[k].astype(np.int64) << i for i, k in enumerate(names))  # one bit per input
    uniq, inv = np.unique(code, return_inverse=True)
    table = [tuple(k for i, k in enumerate(names) if int(c) >> i & 1) for c in uniq]
    out = np.empty(n, dtype=object)
    out[:] = [table[i] for i in inv.ravel()]
    return out


def _mfu_range(raw, source, specs, prec, active, calibration, n) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) multipliers of the MFU: the evidence's spread (default), the calibration's residual
    spread (calibrated), or none (given)."""
    lo, hi = np.ones(n), np.ones(n)
    if calibration is not None:
        a, b = calibration.residual_range()
        return np.full(n, a), np.full(n, b)
    rows = np.flatnonzero(source == MODELLED)
    if rows.size:
        lo[rows], hi[rows] = evidence.model_range()
    return lo, hi


def _experts(active, expert_params, n_exp, top_k, params_total):
    """Mixture of experts: active and routed-expert parameters. Dense rows: active = all, no experts.

    Without ``expert_params``, E follows from N_total − N_active = E · (1 − top_k / n_experts)."""
    moe = ~np.isnan(n_exp) & (n_exp > 0)
    if (moe & (np.isnan(top_k) | np.isnan(active))).any():
        raise ConfigError("a mixture of experts (n_experts) needs top_k and params_active")
    if (moe & (top_k > n_exp)).any():
        raise ConfigError("top_k must be at most n_experts")
    if (~np.isnan(active) & (active > params_total)).any():
        raise ConfigError("params_active must be at most params (the total)")
    active = np.where(np.isnan(active), params_total, active)
    with np.errstate(divide="ignore", invalid="ignore"):
        derived = (params_total - active) / (1.0 - top_k / n_exp)
    expert_params = np.where(moe, np.where(np.isnan(expert_params), derived, expert_params), 0.0)
    return active, expert_params, np.where(moe, n_exp, 0.0), np.where(moe, top_k, 0.0)


def _inferred_fields(inferred: dict[str, np.ndarray], n: int) -> np.ndarray:
    """Per row, the tuple of shape fields that were inferred rather than given."""
    names = list(inferred)
    code = sum(inferred[k].astype(int) << i for i, k in enumerate(names))
    table = np.empty(2 ** len(names), dtype=object)
    for c in range(table.size):
        table[c] = tuple(k for i, k in enumerate(names) if c >> i & 1)
    return table[np.broadcast_to(code, (n,))]


def _family(name: Any):
    from scalebench.families import get_family

    return get_family(str(name))


def _apply_family(fam, rows, L, d, heads, kv, ff, vocab, seq, params, params_total, flops_per_token, swiglu,
                  count=None) -> None:
    """Shape fields, ``params`` (the family's law count, or ``count``), ``params_total`` and FLOPs per token
    of ``rows`` from the family's own formulas; ``swiglu`` where the shape's MLP is gated (its ``mlp``)."""
    if rows.size == 0:
        return
    for k, arr in (("n_layer", L), ("d_model", d), ("n_head", heads)):
        if np.isnan(arr[rows]).any():
            raise ConfigError(f"family={fam.name!r} needs {k} (with n_layer, d_model, n_head)")
    cols = {"n_layer": L, "d_model": d, "n_head": heads, "vocab_size": vocab, "seq_len": seq, "d_ff": ff,
            "n_kv_head": kv}
    frame = pd.DataFrame({k: v[rows] for k, v in cols.items()})
    for key, group in frame.groupby(list(cols), dropna=False, sort=False).groups.items():
        fields = {k: int(v) for k, v in zip(cols, key, strict=True) if not (isinstance(v, float) and math.isnan(v))}
        try:
            shape = fam.make_shape(**fields)
        except TypeError:  # a family without grouped K/V heads (gpt): n_kv_head does not apply
            fields.pop("n_kv_head", None)
            shape = fam.make_shape(**fields)
        idx = rows[np.asarray(group)]
        if getattr(shape, "kv_heads", None):
            kv[idx] = shape.kv_heads
        if hasattr(shape, "vocab_size"):
            vocab[idx], seq[idx] = shape.vocab_size, shape.seq_len
        if getattr(shape, "ffn", None):
            ff[idx] = shape.ffn
        swiglu[idx] = getattr(shape, "mlp", "gelu") == "swiglu"
        keep = idx[np.isnan(params[idx])]
        params[keep] = (count or fam.params)(shape)
        params_total[keep] = fam.params_total(shape)
        flops_per_token[keep] = fam.flops_per_token(shape)


def _mfu(raw: Any, given: np.ndarray, hfu: np.ndarray, active: np.ndarray, prec: np.ndarray, specs: np.ndarray,
         n: int):
    """(utilisation, source, extrapolated, calibration): a given mfu, a given hfu (a hardware rate, converted
    per recomputation by the caller), calibrated, or the published-runs default (also a hardware rate)."""
    extrapolated = np.zeros(n, dtype=bool)
    has_hfu = ~np.isnan(hfu)
    if (has_hfu & ~np.isnan(given)).any() or (has_hfu.any() and hasattr(raw, "predict_mfu")):
        raise ConfigError("give mfu (model FLOPs utilisation) or hfu (hardware FLOPs utilisation, recomputation "
                          "counted), not both; a calibration is an mfu")
    if has_hfu.any():
        source = np.where(has_hfu, HFU_SOURCE, np.where(np.isnan(given), MODELLED, "given")).astype(object)
        base, _, _, _ = _mfu(raw, given, np.full(n, np.nan), active, prec, specs, n)
        return np.where(has_hfu, hfu, base), source, extrapolated, None
    if hasattr(raw, "predict_mfu"):
        mfu, extrapolated = raw.predict_mfu(active)
        source = np.where(extrapolated, "calibrated (extrapolated, held at the sweep's edge)", "calibrated")
        return np.asarray(mfu, dtype=float), source.astype(object), extrapolated, raw
    source = np.where(np.isnan(given), MODELLED, "given").astype(object)
    return np.where(np.isnan(given), 1.0, given), source, extrapolated, None


