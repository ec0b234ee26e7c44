"""Cost of the run instruments: a CPU training loop plain, with the NVML sampler, and with sampler + profiler.

    python benchmarks/profiling_overhead.py [--flavour 400k --batch 4 --seq-len 64 --steps 30 --repeats 7]

The three variants run interleaved (plain, sampler, sampler+window, plain, ...) so machine noise hits
them alike; each prints the median wall time of its repeats and its ratio to the plain loop. Targets
(issue 3): the sampler must not slow a CPU run measurably (ratio within noise of 1.00); sampler +
profiler window under 2 % of a GPU run's wall time. On CPU the window's few profiled steps are a larger
share of a short loop than of a real run, so the ratio here is an upper bound for a run of this length.

Without NVML (no GPU) the sampler is pointed at a stub NVML written in Python; a stub holds the GIL during
its calls, whereas the real one (ctypes) releases it, so this over-estimates the sampler's cost.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import types

import torch

from scalebench.families import get_family
from scalebench.hardware import nvml
from scalebench.profiling.telemetry import TelemetrySampler
from scalebench.profiling.trace import ProfilerWindow


def _stub_pynvml() -> types.SimpleNamespace:
    util = types.SimpleNamespace(gpu=90, memory=40)
    mem = types.SimpleNamespace(used=1 << 30, total=80 << 30, free=79 << 30)
    return types.SimpleNamespace(
        NVMLError=type("NVMLError", (Exception,), {}),
        NVML_ERROR_NOT_SUPPORTED=3,
        NVML_ERROR_FUNCTION_NOT_FOUND=13,
        NVML_CLOCK_SM=1,
        NVML_TEMPERATURE_GPU=0,
        nvmlInit=lambda: None,
        nvmlShutdown=lambda: None,
        nvmlDeviceGetCount=lambda: 1,
        nvmlDeviceGetHandleByIndex=lambda i: i,
        nvmlDeviceGetUtilizationRates=lambda h: util,
        nvmlDeviceGetMemoryInfo=lambda h: mem,
        nvmlDeviceGetPowerUsage=lambda h: 300_000,
        nvmlDeviceGetClockInfo=lambda h, k: 1980,
        nvmlDeviceGetTemperature=lambda h, s: 60,
        nvmlDeviceGetCurrentClocksEventReasons=lambda h: 0,
        nvmlDeviceGetTotalEnergyConsumption=lambda h: int(time.time() * 300_000),
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--flavour", default="400k")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq-len", type=int, default=64)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--interval-s", type=float, default=0.1)
    a = ap.parse_args()

    stub = not nvml.nvml_available()[0]
    if stub:
        nvml.pynvml = _stub_pynvml()

    fam = get_family("gpt")
    shape = fam.shape_from_flavour(a.flavour, seq_len=a.seq_len)
    torch.manual_seed(0)
    model = fam.build(shape)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    idx = torch.randint(0, shape.vocab_size, (a.batch, a.seq_len))

    def step() -> None:
        loss = get_family("gpt").loss(model(idx), idx)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    def run(variant: str) -> float:
        with tempfile.TemporaryDirectory() as tmp:
            sampler = TelemetrySampler(0 if variant != "plain" else None, a.interval_s)
            window = ProfilerWindow(tmp, 1, 1, 3, enabled=variant == "sampler+window")
            t0 = time.perf_counter()
            with sampler, window:
                for _ in range(a.steps):
                    step()
                    window.step()
            return time.perf_counter() - t0

    for _ in range(3):
        step()  # warm-up outside every timed loop
    variants = ("plain", "sampler", "sampler+window")
    times: dict[str, list[float]] = {v: [] for v in variants}
    for _ in range(a.repeats):
        for v in variants:
            times[v].append(run(v))
    base = statistics.median(times["plain"])
    print(
        f"gpt {a.flavour} ({shape.label}), batch {a.batch} x {a.seq_len}, {a.steps} steps x {a.repeats} repeats "
        f"on CPU ({torch.get_num_threads()} threads); sampler at {1 / a.interval_s:.0f} Hz"
        + (" against a stub NVML (no GPU here)" if stub else "")
    )
    for v in variants:
        med = statistics.median(times[v])
        spread = (max(times[v]) - min(times[v])) / med
        print(
            f"  {v:<15} median {med:8.3f} s   ratio {med / base:6.3f}   extra {med - base:+.3f} s"
            f"   (spread {spread:.1%})"
        )
    extra = statistics.median(times["sampler+window"]) - base
    print(f"  the window's extra time is fixed per run: {extra / 600:.3%} of a 10-minute run")


if __name__ == "__main__":
    main()
