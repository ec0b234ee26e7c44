"""Counted FLOPs: one real training step under torch's FlopCounterMode, to cross-check the analytic formula.

Convention (documented in DESIGN.md and the family modules): *model* FLOPs count forward + backward of the
model as written, without activation recomputation; this is what MFU uses. *Hardware* FLOPs add the
recomputed forward under activation checkpointing (HFU). Causal attention is counted in full (not halved),
as the kernels compute the full square; pass ``causal_half=True`` to the analytic side to halve it.

FlopCounterMode has no formula for the fused CPU attention kernel
(``_scaled_dot_product_flash_attention_for_cpu``), so on CPU the counted step runs SDPA's math backend,
which performs the same two matmuls as explicit ``bmm`` calls; on CUDA the flash and memory-efficient
kernels are counted directly.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode


def count_training_step_flops(step: Callable[[], torch.Tensor], device_type: str) -> int:
    """FLOPs of one call of ``step`` (which must run forward and backward) as counted by torch."""
    ctx: contextlib.AbstractContextManager = contextlib.nullcontext()
    if device_type != "cuda":
        from torch.nn.attention import SDPBackend, sdpa_kernel

        ctx = sdpa_kernel(SDPBackend.MATH)
    with ctx, FlopCounterMode(display=False) as counter:
        step()
    return int(counter.get_total_flops())


def count_gpt_flops_per_token(model: torch.nn.Module, batch: int, seq_len: int, device: str = "cpu") -> float:
    """Counted training FLOPs per token of a model mapping (idx, targets) -> (logits, loss)."""
    vocab = model.wte.num_embeddings  # type: ignore[union-attr]
    idx = torch.randint(0, vocab, (batch, seq_len), device=device)

    def step() -> torch.Tensor:
        _, loss = model(idx, idx)
        loss.backward()
        return loss

    total = count_training_step_flops(step, torch.device(device).type)
    model.zero_grad(set_to_none=True)
    return total / (batch * seq_len)
