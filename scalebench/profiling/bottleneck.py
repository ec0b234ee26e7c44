"""The bottleneck verdict of a run: which resource limits it, the numbers that say so, and what to do.

Rules, in priority order (the first that fires is the verdict; the others that fire are listed as
``also``). Shares of device-work time come from the profiler window (:class:`TraceBreakdown`).

1. ``memory-capacity``  — any OOM, any allocator retry (``num_alloc_retries`` > ``ALLOC_RETRIES_MAX``),
   or peak reserved memory above ``RESERVED_FRACTION_MAX`` of the device. A run this close to the limit
   is dominated by the allocator (cache flushes, retries) and cannot grow its batch.
2. ``data-loading``     — the step spends more than ``DATA_WAIT_SHARE_MAX`` of its time waiting on the
   data iterator (host timer, or data-wait ranges in the trace).
3. ``communication``    — collective kernels (NCCL) take more than ``COMM_SHARE_MAX`` of device work.
4. ``host-overhead``    — the device is idle more than ``IDLE_SHARE_MAX`` of the window and either its
   kernels are small (median under ``SMALL_KERNEL_US``: launch-bound) or most idle time is host-wait
   (the host had not issued the next kernel). On CPU, where dispatch overhead sits inside the op events
   rather than between them, also when ops shorter than ``SMALL_KERNEL_US`` take at least
   ``CPU_SMALL_OP_SHARE_MIN`` of op time.
5. ``compute``          — matmul + attention take at least ``COMPUTE_SHARE_MIN`` of device work.
6. ``memory-bandwidth`` — elementwise + memory copies take at least ``MEMORY_SHARE_MIN`` of device work,
   or, when given, arithmetic intensity is below the device's ridge point (peak FLOP/s over bandwidth).
7. otherwise the larger of compute and memory shares decides (and ``None`` with no evidence at all).

Thresholds are starting points from practice (the PyTorch performance-tuning guide and HTA's idle-time
analysis consider > 10 % data wait and launch-bound small kernels the first things to fix), not laws;
they are module constants so a study can tune them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from scalebench._util import json_safe
from scalebench.profiling.trace import SMALL_KERNEL_US, TraceBreakdown

__all__ = [
    "Evidence",
    "Verdict",
    "classify",
    "BOTTLENECKS",
    "ALLOC_RETRIES_MAX",
    "RESERVED_FRACTION_MAX",
    "DATA_WAIT_SHARE_MAX",
    "COMM_SHARE_MAX",
    "IDLE_SHARE_MAX",
    "SMALL_KERNEL_US",
    "HOST_WAIT_IDLE_SHARE_MIN",
    "CPU_SMALL_OP_SHARE_MIN",
    "COMPUTE_SHARE_MIN",
    "MEMORY_SHARE_MIN",
]

BOTTLENECKS = (
    "compute",
    "memory-bandwidth",
    "host-overhead",
    "data-loading",
    "communication",
    "memory-capacity",
)

ALLOC_RETRIES_MAX = 0  # any retry means the caching allocator had to free and retry cudaMalloc
RESERVED_FRACTION_MAX = 0.90  # peak reserved / device memory
DATA_WAIT_SHARE_MAX = 0.10  # share of step time waiting on the data iterator
COMM_SHARE_MAX = 0.20  # share of device-work time in collectives
IDLE_SHARE_MAX = 0.30  # share of the profiled window the device sat idle
# SMALL_KERNEL_US (20 µs, defined in trace.py): a median kernel shorter than this is launch-bound
CPU_SMALL_OP_SHARE_MIN = 0.5  # CPU: share of op time in ops shorter than SMALL_KERNEL_US
HOST_WAIT_IDLE_SHARE_MIN = 0.5  # share of idle time that is host-wait for big-kernel host-overhead
COMPUTE_SHARE_MIN = 0.50  # matmul + attention share of device work
MEMORY_SHARE_MIN = 0.50  # elementwise + memcpy share of device work
MEASURED_MFU_COMPUTE_MIN = 0.50  # without a trace: MFU against the calibrated peak this high is compute-bound


@dataclass(frozen=True, kw_only=True)
class Evidence:
    """What a run measured; every field is optional and a rule needing a missing one does not fire."""

    device_type: str | None = None
    mfu: float | None = None
    breakdown: TraceBreakdown | None = None
    data_wait_share: float | None = None
    alloc_retries: int | None = None
    oom_count: int | None = None
    peak_reserved_fraction: float | None = None
    comm_share: float | None = None  # overrides the trace's communication share when given
    arithmetic_intensity_flops_per_byte: float | None = None
    ridge_point_flops_per_byte: float | None = None  # peak FLOP/s / memory bandwidth of the device
    median_kernel_us: float | None = None  # overrides the trace's when given
    micro_batch: int | None = None
    mfu_measured_peak: float | None = None  # against the calibrated matmul peak (`scalebench env --calibrate`)
    no_trace_reason: str | None = None  # why there is no profiler trace, said when no verdict can be given


@dataclass(frozen=True, kw_only=True)
class Verdict:
    bottleneck: str | None  # one of BOTTLENECKS, or None when nothing was measured
    evidence: dict[str, Any]
    recommendation: str
    rule: str  # the rule that fired, in words with its threshold
    also: tuple[str, ...] = field(default=())  # other rules that fired, in priority order

    def as_dict(self) -> dict[str, Any]:
        return {
            "bottleneck": self.bottleneck,
            "rule": self.rule,
            "recommendation": self.recommendation,
            "also": list(self.also),
            "evidence": json_safe(self.evidence),
        }


def _r(x: float | None, nd: int = 4) -> float | None:
    return None if x is None else round(float(x), nd)


def _recommendation(kind: str, ev: Evidence, numbers: dict[str, Any]) -> str:
    cuda = ev.device_type == "cuda"
    if kind == "memory-capacity":
        return (
            "Memory is the limit: enable activation checkpointing, lower the micro-batch and use gradient "
            "accumulation, use bf16 autocast or a fused/8-bit optimizer, or shard with FSDP; "
            "set PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True to cut fragmentation retries."
        )
    if kind == "data-loading":
        return (
            "The step waits on data: raise DataLoader num_workers, set pin_memory=True and "
            "persistent_workers=True, prefetch (prefetch_factor), and pre-tokenize the corpus to a .bin memmap."
        )
    if kind == "communication":
        return (
            "Collectives dominate: raise the micro-batch or gradient accumulation so each all-reduce "
            "covers more compute, overlap communication with backward (DDP bucket_cap_mb, FSDP prefetch), "
            "or use fewer, faster-linked GPUs."
        )
    if kind == "host-overhead":
        base = "The device waits on the host (launch-bound: small kernels, idle between them): "
        steps = ["enable torch.compile to fuse kernels"]
        if cuda:
            steps.append("capture CUDA graphs (compile mode='reduce-overhead')")
        steps.append("raise the micro-batch so each kernel does more work")
        steps.append(
            "use fused optimizers (AdamW fused=True / foreach) and avoid .item() and host syncs in the step"
        )
        return base + "; ".join(steps) + "."
    if kind == "compute":
        mfu = numbers.get("mfu")
        tail = f" (MFU {mfu:.0%})" if isinstance(mfu, float) else ""
        return (
            f"Compute-bound{tail}: this is the healthy case. Gains come from lower precision "
            "(bf16 autocast, FP8 where supported), torch.compile, flash attention, and matmul shapes that are "
            "multiples of 64/128 (pad vocabulary and widths)."
        )
    if kind == "memory-bandwidth":
        return (
            "Memory-bandwidth-bound: elementwise and normalisation kernels dominate. Fuse them with "
            "torch.compile, use fused LayerNorm/softmax/optimizer kernels, bf16 activations, and a larger "
            "micro-batch or wider model to raise arithmetic intensity."
        )
    if ev.no_trace_reason:
        return f"No profiler trace, so no verdict beyond step timing: {ev.no_trace_reason}."
    return "Not enough measurements for a verdict: run with the profiler window enabled."


def classify(ev: Evidence) -> Verdict:
    """The verdict for one run; see the module docstring for the rules and thresholds."""
    b = ev.breakdown
    idle_share = b.idle_share if b is not None and b.window_s > 0 else None
    host_wait_of_idle = (b.idle_host_wait_s / b.idle_s) if b is not None and b.idle_s > 0 else None
    median_us = (
        ev.median_kernel_us if ev.median_kernel_us is not None else (b.median_kernel_us if b else None)
    )
    has_work = b is not None and sum(b.time_by_category_s.values()) > 0
    comm = ev.comm_share if ev.comm_share is not None else (b.share("communication") if has_work else None)
    compute = b.share("matmul", "attention") if has_work else None
    memory = b.share("elementwise", "memcpy") if has_work else None
    data_wait = ev.data_wait_share
    if data_wait is None and b is not None and b.window_s > 0 and b.data_wait_s > 0:
        data_wait = b.data_wait_s / b.window_s

    numbers: dict[str, Any] = {
        "device_type": ev.device_type,
        "mfu": _r(ev.mfu),
        "data_wait_share": _r(data_wait),
        "alloc_retries": ev.alloc_retries,
        "oom_count": ev.oom_count,
        "peak_reserved_fraction": _r(ev.peak_reserved_fraction),
        "comm_share": _r(comm),
        "idle_share": _r(idle_share),
        "idle_host_wait_share": _r(host_wait_of_idle),
        "median_kernel_us": _r(median_us, 2),
        "compute_share": _r(compute),
        "memory_share": _r(memory),
        "arithmetic_intensity_flops_per_byte": _r(ev.arithmetic_intensity_flops_per_byte, 2),
        "ridge_point_flops_per_byte": _r(ev.ridge_point_flops_per_byte, 2),
    }
    if b is not None:
        numbers["window_s"] = _r(b.window_s, 6)
        numbers["busy_s"] = _r(b.busy_s, 6)
        numbers["time_by_category_s"] = {k: _r(v, 6) for k, v in b.time_by_category_s.items()}
        numbers["n_kernels"] = b.n_kernels
        numbers["small_kernel_share"] = _r(b.small_kernel_share)
        numbers["trace_device"] = b.device

    fired: list[tuple[str, str]] = []
    if (ev.oom_count or 0) > 0:
        fired.append(("memory-capacity", f"oom_count {ev.oom_count} > 0"))
    elif ev.alloc_retries is not None and ev.alloc_retries > ALLOC_RETRIES_MAX:
        fired.append(("memory-capacity", f"alloc_retries {ev.alloc_retries} > {ALLOC_RETRIES_MAX}"))
    elif ev.peak_reserved_fraction is not None and ev.peak_reserved_fraction > RESERVED_FRACTION_MAX:
        fired.append(
            (
                "memory-capacity",
                f"peak_reserved_fraction {ev.peak_reserved_fraction:.2f} > {RESERVED_FRACTION_MAX}",
            )
        )
    if data_wait is not None and data_wait > DATA_WAIT_SHARE_MAX:
        fired.append(("data-loading", f"data_wait_share {data_wait:.3f} > {DATA_WAIT_SHARE_MAX}"))
    if comm is not None and comm > COMM_SHARE_MAX:
        fired.append(("communication", f"comm_share {comm:.3f} > {COMM_SHARE_MAX}"))
    if idle_share is not None and idle_share > IDLE_SHARE_MAX:
        if median_us is not None and median_us < SMALL_KERNEL_US:
            fired.append(
                (
                    "host-overhead",
                    f"idle_share {idle_share:.3f} > {IDLE_SHARE_MAX} and median kernel "
                    f"{median_us:.1f} µs < {SMALL_KERNEL_US} µs",
                )
            )
        elif host_wait_of_idle is not None and host_wait_of_idle >= HOST_WAIT_IDLE_SHARE_MIN:
            fired.append(
                (
                    "host-overhead",
                    f"idle_share {idle_share:.3f} > {IDLE_SHARE_MAX} and host-wait "
                    f"{host_wait_of_idle:.2f} of idle >= {HOST_WAIT_IDLE_SHARE_MIN}",
                )
            )
    if (
        b is not None
        and b.device == "cpu"
        and has_work
        and b.small_kernel_share >= CPU_SMALL_OP_SHARE_MIN
        and not any(k == "host-overhead" for k, _ in fired)
    ):
        fired.append(
            (
                "host-overhead",
                f"CPU ops under {SMALL_KERNEL_US} µs take {b.small_kernel_share:.2f} of op time "
                f">= {CPU_SMALL_OP_SHARE_MIN}",
            )
        )
    if compute is not None and compute >= COMPUTE_SHARE_MIN:
        fired.append(("compute", f"matmul+attention share {compute:.3f} >= {COMPUTE_SHARE_MIN}"))
    if memory is not None and memory >= MEMORY_SHARE_MIN:
        fired.append(("memory-bandwidth", f"elementwise+memcpy share {memory:.3f} >= {MEMORY_SHARE_MIN}"))
    ai, ridge = ev.arithmetic_intensity_flops_per_byte, ev.ridge_point_flops_per_byte
    if ai is not None and ridge is not None and ai < ridge:
        fired.append(
            ("memory-bandwidth", f"arithmetic intensity {ai:.1f} < ridge point {ridge:.1f} FLOP/byte")
        )
    if not fired and compute is not None and memory is not None:
        kind = "compute" if compute >= memory else "memory-bandwidth"
        fired.append(
            (kind, f"no threshold crossed; compute share {compute:.3f} vs memory share {memory:.3f}")
        )

    measured = ev.mfu_measured_peak
    if measured is not None:
        numbers["mfu_measured_peak"] = _r(measured)
    if not fired and b is None and measured is not None:  # no trace: step timing against the measured peak
        if measured > 1:
            return Verdict(bottleneck=None, evidence=numbers, rule=f"MFU against the calibrated peak {measured:.2f} > 1",
                           recommendation="The run went faster than the calibrated peak, so the calibration "
                           "understates this device (it was measured while the machine was busy?): rerun "
                           "`scalebench env --calibrate` on an idle machine; no verdict from this timing.")
        if measured >= MEASURED_MFU_COMPUTE_MIN:
            fired.append(("compute", f"step timing: MFU against the calibrated peak {measured:.2f} >= "
                                     f"{MEASURED_MFU_COMPUTE_MIN} (no profiler trace)"))
        else:
            return Verdict(
                bottleneck=None, evidence=numbers, recommendation=_recommendation("", ev, numbers),
                rule=f"step timing: MFU against the calibrated peak {measured:.2f} < {MEASURED_MFU_COMPUTE_MIN}, so "
                     "not compute-bound; telling host overhead from memory bandwidth needs a profiler trace")
    if not fired:
        return Verdict(
            bottleneck=None,
            evidence=numbers,
            recommendation=_recommendation("", ev, numbers),
            rule="no evidence crossed a threshold",
        )
    kind, rule = fired[0]
    also = tuple(dict.fromkeys(k for k, _ in fired[1:] if k != kind))
    return Verdict(
        bottleneck=kind,
        evidence=numbers,
        recommendation=_recommendation(kind, ev, numbers),
        rule=rule,
        also=also,
    )
