"""Instruments in a real CPU loop, profile_config end to end, and the `scalebench profile` command."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch

from scalebench.profiling.instruments import METRIC_NAMES, Instruments
from scalebench.train.profile import profile_config


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("SCALEBENCH_HOME", str(tmp_path / "home"))


def test_instruments_in_a_plain_loop(tmp_path):
    model = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.GELU(), torch.nn.Linear(64, 32))
    opt = torch.optim.AdamW(model.parameters())
    inst = Instruments(
        run_dir=tmp_path,
        device="cpu",
        warmup_steps=1,
        profile=True,
        profiler_schedule=(0, 1, 2),
        flops_per_token=6 * 4096.0,
        dtype="fp32",
        device_name="cpu: Test CPU",
    )
    inst.record_counted_flops(6 * 4096.0 * 1.02)
    with inst:
        for step in range(6):
            with inst.data_wait():
                x = torch.randn(8, 32)
            model(x).square().mean().backward()
            opt.step()
            opt.zero_grad()
            inst.on_step(tokens=8, samples=8)
            if step == 3:
                with inst.excluded():
                    model(x)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        metrics = inst.finish()
    assert any("not in the GPU catalog" in str(w.message) for w in caught)  # CPU: no guessed peak
    assert set(metrics) == set(METRIC_NAMES)
    assert metrics["flops_counted_ratio"] == pytest.approx(1.02)
    assert metrics["mfu"] is None and metrics["telemetry_available"] is False
    assert metrics["tokens_per_s"] > 0 and metrics["step_time_s"] <= metrics["step_time_p90_s"]
    assert metrics["peak_rss_bytes"] > 0 and metrics["peak_mem_bytes"] is None
    assert metrics["trace_path"] == str(tmp_path / "traces" / "rank0.trace.json.gz")
    assert metrics["bottleneck"] in {"compute", "memory-bandwidth", "host-overhead", "data-loading"}
    json.dumps(metrics, allow_nan=False)
    assert inst.result.throughput.n_steps == 5
    assert inst.finish() is metrics


def test_instruments_cpu_default_has_no_profiler(tmp_path):
    with Instruments(run_dir=tmp_path, device="cpu", warmup_steps=0) as inst:
        inst.on_step(tokens=1)
        inst.on_step(tokens=1)
    metrics = inst.finish()
    assert metrics["trace_path"] is None and not list(tmp_path.iterdir())


def test_exception_in_the_loop_cleans_up(tmp_path):
    inst = Instruments(run_dir=tmp_path, device="cpu", profile=True)
    with pytest.raises(KeyError), inst:
        inst.on_step()
        raise KeyError("boom")
    assert inst.profiler._prof is None


def test_profile_config_debug(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        report = profile_config("gpt", "debug", batch=2, seq_len=32, steps=6, device="cpu", out_dir=tmp_path)
    m = report.metrics
    assert m["flops_counted_ratio"] == pytest.approx(1.0, abs=0.05)
    assert m["trace_path"] == str(tmp_path / "traces" / "rank0.trace.json.gz") and Path(m["trace_path"]).exists()
    assert report.result.breakdown is not None and report.result.breakdown.n_steps == 3
    assert m["bottleneck"] is not None
    text = report.report()
    for word in ("throughput", "tokens/s", "verdict", "matmul", "counted/analytic", "unavailable"):
        assert word in text
    json.dumps(report.as_dict(), default=str)
    assert report.config["params"] > 0 and report.config["precision"] == "fp32"


def test_size_as_a_parameter_count(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        report = profile_config(
            "gpt",
            "2e4",
            batch=1,
            seq_len=16,
            steps=3,
            device="cpu",
            out_dir=tmp_path,
            profiler=(0, 1, 1),
            count_flops=False,
        )
    assert report.config["shape"]["n_layer"] >= 1 and report.metrics["flops_counted_ratio"] is None


def test_cli_profile(tmp_path, capsys):
    from scalebench.cli import main

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        rc = main(
            [
                "profile",
                "--size",
                "debug",
                "--batch",
                "2",
                "--seq-len",
                "16",
                "--steps",
                "4",
                "--device",
                "cpu",
                "--profiler",
                "0,1,1",
                "--out",
                str(tmp_path),
                "--json",
            ]
        )
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["config"]["steps"] == 4 and "bottleneck" in out["metrics"]


def test_cli_bad_input(tmp_path, capsys):
    from scalebench.cli import main

    assert main(["profile", "--size", "nope", "--steps", "3", "--device", "cpu", "--out", str(tmp_path)]) == 2
    assert "unknown gpt flavour" in capsys.readouterr().err
    assert main(["profile", "--profiler", "1,2"]) == 2
