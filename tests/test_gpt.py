"""GPT family: exact parameter counts, analytic FLOPs against torch's FlopCounterMode, the size rule."""

from __future__ import annotations

import pytest
import torch

from scalebench.families import get_family
from scalebench.families.gpt import FLAVOURS, flops_per_token, params, params_total, shape_for_params
from scalebench.profiling.flops import count_flops_per_unit

FAMILY = get_family("gpt")


@pytest.mark.parametrize("flavour", ["debug", "100k", "400k", "1m"])
@pytest.mark.parametrize("tied", [True, False])
def test_param_counts_are_exact(flavour, tied):
    shape = FAMILY.shape_from_flavour(flavour, vocab_size=256, seq_len=64, tie_embeddings=tied)
    model = FAMILY.build(shape)
    assert sum(p.numel() for p in model.parameters()) == params_total(shape)
    # params = everything but the position table (and the untied input embedding, counted once as head)
    assert params(shape) == params_total(shape) - 64 * shape.d_model - (0 if tied else 256 * shape.d_model)


@pytest.mark.parametrize("flavour,seq_len", [("debug", 64), ("100k", 128), ("1m", 256)])
def test_analytic_flops_agree_with_flop_counter_within_5_percent(flavour, seq_len):
    shape = FAMILY.shape_from_flavour(flavour, vocab_size=256, seq_len=seq_len)
    torch.manual_seed(0)
    counted = count_flops_per_unit(FAMILY, shape, FAMILY.build(shape), rows=2)
    assert counted / flops_per_token(shape) == pytest.approx(1.0, abs=0.05)


def test_gpt2_124m_shape_matches_the_published_count():
    shape = FAMILY.shape_from_flavour("124m", vocab_size=50257, seq_len=1024)
    linear_biases = 12 * (3 * 768 + 768 + 4 * 768 + 768)  # GPT-2 has them; our blocks do not
    assert params_total(shape) + linear_biases == 124_439_808  # GPT-2 small (Radford et al. 2019)
    # DESIGN.md: FlopCounterMode / (6N + 12LTd) = 1.02 on the H200 reference; the formula itself:
    n = params(shape) - 12 * 4 * 768 - 2 * 768
    assert flops_per_token(shape) == 6 * n + 12 * 12 * 1024 * 768


@pytest.mark.parametrize("target", [1e5, 1e6, 1e7, 1e8, 1e9])
def test_target_parameter_counts_land_near_the_target(target):
    shape = shape_for_params(target, vocab_size=256, seq_len=256)
    non_embedding = 12 * shape.n_layer * shape.d_model**2
    assert 0.6 < non_embedding / target < 1.6
    assert shape.d_model % shape.n_head == 0
    assert shape.d_model / shape.n_layer < 200  # the documented aspect-ratio rule keeps depth in step


def test_flavours_span_debug_to_1_3b():
    sizes = {name: params(FAMILY.shape_from_flavour(name, vocab_size=256, seq_len=1024)) for name in FLAVOURS}
    assert sizes["debug"] < 1e6 < 1.2e9 < sizes["1.3b"] < 1.5e9
    assert list(sizes.values()) == sorted(sizes.values())


def test_causal_half_option_halves_only_the_attention_term():
    shape = FAMILY.shape_from_flavour("100k", vocab_size=256, seq_len=128)
    full, half = flops_per_token(shape), flops_per_token(shape, causal_half=True)
    assert full - half == 6 * shape.n_layer * shape.seq_len * shape.d_model
