"""Parallel layouts: known facts (ZeRO's memory table, Korthikanti's activations with tensor and sequence
parallelism, the 1F1B bubble), and properties of the layout search."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scalebench.hardware.catalog import get_gpu
from scalebench.planning import estimate
from scalebench.planning.layout import LOSS_ALLOWANCE

GB = 1e9


@pytest.mark.parametrize("zero,expected_gb", [(0, 120.0), (1, 31.4), (2, 16.6), (3, 1.9)])
def test_zero_paper_memory_table(zero, expected_gb):
    # Rajbhandari et al. 2020, figure 1: 7.5B parameters, N_d = 64, K = 12 (mixed-precision Adam)
    e = estimate(params=7.5e9, tokens=1e9, gpu="H200", num_gpus=64, zero=zero, tp=1, pp=1, cp=1,
                 global_batch=64, checkpointing="full", framework="zero")  # the paper's 2 + 2 + 12 bytes
    m = e.memory_per_gpu
    states = m.weights + m.gradients + m.optimizer
    assert states / GB == pytest.approx(expected_gb, abs=0.06)
    assert states == pytest.approx(7.5e9 * (2 + 2 + 12) / {0: 1, 1: 1, 2: 1, 3: 64}[zero] if zero in (0, 3) else
                                   7.5e9 * (2 + 2 + 12 / 64) if zero == 1 else 7.5e9 * (2 + 14 / 64))


def test_korthikanti_activations_divide_by_tensor_and_context_parallelism():
    # Korthikanti et al. 2022, eq. 5: with sequence parallelism beside tensor parallelism every term of
    # eq. 1, s·b·h·(34 + 5·a·s/h), divides by t; context parallelism divides s
    kw = dict(params=175e9, n_layer=96, d_model=12288, n_head=96, vocab_size=51200, seq_len=2048, tokens=1e9,
              gpu="H200", checkpointing="none", flash_attention=False, zero=3, global_batch=1024, pp=1, dropout=0.1)
    one = estimate(num_gpus=512, tp=1, cp=1, **kw)
    eight = estimate(num_gpus=512, tp=8, cp=1, **kw)
    s, b, h, a, L, V = 2048, 1, 12288, 96, 96, 51200
    by_hand = L * s * b * h * (34 + 5 * a * s / h) + s * b * h + 4 * s * b * h * (1 + V / h)
    assert one.memory_per_gpu.activations == pytest.approx(by_hand)
    assert eight.memory_per_gpu.activations == pytest.approx(by_hand / 8)
    cp = estimate(num_gpus=512, tp=1, cp=1, **{**kw, "seq_len": 8192})
    cp4 = estimate(num_gpus=512, tp=1, cp=4, **{**kw, "seq_len": 8192})
    assert cp4.memory_per_gpu.activations == pytest.approx(cp.memory_per_gpu.activations / 4)


def test_pipeline_bubble_is_p_minus_1_over_m():
    # 1F1B (Narayanan et al. 2021): bubble (p - 1) / m; m = global batch / (dp · micro-batch)
    e = estimate(model="llama2-70b", gpu="H100-SXM", num_gpus=64, tp=8, pp=4, cp=1, global_batch=32, zero=1)
    assert e.layout == {"tp": 8, "pp": 4, "cp": 1, "ep": 1, "dp": 2}
    assert e.layout_overheads["bubble"] == pytest.approx((4 - 1) / (32 / 2))


def test_expert_parallelism_shards_experts_only():
    kw = dict(model="mixtral-8x7b", tokens=1e12, gpu="H100-SXM", num_gpus=8, tp=1, pp=1, cp=1, zero=0,
              checkpointing="full", seq_len=4096)
    one, eight = estimate(ep=1, **kw), estimate(ep=8, **kw)
    dense = 46.7e9 - one.expert_params
    assert one.memory_per_gpu.weights == pytest.approx(2 * 46.7e9)
    assert eight.memory_per_gpu.weights == pytest.approx(2 * (dense + one.expert_params / 8))


def test_moe_flops_from_active_memory_from_total():
    e = estimate(model="deepseek-v3", gpu="H800", precision="fp8", num_gpus=2048, global_batch=15360)
    assert e.params_total == 671e9 and e.params_active == 37e9
    assert e.flops == pytest.approx((6 * 37e9 + 12 * 61 * 4096 * 128 * 128) * 14.8e12)
    assert e.expert_params == pytest.approx(58 * 256 * 3 * 7168 * 2048)
    assert e.fits and e.layout["dp"] % e.layout["ep"] == 0


@settings(max_examples=25, deadline=None)
@given(params=st.floats(1e8, 5e11), n=st.sampled_from([1, 8, 16, 64, 256, 1024]),
       gpu=st.sampled_from(["H100-SXM", "A100-40GB", "MI300X", "L4"]), seq=st.sampled_from([2048, 8192]))
def test_search_never_picks_a_layout_that_does_not_fit(params, n, gpu, seq):
    e = estimate(params=params, tokens=1e10, gpu=gpu, num_gpus=n, seq_len=seq)
    if e.layout is None:
        return
    lay, spec = e.layout, get_gpu(gpu)
    assert lay["tp"] * lay["pp"] * lay["cp"] * lay["dp"] == n and lay["tp"] <= spec.node_size
    assert e.n_head % lay["tp"] == 0 and lay["pp"] <= e.n_layer
    if e.fits:
        assert e.memory_per_gpu.total <= e.usable_memory_bytes
        assert e.usable_memory_bytes == spec.memory_bytes - 2**30  # the documented reserve
    else:
        assert any("does not fit" in note for note in e.notes)


@settings(max_examples=10, deadline=None)
@given(params=st.floats(5e9, 2e11), n=st.sampled_from([16, 64, 256]))
def test_search_is_at_least_as_fast_as_any_fixed_layout_that_fits(params, n):
    kw = dict(params=params, tokens=1e11, gpu="H100-SXM", num_gpus=n, seq_len=4096)
    best = estimate(**kw)
    for tp, pp in ((1, 1), (2, 2), (8, 1), (8, 2), (4, 4)):
        fixed = estimate(tp=tp, pp=pp, cp=1, **kw)
        if fixed.fits and best.fits:
            assert best.wall_clock_s <= fixed.wall_clock_s * (1 + 1e-9)
        if fixed.fits:
            assert best.fits


def test_more_gpus_stop_helping_is_said():
    # 8 sequences per step feed at most 8 data-parallel ranks; an L4 (PCIe, no NVLink) gets no tensor
    # parallelism from the search and 2048 tokens no context parallelism: 32 GPUs run a 4-stage pipeline
    # on one micro-batch, and 64 GPUs an 8-stage one, which is no faster
    e = estimate(params=1e9, tokens=1e10, gpu="L4", num_gpus=32, global_batch=8)
    assert e.layout == {"tp": 1, "pp": 4, "cp": 1, "ep": 1, "dp": 8}
    assert any(n.startswith("more GPUs stop helping") for n in e.notes)
    helps = estimate(params=1e9, tokens=1e10, gpu="H100-SXM", num_gpus=8, global_batch=1024)
    assert not any(n.startswith("more GPUs stop helping") for n in helps.notes)
    none = estimate(params=1e9, tokens=1e10, gpu="H100-SXM", num_gpus=4096, global_batch=8)
    assert not none.fits and any("no layout uses 4096 GPUs" in n for n in none.notes)


def test_bad_layout_costs_time_beyond_the_allowance():
    kw = dict(model="llama3-70b", gpu="H100-SXM", num_gpus=64, mfu=0.4)
    good = estimate(**kw)
    cross = estimate(tp=16, pp=4, cp=1, **kw)  # tensor parallelism across nodes, at the inter-node bandwidth
    assert good.mfu == pytest.approx(0.4) and good.layout_overheads["loss"] <= LOSS_ALLOWANCE
    loss = cross.layout_overheads["loss"]
    assert loss > LOSS_ALLOWANCE and cross.mfu == pytest.approx(0.4 * (1 + LOSS_ALLOWANCE) / (1 + loss))
    assert cross.wall_clock_s > good.wall_clock_s and any("loses" in n for n in cross.notes)


def test_long_run_and_tight_memory_warn_with_the_next_larger_layout():
    e = estimate(model="llama3-405b", gpu="H100-SXM")
    assert e.wall_clock_s > 180 * 86400
    long = [n for n in e.notes if "past the 180 days" in n]
    nxt = [n for n in e.notes if n.startswith("next larger layout")]
    assert long and nxt
    bigger = int(nxt[0].split(": ")[1].split(" GPUs")[0])
    assert estimate(model="llama3-405b", gpu="H100-SXM", num_gpus=bigger).wall_clock_s < e.wall_clock_s
    tight = estimate(params=3e9, tokens=1e10, gpu="L4", num_gpus=8, tp=1, pp=1, cp=1, zero=3, micro_batch=16,
                     checkpointing="none", seq_len=2048)
    share = tight.memory_per_gpu.total / tight.usable_memory_bytes
    if tight.fits and share > 0.95:
        assert any("of usable" in n for n in tight.notes)
    squeezed = [estimate(params=p, tokens=1e10, gpu="H100-SXM", num_gpus=1, zero=0, checkpointing="full")
                for p in (4.0e9, 4.1e9, 4.2e9)]  # 18 bytes/param (Megatron's layout) + activations
    over = [x for x in squeezed if x.fits and x.memory_per_gpu.total > 0.95 * x.usable_memory_bytes]
    assert over and all(any("of usable" in n for n in x.notes) for x in over)
    assert not math.isnan(over[0].wall_clock_s)
