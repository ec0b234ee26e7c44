"""Published runs with sources: what calibrates and validates the hardware model (leave-one-out), MFU as
PaLM defines it, ranges that contain their point values and stay within 2.5x, defaults said, CLI = API."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scalebench.cli import main
from scalebench.errors import ConfigError
from scalebench.planning import estimate
from scalebench.planning.evidence import (
    PUBLISHED_RUNS,
    PublishedRun,
    calibrated_goodput,
    kernel_efficiency,
    leave_one_out,
    model_range,
)


def _published_utilisation(run):
    return {"mfu": run.published_mfu} if run.published_mfu else {"hfu": run.published_hfu} if run.published_hfu else {}


def test_every_row_has_a_source_and_a_plausible_mfu():
    assert len(PUBLISHED_RUNS) >= 10
    for run in PUBLISHED_RUNS:
        assert run.source and ("20" in run.source)  # a citation with its year
        assert 0.1 < run.implied_mfu < 0.7, run.name
        if run.published_mfu or run.published_hfu:
            assert run.published_mfu_source
        if run.checkpointing:
            assert run.checkpointing_source
    assert sum(bool(_published_utilisation(r)) for r in PUBLISHED_RUNS) >= 5


def test_table_holds_hardware_rates():
    by = {r.name: r for r in PUBLISHED_RUNS}
    for name in ("BLOOM-176B", "BloombergGPT"):  # full recomputation, sourced
        assert by[name].checkpointing == "full"
        assert by[name].implied_rate == pytest.approx(by[name].implied_mfu * 4 / 3)
    assert by["LLaMA-7B"].implied_rate == by["LLaMA-7B"].implied_mfu
    with pytest.raises(ValueError, match="not both"):
        PublishedRun(name="x", model="llama-7b", gpu="A100-80GB", precision="bf16", gpu_hours=1.0, source="y 2023",
                     published_mfu=0.4, published_hfu=0.5, published_mfu_source="z")
    with pytest.raises(ValueError, match="checkpointing_source"):
        PublishedRun(name="x", model="llama-7b", gpu="A100-80GB", precision="bf16", gpu_hours=1.0, source="y 2023",
                     checkpointing="full")


def test_known_implied_utilisations():
    by = {r.name: r for r in PUBLISHED_RUNS}
    # PaLM: 2.57e24 model FLOPs over 8,404,992 TPU v4 chip-hours at 275 TFLOP/s
    assert by["PaLM-540B"].implied_mfu == pytest.approx(
        (6 * 540.35e9 + 12 * 118 * 2048 * 48 * 256) * 780e9 / (8_404_992 * 3600 * 275e12))
    # LLaMA-65B: the paper's 380 tokens/s/GPU and its GPU-hours agree (Touvron et al. 2023, section 2.4)
    assert by["LLaMA-65B"].implied_mfu == pytest.approx(by["LLaMA-65B"].published_mfu, rel=0.01)


@pytest.mark.parametrize("run", PUBLISHED_RUNS, ids=lambda r: r.name)
def test_published_runs_at_defaults(run):
    """The hardware model (two numbers fitted on the whole table) within 2.5x of every published run."""
    e = estimate(**run.estimate_kwargs())
    assert e.mfu_source == "modelled" and "mfu" in e.defaults and "goodput" in e.defaults
    ratio = e.gpu_hours / run.gpu_hours
    assert 1 / 2.5 <= ratio <= 2.5, ratio


@pytest.mark.parametrize("run", [r for r in PUBLISHED_RUNS if _published_utilisation(r)], ids=lambda r: r.name)
def test_published_utilisation(run):
    e = estimate(**run.estimate_kwargs(), **_published_utilisation(run), goodput=run.published_goodput)
    assert "mfu" not in e.defaults and e.mfu_source in ("given", "given as hfu")
    ratio = e.gpu_hours / run.gpu_hours
    if run.hours_note:  # hours that contain unquantified downtime: ours (time at the published rate) is less
        assert ratio < 0.94
    else:  # issue 12: within about 6% when the published utilisation is given
        assert ratio == pytest.approx(1.0, abs=0.06)


def test_leave_one_out_table():
    t = leave_one_out()
    assert len(t) == len(PUBLISHED_RUNS)
    err = np.abs(np.log(t["loo_ratio"]))
    assert np.median(err) < math.log(1.33) and err.max() < math.log(2.5)
    # the two fitted numbers are what they say: geometric means over the table
    assert kernel_efficiency() == pytest.approx(np.exp(np.log(t["implied_efficiency"].dropna()).mean()))
    assert calibrated_goodput() == pytest.approx(np.exp(np.log(t["implied_goodput"]).mean()))
    lo, hi = model_range()
    assert lo < 1 < hi and hi / lo <= 2.5 + 1e-9


def test_h100_example_in_the_published_band_and_not_dearer_than_a100():
    """Dubey et al. 2024 (Llama 3) report 38-43% MFU on H100; the model must land near that band unasked,
    and an H100 run must not cost more than the same run on A100s."""
    h = estimate(params=7e9, tokens=2e12, gpu="H100", num_gpus=256)
    a = estimate(params=7e9, tokens=2e12, gpu="A100-80GB", num_gpus=256)
    assert 0.35 <= h.mfu <= 0.45 and h.mfu_source == "modelled"
    assert h.cost_usd < a.cost_usd and h.wall_clock_s < a.wall_clock_s
    lo, hi = h.wall_clock_s_range
    assert hi / lo <= 2.5 + 1e-9


def test_no_cluster_penalty_but_communication_counts():
    small = estimate(params=7e9, tokens=1e12, gpu="H100-SXM", num_gpus=64)
    large = estimate(params=7e9, tokens=1e12, gpu="H100-SXM", num_gpus=4096)
    assert large.mfu <= small.mfu * 1.001  # more ranks never make the modelled step cheaper per GPU
    assert large.wall_clock_s < small.wall_clock_s
    b = estimate(params=70e9, tokens=1e12, gpu="B200", num_gpus=512)  # a generation without a kernel benchmark
    assert 0.1 < b.mfu < 0.7


@settings(max_examples=30, deadline=None)
@given(params=st.floats(1e8, 1e12), tokens=st.floats(1e9, 1e13),
       gpu=st.sampled_from(["H100-SXM", "A100-80GB", "B200", "TPU-v5p", "MI300X"]),
       mfu=st.one_of(st.none(), st.floats(0.05, 0.8)), n=st.sampled_from([None, 64, 1024]),
       kind=st.sampled_from(["mfu", "hfu"]), goodput=st.one_of(st.none(), st.floats(0.5, 1.0)))
def test_ranges_contain_their_point_values(params, tokens, gpu, mfu, n, kind, goodput):
    e = estimate(params=params, tokens=tokens, gpu=gpu, num_gpus=n, goodput=goodput, **{kind: mfu})
    for key in ("wall_clock_s", "gpu_hours", "cost_usd", "energy_kwh", "mfu"):
        value, band = getattr(e, key), getattr(e, f"{key}_range")
        if math.isfinite(value):
            assert band[0] <= value * (1 + 1e-9) and value <= band[1] * (1 + 1e-9)
            if mfu is None:
                assert band[0] < value < band[1]  # a modelled MFU is uncertain
                assert band[1] / band[0] <= 2.5 + 1e-9
            else:
                assert band[0] == pytest.approx(value) == pytest.approx(band[1])


def test_defaults_and_price_source_are_said():
    e = estimate(model="llama3-70b", gpu="H100-SXM", num_gpus=512, mfu=0.4, tp=8)
    assert "mfu" not in e.defaults and "num_gpus" not in e.defaults and "tp" not in e.defaults
    assert {"pp", "cp", "zero", "checkpointing", "price_usd_per_hour"} <= set(e.defaults)
    d = e.to_dict()
    assert d["price_source"].startswith("Lambda Cloud") and "2024" in d["price_source"]
    assert "Lambda Cloud" in e.report() and "defaults" in e.report()
    assert estimate(model="llama3-70b", gpu="H100-SXM", price_usd_per_hour=2.0).price_source == "given"


def test_cli_and_api_agree_for_training(capsys):
    argv = ["estimate", "--model", "llama3-405b", "--gpu", "H100-SXM", "--num-gpus", "16384", "--global-batch",
            "2048", "--tp", "8", "--zero", "1", "--pue", "1.1", "--power-fraction", "0.8", "--json"]
    assert main(argv) == 0
    cli = json.loads(capsys.readouterr().out)
    api = estimate(model="llama3-405b", gpu="H100-SXM", num_gpus=16384, global_batch=2048, tp=8, zero=1, pue=1.1,
                   power_fraction=0.8).to_dict()
    assert cli == api
    for key in ("gpu_hours_range", "wall_clock_s_range", "cost_usd_range", "energy_kwh_range", "layout", "hfu"):
        assert cli[key] is not None
    assert cli["layout"]["tp"] == 8 and cli["layout"]["tp"] * cli["layout"]["pp"] * cli["layout"]["cp"] \
        * cli["layout"]["dp"] == 16384 and cli["fits"] is True


def test_plan_defaults_to_the_refit_law(capsys):
    assert main(["plan", "--flops", "1e22", "--gpu", "H100-SXM", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["law"] == "chinchilla-epoch" and 15 < d["tokens_per_param"] < 30


def test_hfu_is_converted_by_the_recomputation():
    base = dict(model="llama2-70b", gpu="A100-80GB", num_gpus=1024, tp=8, zero=1)
    full = estimate(**base, checkpointing="full", hfu=0.5)
    assert full.mfu == pytest.approx(0.5 * 3 / 4) and full.hfu == pytest.approx(0.5)
    assert full.gpu_hours == pytest.approx(estimate(**base, checkpointing="full", mfu=0.375).gpu_hours)
    none = estimate(**base, checkpointing="selective", hfu=0.5)
    assert none.mfu == pytest.approx(0.5) and none.mfu_source == "given as hfu" and "mfu" not in none.defaults
    with pytest.raises(ConfigError, match="not both"):
        estimate(**base, hfu=0.5, mfu=0.4)
    with pytest.raises(ConfigError, match="hfu must be"):
        estimate(**base, hfu=1.5)


def test_goodput_divides_the_time_and_is_reported():
    base = dict(params=7e9, tokens=1e12, gpu="H100-SXM", num_gpus=64, mfu=0.4, checkpointing="none")
    one, part = estimate(**base), estimate(**base, goodput=0.8)
    assert part.wall_clock_s == pytest.approx(one.wall_clock_s / 0.8)
    assert part.gpu_hours == pytest.approx(one.gpu_hours / 0.8) and part.mfu == pytest.approx(one.mfu)
    assert one.goodput == 1.0 and "goodput" in one.defaults and part.to_dict()["goodput"] == 0.8
    assert "goodput 0.8" in part.report()
    # a given utilisation is a throughput: at the default goodput the estimate says reserved time is longer
    assert any("goodput" in n for n in one.notes) and not any("goodput" in n for n in part.notes)
    assert not any("goodput" in n for n in estimate(params=7e9, tokens=1e12, gpu="H100-SXM").notes)


def test_cli_and_api_agree_for_hfu_and_goodput(capsys):
    argv = ["estimate", "--model", "bloom-176b", "--gpu", "A100-80GB", "--num-gpus", "384", "--global-batch", "2048",
            "--hfu", "0.5", "--checkpointing", "full", "--goodput", "0.9", "--json"]
    assert main(argv) == 0
    cli = json.loads(capsys.readouterr().out)
    api = estimate(model="bloom-176b", gpu="A100-80GB", num_gpus=384, global_batch=2048, hfu=0.5,
                   checkpointing="full", goodput=0.9).to_dict()
    assert cli == api and cli["goodput"] == 0.9 and cli["mfu"] == pytest.approx(0.375)
    assert main(["estimate", "--model", "bloom-176b", "--gpu", "A100-80GB", "--hfu", "0.5", "--mfu", "0.4"]) == 2
    assert "not both" in capsys.readouterr().err


def test_estimates_docs_carry_the_benchmarks_table():
    import importlib.util
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("published_runs", root / "benchmarks" / "published_runs.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    readme = (root / "docs" / "estimates.md").read_text()
    start = readme.index("<!-- published-runs table:")
    block = readme[readme.index("\n", start) + 1:readme.index("<!-- end of the published-runs table -->")]
    assert block.strip() == bench.markdown(bench.table(), leave_one_out())
    assert block.count("\n| ") >= 10  # issue 12: at least 10 published cases
