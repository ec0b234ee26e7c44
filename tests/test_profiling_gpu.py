"""GPU-only checks: CUDA-event step timing, kernel traces, real NVML. Skipped cleanly without CUDA."""

from __future__ import annotations

import warnings

import pytest
import torch

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def test_profile_config_on_gpu(tmp_path, monkeypatch):
    from scalebench.train.profile import profile_config

    monkeypatch.setenv("SCALEBENCH_HOME", str(tmp_path / "home"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        report = profile_config("gpt", "3m", batch=8, seq_len=256, steps=10, device="cuda", out_dir=tmp_path)
    m = report.metrics
    b = report.result.breakdown
    assert b is not None and b.device == "cuda" and b.n_kernels > 0
    assert b.time_by_category_s["matmul"] > 0
    assert m["peak_mem_bytes"] > 0 and m["peak_reserved_bytes"] >= m["peak_mem_bytes"]
    assert m["alloc_retries"] == 0 and m["oom_count"] == 0
    assert m["step_time_s"] > 0 and m["tokens_per_s"] > 0
    assert m["flops_counted_ratio"] == pytest.approx(1.0, abs=0.1)
    assert m["bottleneck"] is not None
    if m["telemetry_available"]:
        assert report.result.telemetry.n_samples >= 1


def test_nvml_reads_the_real_device():
    from scalebench.hardware import nvml

    ok, reason = nvml.nvml_available()
    if not ok:
        pytest.skip(reason)
    nvml.init()
    try:
        handle = nvml.handle_for_cuda_device(0)
        reading = nvml.read(handle)
        assert reading.mem_used_bytes is None or reading.mem_used_bytes > 0
        assert nvml.device_name(handle)
    finally:
        nvml.shutdown()
