"""Re-record the golden CPU traces used by tests/test_profiling_bottleneck.py.

    python tests/data/traces/record_cpu_traces.py

Each workload runs a few steps under ProfilerWindow (CPU activities) and is kept only when its verdict is
the expected one (timings on a busy machine can blur the small-op case; rerun on a quiet one). Traces are
real torch 2.x CPU traces, gzipped, a few tens of KB each.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from scalebench.families import get_family
from scalebench.profiling.bottleneck import Evidence, classify
from scalebench.profiling.timing import StepTimer
from scalebench.profiling.trace import ProfilerWindow, analyze_trace

HERE = Path(__file__).parent


def _gpt(flavour_or_shape: dict, batch: int, seq: int, sleep_s: float = 0.0):
    fam = get_family("gpt")
    shape = fam.make_shape(**flavour_or_shape, seq_len=seq)
    torch.manual_seed(0)
    model = fam.build(shape)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    timer = StepTimer("cpu", warmup_steps=0)

    def step():
        with timer.data_wait():
            if sleep_s:
                time.sleep(sleep_s)  # a slow data iterator
            idx = torch.randint(0, shape.vocab_size, (batch, seq))
        loss = get_family("gpt").loss(model(idx), idx)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def _elementwise():
    x = torch.randn(2_000_000)
    w = torch.ones(1000)

    def step():
        y = F.gelu(x * 1.5 + 0.25)
        y = F.layer_norm(y.view(-1, 1000), (1000,), w)
        y = torch.softmax(y, dim=-1)
        x.copy_(y.view(-1) * 0.5)

    return step


WORKLOADS = {
    "cpu_host_overhead": (lambda: _gpt(dict(n_layer=2, d_model=16, n_head=2), 1, 8), "host-overhead"),
    "cpu_compute": (lambda: _gpt(dict(n_layer=2, d_model=256, n_head=4), 8, 128), "compute"),
    "cpu_memory_bandwidth": (_elementwise, "memory-bandwidth"),
    "cpu_data_loading": (
        lambda: _gpt(dict(n_layer=2, d_model=128, n_head=4), 4, 64, sleep_s=0.05),
        "data-loading",
    ),
}


def record(name: str, make, expected: str, tries: int = 5) -> None:
    for _ in range(tries):
        step = make()
        with tempfile.TemporaryDirectory() as tmp:
            with ProfilerWindow(tmp, wait=1, warmup=1, active=2, filename=f"{name}.json.gz") as window:
                for _ in range(window.total_steps):
                    step()
                    window.step()
            b = analyze_trace(window.trace_path)
            verdict = classify(Evidence(device_type="cpu", breakdown=b))
            print(f"{name}: {verdict.bottleneck} ({verdict.rule})", file=sys.stderr)
            if verdict.bottleneck == expected:
                shutil.copy(window.trace_path, HERE / f"{name}.json.gz")
                return
    raise SystemExit(f"{name}: expected {expected} after {tries} tries; record on a quieter machine")


if __name__ == "__main__":
    torch.set_num_threads(1)
    for name, (make, expected) in WORKLOADS.items():
        record(name, make, expected)
