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

A workload: ``input_tokens`` of prompt and ``output_tokens`` generated per request (``context`` = their
sum, the KV cache each sequence reaches), ``batch`` requests served together — or a ``request_rate`` in
requests per second, whose concurrency follows from Little's law (requests in flight = rate x time each
spends), solved by fixed-point iteration and capped at what fits.

Prefill (time to first token, ``prefill_s``: the whole batch's prompts in one forward pass): the forward half
of the training model's layer (:mod:`~scalebench.planning.throughput`: every GEMM from its shape at the
generation's measured matmul efficiency with wave quantisation, the causal attention core at FlashAttention's
published efficiency, the elementwise passes at the measured copy bandwidth) on ``batch · input_tokens``
tokens, in the compute type: the activation type for weight-and-activation quantization (fp8 weights run fp8
matmuls; int8 with ``activations="int8"`` runs int8, SmoothQuant-style), else bf16 (weight-only int8/int4
dequantise into bf16 matmuls). ``prefill_mfu`` given instead times it as FLOPs / (GPUs · peak · mfu).

Decode (``decode_step_s``, the time per output token): each step reads the weights once (for a mixture of
experts, the dense part plus the experts some sequence of the batch routes to: E · (1 − (1 − k/E)^batch) of
them) and every sequence's KV cache, which grows from ``input_tokens`` to ``context`` over the generation (the
step is timed at its mean length, input + (output − 1)/2), at ``decode_efficiency`` of the datasheet
bandwidth (default the measured copy ceiling, 4.28 of 4.8 TB/s on an H200, DESIGN.md: decode kernels do not
beat a copy). The step is the largest of that, its compute and its launch floor (``throughput.LAUNCH_S`` per
kernel, ``DECODE_KERNELS_PER_LAYER`` kernels per layer), plus two tensor-parallel all-reduces of batch ·
d_model activations per layer, each costing NCCL's own latency model (NVIDIA/nccl, src/graph/tuning.cc, ring
all-reduce with the low-latency protocol: ``AR_BASE_LATENCY_S`` plus ``AR_STEP_LATENCY_S`` per step over
NVLink, ``AR_NET_STEP_LATENCY_S`` across nodes, 2·(tp − 1) steps) plus the bytes at the link rate.

Reported: ``prefill_s`` (the batch's prefill = time to first token, ``ttft_s``), ``decode_step_s`` (= time per
output token, ``tpot_s``), ``latency_s`` = prefill + output_tokens · step (one request, end to end),
``decode_tokens_per_s`` = batch / step, ``tokens_per_s_per_gpu`` = batch · output_tokens / latency / GPUs (end
to end, prefill included). The price per million output tokens is the GPUs' hourly price over the decode
throughput. No constant is fitted to published serving figures.
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
           "WEIGHT_TYPES", "DECODE_EFFICIENCY", "PREFILL_MFU", "allreduce_s"]

WEIGHT_TYPES = ("bf16", "fp16", "fp8", "int8", "int4")
GROUP_SIZE, SCALE_BYTES = 128, 2
DECODE_EFFICIENCY = 4.28 / 4.8  # measured copy ceiling on one H200 (DESIGN.md); the same as throughput's
PREFILL_MFU = None  # None: prefill timed by the hardware model (planning.throughput)
DECODE_KERNELS_PER_LAYER = 12  # forward only: 4-5 GEMMs, attention, 2 norms, 2 adds, rotary, activation
# NCCL's latency model (NVIDIA/nccl src/graph/tuning.cc): ring all-reduce, LL protocol, microseconds
AR_BASE_LATENCY_S = 3.6e-6
AR_STEP_LATENCY_S = 0.47e-6  # per ring step over NVLink
AR_NET_STEP_LATENCY_S = 2.7e-6  # per ring step over the network
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
    prefill_mfu: float  # given, or the modelled prefill's model FLOPs / (GPUs · peak · time)
    input_tokens: int = 0
    tokens_per_s_per_gpu: float = float("nan")  # end to end: batch · output tokens / latency / GPUs
    request_rate: float | None = None
    allreduce_s: float = 0.0  # one tensor-parallel all-reduce of a decode step

    @property
    def ttft_s(self) -> float:
        """Time to first token: the batch's prefill."""
        return self.prefill_s

    @property
    def tpot_s(self) -> float:
        """Time per output token: one decode step."""
        return self.decode_step_s
    defaults: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        keys = ("weights_bytes", "kv_cache_bytes", "decode_tokens_per_s", "prefill_s", "max_batch",
                "usd_per_million_tokens", "usd_per_million_input_tokens", "decode_step_s", "latency_s", "bound",
                "fits", "memory_per_gpu_bytes", "usable_memory_bytes", "num_gpus", "model", "gpu", "weights",
                "activations", "kv_dtype", "sparsity", "params_total", "params_active", "context", "batch",
                "output_tokens", "price_usd_per_hour", "price_source", "decode_efficiency", "prefill_mfu",
                "input_tokens", "ttft_s", "tpot_s", "tokens_per_s_per_gpu", "request_rate", "allreduce_s")
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
            f"  workload         {self.batch} requests x ({self.input_tokens} in + {self.output_tokens} out) tokens"
            + (f" at {self.request_rate:g} requests/s" if self.request_rate else ""),
            f"  prefill          {self.prefill_s:,.3f} s = time to first token (MFU {self.prefill_mfu:.2f})",
            f"  decode           {self.decode_tokens_per_s:,.0f} tokens/s ({self.decode_step_s * 1e3:,.2f} ms per output "
            f"token, {self.bound} bound, bandwidth efficiency {self.decode_efficiency:.2f}"
            + (f", all-reduce {self.allreduce_s * 1e6:,.1f} us x 2 per layer" if self.num_gpus > 1 else "") + ")",
            f"  latency          {self.latency_s:,.2f} s for {self.output_tokens} output tokens; "
            f"{self.tokens_per_s_per_gpu:,.0f} output tokens/s per GPU end to end",
            f"  price            {price}",
        ]
        if self.defaults:
            lines.append(f"  defaults         {', '.join(self.defaults)}")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)

    __str__ = report


_ARGS = ("model", "params", "params_active", "n_layer", "d_model", "n_head", "n_kv_head", "head_dim", "n_experts",
         "top_k", "expert_params", "gpu", "num_gpus", "context", "input_tokens", "request_rate", "batch", "output_tokens", "weights", "activations",
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
                 max_context=getattr(arch, "seq_len", None) if arch else None,
                 d_ff=float(getattr(arch, "mlp_width_active", None) or 4 * d) if arch else 4.0 * d,
                 swiglu=bool(arch and arch.mlp == "swiglu"),
                 vocab=float(getattr(arch, "vocab_size", None) or 50257) if arch else 50257.0)
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
    out_tokens = int(_positive("output_tokens", kw.get("output_tokens", 256), integer=True))
    if "input_tokens" in kw:
        in_tokens = int(_positive("input_tokens", kw["input_tokens"], integer=True))
        context = in_tokens + out_tokens
        if "context" in kw and int(kw["context"]) != context:
            raise ConfigError(f"context {kw['context']} is not input_tokens + output_tokens = {context}; give two of them")
    else:
        context = int(_positive("context", kw.get("context", 4096), integer=True))
        if out_tokens >= context:
            raise ConfigError(f"output_tokens {out_tokens} must be fewer than context {context} (prompt plus output)")
        in_tokens = context - out_tokens
    if shape["max_context"] and context > shape["max_context"] and kw.get("model"):
        notes.append(f"context {context} is past {kw['model']}'s trained context {shape['max_context']}")
    eff = _positive("decode_efficiency", kw.get("decode_efficiency", DECODE_EFFICIENCY), at_most_one=True)
    pmfu = _positive("prefill_mfu", kw["prefill_mfu"], at_most_one=True) if "prefill_mfu" in kw else None
    rate = _positive("request_rate", kw["request_rate"]) if "request_rate" in kw else None
    if rate is not None and "batch" in kw:
        raise ConfigError("give batch (requests served together) or request_rate (requests per second), not both")
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
                     "all-reduces run at the inter-node bandwidth and latency")
    replicas = tp if shape["kv_cache_dim"] else max(1.0, tp / shape["n_kv_head"])
    max_batch = max(0, int((budget - weights_bytes / tp) // (per_seq * replicas / tp)))
    times = _Timer(spec=spec, shape=shape, tp=tp, peak=peak, acts=acts, b_w=b_w, per_seq=per_seq, eff=eff, pmfu=pmfu,
                   in_tokens=in_tokens, out_tokens=out_tokens, context=context)
    if rate is not None:  # Little's law: requests in flight = rate x latency, at most what fits
        batch = 1
        for _ in range(50):
            want = max(1, min(max(1, max_batch), math.ceil(rate * times(batch)["latency_s"])))
            if want == batch:
                break
            batch = want
        if rate * times(batch)["latency_s"] > max(1, max_batch):
            notes.append(f"{rate:g} requests/s need {rate * times(batch)['latency_s']:,.0f} in flight; at most "
                         f"{max(1, max_batch)} fit: requests queue (add replicas)")
    else:
        batch = int(_positive("batch", kw["batch"], integer=True)) if "batch" in kw else max(1, max_batch)
    fits = per_gpu(tp, batch) <= budget
    if not fits:
        notes.append(f"does not fit: {per_gpu(tp, batch) / 2**30:.1f} GiB per GPU needed, "
                     f"{budget / 2**30:.1f} GiB available ({MEMORY_UTILIZATION:.0%} of usable); "
                     f"largest batch {max_batch}")
    t = times(batch)
    prefill_s, step, decode_tps = t["prefill_s"], t["step_s"], batch / t["step_s"]
    active = shape["params_active"]
    price = kw.get("price_usd_per_hour", spec.price_usd_per_hour)
    price_source = "given" if "price_usd_per_hour" in kw else (spec.price_source or None)
    usd_out = usd_in = None
    if price:
        price = _positive("price_usd_per_hour", price)
        usd_out = price * tp / 3600.0 / decode_tps * 1e6
        usd_in = price * tp / 3600.0 * prefill_s / (batch * in_tokens) * 1e6
    else:
        notes.append(f"no catalog price for {spec.name}: pass price_usd_per_hour")
    return InferenceEstimate(
        model=kw.get("model"), gpu=spec.name, num_gpus=tp, weights=weights, activations=acts, kv_dtype=kv_dtype,
        sparsity=sparsity, params_total=shape["params"], params_active=active, context=context, batch=batch,
        output_tokens=out_tokens, weights_bytes=weights_bytes, kv_cache_bytes=per_seq * batch,
        memory_per_gpu_bytes=per_gpu(tp, batch), usable_memory_bytes=usable, fits=fits, max_batch=max_batch,
        prefill_s=prefill_s, decode_step_s=step, decode_tokens_per_s=decode_tps, bound=t["bound"],
        latency_s=t["latency_s"], price_usd_per_hour=price or None, price_source=price_source,
        usd_per_million_tokens=usd_out, usd_per_million_input_tokens=usd_in, decode_efficiency=eff,
        prefill_mfu=t["prefill_mfu"], defaults=tuple(defaults), notes=tuple(notes), input_tokens=in_tokens,
        tokens_per_s_per_gpu=batch * out_tokens / t["latency_s"] / tp, request_rate=rate,
        allreduce_s=t["allreduce_s"],
    )


def allreduce_s(nbytes: float, ranks: int, *, bandwidth: float, across_nodes: bool = False) -> float:
    """One ring all-reduce of ``nbytes`` over ``ranks`` GPUs: NCCL's latency model (module docstring) plus
    2·(p − 1)/p of the bytes at the link rate."""
    if ranks <= 1:
        return 0.0
    steps = 2 * (ranks - 1)
    latency = AR_BASE_LATENCY_S + steps * (AR_NET_STEP_LATENCY_S if across_nodes else AR_STEP_LATENCY_S)
    return latency + steps / ranks * nbytes / bandwidth


@dataclass(frozen=True, kw_only=True)
class _Timer:
    """Prefill, decode step and latency of one batch size (see the module docstring)."""

    spec: Any
    shape: dict
    tp: int
    peak: float
    acts: str
    b_w: float
    per_seq: float
    eff: float
    pmfu: float | None
    in_tokens: int
    out_tokens: int
    context: int

    def __call__(self, batch: int) -> dict[str, Any]:
        from scalebench.planning import throughput

        sh, spec, tp = self.shape, self.spec, self.tp
        L, attn, active = sh["n_layer"], sh["n_head"] * sh["head_dim"], sh["params_active"]
        tokens = batch * self.in_tokens
        ideal_flops = batch * (2.0 * active * self.in_tokens + 2.0 * L * self.in_tokens**2 * attn)
        if self.pmfu is not None:
            prefill = ideal_flops / (tp * self.peak * self.pmfu)
        else:
            gemm_eff, attn_eff, _ = throughput.efficiency_for(spec.generation)
            peak16 = spec.peak_for("bf16") or spec.peak_for("fp16") or self.peak
            fwd, _ = throughput.compute_s(
                tokens=tokens, tp=tp, cp=1, d_model=sh["d_model"], q_dim=attn, kv_dim=sh["n_kv_head"] * sh["head_dim"],
                d_ff=sh["d_ff"], swiglu=sh["swiglu"], vocab=sh["vocab"], seq_len=self.in_tokens, n_layer=L,
                n_head=sh["n_head"], pp=1, mode="none", flash=True, peak=self.peak, gemm_eff=gemm_eff,
                attn_eff=attn_eff * peak16 / self.peak, bandwidth=spec.bandwidth_bytes_per_s,
                units=spec.compute_units or float("nan"), act_bytes=2.0, passes=1.0)
            prefill = float(fwd)
        prefill_mfu = ideal_flops / (tp * self.peak * prefill)
        dense = sh["params"] - sh["expert_params"]
        if sh["n_experts"]:
            touched = 1.0 - (1.0 - sh["top_k"] / sh["n_experts"]) ** batch
            read_params = dense + sh["expert_params"] * touched
        else:
            read_params = sh["params"]
        mean_len = self.in_tokens + (self.out_tokens - 1) / 2.0  # the KV cache grows over the generation
        kv_read = self.per_seq * batch * mean_len / self.context
        t_mem = (read_params * self.b_w + kv_read) / (tp * spec.bandwidth_bytes_per_s * self.eff)
        t_comp = batch * (2.0 * active + 4.0 * L * mean_len * attn) / (tp * self.peak * min(1.0, prefill_mfu))
        t_launch = L * DECODE_KERNELS_PER_LAYER * throughput.LAUNCH_S
        across = tp > spec.node_size
        bw = (spec.inter_node_bandwidth_bytes_per_s if across else spec.intra_node_bandwidth_bytes_per_s) or math.inf
        ar = allreduce_s(batch * sh["d_model"] * 2.0, tp, bandwidth=bw * throughput.NETWORK_EFFICIENCY,
                         across_nodes=across)
        step = max(t_mem, t_comp, t_launch) + 2 * L * ar
        bound = "memory-bandwidth" if t_mem >= max(t_comp, t_launch) else ("compute" if t_comp >= t_launch else "launch")
        return {"prefill_s": prefill, "step_s": step, "latency_s": prefill + self.out_tokens * step, "bound": bound,
                "prefill_mfu": prefill_mfu, "allreduce_s": ar}
