"""Our trainer against a plain hand-written loop on the same model, same device, same run.

The reference is the loop a user would write instead (nanoGPT-style, as ../shared/baselines/plain_loop.py):
fixed random batch, autocast (bf16 on GPU), fused AdamW on GPU, no data loading, no logging. Ours is
``scalebench.train`` on a RunSpec with the same shape and batch, reading batches from a memmapped corpus,
with gradient clipping, loss logging and the profiling instruments on. Both use the same ``GPT`` module, so
the ratio isolates what the trainer adds. Prints tokens/s for both and ours / plain (>= 1 is the target; on
GPU compare with the H200 table in DESIGN.md).

    python benchmarks/trainer_vs_plain.py                       # CPU: small models
    python benchmarks/trainer_vs_plain.py --models 3m 20m 124m --batch 64 32 32 --seq 1024 --steps 30
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings

import numpy as np
import torch

from scalebench.config import SweepSpec
from scalebench.families import get_family
from scalebench.sweep.planner import plan_runs
from scalebench.train import train


def plain_tokens_per_s(shape, batch: int, steps: int, device: str) -> float:
    fam = get_family("gpt")
    torch.manual_seed(0)
    model = fam.build(shape).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, fused=device == "cuda")
    idx = torch.randint(0, shape.vocab_size, (batch, shape.seq_len), device=device)
    ctx = torch.autocast("cuda", dtype=torch.bfloat16) if device == "cuda" else torch.autocast("cpu", enabled=False)

    def step():
        with ctx:
            _, loss = model(idx, idx)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(3):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    return batch * shape.seq_len * steps / (time.perf_counter() - t)


def ours_tokens_per_s(size: str, batch: int, seq: int, steps: int, device: str, vocab: int, corpus: str,
                      threads: int) -> float:
    table = {
        "name": "bench", "model": {"sizes": [size, "debug"]},
        "budget": {"tokens": [float(batch * seq * (steps + 3))], "max_epochs": 1e9, "min_steps": 1},
        "data": {"source": corpus, "vocab_size": vocab, "dtype": "uint16"},
        "train": {"batch_tokens": batch * seq, "seq_len": seq, "compile": "off", "warmup_share": 0.0},
        "eval": {"interval_steps": 10**9, "eval_tokens": seq}, "devices": {"device": device, "threads_per_worker": threads},
        "profiling": {"warmup_steps": 3},
    }
    run = next(r for r in plan_runs(SweepSpec.from_dict(table)).runs if r.size == size)
    with tempfile.TemporaryDirectory() as d, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return train(run, run_dir=d).tokens_per_s


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", nargs="+", default=["100k", "400k"])
    ap.add_argument("--batch", nargs="+", type=int, default=[16, 16])
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--vocab", type=int, default=None, help="default: 50304 on GPU, 256 on CPU")
    ap.add_argument("--repeats", type=int, default=2, help="interleaved repeats; the best of each is kept")
    a = ap.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.backends.cuda.matmul.allow_tf32 = True
    vocab = a.vocab or (50304 if device == "cuda" else 256)
    fam = get_family("gpt")
    threads = torch.get_num_threads()  # the trainer pins its thread count; the reference gets the same
    with tempfile.TemporaryDirectory() as tmp:
        corpus = os.path.join(tmp, "tokens.bin")
        np.random.default_rng(0).integers(0, vocab, 20_000_000, dtype=np.uint16).tofile(corpus)
        print(f"device {torch.cuda.get_device_name() if device == 'cuda' else 'cpu'}, vocab {vocab}, seq {a.seq}, "
              f"{a.steps} timed steps each")
        for size, batch in zip(a.models, a.batch, strict=True):
            shape = fam.shape_from_flavour(size, vocab_size=vocab, seq_len=a.seq)
            plain = ours = 0.0
            for _ in range(a.repeats):  # interleaved, best of each: load from other processes hits both alike
                plain = max(plain, plain_tokens_per_s(shape, batch, a.steps, device))
                ours = max(ours, ours_tokens_per_s(size, batch, a.seq, a.steps, device, vocab, corpus, threads))
            print(f"{size:>6s} batch {batch:3d}: plain {plain:12,.0f} tok/s   ours {ours:12,.0f} tok/s   "
                  f"ours/plain {ours / plain:.3f}", flush=True)


if __name__ == "__main__":
    main()
