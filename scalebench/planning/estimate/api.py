"""``estimate``: one code path for one scenario (an :class:`Estimate`) and for a table (a DataFrame)."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import pandas as pd

from scalebench.errors import ConfigError
from scalebench.hardware.catalog import get_gpu
from scalebench.planning.estimate.arguments import arg
from scalebench.planning.estimate.core import _compute
from scalebench.planning.estimate.inputs import _gather
from scalebench.planning.estimate.notes import LONG_RUN_DAYS, MEMORY_WARN_FRACTION
from scalebench.planning.estimate.result import Estimate, _duration, to_estimate

# ---------------------------------------------------------------------------------------------- public

def estimate(scenarios: pd.DataFrame | None = None, /, *, mode: str = "training",
             **kwargs: Any) -> Estimate | pd.DataFrame:
    """Estimate the FLOPs, memory, layout, GPUs, time, cost, energy (and loss) of training runs — or, with
    ``mode="inference"``, serving (:func:`~scalebench.planning.inference.estimate_inference`).

    One scenario: keyword arguments, returns an :class:`Estimate`. Many: a DataFrame whose columns are the
    argument names, or array-valued arguments (scalars broadcast), returns a DataFrame with one row each.

    Model: ``params`` and ``tokens``; or ``model=`` a preset (``"llama3-405b"``, ``"deepseek-v3"``, ...); or
    ``family="gpt"`` with ``n_layer``, ``d_model``, ``n_head`` (``vocab_size``, ``seq_len``, ``d_ff``).
    Mixture of experts: ``params`` (all weights: memory), ``params_active`` (FLOPs), ``n_experts``,
    ``top_k`` (``expert_params`` when known; else derived from the three). Hardware: ``gpu`` (catalog
    name, required), ``num_gpus`` (default: the least that fits), ``price_usd_per_hour`` (default:
    catalog). Layout: ``tp``, ``pp``, ``cp``, ``ep`` (each searched when not given; see
    :mod:`~scalebench.planning.layout`), ``zero`` (0-3, "fsdp" = 3, or "auto": searched, the default).
    Training: ``precision`` (fp32, tf32, bf16, fp16, fp8; default bf16), ``optimizer`` (adamw, sgd),
    ``checkpointing`` (none, selective, full, or "auto"), ``flash_attention`` (default True),
    ``seq_len``, ``micro_batch`` (default 1), ``global_batch`` (sequences; default 4M tokens' worth, at least
    one micro-batch per GPU).
    Efficiency: ``mfu`` (PaLM's model FLOPs utilisation, or a
    :class:`~scalebench.planning.calibrate.Calibration`; default from published at-scale runs,
    :mod:`~scalebench.planning.evidence`), or ``hfu`` (hardware FLOPs utilisation, recomputation counted,
    as Megatron-style TFLOP/s figures are: converted to MFU for the recomputation used, 3/4 of it under
    full recomputation; give mfu or hfu, not both), ``scaling_efficiency`` (a multiplier you believe in;
    default 1: the default MFU is already an at-scale figure), ``goodput`` (the share of reserved GPU time
    spent training — restarts, failures and repeated steps excluded; default 1, see
    :mod:`~scalebench.planning.timing`: the default MFU comes from published GPU-hours that already contain
    their downtime, while a given mfu/hfu is a throughput and gets a note asking for it). Energy: ``power_fraction`` (of TDP, default 1 or
    calibrated), ``pue`` (1), ``grid_gco2_per_kwh``. Memory: ``allocator_overhead`` (0.10 of the
    allocations), ``context_bytes`` (the per-GPU reserve, 1 GiB: usable memory = card memory - reserve).
    Loss: ``law`` (a preset name such as ``"chinchilla"`` or a FitResult).

    Every estimate carries ``*_range`` values (the default MFU's evidence spread, or the calibration's
    residual spread), ``hfu`` beside ``mfu``, the ``layout`` and the list of ``defaults`` it used. A single
    estimate also says when its run is longer than 180 days or fills more than 95% of usable memory
    (with the next larger layout that does better) and when twice the GPUs would not be faster.
    """
    if mode == "inference":
        from scalebench.planning.inference import estimate_inference

        if scenarios is not None:
            raise ConfigError("estimate(mode='inference') takes keyword arguments, not a DataFrame")
        return estimate_inference(**kwargs)
    if mode != "training":
        raise ConfigError(f"mode must be 'training' or 'inference', got {mode!r}")
    return _estimate(scenarios, kwargs, advice=True)


def _estimate(scenarios: pd.DataFrame | None, kwargs: dict[str, Any], *, advice: bool) -> Estimate | pd.DataFrame:
    values, n, vectorised = _gather(scenarios, kwargs)
    out = _compute(values, n, strict=not vectorised)
    if vectorised:
        frame = pd.DataFrame({k: pd.Series(v, dtype=object) if v.dtype == object else v for k, v in out.items()})
        if scenarios is not None:
            frame.index = scenarios.index
        return frame
    result = to_estimate(out)
    return _with_advice(result, kwargs) if advice else result


def _with_advice(e: Estimate, kwargs: dict[str, Any]) -> Estimate:
    """Add the next larger layout to a long or memory-tight run, and say when more GPUs stop helping."""
    if e.num_gpus is None or not e.fits or not math.isfinite(e.wall_clock_s):
        return e
    extra: list[str] = []
    fixed = {k: v for k, v in kwargs.items() if k != "num_gpus"}
    node = get_gpu(e.gpu).node_size
    tight = e.memory_per_gpu.total > MEMORY_WARN_FRACTION * (e.usable_memory_bytes or math.inf)
    long_run = e.wall_clock_s > LONG_RUN_DAYS * 86400.0
    if long_run or tight:
        want = e.num_gpus * max(2.0, e.wall_clock_s / (LONG_RUN_DAYS * 86400.0)) if long_run else 2 * e.num_gpus
        count = min(node * 2 ** math.ceil(math.log2(max(1.0, want / node))), int(arg("num_gpus").high))
        for _ in range(6):  # the batch may not feed that many ranks: step down towards the current count
            bigger = _estimate(None, {**fixed, "num_gpus": int(count)}, advice=False)
            if bigger.fits or count <= e.num_gpus * 2:
                break
            count //= 2
        if bigger.fits and bigger.layout:
            lay = " ".join(f"{k}{v}" for k, v in bigger.layout.items())
            share = bigger.memory_per_gpu.total / bigger.usable_memory_bytes
            extra.append(f"next larger layout: {bigger.num_gpus} GPUs ({lay}) take {_duration(bigger.wall_clock_s)} "
                         f"at {share:.0%} of usable memory")
    if kwargs.get("num_gpus") is not None and 2 * e.num_gpus <= arg("num_gpus").high:
        double = _estimate(None, {**kwargs, "num_gpus": 2 * e.num_gpus}, advice=False)
        if not double.fits or not double.wall_clock_s < 0.95 * e.wall_clock_s:
            why = "no layout of them fits the global batch" if not double.fits else \
                f"the best layout takes {_duration(double.wall_clock_s)}"
            extra.append(f"more GPUs stop helping here: {2 * e.num_gpus} GPUs are not faster ({why}); "
                         "a larger global batch or a shorter pipeline would let them")
    if not extra:
        return e
    return replace(e, notes=(*e.notes, *extra))


