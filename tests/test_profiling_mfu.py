"""MFU against the catalog peak and the calibrated peak; unknown devices never get a guessed peak."""

from __future__ import annotations

import types
from dataclasses import replace

import pytest

from scalebench.hardware.calibrate import Calibration, save_calibration
from scalebench.profiling.mfu import mfu_for

CAL = Calibration(
    device_name="NVIDIA H200",
    device_type="cuda",
    fp32_matmul_flops_per_s=50e12,
    bf16_matmul_flops_per_s=800e12,
    copy_bandwidth_bytes_per_s=4.28e12,
    matmul_size=8192,
    copy_bytes=1 << 30,
    repeats=10,
    torch_version="2.13",
    date="2026-01-01T00:00:00+00:00",
)


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("SCALEBENCH_HOME", str(tmp_path))


@pytest.fixture
def fake_catalog(monkeypatch):
    spec = types.SimpleNamespace(name="H200", peak_for=lambda d: {"bf16": 989e12, "fp32": 67e12}.get(d))
    monkeypatch.setattr(
        "scalebench.hardware.catalog.match_device_name", lambda n: spec if n == "NVIDIA H200" else None
    )


def test_catalog_peak_without_calibration(fake_catalog):
    r = mfu_for(450e12, "NVIDIA H200", "bf16")
    assert r.mfu == pytest.approx(450 / 989)
    assert r.mfu_measured_peak is None and r.peak_flops == 989e12 and r.warning is None


def test_measured_peak_when_calibrated(fake_catalog):
    save_calibration(CAL)
    r = mfu_for(400e12, "NVIDIA H200", "bf16")
    assert r.mfu_measured_peak == pytest.approx(0.5)
    assert r.mfu == pytest.approx(400 / 989)
    assert mfu_for(10e12, "NVIDIA H200", "fp32").mfu_measured_peak == pytest.approx(0.2)


def test_unknown_device_warns_and_reports_none(fake_catalog):
    with pytest.warns(RuntimeWarning, match="not in the GPU catalog"):
        r = mfu_for(1e12, "Mystery GPU 9000", "bf16")
    assert r.mfu is None and r.peak_flops is None and r.mfu_measured_peak is None


def test_cpu_with_calibration_gets_only_the_measured_figure(fake_catalog):
    save_calibration(
        replace(CAL, device_name="cpu: Test CPU", device_type="cpu", fp32_matmul_flops_per_s=1e11)
    )
    with pytest.warns(RuntimeWarning, match="measured peak"):
        r = mfu_for(5e10, "cpu: Test CPU", "fp32")
    assert r.mfu is None and r.mfu_measured_peak == pytest.approx(0.5)


def test_dtype_without_a_peak(monkeypatch):
    spec = types.SimpleNamespace(name="T4", peak_for=lambda d: None)
    monkeypatch.setattr("scalebench.hardware.catalog.match_device_name", lambda n: spec)
    with pytest.warns(RuntimeWarning, match="no bf16 peak"):
        assert mfu_for(1e12, "Tesla T4", "bf16").mfu is None


def test_real_catalog_never_guesses_for_cpu():
    pytest.importorskip("scalebench.hardware.catalog")
    with pytest.warns(RuntimeWarning):
        assert mfu_for(1e9, "cpu: AMD EPYC", "fp32").mfu is None


def test_cpu_measured_peak_is_scaled_to_the_run_threads_and_a_stale_one_is_flagged(tmp_path):
    import warnings as _w

    from scalebench.hardware.calibrate import Calibration, save_calibration
    from scalebench.profiling.mfu import mfu_for

    cal = Calibration(device_name="cpu: Test", device_type="cpu", fp32_matmul_flops_per_s=200e9,
                      bf16_matmul_flops_per_s=None, copy_bandwidth_bytes_per_s=1e10, matmul_size=64,
                      copy_bytes=1024, repeats=1, torch_version="x", date="2026-01-01", threads=2)
    path = tmp_path / "cal.json"
    save_calibration(cal, path)
    with _w.catch_warnings():
        _w.simplefilter("ignore")
        r = mfu_for(50e9, "cpu: Test", "fp32", calibration_path=path, threads=1)
    assert r.measured_peak_flops == 100e9 and r.mfu_measured_peak == 0.5
    with pytest.warns(RuntimeWarning, match="calibration understates the device"):
        mfu_for(150e9, "cpu: Test", "fp32", calibration_path=path, threads=1)
