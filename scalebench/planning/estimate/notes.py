"""What an estimate says beside its numbers: why a row does not fit, a lossy layout, a long run, defaults."""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

import numpy as np

from scalebench.planning import layout, timing
from scalebench.planning.estimate.inputs import _numeric

MEMORY_WARN_FRACTION = 0.95
LONG_RUN_DAYS = 180


def _notes(out: dict[str, Any], extrapolated: np.ndarray, calibration: Any, n: int,
           no_unit: list[tuple[np.ndarray, str]], no_layout: np.ndarray, specs: np.ndarray, strict: bool,
           values: dict[str, Any]) -> dict[int, tuple[str, ...]]:
    """Row -> its messages, for rows with something to say (a message may itself contain "; ")."""
    notes: dict[int, list[str]] = defaultdict(list)  # only rows with something to say
    for rows, msg in no_unit:
        for i in np.flatnonzero(rows):
            notes[i].append(msg)
    gib = 2.0**30
    asked = _numeric("num_gpus", values["num_gpus"], n)  # once: per row it would copy the whole column
    given_n = ~np.isnan(asked)
    never = np.isnan(out["num_gpus"]) & ~given_n
    for i in np.flatnonzero(never):
        fix = "lower micro_batch or seq_len"
        if out["checkpointing"][i] != "full":
            fix += ", or use checkpointing='full'"
        if int(out["zero"][i]) < 3:
            fix += ", or shard more (zero=3)"
        notes[i].append(
            f"does not fit on any number of {out['gpu'][i]} ({out['usable_memory_bytes'][i] / gib:.0f} GiB usable "
            f"each) with any layout the global batch of {int(out['global_batch'][i])} sequences allows "
            f"(tensor parallelism up to {int(specs[i].node_size)} per node, pipeline and context parallelism): "
            f"activations need {out['memory_activations_bytes'][i] / gib:.1f} GiB per GPU; {fix}")
    for i in np.flatnonzero(no_layout & given_n):
        notes[i].append(
            f"no layout uses {int(asked[i])} GPUs: the global batch of "
            f"{int(out['global_batch'][i])} sequences x micro-batch {int(out['micro_batch'][i])} feeds at most "
            f"{int(out['global_batch'][i] // out['micro_batch'][i])} data-parallel ranks, and tp x pp x cp must "
            "divide the GPU count; more GPUs do not help this run (raise global_batch or lower num_gpus)")
    short = np.flatnonzero(~out["fits"] & ~never & ~no_layout)
    need, room, least = (out[k][short].tolist() for k in ("memory_total_bytes", "usable_memory_bytes", "min_gpus"))
    for j, (i, text) in enumerate(zip(short.tolist(), _layout_texts(out, short), strict=True)):
        notes[i].append(
            f"does not fit: {need[j] / gib:.1f} GiB per GPU needed at the best layout {text}, "
            f"{room[j] / gib:.0f} GiB usable; "
            + (f"use at least {int(least[j])} GPUs" if math.isfinite(least[j]) else "no GPU count fits"))
    for i in np.flatnonzero(np.isnan(out["price_usd_per_hour"])):
        notes[i].append(f"no catalog price for {out['gpu'][i]}: pass price_usd_per_hour")
    for i in np.flatnonzero(np.isnan(out["energy_kwh"]) & np.isfinite(out["wall_clock_s"])):
        notes[i].append(f"no published power for {out['gpu'][i]}: energy unknown")
    lossy = np.flatnonzero(out["fits"] & (out["loss_fraction"] > layout.LOSS_ALLOWANCE) & (out["mfu_source"] != "modelled"))
    # the commonest note in tables: columns as Python lists first (numpy scalar indexing per row is slow)
    cols = {k: out[k][lossy].tolist() for k in ("loss_fraction", "bubble_fraction", "tp_comm_fraction",
                                                "ep_comm_fraction", "exposed_fraction", "layout_factor")}
    for j, (i, text) in enumerate(zip(lossy.tolist(), _layout_texts(out, lossy), strict=True)):
        c = {k: v[j] for k, v in cols.items()}
        notes[i].append(
            f"layout {text} loses {c['loss_fraction']:.0%} of compute time to pipeline bubbles and exposed "
            f"communication (bubble {c['bubble_fraction']:.0%}, tensor {c['tp_comm_fraction']:.0%}, expert "
            f"{c['ep_comm_fraction']:.0%}, exposed data/context {c['exposed_fraction']:.0%}), more than the "
            f"{layout.LOSS_ALLOWANCE:.0%} a published MFU already contains: time x {c['layout_factor']:.2f}")
    for i in np.flatnonzero(out["fits"] & (out["memory_total_bytes"] > MEMORY_WARN_FRACTION * out["usable_memory_bytes"])):
        notes[i].append(f"memory at {out['memory_total_bytes'][i] / out['usable_memory_bytes'][i]:.0%} of usable "
                        f"({MEMORY_WARN_FRACTION:.0%} is the safe limit): allocator spikes may run out of memory")
    for i in np.flatnonzero(out["wall_clock_s"] > LONG_RUN_DAYS * 86400.0):
        notes[i].append(f"{out['wall_clock_s'][i] / 86400:,.0f} days on {int(out['num_gpus'][i])} GPUs is past the "
                        f"{LONG_RUN_DAYS} days a run can reasonably last")
    # a given, hfu-given or calibrated utilisation is a throughput: time spent training only
    throughput = out["mfu_source"] != "modelled"
    for i in np.flatnonzero(throughput & np.isnan(_numeric("goodput", values["goodput"], n))):
        notes[i].append(timing.GOODPUT_NOTE)
    unknown_bw = np.array([s.inter_node_bandwidth_bytes_per_s is None for s in specs])
    for i in np.flatnonzero(unknown_bw & (out["num_gpus"] > np.array([s.node_size for s in specs]))):
        notes[i].append(f"{out['gpu'][i]} has no published inter-node bandwidth: communication across nodes is not costed")
    if calibration is not None:
        for i in np.flatnonzero(extrapolated):
            notes[i].append(f"MFU extrapolated beyond the calibration sweep ({calibration.params_min:.3g}-"
                            f"{calibration.params_max:.3g} params): held at its value {calibration.extrapolation_limit:g}x "
                            "beyond the sweep's edge")
        if calibration.gpu:
            for i in np.flatnonzero(out["gpu"] != calibration.gpu):
                notes[i].append(f"MFU calibrated on {calibration.gpu}, applied to {out['gpu'][i]}")
    return {i: tuple(lines) for i, lines in notes.items()}


def _layout_texts(out: dict[str, Any], rows: np.ndarray) -> list[str]:
    """"tp8 pp2 cp1 ep1 dp64" for each row in ``rows`` (sizes that are not finite left out)."""
    keys = ("tp", "pp", "cp", "ep", "dp")
    columns = [[f"{k}{int(v)}" if math.isfinite(v) else "" for v in out[k][rows].tolist()] for k in keys]
    return [" ".join(p for p in parts if p) or "(none)" for parts in zip(*columns, strict=True)]


