"""estimate(): FLOPs, time, cost, energy by hand; published facts; vectorised paths; bad inputs."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scalebench.errors import ConfigError
from scalebench.planning import Estimate, estimate

REQUIRED_KEYS = ["flops", "memory_per_gpu", "min_gpus", "num_gpus", "wall_clock_s", "gpu_hours", "cost_usd",
                 "energy_kwh", "predicted_loss"]


def test_readme_example_by_hand():
    e = estimate(params=1e9, tokens=20e9, gpu="H100-SXM", num_gpus=8, mfu=0.5, price_usd_per_hour=2.0)
    assert e.flops == pytest.approx(6 * 1e9 * 20e9)  # 1.2e20
    wall = 1.2e20 / (8 * 989.5e12 * 0.5)  # one node: scaling efficiency 1
    assert e.wall_clock_s == pytest.approx(wall)  # 30,318 s = 8.42 h
    assert e.gpu_hours == pytest.approx(8 * wall / 3600)  # 67.4
    assert e.cost_usd == pytest.approx(8 * wall / 3600 * 2.0)  # $134.75
    assert e.energy_kwh == pytest.approx(8 * 700 * wall / 3.6e6)  # 47.2 kWh at TDP
    assert e.scaling_efficiency == 1.0 and e.mfu_source == "given"


def test_published_flops():
    assert estimate(model="gpt3-175b", gpu="A100-80GB").flops == pytest.approx(3.14e23, rel=0.05)
    assert estimate(model="chinchilla-70b", gpu="A100-80GB").flops == pytest.approx(5.9e23, rel=0.05)
    assert estimate(params=175e9, tokens=300e9, gpu="A100-80GB").flops == pytest.approx(3.15e23)
    assert estimate(params=70e9, tokens=1.4e12, gpu="A100-80GB").flops == pytest.approx(5.88e23)


def test_family_shape_uses_family_counts():
    from scalebench.families.gpt import GPTShape, flops_per_token, params, params_total

    s = GPTShape(n_layer=12, d_model=768, n_head=12, vocab_size=50304, seq_len=1024)
    e = estimate(family="gpt", n_layer=12, d_model=768, n_head=12, vocab_size=50304, seq_len=1024, tokens=1e9,
                 gpu="H200")
    assert e.params == params(s) and e.params_total == params_total(s) and not e.shape_inferred
    assert e.flops == pytest.approx(flops_per_token(s) * 1e9)


def test_preset_shape_and_overrides():
    e = estimate(model="llama2-7b", gpu="H100-SXM", tokens=1e12)
    assert (e.n_layer, e.d_model, e.seq_len, e.tokens) == (32, 4096, 4096, 1e12)
    with pytest.raises(ConfigError, match="known presets"):
        estimate(model="gpt-5", gpu="H100-SXM")


def test_inferred_shape_is_flagged():
    e = estimate(params=7e9, tokens=1e12, gpu="H100-SXM")
    assert e.shape_inferred and 12 * e.n_layer * e.d_model**2 == pytest.approx(7e9, rel=0.15)


def test_scaling_efficiency_and_recompute():
    # no cluster penalty on top of the at-scale default MFU (issue 12); a given efficiency still applies
    a = estimate(params=1e9, tokens=1e10, gpu="H100-SXM", num_gpus=256, checkpointing="none")
    assert a.scaling_efficiency == 1.0
    half = estimate(params=1e9, tokens=1e10, gpu="H100-SXM", num_gpus=256, checkpointing="none", scaling_efficiency=0.5)
    assert half.wall_clock_s == pytest.approx(2 * a.wall_clock_s)
    # the hardware model repeats the forward pass under full recomputation: compute x 4/3, communication not
    b = estimate(params=1e9, tokens=1e10, gpu="H100-SXM", num_gpus=256, checkpointing="full", tp=1, pp=1, zero=1)
    a1 = estimate(params=1e9, tokens=1e10, gpu="H100-SXM", num_gpus=256, checkpointing="none", tp=1, pp=1, zero=1)
    assert a1.wall_clock_s < b.wall_clock_s <= a1.wall_clock_s * 4 / 3 * (1 + 1e-9)
    assert b.hfu == pytest.approx(b.mfu * 4 / 3) and b.mfu < a1.mfu
    # a given MFU is PaLM's model FLOPs utilisation whatever the recomputation: same time, HFU 4/3 higher
    c = estimate(params=1e9, tokens=1e10, gpu="H100-SXM", num_gpus=256, checkpointing="none", mfu=0.4)
    d = estimate(params=1e9, tokens=1e10, gpu="H100-SXM", num_gpus=256, checkpointing="full", mfu=0.4)
    assert d.wall_clock_s == pytest.approx(c.wall_clock_s) == pytest.approx(1e9 * 6 * 1e10 / (256 * 989.5e12 * 0.4))
    assert d.mfu == pytest.approx(0.4) and d.hfu == pytest.approx(0.4 * 4 / 3)


def test_precision_peaks_and_missing_unit():
    bf = estimate(params=1e9, tokens=1e10, gpu="H100-SXM", num_gpus=1, precision="bf16", mfu=0.4)
    f8 = estimate(params=1e9, tokens=1e10, gpu="H100-SXM", num_gpus=1, precision="fp8", mfu=0.4)
    assert bf.wall_clock_s == pytest.approx(2 * f8.wall_clock_s)
    with pytest.raises(ConfigError, match="V100-32GB has no bf16"):
        estimate(params=1e8, tokens=1e9, gpu="V100-32GB", precision="bf16")


def test_energy_co2_and_price_override():
    e = estimate(params=1e9, tokens=1e10, gpu="A100-80GB", num_gpus=8, grid_gco2_per_kwh=400, pue=1.1,
                 power_fraction=0.8, price_usd_per_hour=1.0)
    assert e.energy_kwh == pytest.approx(8 * 400 * 0.8 * e.wall_clock_s * 1.1 / 3.6e6)
    assert e.co2_kg == pytest.approx(e.energy_kwh * 0.4)
    assert e.cost_usd == pytest.approx(e.gpu_hours)


def test_loss_from_law_preset_and_fitresult():
    from scalebench.laws.presets import get_preset

    e = estimate(params=70e9, tokens=1.4e12, gpu="H100-SXM", law="chinchilla")
    expected = 1.69 + 406.4 / 70e9**0.34 + 410.7 / 1.4e12**0.28
    assert e.predicted_loss == pytest.approx(expected)
    assert e.law == "chinchilla"
    f = estimate(params=70e9, tokens=1.4e12, gpu="H100-SXM", law=get_preset("chinchilla-epoch"))
    assert f.predicted_loss == pytest.approx(get_preset("chinchilla-epoch").predict(params=70e9, tokens=1.4e12))
    assert f.predicted_loss_interval is None  # a published law has no bootstrap


def test_to_dict_keys_and_json():
    d = estimate(params=7e9, tokens=1.4e12, gpu="H100-SXM", num_gpus=64).to_dict()
    assert list(d)[: len(REQUIRED_KEYS)] == REQUIRED_KEYS
    assert set(d["memory_per_gpu"]) == {"weights", "gradients", "optimizer", "activations", "overhead", "total"}
    assert all(isinstance(v, int) for v in d["memory_per_gpu"].values())
    assert d["predicted_loss"] is None
    json.dumps(d, allow_nan=False)


def test_text_form():
    text = str(estimate(params=7e9, tokens=1.4e12, gpu="H100-SXM", num_gpus=64))
    for word in ("training FLOPs", "memory per GPU", "GiB", "wall clock", "GPU-hours", "kWh", "$"):
        assert word in text


def test_dataframe_in_dataframe_out_matches_scalar():
    df = pd.DataFrame({"params": [1e9, 7e9, 70e9], "tokens": [2e10, 1.4e11, 1.4e12],
                       "gpu": ["H100-SXM", "A100-80GB", "H200"], "num_gpus": [8, np.nan, 64],
                       "precision": ["bf16", "bf16", "fp8"]}, index=["a", "b", "c"])
    out = estimate(df)
    assert isinstance(out, pd.DataFrame) and list(out.index) == ["a", "b", "c"]
    for key, row in df.iterrows():
        kw = {k: v for k, v in row.items() if not (isinstance(v, float) and math.isnan(v))}
        one = estimate(**kw)
        assert out.loc[key, "cost_usd"] == pytest.approx(one.cost_usd)
        assert out.loc[key, "memory_total_bytes"] == pytest.approx(one.memory_per_gpu.total)
        assert out.loc[key, "num_gpus"] == one.num_gpus


def test_arrays_broadcast_with_scalars():
    out = estimate(params=np.array([1e8, 1e9]), tokens=2e10, gpu="H100-SXM", num_gpus=8, law="chinchilla")
    assert len(out) == 2 and out["flops"].tolist() == pytest.approx([1.2e19, 1.2e20])
    assert out["predicted_loss"].is_monotonic_decreasing


def test_ten_thousand_scenarios_in_one_call_agree_with_one_at_a_time():
    """The vectorised path answers 10,000 scenarios in one call, as the per-row path would (its speed, as a
    ratio against the per-row loop, is benchmarks/estimate_speed.py: no timing here)."""
    rng = np.random.default_rng(0)
    n = 10_000
    df = pd.DataFrame({"params": 10 ** rng.uniform(7, 11, n), "tokens": 10 ** rng.uniform(9, 13, n),
                       "gpu": rng.choice(["H100-SXM", "A100-80GB", "H200", "L4"], n),
                       "num_gpus": rng.choice([1, 8, 64, 512], n)})
    out = estimate(df)
    assert len(out) == n and out["flops"].notna().all()
    for i in rng.choice(n, 12, replace=False):
        row = df.iloc[i]
        one = estimate(params=row.params, tokens=row.tokens, gpu=row.gpu, num_gpus=int(row.num_gpus))
        assert out["flops"].iloc[i] == pytest.approx(one.flops, rel=1e-9)
        assert out["cost_usd"].iloc[i] == pytest.approx(one.cost_usd, rel=1e-6, nan_ok=True), i


@settings(max_examples=60, deadline=None)
@given(params=st.floats(1e6, 1e12), tokens=st.floats(1e8, 1e13), more=st.floats(1.0, 100.0),
       gpu=st.sampled_from(["H100-SXM", "A100-40GB", "L4", "MI300X"]), n=st.sampled_from([None, 1, 8, 1024]))
def test_more_tokens_never_lower_cost(params, tokens, more, gpu, n):
    kw = dict(params=params, gpu=gpu, num_gpus=n)
    a, b = estimate(tokens=tokens, **kw), estimate(tokens=tokens * more, **kw)
    if math.isnan(a.cost_usd):
        assert math.isnan(b.cost_usd)  # no GPU count fits either way
    else:
        assert b.cost_usd >= a.cost_usd * (1 - 1e-12)


@pytest.mark.parametrize("kw,match", [
    (dict(params=0, tokens=1e9), "params must be a positive"),
    (dict(params=-1e9, tokens=1e9), "params must be a positive"),
    (dict(params=1e9, tokens="lots"), "tokens must be a number"),
    (dict(params=1e9, tokens=1e9, num_gpus=2.5), "num_gpus must be a positive integer"),
    (dict(params=1e9, tokens=1e9, mfu=1.5), "mfu must be a fraction of the peak from 0.001 to 1"),
    (dict(params=1e9), "tokens is required"),
    (dict(tokens=1e9), "params is required"),
    (dict(params=1e9, tokens=1e9, precision="int4"), "precision must be one of"),
    (dict(params=1e9, tokens=1e9, zero=5), "zero must be"),
    (dict(params=1e9, tokens=1e9, checkpointing="some"), "checkpointing must be"),
    (dict(params=1e9, tokens=1e9, optimizer="lion"), "optimizer must be"),
    (dict(params=1e9, tokens=1e9, bogus=1), "unknown argument"),
    (dict(params=[1e9, 2e9], tokens=[1e9, 2e9, 3e9]), "differ in length"),
])
def test_bad_inputs(kw, match):
    kw.setdefault("gpu", "H100-SXM")
    with pytest.raises(ConfigError, match=match):
        estimate(**kw)


def test_gpu_required_and_unknown():
    with pytest.raises(ConfigError, match="gpu is required.*H100-SXM"):
        estimate(params=1e9, tokens=1e9)
    with pytest.raises(ConfigError, match="known GPUs"):
        estimate(params=1e9, tokens=1e9, gpu="TPU-v5")


def test_bad_row_is_named_in_dataframe():
    with pytest.raises(ConfigError, match=r"row 1"):
        estimate(pd.DataFrame({"params": [1e9, -1.0], "tokens": [1e9, 1e9], "gpu": "H100-SXM"}))


def test_estimate_is_frozen():
    e = estimate(params=1e9, tokens=1e9, gpu="H100-SXM")
    assert isinstance(e, Estimate)
    with pytest.raises(AttributeError):
        e.flops = 0


# --- review findings ------------------------------------------------------------------------------------
@pytest.mark.parametrize("kw", [
    dict(params=1e15, tokens=1e12, gpu="H100-SXM"),
    dict(model="llama3-70b", gpu="L4", micro_batch=64),
])
def test_no_gpu_count_fits_is_json_null_and_said_in_words(kw):
    e = estimate(**kw)
    assert e.num_gpus is None and e.min_gpus is None and not e.fits
    d = e.to_dict()
    json.dumps(d, allow_nan=False)
    assert d["memory_per_gpu"]["total"] is None and d["memory_per_gpu"]["weights"] is None
    assert isinstance(d["memory_per_gpu"]["activations"], int)  # known without a GPU count
    assert d["cost_usd"] is None and d["wall_clock_s"] is None
    text = e.report()
    assert f"memory per GPU   does not fit on any number of {e.gpu}" in text
    assert "nan" not in text.lower() and "$nan" not in text


def test_partly_given_shape_keeps_the_given_fields():
    e = estimate(params=7e9, tokens=1.4e12, gpu="H100-SXM", num_gpus=64, n_layer=32, d_model=4096)
    assert (e.n_layer, e.d_model, e.n_head) == (32, 4096, 32)  # n_head = d_model / 128
    assert e.inferred_fields == ("n_head",) and e.shape_inferred
    assert e.flops == pytest.approx((6 * 7e9 + 12 * 32 * 2048 * 4096) * 1.4e12)  # PaLM count, L and d known
    assert "L32 d4096 h32 (n_head inferred)" in e.report()
    assert e.to_dict()["inputs"]["inferred_fields"] == ["n_head"]
    only_l = estimate(params=7e9, tokens=1e12, gpu="H100-SXM", n_layer=40)
    assert only_l.n_layer == 40 and only_l.inferred_fields == ("d_model", "n_head")
    # d_model inferred in steps of 1024 from 1024 on (8 heads of 128 divide it, for tensor parallelism)
    assert 12 * 40 * only_l.d_model**2 == pytest.approx(7e9, rel=0.2) and only_l.d_model % 1024 == 0
    assert only_l.flops == pytest.approx(6 * 7e9 * 1e12)  # d inferred: 6ND
    only_d = estimate(params=7e9, tokens=1e12, gpu="H100-SXM", d_model=4096, n_head=64)
    assert (only_d.d_model, only_d.n_head) == (4096, 64) and only_d.inferred_fields == ("n_layer",)
    assert only_d.n_layer == round(7e9 / (12 * 4096**2))
    none = estimate(params=7e9, tokens=1e12, gpu="H100-SXM")
    assert none.inferred_fields == ("n_layer", "d_model", "n_head") and "(inferred)" in none.report()
    full = estimate(params=7e9, tokens=1e12, gpu="H100-SXM", n_layer=32, d_model=4096, n_head=32)
    assert not full.shape_inferred and full.inferred_fields == ()


def test_notes_are_whole_messages():
    e = estimate(params=1e15, tokens=1e12, gpu="H100-SXM")  # the message itself contains "; "
    assert e.checkpointing == "full"
    (never,) = [n for n in e.notes if n.startswith("does not fit on any number")]
    assert "lower micro_batch" in never
    assert "checkpointing='full'" not in never  # auto already chose full recomputation
    none = estimate(params=1e15, tokens=1e12, gpu="H100-SXM", checkpointing="none")
    assert any("checkpointing='full'" in n for n in none.notes)
    table = estimate(params=[1e9, 1e15], tokens=1e12, gpu="H100-SXM")
    assert table["note_list"].iloc[1] == e.notes
    (long,) = table["note_list"].iloc[0]  # the 180-day warning, whole
    assert re.fullmatch(r"[\d,]+ days on 1 GPUs is past the 180 days a run can reasonably last", long)
    assert table["notes"].iloc[1] == "; ".join(e.notes)


@pytest.mark.parametrize("text,expected", [("False", False), ("false", False), ("TRUE", True), ("no", False),
                                           (0, False), (np.bool_(True), True)])
def test_flash_attention_strings_are_parsed(text, expected):
    kw = dict(params=1e9, tokens=1e10, gpu="H100-SXM", num_gpus=8, checkpointing="none")
    e = estimate(flash_attention=text, **kw)
    assert e.memory_per_gpu.activations == estimate(flash_attention=expected, **kw).memory_per_gpu.activations
    table = estimate(pd.DataFrame({"params": [1e9], "tokens": 1e10, "flash_attention": [text]}),
                     gpu="H100-SXM", num_gpus=8, checkpointing="none")
    assert table["memory_activations_bytes"].iloc[0] == e.memory_per_gpu.activations


@pytest.mark.parametrize("bad", ["maybe", 2, 0.5, "", [1, "x"]])
def test_flash_attention_rejects_non_booleans(bad):
    with pytest.raises(ConfigError, match="flash_attention must be true or false"):
        estimate(params=[1e9, 2e9] if isinstance(bad, list) else 1e9, tokens=1e10, gpu="H100-SXM",
                 flash_attention=bad)
