"""Time, energy and cost of a training run from its FLOPs.

    wall_clock_s = model_flops / (num_gpus · peak_flops[dtype] · mfu · goodput)

``mfu`` is model FLOPs utilisation as PaLM defines it (Chowdhery et al. 2022, appendix B): model FLOPs
only, recomputation excluded, against the dense datasheet peak for the dtype. A given MFU is used as it is,
whatever the recomputation. The default comes from published at-scale runs
(:mod:`~scalebench.planning.evidence`), which ran with little or no recomputation: under full
recomputation the default keeps their hardware rate and spends a quarter of it on the repeated forward pass
(``RECOMPUTE_FACTOR``: 8N instead of 6N FLOPs per token, Korthikanti et al. 2022 §5), so its MFU is 3/4 of
the table's. Hardware FLOPs utilisation is ``mfu · RECOMPUTE_FACTOR[mode]``; selective recomputation with
flash attention recomputes nothing that matters and counts as 1.

No cluster-size penalty is applied: the default is already an at-scale figure. The parallel layout can
still slow a run (pipeline bubbles and exposed communication beyond what a published MFU contains, see
:mod:`~scalebench.planning.layout`); ``scaling_efficiency`` is a further multiplier for users who know
their cluster (default 1).

``goodput`` is the share of reserved wall-clock time that is useful training (time = useful time /
goodput): restarts after failures, repeated steps after rollbacks and idle periods are the rest. Its
default, ``DEFAULT_GOODPUT`` = 1, is exact for the default MFU, which is fitted to published GPU-hours that
already contain each run's downtime (:mod:`~scalebench.planning.evidence`). A given ``mfu``/``hfu`` or a
sweep's calibration is a throughput figure, so the time at goodput 1 is the time spent training only; the
estimate then says so
(``GOODPUT_NOTE``). The one published figure to hand is Llama 3 405B's: "higher than 90% effective training
time" over 54 days on 16K H100s (Dubey et al. 2024, section 3.3.4); BLOOM's and PaLM's published hours,
set against their published utilisation, imply 0.91 and 0.67, but neither paper states a goodput
(``benchmarks/published_runs.py``).

Energy: num_gpus · tdp_w · power_fraction · wall_clock_s · pue / 3.6e6 kWh. ``power_fraction`` defaults
to 1 (the board limit: an upper bound for the GPUs alone) unless a calibration measured it; ``pue`` (data
centre overhead, 1.1 for a modern hyperscaler per Patterson et al. 2021) defaults to 1. CO2 = energy ·
grid intensity (g CO2e per kWh) / 1000 kg.
"""

from __future__ import annotations

import numpy as np

__all__ = ["RECOMPUTE_FACTOR", "DEFAULT_GOODPUT", "GOODPUT_NOTE", "wall_clock_s", "energy_kwh"]

RECOMPUTE_FACTOR = {"none": 1.0, "selective": 1.0, "full": 4.0 / 3.0}
DEFAULT_GOODPUT = 1.0
GOODPUT_NOTE = ("the time is at the given utilisation with no downtime (goodput 1): reserved time is longer; pass "
                "goodput, e.g. 0.9 (Llama 3 405B: 'higher than 90% effective training time', Dubey et al. 2024)")


def wall_clock_s(*, flops, num_gpus, peak_flops, mfu, scaling_efficiency=1.0, recompute=1.0):
    """Seconds of training; vectorised. ``recompute`` divides a hardware-rate ``mfu`` into a model-FLOPs one."""
    return np.asarray(flops, dtype=float) * recompute / (
        np.asarray(num_gpus, dtype=float) * peak_flops * np.asarray(mfu, dtype=float) * scaling_efficiency
    )


def energy_kwh(*, num_gpus, power_w, wall_clock_s, pue=1.0):
    """Energy of the GPUs (times the data-centre PUE) in kWh."""
    return np.asarray(num_gpus, dtype=float) * power_w * wall_clock_s * pue / 3.6e6
