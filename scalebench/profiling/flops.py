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


def count_flops_per_unit(family, shape, model: torch.nn.Module, device: str = "cpu", rows: int = 1) -> float:
    """Counted training FLOPs per unit (token or sample) of one step on the family's example batch."""
    x, y = family.example_batch(shape, rows)
    x, y = x.to(device), y.to(device)

    def step() -> torch.Tensor:
        loss = family.loss(model(x), y)
        loss.backward()
        return loss

    total = count_training_step_flops(step, torch.device(device).type)
    model.zero_grad(set_to_none=True)
    units = y.numel() if family.unit == "tokens" else x.shape[0]
    return total / units
