"""LSTM, CNN and MLP families: exact parameter counts, analytic FLOPs against FlopCounterMode, size rules."""

from __future__ import annotations

import math

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from scalebench.errors import ConfigError
from scalebench.families import cnn, get_family, lstm

CONTEXTS = {
    "lstm": dict(vocab_size=256, seq_len=16, tie_embeddings=True),
    "cnn": dict(image_size=16, channels=3, num_classes=10),
    "mlp": dict(input_dim=8, num_classes=10),
}
CASES = [("lstm", f) for f in ("debug", "100k", "400k")] + [("cnn", f) for f in ("debug", "180k", "resnet20")] \
    + [("mlp", f) for f in ("debug", "20k", "200k", "3m")]


def counted_flops_per_unit(family, shape, rows: int = 2) -> float:
    torch.manual_seed(0)
    model = family.build(shape)
    x, y = family.example_batch(shape, rows)
    with FlopCounterMode(display=False) as counter:
        family.loss(model(x), y).backward()
    units = y.numel()  # tokens (rows x seq_len) or samples (rows)
    return counter.get_total_flops() / units


@pytest.mark.parametrize("name,flavour", CASES)
def test_params_total_is_the_built_module_and_flops_match_the_counter(name, flavour):
    family = get_family(name)
    shape = family.shape_from_flavour(flavour, **CONTEXTS[name])
    model = family.build(shape)
    assert sum(p.numel() for p in model.parameters()) == family.params_total(shape)
    # the formulas count exactly the matmuls and convolutions the counter sees: equality, not "within 5 %"
    assert counted_flops_per_unit(family, shape) == pytest.approx(family.flops_per_token(shape), rel=1e-9)
    assert family.make_shape(**shape.as_dict()) == shape  # the store's JSON round trip
    assert family.flops_formula and shape.label


def test_lstm_untied_head_and_window_length_enter_the_counts():
    ctx = dict(vocab_size=300, seq_len=7, tie_embeddings=False)
    shape = lstm.make_shape(n_layer=3, d_model=24, **ctx)
    model = lstm.build(shape)
    assert sum(p.numel() for p in model.parameters()) == lstm.params_total(shape)
    assert lstm.params_total(shape) - lstm.params(shape) == 300 * 24  # the input table, a lookup
    assert lstm.params(shape) == 3 * (8 * 24**2 + 4 * 24) + 300 * 24
    d = 24
    assert lstm.flops_per_token(shape) == pytest.approx(6 * (3 * 4 * d * d * (1 + 6 / 7) + d * 300))
    assert counted_flops_per_unit(get_family("lstm"), shape, rows=3) == pytest.approx(lstm.flops_per_token(shape))


def test_flop_counter_does_not_count_torch_fused_lstm_on_cpu():
    """Why lstm.py spells the cell out: if torch ever counts nn.LSTM, the module docstring must change."""
    m = torch.nn.LSTM(8, 8, batch_first=True)
    with FlopCounterMode(display=False) as counter:
        m(torch.randn(2, 5, 8))[0].sum().backward()
    assert counter.get_total_flops() == 0


def test_cnn_odd_image_size_and_one_stage():
    fam = get_family("cnn")
    for shape in (cnn.make_shape(width=16, blocks=2, image_size=15, channels=1, num_classes=3),
                  cnn.make_shape(width=8, blocks=1, stages=1, image_size=5)):
        assert sum(p.numel() for p in fam.build(shape).parameters()) == cnn.params_total(shape)
        assert counted_flops_per_unit(fam, shape, rows=1) == pytest.approx(cnn.flops_per_token(shape))


def test_cnn_flops_by_hand_for_the_debug_net():
    s = cnn.make_shape(width=8, blocks=1, image_size=16, channels=3, num_classes=10)
    conv = lambda k, ci, co, hw: 2 * k * k * ci * co * hw  # noqa: E731
    fwd_rest = (conv(3, 8, 8, 256) * 2 + conv(3, 8, 16, 64) + conv(3, 16, 16, 64) + conv(1, 8, 16, 64)
                + conv(3, 16, 32, 16) + conv(3, 32, 32, 16) + conv(1, 16, 32, 16) + 2 * 32 * 10)
    assert cnn.flops_per_token(s) == 2 * conv(3, 3, 8, 256) + 3 * fwd_rest
    assert s.label == "R8-w8" and s.depth == 8


@pytest.mark.parametrize("name,targets", [("lstm", (3e4, 3e5, 3e6, 3e7)), ("cnn", (1e5, 1e6, 1e7)),
                                          ("mlp", (1e3, 1e4, 1e5, 1e6, 1e7))])
def test_size_rules_land_near_the_target(name, targets):
    family = get_family(name)
    for target in targets:
        shape = family.shape_for_params(target, **CONTEXTS[name])
        assert 0.6 < family.params(shape) / target < 1.6, (target, shape)
    big, small = (family.shape_for_params(t, **CONTEXTS[name]) for t in (targets[-1], targets[0]))
    assert family.params(big) > family.params(small)


def test_cnn_rule_grows_width_faster_than_depth():
    small, big = cnn.shape_for_params(1e5), cnn.shape_for_params(1e7)
    width_growth, depth_growth = big.width / small.width, big.blocks / small.blocks
    assert 2 * math.log(width_growth) > math.log(depth_growth) > 0  # params ∝ blocks · width²
    assert big.blocks == round((1e7 / cnn.params(cnn.make_shape(width=8, blocks=1))) ** 0.25)


@pytest.mark.parametrize("name", ["lstm", "cnn", "mlp"])
def test_flavours_grow_and_debug_is_tiny(name):
    family = get_family(name)
    sizes = [family.params(family.shape_from_flavour(f, **CONTEXTS[name])) for f in family.flavours]
    assert sizes[0] < 30_000
    assert "debug" in family.flavours
    if name != "cnn":  # the cnn list interleaves the ResNet-20/56 reference shapes
        assert sizes == sorted(sizes)


@pytest.mark.parametrize("name,bad,field", [
    ("lstm", dict(n_layer=0, d_model=8), "n_layer"),
    ("lstm", dict(n_layer=1, d_model=8, n_head=2), "n_head"),
    ("cnn", dict(width=12, blocks=1), "width"),
    ("cnn", dict(width=8, blocks=1, stages=4, image_size=4), "image_size"),
    ("mlp", dict(n_layer=2), "width"),
    ("mlp", dict(n_layer=2, width=8, num_classes=1), "num_classes"),
])
def test_bad_shapes_name_the_field(name, bad, field):
    with pytest.raises(ConfigError, match=field):
        get_family(name).make_shape(**bad)


def test_families_register_with_their_task_and_unit():
    expected = {"lstm": ("text", "tokens"), "cnn": ("images", "samples"), "mlp": ("teacher", "samples")}
    for name, (task, unit) in expected.items():
        fam = get_family(name.upper())  # case-insensitive
        assert (fam.task, fam.unit) == (task, unit)


def test_losses_are_nats_per_unit_at_initialisation():
    """An untrained classifier over K classes starts near log K: the loss is a per-unit mean in nats."""
    for name, k in (("lstm", 256), ("mlp", 10), ("cnn", 10)):
        fam = get_family(name)
        shape = fam.shape_from_flavour("debug", **CONTEXTS[name])
        torch.manual_seed(0)
        x, y = fam.example_batch(shape, 8)
        with torch.no_grad():
            value = float(fam.loss(fam.build(shape)(x), y))
        assert abs(value - math.log(k)) < 0.5 * math.log(k)
