"""Write the synthetic GPU traces (hand-designed kernel timelines in Chrome-trace form).

    python tests/data/traces/make_gpu_traces.py

Each trace has the parts scalebench reads from a real CUDA trace: ``ProfilerStep#`` ranges on the GPU
timeline (``gpu_user_annotation``), kernels (``kernel``/``gpu_memcpy``) with a correlation id, and the
``cudaLaunchKernel`` runtime events that launched them. Every step repeats the same per-step plan, so the
expected numbers in the tests follow from the plan by hand.
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).parent
PID, TID, STREAM = 1, 1, 7


def build(
    plan: list[tuple[str, float, float, str]], step_us: float, n_steps: int, launch_lead_us: float
) -> dict:
    """``plan``: (name, start offset µs, duration µs, cat) per kernel of one step.

    Each kernel is launched ``launch_lead_us`` before it starts (a launch call of 4 µs); a positive lead
    larger than the preceding gap means the kernel was queued, a small one that the GPU waited for it.
    """
    events: list[dict] = []
    corr = 0
    for s in range(n_steps):
        base = 1000.0 + s * step_us
        events.append(
            {
                "ph": "X",
                "cat": "gpu_user_annotation",
                "name": f"ProfilerStep#{s + 2}",
                "pid": 0,
                "tid": STREAM,
                "ts": base,
                "dur": step_us,
            }
        )
        for name, off, dur, cat in plan:
            corr += 1
            start = base + off
            events.append(
                {
                    "ph": "X",
                    "cat": cat,
                    "name": name,
                    "pid": 0,
                    "tid": STREAM,
                    "ts": start,
                    "dur": dur,
                    "args": {"correlation": corr, "stream": STREAM},
                }
            )
            events.append(
                {
                    "ph": "X",
                    "cat": "cuda_runtime",
                    "name": "cudaLaunchKernel",
                    "pid": PID,
                    "tid": TID,
                    "ts": start - launch_lead_us,
                    "dur": 4.0,
                    "args": {"correlation": corr},
                }
            )
    return {"schemaVersion": 1, "traceEvents": events}


K, M = "kernel", "gpu_memcpy"
TRACES = {
    # matmul + attention dominate; kernels queued 100 µs ahead, 10 µs gaps
    "gpu_compute": build(
        [
            ("sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize128x128x64", 0, 400, K),
            ("flash_fwd_kernel<Flash_fwd_kernel_traits<64, 128, 128, 4>>", 410, 200, K),
            (
                "void at::native::vectorized_elementwise_kernel<4, at::native::GeluCUDAKernelImpl>",
                620,
                100,
                K,
            ),
            ("ampere_bf16_s16816gemm_bf16_256x128_ldg8_f2f_stages_64x3_tn", 730, 260, K),
        ],
        step_us=1000,
        n_steps=3,
        launch_lead_us=100,
    ),
    # 5 µs kernels every 25 µs, each launched 3 µs before it starts: the GPU waits on the host
    "gpu_host_overhead": build(
        [
            (
                (
                    "ampere_sgemm_32x32_sliced1x4_tn"
                    if i % 2
                    else "void at::native::elementwise_kernel<128, 2>"
                ),
                25.0 * i,
                5,
                K,
            )
            for i in range(20)
        ],
        step_us=500,
        n_steps=3,
        launch_lead_us=3,
    ),
    # a gradient all-reduce as long as most of the backward's matmuls
    "gpu_communication": build(
        [
            ("sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n", 0, 500, K),
            ("ncclDevKernel_AllReduce_Sum_f32_RING_LL(ncclDevComm*, unsigned long, ncclWork*)", 500, 400, K),
        ],
        step_us=1000,
        n_steps=3,
        launch_lead_us=200,
    ),
    # elementwise, normalisation and copies dominate
    "gpu_memory_bandwidth": build(
        [
            (
                "void at::native::vectorized_elementwise_kernel<4, at::native::AUnaryFunctor<float>>",
                0,
                300,
                K,
            ),
            (
                "void at::native::(anonymous namespace)::vectorized_layer_norm_kernel<float, float>",
                310,
                200,
                K,
            ),
            ("Memcpy DtoD (Device -> Device)", 520, 150, M),
            ("cutlass_80_tensorop_bf16_s16816gemm_relu_bf16_64x64_32x6_tn_align8", 680, 300, K),
        ],
        step_us=1000,
        n_steps=3,
        launch_lead_us=150,
    ),
}

if __name__ == "__main__":
    for name, trace in TRACES.items():
        (HERE / f"{name}.json").write_text(json.dumps(trace, indent=0) + "\n")
