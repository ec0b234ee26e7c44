"""Calibration runs for real on CPU (small sizes) and round-trips through $SCALEBENCH_HOME."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from scalebench.errors import ConfigError, DeviceError
from scalebench.hardware import calibrate as cal_mod
from scalebench.hardware.calibrate import calibrate, current_device_name, load_calibration, save_calibration


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("SCALEBENCH_HOME", str(tmp_path / "sbhome"))
    return tmp_path / "sbhome"


def test_calibrate_cpu_measures_and_round_trips(home):
    cal = calibrate("cpu", size=128, copy_bytes=1 << 20, repeats=2)
    assert cal.device_type == "cpu" and cal.device_name == current_device_name("cpu")
    assert cal.device_name.startswith("cpu: ")
    assert cal.fp32_matmul_flops_per_s > 1e6
    assert cal.bf16_matmul_flops_per_s is None or cal.bf16_matmul_flops_per_s > 0
    assert cal.copy_bandwidth_bytes_per_s > 1e6
    assert (cal.matmul_size, cal.copy_bytes, cal.repeats) == (128, 1 << 20, 2)
    path = save_calibration(cal)
    assert path == home / "calibration.json"
    assert load_calibration(cal.device_name) == cal
    assert load_calibration("NVIDIA H200") is None
    assert cal.peak_for("bf16") == cal.bf16_matmul_flops_per_s
    assert cal.peak_for("fp32") == cal.fp32_matmul_flops_per_s
    assert cal.peak_for("tf32") is None  # measured with TF32 off: no tf32 peak rather than a wrong one


def test_several_devices_share_one_file(home):
    base = calibrate("cpu", size=64, copy_bytes=1 << 16, repeats=1)
    gpu = replace(base, device_name="NVIDIA H200", device_type="cuda", bf16_matmul_flops_per_s=798e12)
    save_calibration(base)
    save_calibration(gpu)
    save_calibration(replace(gpu, bf16_matmul_flops_per_s=790e12))  # recalibration replaces
    data = json.loads((home / "calibration.json").read_text())
    assert set(data["devices"]) == {base.device_name, "NVIDIA H200"}
    assert load_calibration("NVIDIA H200").bf16_matmul_flops_per_s == 790e12


def test_explicit_path_and_default_home(tmp_path, monkeypatch):
    monkeypatch.delenv("SCALEBENCH_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert cal_mod.calibration_path() == tmp_path / ".cache" / "scalebench" / "calibration.json"
    cal = calibrate("cpu", size=32, copy_bytes=1 << 12, repeats=1)
    p = save_calibration(cal, tmp_path / "x" / "c.json")
    assert load_calibration(cal.device_name, p) == cal


def test_corrupt_file_says_what_to_do(home):
    home.mkdir(parents=True)
    (home / "calibration.json").write_text("{not json")
    with pytest.raises(ConfigError, match="calibrate"):
        load_calibration("x")


def test_bad_arguments(home):
    with pytest.raises(ConfigError):
        calibrate("cpu", size=0)
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(DeviceError):
            calibrate("cuda")


def test_calibrate_grid_on_cpu_and_the_estimate_uses_the_profile(home, capsys):
    """The matmul-efficiency grid runs on CPU; a saved profile of a catalogued card sets the estimator's GEMM
    efficiency for that card (`scalebench estimate --calibrate` without a folder)."""
    import dataclasses

    from scalebench.cli import main
    from scalebench.hardware.calibrate import GRID_CPU, calibrate, gemm_efficiency, save_calibration

    cal = calibrate("cpu", size=64, copy_bytes=1 << 16, repeats=1, rounds=1, pause_s=0.0, grid=True)
    assert {(r["m"], r["n"], r["k"]) for r in cal.matmul_grid} == set(GRID_CPU)
    assert all(r["flops_per_s"] > 0 for r in cal.matmul_grid) and {r["dtype"] for r in cal.matmul_grid} == {"fp32", "bf16"}
    best = max(r["flops_per_s"] for r in cal.matmul_grid if r["dtype"] == "bf16")
    assert gemm_efficiency(cal, "bf16", best * 2) == pytest.approx(0.5)
    base = ["estimate", "--params", "7e9", "--tokens", "1e12", "--gpu", "H100", "--num-gpus", "64", "--json"]
    assert main([*base, "--calibrate"]) == 2
    assert "no hardware profile of H100-SXM" in capsys.readouterr().err
    # a profile as `env --calibrate` saves it on an H100 (the name the driver reports), at half the kernel benchmark
    h100 = dataclasses.replace(cal, device_name="NVIDIA H100 80GB HBM3", device_type="cuda",
                               matmul_grid=({"dtype": "bf16", "m": 8192, "n": 4096, "k": 4096, "flops_per_s": 400e12},))
    save_calibration(h100)
    assert main(base) == 0
    default = json.loads(capsys.readouterr().out)
    assert main([*base, "--calibrate"]) == 0
    measured = json.loads(capsys.readouterr().out)
    assert measured["mfu"] < 0.8 * default["mfu"] and measured["wall_clock_s"] > default["wall_clock_s"]
