"""Training memory per GPU: model states (weights, gradients, optimizer state), activations, overhead.

All functions are vectorised: numbers may be numpy arrays (broadcast together). Bytes throughout.

Model states — bytes per parameter, as the common frameworks hold them (``framework``; ``grad_dtype`` and
``master_dtype`` override its gradient and master-weight types):

    framework     16-bit weights  gradients  fp32 master  AdamW m, v   total   source
    megatron            2             4           4            8         18     Megatron-LM docs, distributed
                                                                                optimizer: "bf16 param, fp32
                                                                                grads: 18 bytes" (main_grad
                                                                                accumulates in fp32)
    deepspeed           2             4           4            8         18     DeepSpeed BF16_Optimizer: fp32
                                                                                gradient accumulation buffers
    fsdp2               4 (fp32)      4           -            8         16     FSDP2 MixedPrecisionPolicy
                                                                                (param_dtype=bf16): sharded
                                                                                fp32 parameters and gradients,
                                                                                bf16 copies only while a layer
                                                                                computes; reduce_dtype fp32 or
                                                                                bf16 changes the traffic only
    autocast            4 (fp32)      4           -            8         16     torch.autocast: fp32 weights
    zero                2             2           4            8         16     ZeRO §3.1 "2Ψ + 2Ψ + KΨ", K=12

fp32/tf32 training holds 4 + 4 + 8 whatever the framework; SGD with momentum keeps 4 bytes of state instead
of AdamW's 8; fp8 (Transformer Engine) adds a cached 1-byte cast of the 16-bit weights. The default is
``megatron``: the layout of the published at-scale runs.

Sharding over the data-parallel size N_d (ZeRO §5; FSDP full-shard = stage 3). The functions here are
the pure data-parallel case (N_d = num_gpus); :mod:`~scalebench.planning.layout` combines them with
tensor, pipeline, context and expert parallelism:

    stage 0: nothing sharded     stage 1: optimizer / N_d
    stage 2: + gradients / N_d   stage 3 (FSDP): + weights / N_d

Activations — Korthikanti et al. 2022, "Reducing Activation Recomputation in Large Transformer Models",
eq. 1 (16-bit activations, 1-byte dropout masks), per layer with s = seq_len, b = micro_batch,
h = d_model, a = n_head:

    s·b·h·(34 + 5·a·s/h)        where 34 = 4 (two LayerNorm inputs) + 11 (attention) + 19 (MLP)

generalised here to grouped K/V heads (g = n_kv_head/n_head; attention 7 + 4g, = 11 at g = 1) and to an
MLP of width f (GELU: 3 + 4·f/h, = 19 at f = 4h; SwiGLU stores gate, up and their product: 3 + 6·f/h).
The 5·a·s/h term (attention scores, softmax, its dropout) is not stored with flash attention (Dao et al.
2022) nor with selective recomputation (Korthikanti §4.2). Dropout masks (1 byte per element: sbh after
attention, sbh after the MLP, as² on the scores, sbh on the embedding) and the dropped-out scores (2as²) are
kept only when the model has dropout (``dropout`` > 0); without it a layer stores 32·sbh (+ 2as² of softmax). Full recomputation stores only each layer's
input (2·s·b·h bytes) and rebuilds one layer at a time, so its peak is L·2sbh plus one layer's activations.
Outside the layers (Korthikanti §4.3): the embedding dropout mask s·b·h (with dropout) and the output layer's
LayerNorm and projection inputs 4·s·b·h, plus the fp32 logits for the loss, 4·s·b·V, once. fp32 training
doubles every 16-bit term (not the logits, fp32 either way); fp8 is counted as bf16 (conservative:
Transformer Engine saves some matmul inputs in fp8).

Overhead: an allocator/fragmentation factor on everything above (default 10 %) plus a fixed per-process
amount for the CUDA context and cuBLAS/NCCL workspaces (default 1 GiB). Both are assumptions, to be
replaced by a calibration (``scalebench.calibrate``) where the sweep measured peak memory.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from scalebench.errors import ConfigError

__all__ = [
    "PRECISIONS", "OPTIMIZERS", "CHECKPOINTING", "DEFAULT_ALLOCATOR_OVERHEAD", "DEFAULT_CONTEXT_BYTES", "FRAMEWORKS",
    "state_bytes_per_param", "parse_zero", "activation_bytes", "memory_per_gpu", "memory_from_states",
    "min_gpus_to_fit",
]

PRECISIONS = ("fp32", "tf32", "bf16", "fp16", "fp8")
OPTIMIZERS = ("adamw", "sgd")
CHECKPOINTING = ("none", "selective", "full")
DEFAULT_ALLOCATOR_OVERHEAD = 0.10
DEFAULT_CONTEXT_BYTES = float(2**30)

# 16-bit training: (weights, gradients, fp32 master copy) bytes per parameter by framework (table above)
FRAMEWORKS = {"megatron": (2, 4, 4), "deepspeed": (2, 4, 4), "fsdp2": (4, 4, 0), "autocast": (4, 4, 0),
              "zero": (2, 2, 4)}
DEFAULT_FRAMEWORK = "megatron"
_MOMENTS = {"adamw": 8, "sgd": 4}  # fp32 optimizer moments (m and v; momentum)
_DTYPE_BYTES = {"bf16": 2, "fp16": 2, "fp32": 4, "none": 0}
_OPTIMIZER_ALIASES = {"adamw": "adamw", "adam": "adamw", "sgd": "sgd", "sgd-momentum": "sgd"}
# bytes per activation element relative to the 16-bit formula
ACTIVATION_SCALE = {"fp32": 2.0, "tf32": 2.0, "bf16": 1.0, "fp16": 1.0, "fp8": 1.0}


def parse_precision(value: Any) -> str:
    key = str(value).strip().lower().removeprefix("torch.")
    key = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16", "half": "fp16", "float8": "fp8"}.get(key, key)
    if key not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {value!r}")
    return key


def parse_optimizer(value: Any) -> str:
    key = str(value).strip().lower()
    if key not in _OPTIMIZER_ALIASES:
        raise ConfigError(f"optimizer must be one of AdamW, SGD, got {value!r}")
    return _OPTIMIZER_ALIASES[key]


def parse_zero(value: Any) -> int:
    """0–3, ``"zero2"``, ``"fsdp"`` (= stage 3) -> the ZeRO stage; ``"auto"`` -> -1 (the layout search picks)."""
    key = str(value).strip().lower().removeprefix("zero").removeprefix("-")
    if key == "auto":
        return -1
    if key in ("fsdp", "full_shard", "full-shard"):
        return 3
    if key in ("0", "1", "2", "3", "0.0", "1.0", "2.0", "3.0"):
        return int(float(key))
    raise ConfigError(f"zero must be a ZeRO stage 0-3, 'fsdp' or 'auto', got {value!r}")


def parse_checkpointing(value: Any) -> str:
    if value is True:
        return "full"
    if value is False or value is None:
        return "none"
    key = str(value).strip().lower()
    if key not in (*CHECKPOINTING, "auto"):
        raise ConfigError(f"checkpointing must be one of none, selective, full, auto, got {value!r}")
    return key


def parse_framework(value: Any) -> str:
    key = str(value).strip().lower().replace("_", "-")
    key = {"fsdp": "fsdp2", "fsdp2-bf16-reduce": "fsdp2", "fsdp2-fp32-reduce": "fsdp2", "megatron-lm": "megatron",
           "amp": "autocast"}.get(key, key)
    if key not in FRAMEWORKS:
        raise ConfigError(f"framework must be one of {', '.join(FRAMEWORKS)}, got {value!r}")
    return key


def parse_dtype_override(name: str, value: Any, allowed: tuple[str, ...]) -> str | None:
    if value is None or (isinstance(value, float) and value != value):
        return None
    key = str(value).strip().lower().removeprefix("torch.")
    key = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}.get(key, key)
    if key not in allowed:
        raise ConfigError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
    return key


def state_bytes_per_param(precision: str, optimizer: str, framework: str = DEFAULT_FRAMEWORK,
                          grad_dtype: str | None = None, master_dtype: str | None = None) -> tuple[int, int, int]:
    """(weights, gradients, optimizer) bytes per parameter: optimizer = fp32 master copy + moments."""
    prec, moments = parse_precision(precision), _MOMENTS[parse_optimizer(optimizer)]
    if prec in ("fp32", "tf32"):
        w, g, master = 4, 4, 0
    else:
        w, g, master = FRAMEWORKS[parse_framework(framework)]
        w += 1 if prec == "fp8" else 0  # Transformer Engine's cached fp8 cast of the weights
    if grad_dtype is not None:
        g = _DTYPE_BYTES[grad_dtype]
    if master_dtype is not None and w < 4:  # fp32 weights are their own master copy
        master = _DTYPE_BYTES[master_dtype]
    return w, g, master + moments


def activation_bytes(
    *, n_layer, d_model, n_head, seq_len, micro_batch, vocab_size, checkpointing,
    n_kv_head=None, d_ff=None, swiglu=False, flash_attention=True, scale=1.0, dropout=0.0,
) -> np.ndarray:
    """Activation bytes of one micro-batch per GPU (Korthikanti et al. 2022; see the module docstring).

    ``checkpointing`` is "none", "selective" or "full" (a scalar, or an array of those strings).
    """
    L, h, a, s, b, V = (np.asarray(x, dtype=float) for x in (n_layer, d_model, n_head, seq_len, micro_batch, vocab_size))
    kv = a if n_kv_head is None else np.asarray(n_kv_head, dtype=float)
    f = 4.0 * h if d_ff is None else np.asarray(d_ff, dtype=float)
    g = kv / a
    mlp = np.where(np.asarray(swiglu, dtype=bool), 3.0 + 6.0 * f / h, 3.0 + 4.0 * f / h)
    sbh = s * b * h
    drop = np.asarray(dropout, dtype=float) > 0
    # 34·sbh for GPT-3-style layers with dropout (two 1-byte masks), 32·sbh without
    linear = sbh * (4.0 + 7.0 + 4.0 * g + mlp - np.where(drop, 0.0, 2.0))
    scores = np.where(drop, 5.0, 2.0) * a * s * s * b  # softmax output (+ its dropout mask and output)
    ckpt = np.asarray(checkpointing)
    keep_scores = (ckpt == "none") & ~np.asarray(flash_attention, dtype=bool)
    layer = linear + np.where(keep_scores, scores, 0.0)
    full_layer = linear + np.where(np.asarray(flash_attention, dtype=bool), 0.0, scores)
    stored = np.where(ckpt == "full", L * 2.0 * sbh + full_layer, L * layer)
    outside = np.where(drop, sbh, 0.0) + 4.0 * sbh  # embedding dropout mask; output LayerNorm and projection inputs
    logits = 4.0 * s * b * V  # fp32 logits for the loss, once whatever the training precision
    return (stored + outside) * np.asarray(scale, dtype=float) + logits


def _shard_split(params_total, w, g, o, zero):
    """(unsharded, shardable) model-state bytes for a ZeRO stage."""
    p = np.asarray(params_total, dtype=float)
    z = np.asarray(zero)
    sharded = p * (o * (z >= 1) + g * (z >= 2) + w * (z >= 3))
    return p * (w + g + o) - sharded, sharded


def memory_per_gpu(
    *, params_total, num_gpus, precision="bf16", optimizer="adamw", zero=3, activations=0.0,
    allocator_overhead=DEFAULT_ALLOCATOR_OVERHEAD, context_bytes=DEFAULT_CONTEXT_BYTES, framework=DEFAULT_FRAMEWORK,
) -> dict[str, np.ndarray]:
    """Per-GPU bytes: ``weights``, ``gradients``, ``optimizer``, ``activations``, ``overhead``, ``total``.

    ``precision``/``optimizer``/``framework`` are scalars here; ``activations`` comes from
    :func:`activation_bytes`.
    """
    w, g, o = state_bytes_per_param(precision, optimizer, framework)
    return memory_from_states(params_total=params_total, num_gpus=num_gpus, w=w, g=g, o=o, zero=zero,
                              activations=activations, allocator_overhead=allocator_overhead,
                              context_bytes=context_bytes)


def memory_from_states(
    *, params_total, num_gpus, w, g, o, zero, activations, allocator_overhead, context_bytes,
) -> dict[str, np.ndarray]:
    """:func:`memory_per_gpu` with bytes per parameter given as numbers (arrays allowed)."""
    z = np.asarray(zero)
    n = np.asarray(num_gpus, dtype=float)
    p = np.asarray(params_total, dtype=float)
    weights = p * w / np.where(z >= 3, n, 1.0)
    grads = p * g / np.where(z >= 2, n, 1.0)
    opt = p * o / np.where(z >= 1, n, 1.0)
    weights, grads, opt, act = np.broadcast_arrays(weights, grads, opt, np.asarray(activations, dtype=float))
    overhead = np.asarray(allocator_overhead) * (weights + grads + opt + act) + np.asarray(context_bytes)
    total = weights + grads + opt + act + overhead
    return {"weights": weights, "gradients": grads, "optimizer": opt, "activations": act,
            "overhead": overhead, "total": total}


def min_gpus_to_fit(
    *, params_total, capacity_bytes, w, g, o, zero, activations,
    allocator_overhead=DEFAULT_ALLOCATOR_OVERHEAD, context_bytes=DEFAULT_CONTEXT_BYTES,
) -> np.ndarray:
    """The least data-parallel size whose per-GPU total fits ``capacity_bytes``; NaN where none does.

    total(n) = (1 + f)·(U + S/n) + ctx ≤ M  ⇔  n ≥ S / ((M − ctx)/(1 + f) − U), with U the unsharded and S
    the shardable bytes (activations are never sharded by data parallelism).
    """
    unsharded, sharded = _shard_split(params_total, w, g, o, zero)
    room = (np.asarray(capacity_bytes, dtype=float) - context_bytes) / (1.0 + np.asarray(allocator_overhead))
    room = room - unsharded - np.asarray(activations, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        need = np.where(sharded > 0, np.ceil(sharded / room * (1 - 1e-12)), 1.0)
    return np.where(room > 0, np.maximum(need, 1.0), np.nan)
