"""Benchmark: scalebench.estimate on 10,000 scenarios, vectorised vs a per-row Python loop.

    python benchmarks/estimate_speed.py [--n 10000] [--loop-rows 1000]

Prints the vectorised time (target: at most 100 ms for 10,000 scenarios) and its speed-up over calling
``estimate`` once per row, measured in the same run (the loop is timed on ``--loop-rows`` rows and scaled).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd


def scenarios(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "params": 10 ** rng.uniform(7, 11.5, n),
        "tokens": 10 ** rng.uniform(9, 13, n),
        "gpu": rng.choice(["H100-SXM", "A100-80GB", "H200", "B200", "L40S", "MI300X"], n),
        "num_gpus": rng.choice([1.0, 8.0, 64.0, 512.0, np.nan], n),
        "precision": rng.choice(["bf16", "fp8"], n),
        "zero": rng.choice([0, 1, 2, 3], n),
        "checkpointing": rng.choice(["auto", "none", "full"], n),
        "micro_batch": rng.choice([1, 2, 4], n),
    })
    frame.loc[frame["gpu"] == "A100-80GB", "precision"] = "bf16"  # Ampere has no fp8 unit
    return frame


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--loop-rows", type=int, default=1_000)
    ap.add_argument("--repeats", type=int, default=7)
    a = ap.parse_args()

    from scalebench.planning import estimate

    df = scenarios(a.n)
    estimate(df.head(10))  # imports and caches
    times = []
    for _ in range(a.repeats):
        t = time.perf_counter()
        out = estimate(df, law="chinchilla")
        times.append(time.perf_counter() - t)
    vec = float(np.median(times))

    rows = df.head(a.loop_rows).to_dict("records")
    t = time.perf_counter()
    for row in rows:
        estimate(**{k: v for k, v in row.items() if not (isinstance(v, float) and np.isnan(v))}, law="chinchilla")
    loop_per_row = (time.perf_counter() - t) / len(rows)

    print(f"vectorised: {a.n} scenarios in {vec * 1e3:.1f} ms (median of {a.repeats}; "
          f"{'within' if vec <= 0.1 else 'OVER'} the 100 ms target); {int(out['fits'].sum())} fit")
    print(f"per-row loop: {loop_per_row * 1e6:.0f} us/row -> {loop_per_row * a.n:.2f} s for {a.n} rows "
          f"(timed on {len(rows)})")
    print(f"ratio loop/vectorised: {loop_per_row * a.n / vec:.0f}x")


if __name__ == "__main__":
    main()
