"""Numeric precision of a run: which dtype it computes in, the autocast context and the loss scaler."""

from __future__ import annotations

import contextlib
from typing import Any

from scalebench.errors import DeviceError


def resolve_precision(run: Any, device_type: str) -> tuple[str, str | None]:
    """(precision used, why it differs from the one asked for, or None).

    ``auto`` is bf16 on a GPU with native bf16, else fp32. bf16/fp16 on CPU run fp32: autocast on CPU is
    slower than fp32 at these sizes and changes the numbers. fp8 needs fp8 tensor cores (compute capability
    8.9+: Ada, Hopper, Blackwell) and a scaled-matmul recipe this trainer does not have yet, so it is refused
    with the device named.
    """
    import torch

    asked = run.train.precision
    if asked == "fp8":
        if device_type != "cuda":
            raise DeviceError(f"run {run.run_id}: precision 'fp8' needs a GPU with fp8 tensor cores "
                              "(compute capability >= 8.9); this run is on the CPU. Use fp32, bf16 or fp16")
        name = torch.cuda.get_device_name()
        cap = torch.cuda.get_device_capability()
        if cap < (8, 9):
            raise DeviceError(f"run {run.run_id}: precision 'fp8' needs fp8 tensor cores (compute capability "
                              f">= 8.9); {name} has {cap[0]}.{cap[1]}. Use bf16 or fp16")
        raise DeviceError(f"run {run.run_id}: {name} has fp8 tensor cores, but fp8 training is not implemented "
                          "in this trainer yet; use bf16")
    if asked == "auto":
        if device_type == "cuda" and torch.cuda.is_bf16_supported(including_emulation=False):
            return "bf16", None
        return "fp32", None
    if asked in ("bf16", "fp16") and device_type != "cuda":
        return "fp32", f"{asked} asked for, but CPU runs train in fp32 (CPU autocast is slower at these sizes)"
    return asked, None


def autocast(precision: str, device_type: str):
    import torch

    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device_type, dtype=dtype)


def matmul_dtype(precision: str, device_type: str) -> str:
    """The dtype whose peak MFU is measured against."""
    import torch

    if precision in ("bf16", "fp16"):
        return precision
    if device_type == "cuda" and torch.backends.cuda.matmul.allow_tf32:
        return "tf32"
    return "fp32"


def make_scaler(precision: str, init_scale: float | None = None):
    """fp16 needs dynamic loss scaling (its range is too narrow for small gradients); others none."""
    if precision != "fp16":
        return None
    import torch

    return torch.amp.GradScaler("cuda") if init_scale is None else torch.amp.GradScaler("cuda", init_scale=init_scale)
