"""Our trainer against the plain reference loop, shape by shape, in the same process and on the same device.

Ours is the very path a sweep run takes: a RunSpec planned from a SweepSpec, ``scalebench.train.train`` with
the default profiling (NVML telemetry, the profiler window, the FlopCounterMode check), batches read from a
memmapped token file, loss logging and gradient clipping. The reference is ``../shared/baselines/plain_loop.py``
(nanoGPT-style: bf16 autocast, SDPA, fused AdamW, a fixed random batch, nothing else): on CUDA its own
``measure`` is called; on CPU (``--tiny``) its ``GPT`` module is timed by :func:`_plain_cpu`, the same loop
without the CUDA calls. ``benchmarks/baselines/`` holds a copy of that reference and the H200 figures it
gave, so a clean clone (CI) has it; ``--baseline`` points elsewhere.

One row per shape: our tokens/s, the reference's, ours / reference, MFU against the measured peak (from
``scalebench env --calibrate``; n/a without a calibration), our peak memory and our warm-up time (the
steps excluded from the median). Last line: the smallest ratio. Targets on one H200 in bf16 (issue 9):
ratio >= 1.0 at every shape, >= 1.15 at the two smallest, MFU >= 0.60 from 354M parameters up.

    python benchmarks/train_throughput.py                 # GPU: the five shapes of DESIGN.md
    python benchmarks/train_throughput.py --tiny          # CPU, seconds: two tiny shapes (CI runs this)
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from scalebench.config import SweepSpec
from scalebench.sweep.planner import plan_runs
from scalebench.train import train

# DESIGN.md "Measured reference points": (plain_loop name, n_layer, d_model, n_head, batch)
GPU_SHAPES = [("gpt-s3m", 4, 256, 4, 64), ("gpt-s20m", 6, 512, 8, 64), ("gpt-124m", 12, 768, 12, 32),
              ("gpt-350m", 24, 1024, 16, 16), ("gpt-774m", 36, 1280, 20, 16)]
TINY_SHAPES = [("tiny-a", 2, 64, 2, 8), ("tiny-b", 2, 128, 4, 8)]
DEFAULT_BASELINE = Path(__file__).resolve().parent / "baselines" / "plain_loop.py"


class _Steps:
    """A sink that keeps step times (for the warm-up time) and drops everything else."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def add_steps(self, run_id, rows):
        self.times += [r["step_time_s"] for r in rows]

    def add_event(self, *a):
        pass

    def add_telemetry(self, *a):
        pass

    def truncate_steps(self, *a, **k):
        pass


def load_baseline(path: Path):
    if not path.is_file():
        sys.exit(f"train_throughput: the reference loop {path} is missing; pass --baseline PATH to plain_loop.py")
    spec = importlib.util.spec_from_file_location("plain_loop", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def ours(layers: int, d: int, heads: int, batch: int, *, seq: int, vocab: int, steps: int, device: str,
         corpus: str, compile_: bool) -> dict:
    table = {
        "name": "throughput", "model": {"shapes": [{"n_layer": layers, "d_model": d, "n_head": heads},
                                                   {"n_layer": 1, "d_model": 16, "n_head": 1}]},
        "budget": {"tokens": [float(batch * seq * steps)], "max_epochs": 1e9, "min_steps": 1},
        "data": {"source": corpus, "vocab_size": vocab, "dtype": "uint16"},
        "train": {"batch_tokens": batch * seq, "seq_len": seq, "compile": "on" if compile_ else "off",
                  "warmup_share": 0.0, "checkpoint_interval_s": 0.0},
        "eval": {"interval_steps": 10**9, "eval_tokens": seq},
        "devices": {"device": device, "threads_per_worker": torch.get_num_threads()},
    }
    run = max(plan_runs(SweepSpec.from_dict(table)).runs, key=lambda r: r.params)
    sink = _Steps()
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rec = train(run, run_dir=tmp, sink=sink)
    warm = sum(sink.times[: max(1, run.profiling.warmup_steps)])
    return {"tokens_per_s": rec.tokens_per_s, "mfu": rec.metrics.get("mfu_measured_peak"),
            "peak_mem_bytes": rec.peak_mem_bytes or rec.metrics.get("peak_rss_bytes"), "warmup_s": warm}


def _plain_cpu(ref, layers: int, d: int, heads: int, batch: int, *, seq: int, vocab: int, steps: int) -> float:
    """plain_loop.measure's loop without its CUDA calls (fp32 on CPU; best of the timed steps' total)."""
    torch.manual_seed(0)
    m = ref.GPT(layers, d, heads, vocab=vocab, ctx=seq)
    opt = torch.optim.AdamW(m.parameters(), lr=3e-4)
    idx = torch.randint(0, vocab, (batch, seq))
    tgt = torch.randint(0, vocab, (batch, seq))

    def step():
        loss = m(idx, tgt)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(3):
        step()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    return batch * seq * steps / (time.perf_counter() - t)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tiny", action="store_true", help="CPU, two tiny shapes, seconds")
    ap.add_argument("--steps", type=int, default=None, help="timed steps (default 30 on GPU, 8 with --tiny)")
    ap.add_argument("--compile", action="store_true", help="torch.compile both sides")
    ap.add_argument("--baseline", type=Path, default=DEFAULT_BASELINE, help="path to plain_loop.py")
    a = ap.parse_args(argv)
    ref = load_baseline(a.baseline)
    cuda = torch.cuda.is_available() and not a.tiny
    device = "cuda" if cuda else "cpu"
    shapes, seq, vocab = (GPU_SHAPES, 1024, 50304) if not a.tiny else (TINY_SHAPES, 64, 256)
    steps = a.steps or (30 if not a.tiny else 8)
    torch.backends.cuda.matmul.allow_tf32 = True
    name = torch.cuda.get_device_name() if cuda else "cpu"
    print(f"device {name}, vocab {vocab}, seq {seq}, {steps} timed steps, compile {a.compile}")
    print(f"{'shape':>9} {'batch':>5} {'ours tok/s':>12} {'ref tok/s':>12} {'ratio':>6} {'MFU(meas)':>9} "
          f"{'peak GiB':>8} {'warm-up s':>9}")
    ratios = []
    with tempfile.TemporaryDirectory() as tmp:
        corpus = os.path.join(tmp, "tokens.bin")
        np.random.default_rng(0).integers(0, vocab, 4_000_000 if a.tiny else 50_000_000, dtype=np.uint16).tofile(corpus)
        for label, layers, d, heads, batch in shapes:
            if cuda:
                plain = ref.measure(label, a.compile, steps=steps, T=seq)["tokens_per_s"]
            else:
                plain = _plain_cpu(ref, layers, d, heads, batch, seq=seq, vocab=vocab, steps=steps)
            got = ours(layers, d, heads, batch, seq=seq, vocab=vocab, steps=steps + 3, device=device,
                       corpus=corpus, compile_=a.compile)
            ratio = got["tokens_per_s"] / plain
            ratios.append(ratio)
            mfu = "n/a" if got["mfu"] is None else f"{got['mfu']:.3f}"
            mem = "n/a" if not got["peak_mem_bytes"] else f"{got['peak_mem_bytes'] / 2**30:.2f}"
            print(f"L{layers}-d{d:<5} {batch:>5} {got['tokens_per_s']:>12,.0f} {plain:>12,.0f} {ratio:>6.3f} "
                  f"{mfu:>9} {mem:>8} {got['warmup_s']:>9.2f}", flush=True)
    print(f"smallest ratio ours/reference: {min(ratios):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
