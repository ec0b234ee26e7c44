"""Time, energy and cost of a training run from its FLOPs.

    wall_clock_s = flops · recompute / (num_gpus · peak_flops[dtype] · mfu · scaling_efficiency(num_gpus))

``mfu`` is model FLOPs utilisation on one node (0–1, against the dense datasheet peak for the dtype).
Default 0.40 for 16-bit training: PaLM reports 46 % (Chowdhery et al. 2022, table 3), Llama 3 38–43 % on
H100 (Dubey et al. 2024, table 4), and one H200 measured here reached 45–49 % on GPT models of
124M–774M parameters (DESIGN.md, compiled plain loop). fp8 defaults to 0.30 of the fp8 peak, i.e. about
1.5x the bf16 throughput, which is what fp8 training recipes report; fp32 to 0.40 of the fp32 peak.
Pass a measured value or a :class:`~scalebench.planning.calibrate.Calibration`.

``scaling_efficiency`` covers what one node does not see (inter-node communication, stragglers): 1 up to
8 GPUs (one NVLink node), then 3 % lost per doubling, e.g. 0.85 at 256 GPUs and 0.72 at 16,384. This is an
assumption fitted by eye to the MFU drop Llama 3 reports from 8k to 16k GPUs (43 % → 38 %, i.e. ~10 % per
doubling at that scale, which is worse) and to near-linear weak scaling reported by Megatron-LM up to a
few hundred GPUs; override it (``scaling_efficiency=``) when you know better.

Full activation recomputation adds one forward pass: 8N instead of 6N FLOPs per token, so ``recompute``
is 4/3 (Korthikanti et al. 2022 §5, "hardware FLOPs" vs "model FLOPs"); selective recomputation costs a
few per cent without flash attention (2.7 % for GPT-3 175B, Korthikanti table 4) and nothing with it; it is
counted as 1.

Energy: num_gpus · tdp_w · power_fraction · wall_clock_s · pue / 3.6e6 kWh. ``power_fraction`` defaults
to 1 (the board limit: an upper bound for the GPUs alone) unless a calibration measured it; ``pue`` (data
centre overhead, 1.1 for a modern hyperscaler per Patterson et al. 2021) defaults to 1. CO2 = energy ·
grid intensity (g CO2e per kWh) / 1000 kg.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "DEFAULT_MFU", "NODE_SIZE", "LOSS_PER_DOUBLING", "RECOMPUTE_FACTOR",
    "default_scaling_efficiency", "wall_clock_s", "energy_kwh",
]

DEFAULT_MFU = {"fp32": 0.40, "tf32": 0.40, "bf16": 0.40, "fp16": 0.40, "fp8": 0.30}
NODE_SIZE = 8
LOSS_PER_DOUBLING = 0.03
RECOMPUTE_FACTOR = {"none": 1.0, "selective": 1.0, "full": 4.0 / 3.0}


def default_scaling_efficiency(num_gpus, node_size: int = NODE_SIZE, loss_per_doubling: float = LOSS_PER_DOUBLING):
    """1 within a node, then ``(1 - loss_per_doubling)`` per doubling of the GPU count beyond it."""
    n = np.asarray(num_gpus, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        doublings = np.maximum(0.0, np.log2(n / node_size))
    return (1.0 - loss_per_doubling) ** doublings


def wall_clock_s(*, flops, num_gpus, peak_flops, mfu, scaling_efficiency=None, recompute=1.0):
    """Seconds of training; vectorised."""
    eff = default_scaling_efficiency(num_gpus) if scaling_efficiency is None else scaling_efficiency
    return np.asarray(flops, dtype=float) * recompute / (
        np.asarray(num_gpus, dtype=float) * peak_flops * np.asarray(mfu, dtype=float) * eff
    )


def energy_kwh(*, num_gpus, power_w, wall_clock_s, pue=1.0):
    """Energy of the GPUs (times the data-centre PUE) in kWh."""
    return np.asarray(num_gpus, dtype=float) * power_w * wall_clock_s * pue / 3.6e6
