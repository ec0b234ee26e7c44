"""Memory model: formulas against hand computations, sharding properties, and measured activations."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scalebench import memory as mem
from scalebench.planning.estimate import estimate


def test_mixed_precision_adamw_bytes_per_param_by_framework():
    m = mem.memory_per_gpu(params_total=7e9, num_gpus=1, precision="bf16", optimizer="adamw", zero=0,
                           allocator_overhead=0.0, context_bytes=0.0, framework="zero")
    assert (m["weights"], m["gradients"], m["optimizer"]) == (14e9, 14e9, 84e9)  # ZeRO's 2 + 2 + 12 bytes
    assert m["total"] == 112e9
    megatron = mem.memory_per_gpu(params_total=7e9, num_gpus=1, zero=0, allocator_overhead=0.0, context_bytes=0.0)
    assert megatron["total"] == 7e9 * 18  # Megatron-LM's own table: bf16 params, fp32 grads = 18 bytes


@pytest.mark.parametrize("precision,optimizer,framework,expected", [
    ("fp32", "adamw", "megatron", (4, 4, 8)), ("fp32", "sgd", "megatron", (4, 4, 4)),
    ("bf16", "sgd", "zero", (2, 2, 8)), ("fp8", "adamw", "megatron", (3, 4, 12)),
    ("bfloat16", "Adam", "zero", (2, 2, 12)), ("bf16", "adamw", "megatron", (2, 4, 12)),
    ("bf16", "adamw", "deepspeed", (2, 4, 12)), ("bf16", "adamw", "fsdp2", (4, 4, 8)),
    ("bf16", "adamw", "autocast", (4, 4, 8)),
])
def test_state_bytes_per_param(precision, optimizer, framework, expected):
    assert mem.state_bytes_per_param(precision, optimizer, framework) == expected


def test_gradient_and_master_overrides():
    assert mem.state_bytes_per_param("bf16", "adamw", "megatron", grad_dtype="bf16") == (2, 2, 12)
    assert mem.state_bytes_per_param("bf16", "adamw", "megatron", master_dtype="none") == (2, 4, 8)
    e = estimate(params=7e9, tokens=1e12, gpu="H100", num_gpus=8, zero=0, tp=1, pp=1, grad_dtype="bf16")
    f = estimate(params=7e9, tokens=1e12, gpu="H100", num_gpus=8, zero=0, tp=1, pp=1)
    assert f.memory_per_gpu.gradients == pytest.approx(2 * e.memory_per_gpu.gradients)


def test_first_pipeline_stage_holds_the_embedding():
    """Megatron puts the V·h embedding on the first stage beside its share of the layers."""
    kw = dict(model="llama2-7b", tokens=1e12, gpu="H100", num_gpus=8, tp=1, zero=0)
    one = estimate(**kw, pp=1)
    four = estimate(**kw, pp=4)
    emb = 32000 * 4096
    assert four.memory_per_gpu.weights == pytest.approx(2 * ((one.params_total - emb) / 4 + emb), rel=1e-6)


@pytest.mark.parametrize("zero,expected", [
    (0, (14e9, 14e9, 84e9)), (1, (14e9, 14e9, 21e9)), (2, (14e9, 3.5e9, 21e9)), (3, (3.5e9, 3.5e9, 21e9)),
    ("fsdp", (3.5e9, 3.5e9, 21e9)),
])
def test_zero_stages_shard_over_data_parallel(zero, expected):
    m = mem.memory_per_gpu(params_total=7e9, num_gpus=4, zero=mem.parse_zero(zero), allocator_overhead=0.0,
                           context_bytes=0.0, framework="zero")
    assert (m["weights"], m["gradients"], m["optimizer"]) == expected


def test_overhead_is_fraction_plus_context():
    m = mem.memory_per_gpu(params_total=1e9, num_gpus=1, zero=0, activations=4e9, allocator_overhead=0.1,
                           context_bytes=1e9, framework="zero")
    assert m["overhead"] == pytest.approx(0.1 * (16e9 + 4e9) + 1e9)
    assert m["total"] == pytest.approx(16e9 + 4e9 + 3e9)


# Korthikanti et al. 2022 by hand: s=16, b=2, h=64, a=4, L=2, V=100 -> sbh = 2048
KW = dict(n_layer=2, d_model=64, n_head=4, seq_len=16, micro_batch=2, vocab_size=100)
OUTSIDE = 2048 + 4 * 2048 * (1 + 100 / 64)  # embedding dropout mask + output layer and fp32 logits


@pytest.mark.parametrize("ckpt,flash,expected", [
    ("none", False, 2 * (34 * 2048 + 5 * 4 * 16 * 16 * 2) + OUTSIDE),  # s·b·h·(34 + 5as/h) per layer
    ("none", True, 2 * 34 * 2048 + OUTSIDE),  # flash attention: no score term
    ("selective", False, 2 * 34 * 2048 + OUTSIDE),  # selective recompute drops the same term
    ("full", True, 2 * 2 * 2048 + 34 * 2048 + OUTSIDE),  # layer inputs + one layer rebuilt
    ("full", False, 2 * 2 * 2048 + 34 * 2048 + 5 * 4 * 16 * 16 * 2 + OUTSIDE),
])
def test_activation_formula_by_hand(ckpt, flash, expected):
    got = mem.activation_bytes(**KW, checkpointing=ckpt, flash_attention=flash, dropout=0.1)
    assert float(got) == pytest.approx(expected)


def test_no_dropout_keeps_no_masks():
    """Without dropout: 32·sbh per layer (no 1-byte masks), 2as² of softmax output, no embedding mask."""
    got = mem.activation_bytes(**KW, checkpointing="none", flash_attention=False)
    assert float(got) == pytest.approx(2 * (32 * 2048 + 2 * 4 * 16 * 16 * 2) + 4 * 2048 + 4 * 16 * 2 * 100)


def test_fp32_logits_counted_once():
    bf16 = mem.activation_bytes(**KW, checkpointing="none")
    fp32 = mem.activation_bytes(**KW, checkpointing="none", scale=2.0)
    logits = 4 * 16 * 2 * 100
    assert float(fp32) == pytest.approx(2 * (float(bf16) - logits) + logits)


def test_activation_generalisations_reduce_to_34():
    base = mem.activation_bytes(**KW, checkpointing="none", d_ff=256, n_kv_head=4, dropout=0.1)
    assert float(base) == pytest.approx(2 * 34 * 2048 + OUTSIDE)
    gqa = mem.activation_bytes(**KW, checkpointing="none", n_kv_head=1, dropout=0.1)  # K and V shrink 4x: 11 -> 8
    assert float(base - gqa) == pytest.approx(2 * 2048 * 4 * (1 - 0.25))


def test_min_gpus_closed_form():
    # 16 bytes/param sharded (ZeRO-3), 10 GB activations, 80 GB card, no overhead: n >= 112e9 / 70e9 -> 2
    n = mem.min_gpus_to_fit(params_total=7e9, capacity_bytes=80e9, w=2, g=2, o=12, zero=3, activations=10e9,
                            allocator_overhead=0.0, context_bytes=0.0)
    assert float(n) == 2
    never = mem.min_gpus_to_fit(params_total=7e9, capacity_bytes=80e9, w=2, g=2, o=12, zero=0, activations=10e9,
                                allocator_overhead=0.0, context_bytes=0.0)
    assert np.isnan(never)  # unsharded 112 GB never fits


@settings(max_examples=60, deadline=None)
@given(params=st.floats(1e6, 5e11), n=st.integers(1, 4096), extra=st.integers(1, 4096),
       zero=st.sampled_from([0, 1, 2, 3]), ckpt=st.sampled_from(["none", "selective", "full"]),
       micro=st.integers(1, 16))
def test_more_gpus_never_raise_memory_per_gpu(params, n, extra, zero, ckpt, micro):
    # under one layout (pure data parallelism, a batch that feeds every rank) and one ZeRO stage
    kw = dict(params=params, tokens=1e9, gpu="H100-SXM", zero=zero, checkpointing=ckpt, micro_batch=micro,
              tp=1, pp=1, cp=1, global_batch=2**20)
    a, b = estimate(num_gpus=n, **kw), estimate(num_gpus=n + extra, **kw)
    assert b.memory_per_gpu.total <= a.memory_per_gpu.total * (1 + 1e-12)
    if a.fits:
        assert b.fits


@settings(max_examples=60, deadline=None)
@given(params=st.floats(1e6, 5e11), n=st.integers(1, 4096), extra=st.integers(1, 4096),
       zero=st.sampled_from([0, 1, 2, 3]), micro=st.integers(1, 16))
def test_more_gpus_under_auto_checkpointing_never_raise_time(params, n, extra, zero, micro):
    # auto takes the least recomputation that fits: memory per GPU may rise a little with more GPUs (a
    # lighter mode now fits), but the time never rises and a run that fit still fits (estimate's docstring)
    kw = dict(params=params, tokens=1e9, gpu="H100-SXM", zero=zero, checkpointing="auto", micro_batch=micro,
              tp=1, pp=1, cp=1, global_batch=2**20)
    a, b = estimate(num_gpus=n, **kw), estimate(num_gpus=n + extra, **kw)
    assert b.wall_clock_s <= a.wall_clock_s * (1 + 1e-9)
    if a.fits:
        assert b.fits and b.memory_per_gpu.total <= b.usable_memory_bytes


def test_auto_memory_may_rise_while_time_falls():
    kw = dict(params=13e9, tokens=1e12, gpu="H100-SXM", micro_batch=2, zero=3, tp=1, pp=1, cp=1, framework="zero",
              dropout=0.1)
    four, eight = estimate(num_gpus=4, **kw), estimate(num_gpus=8, **kw)
    assert (four.checkpointing, eight.checkpointing) == ("full", "none")
    assert four.fits and eight.fits
    assert eight.memory_per_gpu.total > four.memory_per_gpu.total  # 58.5 vs 57.7 GiB: stated, not a bug
    assert eight.wall_clock_s < four.wall_clock_s / 2  # twice the GPUs and no recomputation
    for mode in ("none", "selective", "full"):  # within one mode the memory property holds
        a, b = estimate(num_gpus=4, checkpointing=mode, **kw), estimate(num_gpus=8, checkpointing=mode, **kw)
        assert b.memory_per_gpu.total <= a.memory_per_gpu.total


def test_min_gpus_is_least_that_fits():
    e = estimate(params=70e9, tokens=1e12, gpu="A100-80GB", checkpointing="full", zero=3, tp=1, pp=1, cp=1)
    assert e.fits and e.min_gpus == e.num_gpus and e.min_gpus > 1
    below = estimate(params=70e9, tokens=1e12, gpu="A100-80GB", checkpointing="full", zero=3, tp=1, pp=1, cp=1,
                     num_gpus=e.min_gpus - 1)
    assert not below.fits and below.notes and "does not fit" in below.notes[0]


def test_measured_model_states_on_cpu():
    """Weights, gradients and AdamW state of a real model, measured on CPU (fp32), match 4 + 4 + 8 bytes."""
    torch = pytest.importorskip("torch")
    from scalebench.families import get_family
    from scalebench.families.gpt import GPTShape, build, params_total

    shape = GPTShape(n_layer=2, d_model=64, n_head=4, vocab_size=256, seq_len=32)
    model = build(shape)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randint(0, 256, (2, 32))
    loss = get_family("gpt").loss(model(x), x)
    loss.backward()
    opt.step()
    nbytes = lambda ts: sum(t.numel() * t.element_size() for t in ts)  # noqa: E731
    weights = nbytes(model.parameters())
    grads = nbytes(p.grad for p in model.parameters())
    state = nbytes(v for s in opt.state.values() for v in s.values() if torch.is_tensor(v) and v.dim() > 0)
    m = mem.memory_per_gpu(params_total=params_total(shape), num_gpus=1, precision="fp32", zero=0)  # any framework
    assert (weights, grads, state) == (m["weights"], m["gradients"], m["optimizer"])


def test_measured_activations_on_cpu():
    """Bytes saved for backward by a real GPT forward (fp32, CPU, SDPA), against Korthikanti with flash
    attention. The family has no dropout (Korthikanti's 34 counts two 1-byte masks), so expect ~0.85-0.95."""
    torch = pytest.importorskip("torch")
    from scalebench.families import get_family
    from scalebench.families.gpt import GPTShape, build

    L, d, h, V, T, B = 4, 128, 4, 256, 128, 4
    torch.manual_seed(0)
    model = build(GPTShape(n_layer=L, d_model=d, n_head=h, vocab_size=V, seq_len=T))
    weights = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved: dict[int, int] = {}

    def pack(t):
        s = t.untyped_storage()
        if s.data_ptr() not in weights:
            saved[s.data_ptr()] = max(saved.get(s.data_ptr(), 0), s.nbytes())
        return t

    x = torch.randint(0, V, (B, T))
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        get_family("gpt").loss(model(x), x)
    predicted = float(mem.activation_bytes(n_layer=L, d_model=d, n_head=h, seq_len=T, micro_batch=B, vocab_size=V,
                                           checkpointing="none", flash_attention=True, scale=2.0))
    ratio = sum(saved.values()) / predicted
    assert 0.75 < ratio < 1.05, ratio


# One H200, bf16 autocast, fused AdamW, torch.compile, vocab 50304, seq 1024: max_memory_allocated from
# /work/shared/baselines/h200-plain-loop.json (plain_loop.py). Model states are 16 bytes/param either way.
H200_COMPILED = [  # (L, d, heads, batch, peak bytes)
    (12, 768, 12, 32, 16244417536), (24, 1024, 16, 16, 21410900992), (36, 1280, 20, 16, 40108241920),
]


@pytest.mark.parametrize("L,d,heads,batch,peak", H200_COMPILED)
def test_against_h200_measured_peak(L, d, heads, batch, peak):
    e = estimate(family="gpt", n_layer=L, d_model=d, n_head=heads, vocab_size=50304, seq_len=1024,
                 micro_batch=batch, tokens=1e9, gpu="H200", num_gpus=1, zero=0, checkpointing="none")
    m = e.memory_per_gpu
    allocated = m.weights + m.gradients + m.optimizer + m.activations
    assert 0.8 < allocated / peak < 1.35  # model / measured: 1.17, 1.06, 1.03


@pytest.mark.parametrize("L,d,heads,V,T,B", [
    (2, 64, 4, 256, 64, 2),
    pytest.param(4, 128, 4, 256, 128, 4, marks=pytest.mark.slow),  # MemTracker dispatches every op in Python
    pytest.param(3, 96, 3, 512, 96, 3, marks=pytest.mark.slow),
])
def test_memory_model_against_torch_memtracker(L, d, heads, V, T, B):
    """torch's MemTracker (torch.distributed._tools.mem_tracker) on a real GPT step on CPU, per component:
    parameters, gradients and AdamW state exactly (fp32: 4 + 4 + 8 bytes; PyTorch adds a 4-byte step count
    per parameter tensor), activations at the peak of forward + backward within 5% of the model (fp32, no
    dropout, SDPA: flash-style, fp32 logits once)."""
    torch = pytest.importorskip("torch")
    mem_tracker = pytest.importorskip("torch.distributed._tools.mem_tracker")
    from scalebench.families import get_family
    from scalebench.families.gpt import GPTShape, build, params_total

    torch.manual_seed(0)
    shape = GPTShape(n_layer=L, d_model=d, n_head=heads, vocab_size=V, seq_len=T)
    model = build(shape)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randint(0, V, (B, T))
    loss_fn = get_family("gpt").loss

    def components(snapshot):
        (by_type,) = snapshot.values()
        return {str(k).rsplit(".", 1)[-1]: v for k, v in by_type.items()}

    states = mem_tracker.MemTracker()
    states.track_external(model, opt)
    with states:
        loss_fn(model(x), x).backward()
        opt.step()
    after = components(states.get_tracker_snapshot())
    opt.zero_grad(set_to_none=False)
    acts = mem_tracker.MemTracker()
    acts.track_external(model, opt)
    with acts:
        loss_fn(model(x), x).backward()
    peak = components(acts.get_tracker_snapshot("peak"))

    P = params_total(shape)
    w, g, o = mem.state_bytes_per_param("fp32", "adamw")
    n_tensors = len(list(model.parameters()))
    assert after["PARAM"] == P * w and after["GRAD"] == P * g
    assert after["OPT"] == P * o + 4 * n_tensors  # m and v, plus AdamW's per-tensor step count
    modelled = float(mem.activation_bytes(n_layer=L, d_model=d, n_head=heads, seq_len=T, micro_batch=B,
                                          vocab_size=V, checkpointing="none", flash_attention=True, scale=2.0))
    assert peak["ACT"] == pytest.approx(modelled, rel=0.05)
