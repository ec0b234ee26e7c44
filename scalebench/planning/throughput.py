"""Step time from the work and the hardware: how long one rank takes to run its micro-batches.

A transformer layer is a handful of matrix multiplications (GEMMs), an attention core and a few
memory-bound elementwise passes; each is timed on the card from its shape, vectorised over every
(scenario, layout) pair the layout search tries (:mod:`~scalebench.planning.layout` adds the bubble and the
communication). Per micro-batch of ``t = b·s/cp`` tokens on one rank of a ``tp``-way tensor-parallel group
(Megatron-LM's split: column-parallel QKV and MLP-in, row-parallel projections; Shoeybi et al. 2019):

    GEMMs (forward)   QKV  t × h → (h_q + 2·kv)/tp    attention out  t × h_q/tp → h
                      MLP in  t × h → (1 or 2)·f/tp   MLP out  t × f/tp → h     logits  t × h → V/tp
    backward          two GEMMs of the same size per forward GEMM (input and weight gradients): 3× forward
    attention core    the causal half of 4·s·h_q FLOPs per token forward (flash attention computes only
                      the unmasked blocks), 3× for forward + backward, at ``ATTENTION_EFFICIENCY``
    elementwise       (12·h + 2·kv + 3·f [SwiGLU] or 2·f [GELU]) elements per token forward (two norms,
                      two residual adds, rotary on q and k, the MLP activation), 3× for the backward, plus
                      16·V/tp bytes of fp32 logits and their softmax; at ``MEMORY_EFFICIENCY`` of the
                      datasheet bandwidth. Sequence parallelism shards the norms and residuals over tp.

A GEMM of m × k by k × n takes ``max(2·m·n·k / (peak · e · w), bytes / (bandwidth · MEMORY_EFFICIENCY))``:
``e`` is the generation's maximum achievable matmul fraction (``GEMM_EFFICIENCY``, measured on large
shapes), ``w`` its wave quantisation — the output's 128 × 128 tiles spread over the card's compute units
(SMs/CUs) in waves, the last wave partly idle (NVIDIA, "Matrix Multiplication Background User's Guide",
Deep Learning Performance documentation: tile and wave quantization) — and ``bytes`` the two inputs and the
output. Recomputation repeats the forward: full recomputation every forward GEMM, attention and
elementwise pass once more (4/3 of the work); selective only the attention core, and only without flash
attention (Korthikanti et al. 2022, §5). Each layer's kernels are also floored by their launch cost,
``KERNELS_PER_LAYER`` launches at ``LAUNCH_S`` each, which is what small models run into.

Every constant names its source below; none is fitted to the published runs, which then measure the model
(:mod:`~scalebench.planning.evidence`, leave-one-out).
"""

from __future__ import annotations

import numpy as np

__all__ = ["GEMM_EFFICIENCY", "ATTENTION_EFFICIENCY", "MEMORY_EFFICIENCY", "NETWORK_EFFICIENCY", "LAUNCH_S",
           "KERNELS_PER_LAYER", "TILE", "gemm_s", "compute_s", "efficiency_for"]

# Maximum achievable matmul FLOP/s over the dense datasheet peak, bf16, large shapes. Measured with the
# mamf-finder benchmark (S. Bekman, "Machine Learning Engineering", compute/accelerator, "Maximum Achievable
# Matmul FLOPS comparison table"): A100 SXM 267.9 of 312 TFLOP/s, H100 SXM 792.1 of 989.5, MI300X 758.3 of
# 1307.4; this project's own measurement on one H200: 798 of 989.5 (DESIGN.md). Generations without a
# measurement take the Hopper figure ("assumed" in the source column of an estimate).
GEMM_EFFICIENCY = {"ampere": 267.9 / 312.0, "hopper": 792.1 / 989.5, "cdna3": 758.3 / 1307.4}
GEMM_EFFICIENCY_ASSUMED = 792.1 / 989.5
# Attention core (forward + backward) over the dense peak. FlashAttention-2 reaches 50-73% of the A100's
# peak in the forward pass and less in the backward (Dao 2023, arXiv:2307.08691, abstract and §4.1: about
# 190 of 312 TFLOP/s forward + backward at head dimension 128): 0.6. On H100 FlashAttention-2 reaches 35%
# (Shah et al. 2024, FlashAttention-3, arXiv:2407.08608, abstract); FlashAttention-3 75% forward, but the
# published runs predate it, so 0.35 (a user with FA3 passes a measured calibration instead).
ATTENTION_EFFICIENCY = {"ampere": 0.60, "hopper": 0.35}
ATTENTION_EFFICIENCY_ASSUMED = 0.35
# Elementwise and copy kernels over the datasheet memory bandwidth: 4.28 of 4.8 TB/s measured for a copy on
# one H200 (DESIGN.md); elementwise kernels stream like a copy.
MEMORY_EFFICIENCY = 4.28 / 4.8
# Collective bandwidth over the link rate: NCCL's bus bandwidth for large all-reduces reaches about 80-90%
# of the per-GPU link rate on NVLink and InfiniBand (NVIDIA nccl-tests, "Performance" doc: busbw compared to
# the hardware peak); 0.8 taken (an assumption at the low end).
NETWORK_EFFICIENCY = 0.80
# One kernel launch from PyTorch's eager dispatcher: 5-10 us of host time per op, of which the CUDA launch
# itself is 2-4 us (NVIDIA Developer Blog, "Getting Started with CUDA Graphs", 2019, measures about 3 us per
# kernel without graphs); 4 us taken. About 15 kernels per layer forward (4-5 GEMMs, attention, 2 norms, 2
# residual adds, rotary, activation, casts), 3x that for forward + backward.
LAUNCH_S = 4e-6
KERNELS_PER_LAYER = 45
TILE = 128  # output tile edge of cuBLAS / hipBLASLt's large-GEMM kernels (the NVIDIA guide's 128 x 128 example)


def efficiency_for(generation: str) -> tuple[float, float, bool]:
    """(GEMM, attention, measured?) efficiencies of a generation; unmeasured ones take the Hopper figures."""
    known = generation in GEMM_EFFICIENCY
    return (GEMM_EFFICIENCY.get(generation, GEMM_EFFICIENCY_ASSUMED),
            ATTENTION_EFFICIENCY.get(generation, ATTENTION_EFFICIENCY_ASSUMED), known)


def gemm_s(m, n, k, *, peak, gemm_eff, bandwidth, units, elem_bytes=2.0):
    """Seconds of one m × k by k × n matrix multiplication (arrays broadcast). ``units``: SMs/CUs, NaN
    where unknown (no wave quantisation)."""
    m, n, k = (np.maximum(np.asarray(x, dtype=float), 1.0) for x in (m, n, k))
    tiles = np.ceil(m / TILE) * np.ceil(n / TILE)
    units = np.asarray(units, dtype=float)
    waves = np.ceil(tiles / np.where(np.isnan(units), 1.0, units))
    wave = np.where(np.isnan(units), 1.0, tiles / np.maximum(waves * units, 1.0))
    compute = 2.0 * m * n * k / (peak * gemm_eff * wave)
    memory = (m * k + k * n + m * n) * elem_bytes / (bandwidth * MEMORY_EFFICIENCY)
    return np.maximum(compute, memory)


def compute_s(*, tokens, tp, cp, d_model, q_dim, kv_dim, d_ff, swiglu, vocab, seq_len, n_layer, n_head, pp, mode,
              flash, peak, gemm_eff, attn_eff, bandwidth, units, act_bytes, passes=3.0):
    """(seconds, ideal seconds) one rank computes one micro-batch (forward, backward and recomputation) over
    its n_layer/pp layers, plus the logits on one stage's share (1/pp of them, averaged over stages); the
    ideal is the micro-batch's model FLOPs at the full peak. ``tokens`` = b·s;
    ``mode``: "none", "selective" or "full" (a scalar); ``passes`` 3 for training (forward + backward), 1 for a
    forward pass (serving's prefill). All other arguments broadcast."""
    t = tokens / cp
    h, f = d_model, d_ff
    g = dict(peak=peak, gemm_eff=gemm_eff, bandwidth=bandwidth, units=units)
    mlp_in = np.where(swiglu, 2.0, 1.0) * f / tp
    fwd_gemm = (gemm_s(t, (q_dim + 2.0 * kv_dim) / tp, h, **g) + gemm_s(t, h, q_dim / tp, **g)
                + gemm_s(t, mlp_in, h, **g) + gemm_s(t, h, f / tp, **g))
    # causal attention: half of 4·s·q_dim FLOPs per token forward (per rank: q_dim/tp heads, s/cp queries)
    attn_fwd = 0.5 * 4.0 * seq_len * q_dim / tp * t / (peak * attn_eff)
    scores_bytes = np.where(flash, 0.0, 6.0 * n_head * seq_len * t * act_bytes)
    attn_fwd = attn_fwd + scores_bytes / (bandwidth * MEMORY_EFFICIENCY) / tp  # unfused softmax traffic
    elems = (12.0 * h + 2.0 * kv_dim + np.where(swiglu, 3.0, 2.0) * f) / tp
    elem_fwd = elems * t * act_bytes / (bandwidth * MEMORY_EFFICIENCY)
    recompute_attn = 1.0 if mode == "full" else (np.where(flash, 0.0, 1.0) if mode == "selective" else 0.0)
    recompute_rest = 1.0 if mode == "full" else 0.0
    layer = (passes + recompute_rest) * (fwd_gemm + elem_fwd) + (passes + recompute_attn) * attn_fwd
    layer = np.maximum(layer, KERNELS_PER_LAYER * LAUNCH_S)
    logits = passes * gemm_s(t, vocab / tp, h, **g) + 16.0 * vocab / tp * t / (bandwidth * MEMORY_EFFICIENCY)
    # the same micro-batch's model FLOPs (PaLM's count: no recomputation, causal attention counted whole)
    # at the full peak: the step's MFU is ideal / actual, whatever the shape's rounding
    matmul = 2.0 * t * (h * (q_dim + 2.0 * kv_dim) + q_dim * h + h * mlp_in * tp + f * h) / tp
    ideal_layer = passes * (matmul + 4.0 * seq_len * q_dim / tp * t) / peak
    ideal = n_layer / pp * ideal_layer + passes * 2.0 * t * h * vocab / tp / pp / peak
    return n_layer / pp * layer + logits / pp, ideal
