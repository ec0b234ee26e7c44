"""ProfilerWindow on real CPU steps; analyze_trace on real CPU traces and hand-built GPU timelines."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
import torch

from scalebench.families import get_family
from scalebench.profiling.timing import DATA_WAIT_LABEL, StepTimer
from scalebench.profiling.trace import CATEGORIES, ProfilerWindow, analyze_trace, categorize

TRACES = Path(__file__).parent / "data" / "traces"


def _tiny_gpt():
    from scalebench.families import get_family

    fam = get_family("gpt")
    shape = fam.shape_from_flavour("debug", seq_len=16)
    torch.manual_seed(0)
    model = fam.build(shape)
    return model, torch.optim.AdamW(model.parameters()), shape


def test_window_writes_a_gzipped_chrome_trace_of_the_active_steps(tmp_path):
    model, opt, shape = _tiny_gpt()
    timer = StepTimer("cpu", warmup_steps=0)
    with ProfilerWindow(tmp_path, wait=1, warmup=1, active=2) as window:
        for _ in range(6):  # more steps than the window: the profiler detaches after it
            with timer.data_wait():
                idx = torch.randint(0, shape.vocab_size, (2, 16))
            loss = get_family("gpt").loss(model(idx), idx)
            loss.backward()
            opt.step()
            opt.zero_grad()
            window.step()
    path = window.trace_path
    assert path == tmp_path / "trace.json.gz"
    with gzip.open(path, "rt") as f:
        data = json.load(f)  # valid gzip + JSON: what Perfetto and HTA open
    names = [e.get("name", "") for e in data["traceEvents"]]
    assert sum(n.startswith("ProfilerStep#") for n in names) == 2
    assert DATA_WAIT_LABEL in names

    b = analyze_trace(path)
    assert b.device == "cpu" and b.n_steps == 2
    assert b.window_s > 0 and b.busy_s > 0
    assert b.busy_s + b.idle_s == pytest.approx(b.window_s)
    assert b.idle_host_wait_s + b.idle_gap_s == pytest.approx(b.idle_s)
    assert set(b.time_by_category_s) == set(CATEGORIES)
    assert b.time_by_category_s["matmul"] > 0 and b.time_by_category_s["attention"] > 0
    assert b.n_kernels > 100 and b.median_kernel_us > 0
    assert b.data_wait_s > 0
    json.dumps(b.as_dict())


def test_disabled_window_writes_nothing(tmp_path):
    with ProfilerWindow(tmp_path, enabled=False) as window:
        window.step()
    assert window.trace_path is None and not list(tmp_path.iterdir())


def test_window_rejects_a_bad_schedule(tmp_path):
    with pytest.raises(ValueError):
        ProfilerWindow(tmp_path, active=0)


@pytest.mark.parametrize(
    "name, category",
    [
        ("sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize128x128x64", "matmul"),
        ("ampere_bf16_s16816gemm_bf16_256x128_ldg8_f2f_stages_64x3_tn", "matmul"),
        ("nvjet_hsh_128x256_64x4_2x1_v_bz_coopA_NTN", "matmul"),
        ("aten::addmm", "matmul"),
        ("aten::mm", "matmul"),
        ("flash_fwd_kernel<Flash_fwd_kernel_traits<64>>", "attention"),
        ("fmha_cutlassF_bf16_aligned_64x64_rf_sm80", "attention"),
        ("aten::_scaled_dot_product_flash_attention_for_cpu", "attention"),
        ("ncclDevKernel_AllReduce_Sum_f32_RING_LL", "communication"),
        ("Memcpy DtoH (Device -> Pinned)", "memcpy"),
        ("aten::copy_", "memcpy"),
        ("void at::native::vectorized_elementwise_kernel<4, at::native::FillFunctor<float>>", "elementwise"),
        ("void at::native::(anonymous namespace)::vectorized_layer_norm_kernel<float>", "elementwise"),
        ("aten::add_", "elementwise"),
        ("aten::gelu_backward", "elementwise"),
        ("aten::index_select", "elementwise"),  # a gather: memory-bound
        ("aten::randperm", None),
    ],
)
def test_categorize(name, category):
    assert categorize(name) == category


def test_gpu_compute_trace_known_numbers():
    # per step (1000 µs): gemm 400, flash 200, elementwise 100, gemm 260, four 10 µs gaps; 3 steps
    b = analyze_trace(TRACES / "gpu_compute.json")
    assert b.device == "cuda" and b.n_steps == 3 and b.n_kernels == 12
    assert b.window_s == pytest.approx(3000e-6)
    assert b.busy_s == pytest.approx(2880e-6)
    assert b.idle_s == pytest.approx(120e-6)
    # kernels were queued 100 µs ahead: gaps are between-kernel, except the window's idle tail
    assert b.idle_gap_s == pytest.approx(110e-6)
    assert b.idle_host_wait_s == pytest.approx(10e-6)
    assert b.time_by_category_s["matmul"] == pytest.approx(1980e-6)
    assert b.time_by_category_s["attention"] == pytest.approx(600e-6)
    assert b.time_by_category_s["elementwise"] == pytest.approx(300e-6)
    assert b.median_kernel_us == pytest.approx(230.0)


def test_gpu_host_wait_when_the_launch_comes_after_the_gpu_ran_dry():
    b = analyze_trace(TRACES / "gpu_host_overhead.json")
    assert b.busy_s == pytest.approx(300e-6)
    assert b.idle_host_wait_s == pytest.approx(1200e-6) and b.idle_gap_s == pytest.approx(0.0)
    assert b.median_kernel_us == pytest.approx(5.0)
    assert b.small_kernel_share == pytest.approx(1.0)


def _write(path, events):
    path.write_text(json.dumps({"traceEvents": events}))
    return path


def test_overlapping_streams_and_gaps_without_correlation(tmp_path):
    events = [
        {"ph": "X", "cat": "kernel", "name": "gemm_a", "ts": 0, "dur": 100},
        {"ph": "X", "cat": "kernel", "name": "ncclDevKernel_AllReduce", "ts": 50, "dur": 100},  # other stream
        {"ph": "X", "cat": "kernel", "name": "elementwise_kernel", "ts": 160, "dur": 40},  # 10 µs gap
        {"ph": "X", "cat": "gpu_memset", "name": "Memset (Device)", "ts": 300, "dur": 100},  # 100 µs gap
    ]
    b = analyze_trace(_write(tmp_path / "t.json", events))
    assert b.window_s == pytest.approx(400e-6)
    assert b.busy_s == pytest.approx(290e-6)  # union: 0-150, 160-200, 300-400
    assert b.idle_gap_s == pytest.approx(10e-6)  # < HOST_WAIT_MIN_GAP_US without launch data
    assert b.idle_host_wait_s == pytest.approx(100e-6)
    assert b.time_by_category_s["communication"] == pytest.approx(100e-6)
    assert b.time_by_category_s["memcpy"] == pytest.approx(100e-6)
    assert b.share("matmul") == pytest.approx(100 / 340)


def test_gap_overlapping_a_data_wait_is_host_wait(tmp_path):
    events = [
        {"ph": "X", "cat": "kernel", "name": "gemm", "ts": 0, "dur": 100, "args": {"correlation": 1}},
        {"ph": "X", "cat": "kernel", "name": "gemm", "ts": 130, "dur": 100, "args": {"correlation": 2}},
        {
            "ph": "X",
            "cat": "cuda_runtime",
            "name": "cudaLaunchKernel",
            "ts": -10,
            "dur": 5,
            "args": {"correlation": 1},
        },
        {
            "ph": "X",
            "cat": "cuda_runtime",
            "name": "cudaLaunchKernel",
            "ts": 20,
            "dur": 5,
            "args": {"correlation": 2},
        },
        {"ph": "X", "cat": "user_annotation", "name": DATA_WAIT_LABEL, "ts": 90, "dur": 20},
    ]
    b = analyze_trace(_write(tmp_path / "t.json", events))
    assert b.idle_s == pytest.approx(30e-6)
    assert b.idle_host_wait_s == pytest.approx(10e-6)  # 100-110 overlaps the data wait
    assert b.idle_gap_s == pytest.approx(20e-6)
    assert b.data_wait_s == pytest.approx(20e-6)


def test_cpu_self_time_excludes_dispatch_only_ops(tmp_path):
    # aten::linear (dispatch) > aten::addmm (work, 80 µs) > aten::resolve_conj (dispatch-only, nested)
    events = [
        {"ph": "X", "cat": "user_annotation", "name": "ProfilerStep#1", "ts": 0, "dur": 200, "tid": 1},
        {"ph": "X", "cat": "cpu_op", "name": "aten::linear", "ts": 10, "dur": 100, "tid": 1},
        {"ph": "X", "cat": "cpu_op", "name": "aten::addmm", "ts": 20, "dur": 80, "tid": 1},
        {"ph": "X", "cat": "cpu_op", "name": "aten::resolve_conj", "ts": 30, "dur": 5, "tid": 1},
        {"ph": "X", "cat": "cpu_op", "name": "aten::copy_", "ts": 40, "dur": 10, "tid": 1},
        {"ph": "X", "cat": "cpu_op", "name": "aten::add_", "ts": 150, "dur": 30, "tid": 1},
    ]
    b = analyze_trace(_write(tmp_path / "t.json", events))
    assert b.device == "cpu" and b.window_s == pytest.approx(200e-6)
    assert b.time_by_category_s["matmul"] == pytest.approx(65e-6)  # 80 - 5 - 10
    assert b.time_by_category_s["memcpy"] == pytest.approx(10e-6)
    assert b.time_by_category_s["elementwise"] == pytest.approx(30e-6)
    assert b.busy_s == pytest.approx(105e-6)
    assert b.n_kernels == 3


def test_real_cpu_golden_traces_parse():
    for path in sorted(TRACES.glob("cpu_*.json.gz")):
        b = analyze_trace(path)
        assert b.device == "cpu" and b.n_steps == 2, path.name
        assert b.busy_s + b.idle_s == pytest.approx(b.window_s), path.name


def test_each_ranks_trace_has_its_rank_and_hta_opens_the_folder(tmp_path):
    """The traces folder holds one file per rank and nothing else, each with distributedInfo.rank, so HTA's
    TraceAnalysis(trace_dir=...) reads it (HTA would parse any other .json beside them as a trace)."""
    import gzip
    import json

    import torch

    from scalebench.profiling.trace import ProfilerWindow, rank_trace_name, trace_folder

    model = torch.nn.Linear(32, 32)
    folder = trace_folder(tmp_path)
    for rank in (0, 1):
        with ProfilerWindow(folder, 1, 1, 2, "cpu", filename=rank_trace_name(rank), rank=rank, world_size=2) as w:
            for _ in range(4):
                model(torch.randn(8, 32)).sum().backward()
                w.step()
        with gzip.open(w.trace_path, "rt") as f:
            assert json.load(f)["distributedInfo"]["rank"] == rank
    assert sorted(p.name for p in folder.iterdir()) == ["rank0.trace.json.gz", "rank1.trace.json.gz"]
    from hta.trace_analysis import TraceAnalysis

    analysis = TraceAnalysis(trace_dir=str(folder))
    assert sorted(analysis.t.get_ranks()) == [0, 1]
