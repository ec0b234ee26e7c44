"""Bottleneck verdicts: each rule on plain evidence, then on golden traces (real CPU, synthetic GPU)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scalebench.profiling import bottleneck as bn
from scalebench.profiling.bottleneck import BOTTLENECKS, Evidence, classify
from scalebench.profiling.trace import CATEGORIES, TraceBreakdown, analyze_trace

TRACES = Path(__file__).parent / "data" / "traces"


def breakdown(*, window=1.0, busy=0.9, host_wait=0.0, median_us=200.0, device="cuda", **cats):
    by = dict.fromkeys(CATEGORIES, 0.0)
    by.update(cats)
    idle = window - busy
    return TraceBreakdown(
        device=device,
        window_s=window,
        busy_s=busy,
        idle_s=idle,
        idle_host_wait_s=host_wait,
        idle_gap_s=idle - host_wait,
        time_by_category_s=by,
        n_kernels=100,
        median_kernel_us=median_us,
        n_steps=3,
    )


COMPUTE = breakdown(matmul=0.7, elementwise=0.2)


@pytest.mark.parametrize(
    "evidence, expected",
    [
        (Evidence(breakdown=COMPUTE, oom_count=1), "memory-capacity"),
        (Evidence(breakdown=COMPUTE, alloc_retries=2), "memory-capacity"),
        (Evidence(breakdown=COMPUTE, peak_reserved_fraction=0.95), "memory-capacity"),
        (Evidence(breakdown=COMPUTE, peak_reserved_fraction=0.85, alloc_retries=0), "compute"),
        (Evidence(breakdown=COMPUTE, data_wait_share=0.25), "data-loading"),
        (Evidence(breakdown=COMPUTE, data_wait_share=0.05), "compute"),
        (Evidence(breakdown=breakdown(matmul=0.5, communication=0.4)), "communication"),
        (
            Evidence(breakdown=breakdown(busy=0.5, median_us=8.0, matmul=0.3, elementwise=0.2)),
            "host-overhead",
        ),
        # idle with big kernels: host-overhead only when the idle is mostly host-wait
        (
            Evidence(breakdown=breakdown(busy=0.5, median_us=500.0, host_wait=0.4, matmul=0.5)),
            "host-overhead",
        ),
        (Evidence(breakdown=breakdown(busy=0.5, median_us=500.0, host_wait=0.1, matmul=0.5)), "compute"),
        (Evidence(breakdown=breakdown(elementwise=0.5, memcpy=0.2, matmul=0.2)), "memory-bandwidth"),
        (Evidence(breakdown=breakdown(matmul=0.4, elementwise=0.3, other=0.3)), "compute"),  # fallback
        (
            Evidence(arithmetic_intensity_flops_per_byte=20.0, ridge_point_flops_per_byte=300.0),
            "memory-bandwidth",
        ),
        (Evidence(data_wait_share=0.5), "data-loading"),
    ],
)
def test_rules(evidence, expected):
    v = classify(evidence)
    assert v.bottleneck == expected, v.rule
    assert v.bottleneck in BOTTLENECKS
    assert v.recommendation


def test_priority_order_and_also():
    v = classify(
        Evidence(breakdown=breakdown(matmul=0.5, communication=0.4), data_wait_share=0.3, oom_count=1)
    )
    assert v.bottleneck == "memory-capacity"
    assert v.also == ("data-loading", "communication", "compute")


def test_thresholds_are_the_documented_constants(monkeypatch):
    ev = Evidence(breakdown=COMPUTE, data_wait_share=0.08)
    assert classify(ev).bottleneck == "compute"
    monkeypatch.setattr(bn, "DATA_WAIT_SHARE_MAX", 0.05)
    assert classify(ev).bottleneck == "data-loading"


def test_no_evidence_is_undetermined_not_guessed():
    v = classify(Evidence())
    assert v.bottleneck is None and "profiler" in v.recommendation


def test_recommendations_are_concrete():
    host = classify(Evidence(device_type="cuda", breakdown=breakdown(busy=0.4, median_us=5.0, matmul=0.4)))
    assert "torch.compile" in host.recommendation and "CUDA graphs" in host.recommendation
    cpu_host = classify(Evidence(device_type="cpu", breakdown=breakdown(busy=0.4, median_us=5.0, matmul=0.4)))
    assert "CUDA graphs" not in cpu_host.recommendation
    assert "num_workers" in classify(Evidence(data_wait_share=0.5)).recommendation
    assert "checkpointing" in classify(Evidence(oom_count=1)).recommendation


def test_as_dict_is_json_safe():
    v = classify(Evidence(breakdown=COMPUTE, mfu=float("nan"), data_wait_share=0.01))
    d = v.as_dict()
    json.dumps(d, allow_nan=False)
    assert d["bottleneck"] == "compute" and d["evidence"]["mfu"] is None
    assert d["evidence"]["compute_share"] == pytest.approx(0.7 / 0.9, abs=1e-4)


@pytest.mark.parametrize(
    "trace, device, expected",
    [
        ("gpu_compute.json", "cuda", "compute"),
        ("gpu_host_overhead.json", "cuda", "host-overhead"),
        ("gpu_communication.json", "cuda", "communication"),
        ("gpu_memory_bandwidth.json", "cuda", "memory-bandwidth"),
        ("cpu_compute.json.gz", "cpu", "compute"),
        ("cpu_host_overhead.json.gz", "cpu", "host-overhead"),
        ("cpu_memory_bandwidth.json.gz", "cpu", "memory-bandwidth"),
        ("cpu_data_loading.json.gz", "cpu", "data-loading"),
    ],
)
def test_golden_traces(trace, device, expected):
    b = analyze_trace(TRACES / trace)
    assert b.device == device
    v = classify(Evidence(device_type=device, breakdown=b))
    assert v.bottleneck == expected, (v.rule, v.evidence)
    assert v.evidence["trace_device"] == device
