"""Llama family: exact parameter counts and analytic FLOPs for every option, RoPE against a reference, the
depth rule, the estimator's presets, and FSDP2 over two gloo ranks."""

from __future__ import annotations

import math

import pytest
import torch

import scalebench
from scalebench.config import load_sweep
from scalebench.families import get_family
from scalebench.families.llama import (
    activation_values_per_token,
    flops_per_token,
    make_shape,
    matmul_params,
    params,
    params_nonembedding,
    params_total,
    swiglu_width,
)
from scalebench.planning.presets import ARCHITECTURES, get_architecture
from scalebench.profiling.flops import count_flops_per_unit

FAMILY = get_family("llama")
OPTIONS = [dict(), dict(n_kv_head=2), dict(n_kv_head=1, qk_norm=True), dict(tie_embeddings=True),
           dict(z_loss=1e-4, qk_norm=True, n_kv_head=2)]


def _counted(shape) -> int:
    return sum(p.numel() for p in FAMILY.build(shape).parameters())


@pytest.mark.parametrize("options", OPTIONS)
def test_params_are_the_built_module_for_every_option(options):
    shape = make_shape(n_layer=2, d_model=64, n_head=4, vocab_size=300, seq_len=32, **options)
    model = FAMILY.build(shape)
    assert sum(p.numel() for p in model.parameters()) == params_total(shape)
    emb = 300 * 64
    untied = not shape.tie_embeddings
    assert params(shape) == params_total(shape) - (emb if untied else 0)
    assert params_nonembedding(shape) == params(shape) - emb
    # by hand: wq, wo 64x64; wk, wv 64 x (kv·16); SwiGLU 3·64·f; two norms (+ q/k norms over 16)
    kv = shape.kv_heads
    block = 2 * 64 * 64 + 2 * 64 * kv * 16 + 3 * 64 * swiglu_width(64) + 2 * 64 + (2 * 16 if shape.qk_norm else 0)
    assert params_total(shape) == 2 * block + 64 + emb * (2 if untied else 1)


@pytest.mark.parametrize("options", OPTIONS)
@pytest.mark.parametrize("seq_len", [16, 64])
def test_analytic_flops_equal_the_flop_counter_under_the_math_backend(options, seq_len):
    shape = make_shape(n_layer=2, d_model=64, n_head=4, vocab_size=300, seq_len=seq_len, **options)
    torch.manual_seed(0)
    counted = count_flops_per_unit(FAMILY, shape, FAMILY.build(shape), rows=2)
    assert counted == pytest.approx(flops_per_token(shape), rel=1e-9)
    # grouped K/V heads shrink wk and wv only: the attention term is the full 12·L·T·d
    assert flops_per_token(shape) == 6 * matmul_params(shape) + 12 * 2 * seq_len * 64


def test_flavours_are_named_by_depth_and_debug_is_tiny():
    for name in FAMILY.flavours:
        shape = FAMILY.shape_from_flavour(name, vocab_size=4096, seq_len=64)
        if name != "debug":
            assert shape.n_layer == int(name[1:]) and shape.d_model == 64 * shape.n_layer
            assert shape.head_dim in (32, 64)
    debug = FAMILY.shape_from_flavour("debug", vocab_size=256, seq_len=64)
    assert params_total(debug) < 100_000 and debug.kv_heads < debug.n_head


def test_kv_heads_rule_takes_the_largest_divisor_and_an_explicit_count_wins():
    assert make_shape(depth=12, kv_heads=8).kv_heads == 6  # 12 heads: 6 divides, 8 does not
    assert make_shape(depth=16, kv_heads=8).kv_heads == 8
    assert make_shape(depth=2, kv_heads=8).kv_heads == 4  # d 128: four heads of 32
    assert make_shape(n_layer=2, d_model=64, n_head=4, n_kv_head=2, kv_heads=1).kv_heads == 2
    with pytest.raises(scalebench.ConfigError, match="n_kv_head"):
        make_shape(n_layer=2, d_model=64, n_head=4, n_kv_head=3)
    with pytest.raises(scalebench.ConfigError, match="depth sets n_layer"):
        make_shape(depth=4, n_layer=3)
    with pytest.raises(scalebench.ConfigError, match="unknown field 'n_heads'"):
        make_shape(n_layer=2, d_model=64, n_heads=4)


@pytest.mark.parametrize("target", [3e5, 3e6, 3e7, 3e8])
def test_target_parameter_counts_land_near_the_target(target):
    shape = FAMILY.shape_for_params(target, vocab_size=32000, seq_len=256)
    assert 0.5 < params_nonembedding(shape) / target < 2.0  # the depth rule's grid: one step of depth


def _rotate_reference(x: torch.Tensor, theta: float) -> torch.Tensor:
    """RoPE by explicit 2x2 rotations of pair (i, i + q/2) at position m by angle m·theta^(-2i/q)."""
    seq, q = x.shape[-2], x.shape[-1]
    out = torch.empty_like(x, dtype=torch.float64)
    xd = x.double()
    for m in range(seq):
        for i in range(q // 2):
            a = m * theta ** (-2 * i / q)
            rot = torch.tensor([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]], dtype=torch.float64)
            pair = torch.stack([xd[..., m, i], xd[..., m, i + q // 2]], dim=-1)
            new = pair @ rot.T
            out[..., m, i], out[..., m, i + q // 2] = new[..., 0], new[..., 1]
    return out


def test_rope_equals_explicit_rotations_and_scores_depend_on_relative_position():
    from scalebench.families.llama_model import apply_rope, rope_tables

    torch.manual_seed(0)
    x = torch.randn(2, 3, 10, 8)
    cos, sin = rope_tables(10, 8, 500.0)
    torch.testing.assert_close(apply_rope(x, cos, sin).double(), _rotate_reference(x, 500.0), rtol=1e-5, atol=1e-5)
    # the same query and key at positions (m, n) and (m + 3, n + 3) score the same
    q, k = torch.randn(8), torch.randn(8)
    seq = torch.stack([q, k] * 5).view(1, 1, 10, 8)
    r = apply_rope(seq, cos, sin)[0, 0]
    assert float(r[0] @ r[1]) == pytest.approx(float(r[6] @ r[7]), rel=1e-4)
    assert float(r[0] @ r[1]) != pytest.approx(float(r[0] @ r[7]), rel=1e-2)


def test_z_loss_enters_training_only():
    shape = make_shape(n_layer=1, d_model=32, n_head=2, vocab_size=64, seq_len=8, z_loss=1e-2)
    model = FAMILY.build(shape)
    x, y = FAMILY.example_batch(shape, 2)
    with torch.no_grad():
        train_loss = float(FAMILY.loss(model(x), y))
    model.eval()
    with torch.no_grad():
        logits = model(x)
    ce = float(torch.nn.functional.cross_entropy(logits.view(-1, 64), y.reshape(-1)))
    z = float(torch.logsumexp(logits, -1).pow(2).mean())
    assert float(FAMILY.loss(logits, y)) == pytest.approx(ce)
    assert train_loss == pytest.approx(ce + 1e-2 * z, rel=1e-5)


LLAMA_PRESETS = [name for name, arch in ARCHITECTURES.items() if arch.family == "llama"]


def _preset_fields(a) -> dict:
    return dict(n_layer=a.n_layer, d_model=a.d_model, n_head=a.n_head, n_kv_head=a.n_kv_head, d_ff=a.d_ff,
                vocab_size=a.vocab_size, seq_len=a.seq_len)


@pytest.mark.parametrize("preset", LLAMA_PRESETS)
def test_a_llama_preset_and_the_family_give_the_same_params_and_flops(preset):
    from scalebench.planning.estimate import estimate

    a = get_architecture(preset)
    shape = make_shape(**_preset_fields(a))
    assert a.params_exact == params_total(shape) == pytest.approx(a.params, rel=1e-2)  # papers round: 6.7B, 405B
    assert a.flops_per_token() == flops_per_token(shape)
    by_preset = estimate(model=preset, tokens=1e9, gpu="H100-SXM", num_gpus=8)
    by_family = estimate(family="llama", tokens=1e9, gpu="H100-SXM", num_gpus=8, **_preset_fields(a))
    assert by_preset.params == by_preset.params_total == by_family.params_total == params_total(shape)
    assert by_family.params == params(shape)  # the family's law count (non-embedding + head) beside it
    assert by_preset.flops == by_family.flops == flops_per_token(shape) * 1e9
    # and the same memory: SwiGLU and grouped K/V heads known on both paths
    assert by_preset.memory_per_gpu.activations == by_family.memory_per_gpu.activations
    # what the papers' 6·N over every weight adds: the untied embedding's lookup and the norm weights
    vd, norms = a.vocab_size * a.d_model, (2 * a.n_layer + 1) * a.d_model
    six_n = 6 * params_total(shape) + 12 * a.n_layer * a.seq_len * a.n_head * (a.d_model // a.n_head)
    assert six_n - a.flops_per_token() == 6 * (vd + norms)
    assert swiglu_width(a.d_model) == a.d_ff or preset != "llama2-7b"


def test_a_preset_given_a_count_within_rounding_keeps_the_shapes_exact_count_and_flops():
    from scalebench.planning.estimate import estimate

    exact = estimate(model="llama2-7b", tokens=1e9, gpu="H100-SXM")
    given = estimate(model="llama2-7b", params=6.74e9, tokens=1e9, gpu="H100-SXM")
    assert given.params == exact.params == 6_738_415_616 and given.flops == exact.flops


def test_memory_model_grows_with_the_micro_batch_and_counts_the_states():
    shape = FAMILY.shape_from_flavour("d12", vocab_size=32000, seq_len=1024)
    one, eight = FAMILY.memory_model(shape, 1, "bf16"), FAMILY.memory_model(shape, 8, "bf16")
    assert eight > one > 16 * params_total(shape)
    # the trainer's states (fp32 weights under autocast: 16 bytes a parameter) and 2-byte bf16 activations
    acts = 1024 * (activation_values_per_token(shape) * 2 + 4 * shape.vocab_size)
    assert one == int(16 * params_total(shape) + acts)


@pytest.mark.parametrize("options", [dict(), dict(n_kv_head=2, qk_norm=True), dict(n_kv_head=1, tie_embeddings=True)])
def test_activation_count_is_what_autograd_keeps_by_torch_memtracker(options):
    """torch's MemTracker on a real llama step on CPU (fp32): parameters, gradients and AdamW state as the
    memory model counts them, and the activations at the peak of forward + backward to the byte, less the
    loss scalar (SwiGLU's four tensors, grouped K/V, QK-norm)."""
    mem_tracker = pytest.importorskip("torch.distributed._tools.mem_tracker")
    torch.manual_seed(0)
    shape = make_shape(n_layer=2, d_model=64, n_head=4, vocab_size=256, seq_len=64, **options)
    model, rows = FAMILY.build(shape), 2
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randint(0, shape.vocab_size, (rows, shape.seq_len))
    FAMILY.loss(model(x), x).backward()
    opt.step()
    opt.zero_grad(set_to_none=False)
    tracker = mem_tracker.MemTracker()
    tracker.track_external(model, opt)
    with tracker:
        FAMILY.loss(model(x), x).backward()
    (by_type,) = tracker.get_tracker_snapshot("peak").values()
    peak = {str(k).rsplit(".", 1)[-1]: v for k, v in by_type.items()}
    acts = rows * shape.seq_len * (activation_values_per_token(shape) * 4 + 4 * shape.vocab_size)
    assert 0 <= peak["ACT"] - acts <= 8  # the loss scalar
    n_tensors = len(list(model.parameters()))
    states = peak["PARAM"] + peak["GRAD"] + peak["OPT"] - 4 * n_tensors  # AdamW's per-tensor step counts
    assert states == 16 * params_total(shape)
    assert FAMILY.memory_model(shape, rows, "fp32") == int(states + acts)


def test_the_estimator_counts_a_llama_rows_mlp_as_swiglu_with_its_grouped_kv_heads():
    from scalebench.memory import activation_bytes
    from scalebench.planning.estimate import estimate

    fields = dict(n_layer=4, d_model=256, n_head=4, n_kv_head=2, vocab_size=4096, seq_len=512)
    shape = make_shape(**fields)
    e = estimate(family="llama", tokens=1e9, gpu="H100-SXM", num_gpus=1, micro_batch=2, checkpointing="none",
                 **fields)
    swiglu = activation_bytes(n_layer=4, d_model=256, n_head=4, n_kv_head=2, d_ff=shape.ffn, swiglu=True,
                              seq_len=512, micro_batch=2, vocab_size=4096, checkpointing="none")
    assert e.memory_per_gpu.activations == pytest.approx(float(swiglu))


def test_the_reports_memory_comparison_models_llama_rows_by_the_familys_memory_model():
    import pandas as pd

    from scalebench.planning.targets import modelled_memory_bytes

    llama = make_shape(n_layer=2, d_model=64, n_head=4, n_kv_head=2, qk_norm=True, vocab_size=512, seq_len=128)
    rows = pd.DataFrame([
        {"family": "llama", **llama.as_dict(), "micro_batch": 4, "precision": "bf16", "tokens": 1e6},
        {"family": "gpt", "n_layer": 2, "d_model": 64, "n_head": 4, "vocab_size": 512, "seq_len": 128,
         "micro_batch": 4, "precision": "bf16", "tokens": 1e6, "n_kv_head": None, "qk_norm": None},
        {"family": "llama", "n_layer": 2, "d_model": 64, "micro_batch": 4, "precision": "bf16", "tokens": 1e6},
        {"family": "not-installed", "n_layer": 2, "micro_batch": 4, "precision": "bf16", "tokens": 1e6},
    ])
    got = modelled_memory_bytes(rows)
    assert got[0] == FAMILY.memory_model(llama, 4, "bf16")
    assert got[1] > 0  # GPT rows: the estimator, as before
    assert math.isnan(got[2]) and math.isnan(got[3])  # no n_head recorded; a family not installed here


def test_llama_sweep_plans_with_model_llama_options(write_sweep):
    path = write_sweep(name="ll", tokens="[8192]")
    text = path.read_text().replace('family = "gpt"', 'family = "llama"').replace(
        'sizes = ["debug", "100k"]', 'sizes = ["debug", "d2"]\n[model.llama]\nkv_heads = 2\nqk_norm = true')
    path.write_text(text)
    from scalebench.sweep.planner import plan_runs

    runs = plan_runs(load_sweep(path)).runs
    d2 = next(r for r in runs if r.size == "d2")
    assert d2.shape["n_kv_head"] == 2 and d2.shape["qk_norm"] and not d2.shape["tie_embeddings"]
    assert d2.params_total == params_total(make_shape(**d2.shape))


@pytest.mark.slow
def test_two_rank_fsdp_over_llama_blocks_follows_the_one_rank_curve(write_sweep, tmp_path):
    from scalebench.sweep.planner import plan_runs
    from scalebench.sweep.runner import run_sweep
    from scalebench.train import train

    path = write_sweep(name="llfsdp", tokens="[8192]", workers=1)
    text = path.read_text().replace('family = "gpt"', 'family = "llama"').replace(
        'sizes = ["debug", "100k"]', 'shapes = [{n_layer = 2, d_model = 32, n_head = 2, n_kv_head = 1}, '
                                     '{n_layer = 1, d_model = 16, n_head = 1}]')
    text = text.replace('compile = "off"', 'compile = "off"\nmicro_batch = 4')
    path.write_text(text + '\n[parallel]\nranks = 2\nstrategy = "fsdp"\n')
    outcome = run_sweep(path, tmp_path / "fsdp")
    assert outcome.counts == {"done": 2}
    df = scalebench.load_results(tmp_path / "fsdp").set_index("run_id")
    assert set(df.strategy) == {"fsdp"} and set(df.world_size) == {2}
    run = next(r for r in plan_runs(load_sweep(path)).runs if r.size == "L2-d32-h2-kv1")
    one = train(run.__class__.from_dict({**run.to_dict(), "parallel": {"ranks": 1, "strategy": "auto"},
                                         "run_dir": str(tmp_path / "one")}))
    assert df.loc[run.run_id, "eval_loss"] == pytest.approx(one.eval_loss, rel=1e-4)


def test_the_estimator_takes_a_llama_shape_with_grouped_kv_heads_from_the_family():
    from scalebench.planning.estimate import estimate

    a = get_architecture("llama3-8b")
    fields = dict(n_layer=a.n_layer, d_model=a.d_model, n_head=a.n_head, n_kv_head=a.n_kv_head, d_ff=a.d_ff,
                  vocab_size=a.vocab_size, seq_len=a.seq_len)
    shape = make_shape(**fields)
    e = estimate(family="llama", tokens=1e9, gpu="H100-SXM", **fields)
    assert e.params == params(shape) and e.flops == pytest.approx(flops_per_token(shape) * 1e9)
    # and the preset's own numbers: every weight of the same shape, the same FLOPs
    preset = estimate(model="llama3-8b", tokens=1e9, gpu="H100-SXM")
    assert preset.params == params_total(shape) and preset.flops == e.flops
