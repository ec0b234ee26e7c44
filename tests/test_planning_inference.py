"""Inference estimates: KV-cache bytes of GQA/MQA/MLA models, weights by type, the bandwidth bound, the
largest batch, quantization and 2:4 sparsity, CLI = API."""

from __future__ import annotations

import json
import math

import pytest

from scalebench.cli import main
from scalebench.errors import ConfigError
from scalebench.hardware.catalog import get_gpu
from scalebench.planning import estimate
from scalebench.planning.inference import (
    DECODE_EFFICIENCY,
    MEMORY_UTILIZATION,
    estimate_inference,
    kv_cache_bytes,
    weight_bytes_per_param,
)

KEYS = ("weights_bytes", "kv_cache_bytes", "decode_tokens_per_s", "prefill_s", "max_batch", "usd_per_million_tokens")


def test_kv_cache_bytes_of_known_models():
    # Llama 2 7B (multi-head: 32 KV heads of 128): 2·32·32·128·2 = 512 KiB per token
    assert kv_cache_bytes(n_layer=32, n_kv_head=32, head_dim=128, context=1, batch=1) == 512 * 1024
    # Llama 2 70B (GQA, 8 KV heads): 2·80·8·128·2 = 320 KiB per token, 1.25 GiB per 4096-token sequence
    e = estimate_inference(model="llama2-70b", gpu="H100-SXM", num_gpus=4, context=4096, batch=1)
    assert e.kv_cache_bytes == 320 * 1024 * 4096 == 1.25 * 2**30
    # multi-query (PaLM 540B, one KV head of 256): 2·118·256·2 bytes per token
    palm = estimate_inference(model="palm-540b", gpu="H100-SXM", num_gpus=8, context=2048, batch=1, weights="int4")
    assert palm.kv_cache_bytes == 2 * 118 * 256 * 2 * 2048
    # DeepSeek-V3's latent cache: 61 layers x 576 elements; fp8 halves it
    ds = estimate_inference(model="deepseek-v3", gpu="H200", num_gpus=8, weights="fp8", context=4096, batch=1,
                            kv_dtype="fp8")
    assert ds.kv_cache_bytes == 61 * 576 * 1 * 4096


@pytest.mark.parametrize("weights,sparsity,expected", [
    ("bf16", None, 2.0), ("fp8", None, 1.0), ("int8", None, 1 + 2 / 128), ("int4", None, 0.5 + 2 / 128),
    ("bf16", "2:4", 1.125), ("int8", "2:4", 0.5 * (1 + 2 / 128) + 0.125),
])
def test_weight_bytes_per_param(weights, sparsity, expected):
    assert weight_bytes_per_param(weights, sparsity) == pytest.approx(expected)


def test_decode_is_bandwidth_bound_at_batch_one():
    e = estimate_inference(model="llama3-8b", gpu="H100-SXM", num_gpus=1, context=2048, batch=1)
    spec = get_gpu("H100-SXM")
    mean = (e.input_tokens + (e.output_tokens - 1) / 2) / e.context  # the cache grows over the generation
    bytes_per_step = 8.03e9 * 2 + e.kv_cache_bytes * mean
    assert e.bound == "memory-bandwidth"
    assert e.decode_tokens_per_s == pytest.approx(spec.bandwidth_bytes_per_s * DECODE_EFFICIENCY / bytes_per_step)
    # the bound: no estimate reads memory faster than the datasheet bandwidth
    assert e.decode_tokens_per_s * bytes_per_step <= spec.bandwidth_bytes_per_s
    # int4 weight-only: about 3.9x fewer weight bytes, so nearly that much faster at batch 1
    q = estimate_inference(model="llama3-8b", gpu="H100-SXM", num_gpus=1, context=2048, batch=1, weights="int4")
    from scalebench.planning.inference import DECODE_KERNELS_PER_LAYER
    from scalebench.planning.throughput import LAUNCH_S

    floor_s = 32 * DECODE_KERNELS_PER_LAYER * LAUNCH_S  # int4 weights stream faster than 384 kernels launch
    assert q.decode_tokens_per_s == pytest.approx(min(
        spec.bandwidth_bytes_per_s * DECODE_EFFICIENCY / (8.03e9 * (0.5 + 2 / 128) + q.kv_cache_bytes * mean),
        1 / floor_s))
    assert q.prefill_s == pytest.approx(e.prefill_s)  # weight-only: matmuls still in bf16


def test_weight_and_activation_quantization_speeds_prefill():
    bf = estimate_inference(model="llama3-70b", gpu="H100-SXM", num_gpus=8, batch=8)
    fp8 = estimate_inference(model="llama3-70b", gpu="H100-SXM", num_gpus=8, batch=8, weights="fp8")
    w8a8 = estimate_inference(model="llama3-70b", gpu="H100-SXM", num_gpus=8, batch=8, weights="int8",
                              activations="int8")
    assert fp8.activations == "fp8" and bf.prefill_s / 2 <= fp8.prefill_s < 0.75 * bf.prefill_s  # attention stays bf16
    assert w8a8.prefill_s == pytest.approx(fp8.prefill_s, rel=0.05)
    with pytest.raises(ConfigError, match="no fp8 matrix unit"):
        estimate_inference(model="llama3-8b", gpu="A100-80GB", weights="fp8")


def test_sparsity_only_where_the_card_accelerates_it():
    dense = estimate_inference(model="llama3-8b", gpu="H100-SXM", num_gpus=1, batch=4)
    sparse = estimate_inference(model="llama3-8b", gpu="H100-SXM", num_gpus=1, batch=4, sparsity="2:4")
    assert sparse.weights_bytes == pytest.approx(dense.weights_bytes * 1.125 / 2)
    assert dense.prefill_s / 2 <= sparse.prefill_s < dense.prefill_s
    with pytest.raises(ConfigError, match="does not accelerate 2:4"):
        estimate_inference(model="llama2-7b", gpu="V100-32GB", weights="fp16", sparsity="2:4")


def test_max_batch_is_the_largest_that_fits():
    e = estimate_inference(model="llama2-70b", gpu="H100-SXM", num_gpus=2, context=4096)
    assert e.batch == e.max_batch and e.fits and "batch" in e.defaults
    more = estimate_inference(model="llama2-70b", gpu="H100-SXM", num_gpus=2, context=4096, batch=e.max_batch + 1)
    assert not more.fits and any("does not fit" in n for n in more.notes)
    assert e.memory_per_gpu_bytes <= e.usable_memory_bytes * MEMORY_UTILIZATION
    # usd per million output tokens = hourly price of the GPUs / tokens per hour
    assert e.usd_per_million_tokens == pytest.approx(2 * e.price_usd_per_hour / 3600 / e.decode_tokens_per_s * 1e6)


def test_moe_decode_reads_only_touched_experts():
    one = estimate_inference(model="mixtral-8x7b", gpu="H100-SXM", num_gpus=2, batch=1, context=1024)
    spec = get_gpu("H100-SXM")
    dense = 46.7e9 - 32 * 8 * 3 * 4096 * 14336
    touched = dense + 32 * 8 * 3 * 4096 * 14336 * (1 - (1 - 2 / 8) ** 1)
    mean = (one.input_tokens + (one.output_tokens - 1) / 2) / one.context
    t_mem = (touched * 2 + one.kv_cache_bytes * mean) / (2 * spec.bandwidth_bytes_per_s * DECODE_EFFICIENCY)
    assert one.decode_step_s > t_mem and one.decode_step_s < t_mem * 1.1  # plus the tp all-reduces


def test_cli_and_api_agree_for_inference(capsys):
    argv = ["estimate", "--mode", "inference", "--model", "llama3-70b", "--gpu", "H200", "--weights", "fp8",
            "--context", "8192", "--batch", "16", "--json"]
    assert main(argv) == 0
    cli = json.loads(capsys.readouterr().out)
    api = estimate(mode="inference", model="llama3-70b", gpu="H200", weights="fp8", context=8192, batch=16).to_dict()
    assert cli == api and all(cli[k] is not None for k in KEYS)
    assert main(["estimate", "--mode", "inference", "--model", "llama3-8b", "--gpu", "H100-SXM"]) == 0
    text = capsys.readouterr().out
    assert "tokens/s" in text and "per million output tokens" in text and "Lambda" in text  # price source


def test_cli_rejects_mixed_modes(capsys):
    assert main(["estimate", "--mode", "inference", "--model", "llama3-8b", "--gpu", "H100-SXM", "--tokens", "1e9"]) == 2
    assert "--tokens" in capsys.readouterr().err
    assert main(["estimate", "--model", "llama3-8b", "--gpu", "H100-SXM", "--weights", "int4"]) == 2
    assert "--mode inference" in capsys.readouterr().err


def test_workload_ttft_tpot_and_json_meanings():
    e = estimate_inference(model="llama2-70b", gpu="H100", num_gpus=4, batch=64, input_tokens=2048, output_tokens=2048)
    assert e.context == 4096 and e.input_tokens == 2048
    d = e.to_dict()
    # prefill_s is the batch's prefill (= time to first token); latency_s is prefill plus every output step
    assert d["prefill_s"] == d["ttft_s"] and d["decode_step_s"] == d["tpot_s"]
    assert d["latency_s"] == pytest.approx(d["prefill_s"] + 2048 * d["decode_step_s"])
    assert d["tokens_per_s_per_gpu"] == pytest.approx(64 * 2048 / d["latency_s"] / 4)
    # the KV cache grows over the generation: longer outputs from the same prompt cost more per step
    longer = estimate_inference(model="llama2-70b", gpu="H100", num_gpus=4, batch=64, input_tokens=2048,
                                output_tokens=4096)
    assert longer.decode_step_s > e.decode_step_s
    with pytest.raises(ConfigError, match="not input_tokens"):
        estimate_inference(model="llama2-7b", gpu="H100", input_tokens=100, output_tokens=10, context=4096)


def test_tensor_parallel_allreduce_latency_from_nccls_model():
    from scalebench.planning.inference import AR_BASE_LATENCY_S, AR_STEP_LATENCY_S, allreduce_s

    assert allreduce_s(0.0, 1, bandwidth=1e11) == 0.0
    assert allreduce_s(0.0, 8, bandwidth=1e11) == pytest.approx(AR_BASE_LATENCY_S + 14 * AR_STEP_LATENCY_S)
    one = estimate_inference(model="llama3-8b", gpu="H100", num_gpus=1, batch=1, context=1024)
    eight = estimate_inference(model="llama3-8b", gpu="H100", num_gpus=8, batch=1, context=1024)
    # at batch 1 the all-reduce latency, not bandwidth, limits tensor parallelism: 8 GPUs are far from 8x
    assert eight.allreduce_s > AR_BASE_LATENCY_S and one.decode_step_s / eight.decode_step_s < 5


def test_request_rate_sets_concurrency_by_littles_law():
    e = estimate_inference(model="llama3-8b", gpu="H100", num_gpus=1, request_rate=2.0, input_tokens=512,
                           output_tokens=256)
    assert e.request_rate == 2.0 and e.batch >= 1
    assert e.batch == max(1, min(e.max_batch, math.ceil(2.0 * e.latency_s))) or abs(e.batch - 2.0 * e.latency_s) <= 1
    with pytest.raises(ConfigError, match="not both"):
        estimate_inference(model="llama3-8b", gpu="H100", batch=4, request_rate=1.0)


def test_serving_constants_name_their_sources():
    import scalebench.planning.inference as inf
    import scalebench.planning.throughput as tp

    doc = inf.__doc__ + open(inf.__file__).read()
    assert "tuning.cc" in doc and "DESIGN.md" in doc and "fitted" in doc
    src = open(tp.__file__).read()
    for needle in ("mamf-finder", "FlashAttention-2", "FlashAttention-3", "CUDA Graphs", "nccl-tests"):
        assert needle in src, needle
