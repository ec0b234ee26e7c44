"""calibrate(): MFU against size from a sweep's rows, capped and flagged beyond the sweep."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from scalebench.errors import FitError
from scalebench.planning import estimate
from scalebench.planning.calibrate import calibrate

# The H200 compiled plain-loop rows (DESIGN.md): TFLOP/s / 989.5 dense bf16 peak.
ROWS = [  # name, params (non-emb + tied emb, 50304 vocab), n_layer, d_model, n_head, batch, TFLOP/s
    ("s20m", 45e6, 6, 512, 8, 64, 422), ("124m", 124e6, 12, 768, 12, 32, 450),
    ("350m", 354e6, 24, 1024, 16, 16, 474), ("774m", 772e6, 36, 1280, 20, 16, 484),
]


def sweep_frame(with_mfu: bool = True) -> pd.DataFrame:
    rows = []
    for _, params, L, d, h, b, tflops in ROWS:
        fpt = 6 * params + 12 * L * 1024 * d
        rows.append(dict(status="done", params=params, params_total=params, tokens=1e9, flops=fpt * 1e9,
                         tokens_per_s=tflops * 1e12 / fpt, mfu=tflops / 989.5 if with_mfu else np.nan,
                         device="NVIDIA H200", precision="bf16", avg_power_w=560.0, peak_mem_bytes=np.nan,
                         n_layer=L, d_model=d, n_head=h, seq_len=1024, micro_batch=b))
    rows.append(dict(rows[0], status="failed", mfu=0.99))
    rows.append(dict(rows[0], device="cpu", mfu=np.nan))
    return pd.DataFrame(rows)


def test_fit_mfu_against_size():
    cal = calibrate(sweep_frame())
    assert cal.gpu == "H200" and cal.n_runs == 4
    assert cal.mfu_slope > 0  # bigger models use the GPU better
    mfu, extrap = cal.predict_mfu([124e6])
    assert mfu[0] == pytest.approx(450 / 989.5, abs=0.02) and not extrap[0]
    assert cal.power_fraction == pytest.approx(560 / 700)


def test_mfu_derived_from_throughput_when_missing():
    a, b = calibrate(sweep_frame(True)), calibrate(sweep_frame(False))
    assert b.mfu_intercept == pytest.approx(a.mfu_intercept) and b.mfu_slope == pytest.approx(a.mfu_slope)


def test_capped_and_flagged_far_beyond_the_sweep():
    cal = calibrate(sweep_frame())
    mfu, extrap = cal.predict_mfu([7e9, 1e12])
    assert not extrap[0] and extrap[1]  # 7e9 is within 10x of 772M; 1e12 is not
    assert (mfu <= cal.mfu_cap).all() and cal.mfu_cap == pytest.approx(484 / 989.5 * 1.1)
    assert mfu[1] == pytest.approx(cal.predict_mfu([772e6 * 10])[0][0])  # held at the edge


def test_estimate_uses_calibration():
    cal = calibrate(sweep_frame())
    e = estimate(params=1e12, tokens=1e12, gpu="H100-SXM", num_gpus=1024, mfu=cal)
    assert e.mfu_source.startswith("calibrated (extrapolated")
    assert any("extrapolated" in n for n in e.notes) and any("calibrated on H200" in n for n in e.notes)
    h = estimate(params=124e6, tokens=1e9, gpu="H200", num_gpus=1, mfu=cal)
    assert h.mfu == pytest.approx(cal.predict_mfu([124e6])[0][0]) and h.mfu_source == "calibrated"
    assert h.energy_kwh == pytest.approx(700 * 0.8 * h.wall_clock_s / 3.6e6)  # measured power fraction


def test_calibrate_from_sweep_dir(monkeypatch, tmp_path):
    import scalebench.store as store

    monkeypatch.setattr(store, "load_results", lambda path: sweep_frame())
    assert calibrate(tmp_path).gpu == "H200"


def test_cpu_only_sweep_is_refused():
    frame = sweep_frame()
    frame["device"] = "cpu"
    with pytest.raises(FitError, match="GPU"):
        calibrate(frame)
