"""``estimate_inference``: memory, speed and price of serving a model, with quantization and 2:4 sparsity.

The model is served with tensor parallelism over ``num_gpus`` accelerators of one node (default: the
fewest, in powers of two, that hold the weights and one sequence's KV cache).

Weights. Bytes per parameter by storage type, with group-wise scales where the method uses them:
bf16/fp16 2; fp8 1 (per-tensor scales, negligible); int8 1 + 2/128 and int4 0.5 + 2/128 (one fp16 scale
per group of 128 weights, as GPTQ (Frantar et al. 2022) and AWQ (Lin et al. 2023) store them; their zero
points pack into the same budget). 2:4 structured sparsity keeps half the values plus 2 bits of position
metadata per kept value (Mishra et al. 2021, "Accelerating Sparse Deep Neural Networks"): 0.5·b + 0.125
bytes per original weight, and doubles the matrix rate on cards whose catalog entry says ``sparsity_2_4``.

KV cache. Per token: 2 (K and V) · n_layer · n_kv_head · head_dim elements for multi-head, grouped-query
(Ainslie et al. 2023) and multi-query (Shazeer 2019) attention alike — only n_kv_head differs — or the
preset's ``kv_cache_dim`` per layer (DeepSeek's latent attention: 576). Bytes per element from
``kv_dtype`` (bf16 2, fp8 1). Tensor parallelism splits the KV heads; beyond n_kv_head ranks each head is
replicated (and a latent cache on every rank).

Memory: weights/tp + KV/tp ≤ usable · 0.9 (usable = card memory less the 1 GiB reserve; 10% kept for
activations and workspaces, vLLM's default ``gpu_memory_utilization`` = 0.9). ``max_batch`` is the
largest batch of ``context``-token sequences that fits.

Prefill (compute bound): batch · (2·N_active·T + 2·L·T²·H·Q) FLOPs (causal attention halves the 4·L·T²·H·Q
of score and value matmuls), at ``prefill_mfu`` (default 0.5, an assumption; pass a measured value) of
the peak of the compute type: the activation type for weight-and-activation quantization (fp8 weights
run fp8 matmuls; int8 with ``activations="int8"`` runs int8, SmoothQuant-style), else bf16 (weight-only
int8/int4 dequantise into bf16 matmuls).

Decode (memory-bandwidth bound): one step reads the weights once (for a mixture of experts, the dense
part plus the experts some sequence of the batch routes to: E · (1 − (1 − k/E)^batch) of them) and every
sequence's KV cache at full context (a worst case: the average over a generation is lower), at
``decode_efficiency`` (default 0.8) of the datasheet bandwidth — the measured copy ceiling on an H200 was
4.28 of 4.8 TB/s = 0.89 (DESIGN.md), and decode kernels do not beat a copy. The step is the larger of that
and its compute time, plus two all-reduces of batch · d_model activations per layer across the tp ranks.
decode_tokens_per_s = batch / step; the price per million output tokens is the GPUs' hourly price over
that throughput; latency = prefill + output_tokens · step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from scalebench._util import json_safe
from scalebench.errors import ConfigError
from scalebench.hardware.catalog import get_gpu
from scalebench.planning.layout import DEFAULT_RESERVE_BYTES
from scalebench.planning.presets import get_architecture

__all__ = ["InferenceEstimate", "estimate_inference", "weight_bytes_per_param", "kv_cache_bytes",
           "WEIGHT_TYPES", "DECODE_EFFICIENCY", "PREFILL_MFU"]

WEIGHT_TYPES = ("bf16", "fp16", "fp8", "int8", "int4")
GROUP_SIZE, SCALE_BYTES = 128, 2
DECODE_EFFICIENCY = 0.8
PREFILL_MFU = 0.5
MEMORY_UTILIZATION = 0.9
_BYTES = {"bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "int8": 1.0, "int4": 0.5}
_KV_BYTES = {"bf16": 2.0, "fp16": 2.0, "fp8": 1.0}


def weight_bytes_per_param(weights: str, sparsity: str | None = None) -> float:
    """Stored bytes per original parameter (scales and sparsity metadata included)."""
    if weights not in _BYTES:
        raise ConfigError(f"weights must be one of {', '.join(WEIGHT_TYPES)}, got {weights!r}")
    b = _BYTES[weights] + (SCALE_BYTES / GROUP_SIZE if weights in ("int8", "int4") else 0.0)
    if sparsity == "2:4":
        return 0.5 * b + 0.5 * 2 / 8
    return b


def kv_cache_bytes(*, n_layer: int, n_kv_head: int, head_dim: int, context: int, batch: int,
                   kv_bytes: float = 2.0, kv_cache_dim: int | None = None) -> float:
    """KV-cache bytes of ``batch`` sequences of ``context`` tokens (GQA/MQA: n_kv_head; MLA: kv_cache_dim)."""
    per_layer = kv_cache_dim if kv_cache_dim else 2 * n_kv_head * head_dim
    return float(n_layer) * per_layer * kv_bytes * context * batch


@dataclass(frozen=True, kw_only=True)
class InferenceEstimate:
    """Serving one model on ``num_gpus`` tensor-parallel accelerators. Bytes, seconds, USD."""

    model: str | None
    gpu: str
    num_gpus: int
    weights: str
    activations: str
    kv_dtype: str
    sparsity: str | None
    params_total: float
    params_active: float
    context: int
    batch: int
    output_tokens: int
    weights_bytes: float
    kv_cache_bytes: float
    memory_per_gpu_bytes: float
    usable_memory_bytes: float
    fits: bool
    max_batch: int
    prefill_s: float
    decode_step_s: float
    decode_tokens_per_s: float
    bound: str  # what limits decode: memory-bandwidth or compute
    latency_s: float
    price_usd_per_hour: float | None
    price_source: str | None
    usd_per_million_tokens: float | None
    usd_per_million_input_tokens: float | None
    decode_efficiency: float
    prefill_mfu: float
    defaults: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        keys = ("weights_bytes", "kv_cache_bytes", "decode_tokens_per_s", "prefill_s", "max_batch",
                "usd_per_million_tokens", "usd_per_million_input_tokens", "decode_step_s", "latency_s", "bound",
                "fits", "memory_per_gpu_bytes", "usable_memory_bytes", "num_gpus", "model", "gpu", "weights",
                "activations", "kv_dtype", "sparsity", "params_total", "params_active", "context", "batch",
                "output_tokens", "price_usd_per_hour", "price_source", "decode_efficiency", "prefill_mfu")
        out = {k: getattr(self, k) for k in keys}
        out["defaults"], out["notes"] = list(self.defaults), list(self.notes)
        return json_safe(out)

    def report(self) -> str:
        gib = 2.0**30
        what = self.model or f"{self.params_total / 1e9:.3g}B params"
        price = (f"${self.usd_per_million_tokens:,.3f} per million output tokens, "
                 f"${self.usd_per_million_input_tokens:,.3f} per million input tokens at "
                 f"${self.price_usd_per_hour:.2f}/GPU-hour ({self.price_source})"
                 if self.usd_per_million_tokens is not None else "unknown (no price: pass price_usd_per_hour)")
        lines = [
            f"{what} served on {self.gpu} x {self.num_gpus} (tensor parallel), weights {self.weights}"
            + (" 2:4 sparse" if self.sparsity else "") + f", matmuls in {self.activations}, KV cache {self.kv_dtype}",
            f"  weights          {self.weights_bytes / gib:,.1f} GiB ({self.weights_bytes / self.params_total:.3f} bytes/param)",
            f"  KV cache         {self.kv_cache_bytes / gib:,.1f} GiB for {self.batch} x {self.context} tokens",
            f"  memory per GPU   {self.memory_per_gpu_bytes / gib:,.1f} of {self.usable_memory_bytes / gib:,.0f} GiB usable"
            + ("" if self.fits else "  DOES NOT FIT"),
            f"  largest batch    {self.max_batch} sequences of {self.context} tokens",
            f"  prefill          {self.prefill_s:,.3f} s (compute bound, MFU {self.prefill_mfu:.2f})",
            f"  decode           {self.decode_tokens_per_s:,.0f} tokens/s ({self.decode_step_s * 1e3:,.2f} ms per step, "
            f"{self.bound} bound, bandwidth efficiency {self.decode_efficiency:.2f})",
            f"  latency          {self.latency_s:,.2f} s for {self.output_tokens} output tokens",
            f"  price            {price}",
        ]
        if self.defaults:
            lines.append(f"  defaults         {', '.join(self.defaults)}")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)

    __str__ = report


_ARGS = ("model", "params", "params_active", "n_layer", "d_model", "n_head", "n_kv_head", "head_dim", "n_experts",
         "top_k", "expert_params", "gpu", "num_gpus", "context", "batch", "output_tokens", "weights", "activations",
         "kv_dtype", "sparsity", "price_usd_per_hour", "decode_efficiency", "prefill_mfu", "context_bytes")


def _positive(name: str, value: Any, integer: bool = False, at_most_one: bool = False) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number, got {value!r}") from None
    if isinstance(value, bool) or not math.isfinite(x) or x <= 0 or (integer and x != int(x)) or (at_most_one and x > 1):
        kind = "a positive integer" if integer else "a positive number" + (" no larger than 1" if at_most_one else "")
        raise ConfigError(f"{name} must be {kind}, got {value!r}")
    return x


def _shape(kw: dict[str, Any]) -> dict[str, Any]:
    """Model shape from a preset and/or explicit fields; shape fields a bare params count lacks are inferred
    as in training estimates (d_model/n_layer = 128, head dimension 128, full multi-head attention)."""
    arch = get_architecture(kw["model"]) if kw.get("model") else None
    get = lambda k, default=None: kw[k] if kw.get(k) is not None else (getattr(arch, k, None) if arch else None) or default  # noqa: E731
    params = get("params")
    if params is None:
        raise ConfigError("estimate_inference needs params or a model preset (model=...)")
    params = _positive("params", params)
    L = get("n_layer") or max(1, round((params / (12 * 128**2)) ** (1 / 3)))
    d = get("d_model") or max(128, 128 * round(math.sqrt(params / (12 * L)) / 128))
    heads = get("n_head") or max(1, round(d / 128))
    shape = dict(params=params, n_layer=int(L), d_model=int(d), n_head=int(heads),
                 n_kv_head=int(get("n_kv_head") or heads), head_dim=int(get("head_dim") or d // heads),
                 kv_cache_dim=getattr(arch, "kv_cache_dim", None) if arch else None,
                 params_active=float(get("params_active") or params), n_experts=int(get("n_experts") or 0),
                 top_k=int(get("top_k") or 0), expert_params=float(get("expert_params") or 0.0),
                 max_context=getattr(arch, "seq_len", None) if arch else None)
    if shape["n_experts"] and not shape["expert_params"]:
        k, e = shape["top_k"], shape["n_experts"]
        shape["expert_params"] = (params - shape["params_active"]) / (1 - k / e)
    return shape


def estimate_inference(**kwargs: Any) -> InferenceEstimate:
    """Serving estimate for a model preset or a shape (see the module docstring for every formula).

    ``gpu`` (required), ``num_gpus`` (tensor-parallel size; default the fewest that fit), ``context``
    (tokens per sequence, prompt plus output; default 4096), ``batch`` (sequences decoded together;
    default the largest that fits), ``output_tokens`` (256), ``weights`` (bf16, fp16, fp8, int8, int4),
    ``activations`` (matmul type: bf16, fp16, fp8, int8; default fp8 for fp8 weights, else bf16, or fp16
    for fp16 weights and on cards without bf16), ``kv_dtype``
    (bf16, fp8), ``sparsity`` (None or "2:4"), ``price_usd_per_hour``, ``decode_efficiency`` (0.8),
    ``prefill_mfu`` (0.5), ``context_bytes`` (the per-GPU reserve, 1 GiB).
    """
    unknown = set(kwargs) - set(_ARGS)
    if unknown:
        raise ConfigError(f"estimate_inference: unknown argument(s) {', '.join(sorted(unknown))}; known: {', '.join(_ARGS)}")
    kw = {k: v for k, v in kwargs.items() if v is not None}
    defaults = [k for k in ("num_gpus", "context", "batch", "output_tokens", "weights", "activations", "kv_dtype",
                            "price_usd_per_hour", "decode_efficiency", "prefill_mfu") if k not in kw]
    if "gpu" not in kw:
        raise ConfigError("estimate_inference needs gpu (a catalog name)")
    spec = get_gpu(kw["gpu"])
    shape = _shape(kw)
    weights = str(kw.get("weights", "bf16")).lower()
    sparsity = kw.get("sparsity")
    if sparsity is not None and str(sparsity) not in ("2:4", "none"):
        raise ConfigError(f"sparsity must be '2:4' or None, got {sparsity!r}")
    sparsity = None if sparsity in (None, "none") else "2:4"
    b_w = weight_bytes_per_param(weights, sparsity)
    sixteen = "fp16" if weights == "fp16" or not spec.peak_for("bf16") else "bf16"
    acts = str(kw.get("activations", "fp8" if weights == "fp8" else sixteen)).lower()
    if acts not in ("bf16", "fp16", "fp8", "int8"):
        raise ConfigError(f"activations must be bf16, fp16, fp8 or int8, got {acts!r}")
    if _BYTES.get(acts, 2) < _BYTES[weights]:
        raise ConfigError(f"activations={acts} with weights={weights}: weights stored wider than the matmul type")
    kv_dtype = str(kw.get("kv_dtype", "bf16")).lower()
    if kv_dtype not in _KV_BYTES:
        raise ConfigError(f"kv_dtype must be bf16, fp16 or fp8, got {kv_dtype!r}")
    peak = spec.peak_for(acts)
    if not peak:
        raise ConfigError(f"{spec.name} has no {acts} matrix unit (catalog peaks: "
                          f"{', '.join(k for k, v in spec.peak_flops.items() if v)}); choose another activations type")
    notes: list[str] = []
    if sparsity:
        if not spec.sparsity_2_4:
            raise ConfigError(f"{spec.name} does not accelerate 2:4 sparsity ({spec.sparsity_source}): "
                              "sparse weights would be stored and run dense there; drop sparsity")
        if weights == "int4":
            raise ConfigError("2:4 sparsity with int4 weights has no standard kernel; use bf16, fp8 or int8 weights")
        peak *= 2.0
        notes.append(f"2:4 sparsity: matmul peak x2 on {spec.name} ({spec.sparsity_source}); accuracy needs a "
                     "pruned-and-retrained model (Mishra et al. 2021)")
    context = int(_positive("context", kw.get("context", 4096), integer=True))
    if shape["max_context"] and context > shape["max_context"] and kw.get("model"):
        notes.append(f"context {context} is past {kw['model']}'s trained context {shape['max_context']}")
    out_tokens = int(_positive("output_tokens", kw.get("output_tokens", 256), integer=True))
    eff = _positive("decode_efficiency", kw.get("decode_efficiency", DECODE_EFFICIENCY), at_most_one=True)
    pmfu = _positive("prefill_mfu", kw.get("prefill_mfu", PREFILL_MFU), at_most_one=True)
    reserve = float(kw.get("context_bytes", DEFAULT_RESERVE_BYTES))
    usable = spec.memory_bytes - reserve
    weights_bytes = shape["params"] * b_w
    per_seq = kv_cache_bytes(n_layer=shape["n_layer"], n_kv_head=shape["n_kv_head"], head_dim=shape["head_dim"],
                             context=context, batch=1, kv_bytes=_KV_BYTES[kv_dtype], kv_cache_dim=shape["kv_cache_dim"])

    def per_gpu(tp: int, batch: float) -> float:
        replicas = tp if shape["kv_cache_dim"] else max(1.0, tp / shape["n_kv_head"])
        return weights_bytes / tp + per_seq * batch * replicas / tp

    budget = usable * MEMORY_UTILIZATION
    if "num_gpus" in kw:
        tp = int(_positive("num_gpus", kw["num_gpus"], integer=True))
    else:
        tp = next((t for t in (1, 2, 4, 8, 16, 32, 64, 128) if t <= max(spec.node_size, 8) and per_gpu(t, 1) <= budget), 0)
        if not tp:
            tp = max(spec.node_size, 8)
            notes.append(f"does not fit on one {spec.name} node even at batch 1: quantize further, shorten "
                         "the context, or serve with pipeline parallelism across nodes (not modelled)")
    if tp > spec.node_size:
        notes.append(f"tensor parallelism over {tp} > {spec.node_size} GPUs per node crosses nodes: its "
                     "all-reduces run at the inter-node bandwidth")
    replicas = tp if shape["kv_cache_dim"] else max(1.0, tp / shape["n_kv_head"])
    max_batch = max(0, int((budget - weights_bytes / tp) // (per_seq * replicas / tp)))
    batch = int(_positive("batch", kw["batch"], integer=True)) if "batch" in kw else max(1, max_batch)
    fits = per_gpu(tp, batch) <= budget
    if not fits:
        notes.append(f"does not fit: {per_gpu(tp, batch) / 2**30:.1f} GiB per GPU needed, "
                     f"{budget / 2**30:.1f} GiB available ({MEMORY_UTILIZATION:.0%} of usable); "
                     f"largest batch {max_batch}")
    L, attn = shape["n_layer"], shape["n_head"] * shape["head_dim"]
    active = shape["params_active"]
    prefill_flops = batch * (2.0 * active * context + 2.0 * L * context**2 * attn)
    prefill_s = prefill_flops / (tp * peak * pmfu)
    dense = shape["params"] - shape["expert_params"]
    if shape["n_experts"]:
        touched = 1.0 - (1.0 - shape["top_k"] / shape["n_experts"]) ** batch
        read_params = dense + shape["expert_params"] * touched
    else:
        read_params = shape["params"]
    step_bytes = read_params * b_w + per_seq * batch
    bw_intra = spec.intra_node_bandwidth_bytes_per_s or math.inf
    bw_ar = bw_intra if tp <= spec.node_size else (spec.inter_node_bandwidth_bytes_per_s or math.inf)
    t_mem = step_bytes / (tp * spec.bandwidth_bytes_per_s * eff)
    t_comp = batch * (2.0 * active + 4.0 * L * context * attn) / (tp * peak * pmfu)
    t_comm = 0.0 if tp == 1 else 2 * L * 2 * (tp - 1) / tp * batch * shape["d_model"] * 2.0 / bw_ar
    step = max(t_mem, t_comp) + t_comm
    decode_tps = batch / step
    price = kw.get("price_usd_per_hour", spec.price_usd_per_hour)
    price_source = "given" if "price_usd_per_hour" in kw else (spec.price_source or None)
    usd_out = usd_in = None
    if price:
        price = _positive("price_usd_per_hour", price)
        usd_out = price * tp / 3600.0 / decode_tps * 1e6
        usd_in = price * tp / 3600.0 * prefill_s / (batch * context) * 1e6
    else:
        notes.append(f"no catalog price for {spec.name}: pass price_usd_per_hour")
    return InferenceEstimate(
        model=kw.get("model"), gpu=spec.name, num_gpus=tp, weights=weights, activations=acts, kv_dtype=kv_dtype,
        sparsity=sparsity, params_total=shape["params"], params_active=active, context=context, batch=batch,
        output_tokens=out_tokens, weights_bytes=weights_bytes, kv_cache_bytes=per_seq * batch,
        memory_per_gpu_bytes=per_gpu(tp, batch), usable_memory_bytes=usable, fits=fits, max_batch=max_batch,
        prefill_s=prefill_s, decode_step_s=step, decode_tokens_per_s=decode_tps,
        bound="memory-bandwidth" if t_mem >= t_comp else "compute", latency_s=prefill_s + out_tokens * step,
        price_usd_per_hour=price or None, price_source=price_source, usd_per_million_tokens=usd_out,
        usd_per_million_input_tokens=usd_in, decode_efficiency=eff, prefill_mfu=pmfu, defaults=tuple(defaults),
        notes=tuple(notes),
    )
