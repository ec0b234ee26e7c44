"""Benchmark: scalebench.estimate on 10,000 scenarios, vectorised vs a per-row Python loop.

    python benchmarks/estimate_speed.py [--n 10000] [--loop-rows 1000] [--profile]

Prints the vectorised time per scenario and, as the figure to compare between machines and commits, its
speed-up over the reference measured in the same run on the same rows: ``estimate`` called once per row
(timed on ``--loop-rows`` rows and scaled). No absolute target: the time depends on the machine and its
load, the ratio much less. ``--profile`` adds where the vectorised call spends its time (cProfile, by
cumulative time).
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
    ap.add_argument("--profile", action="store_true", help="print the top functions of one vectorised call")
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

    print(f"vectorised: {a.n} scenarios in {vec * 1e3:.1f} ms, {vec / a.n * 1e6:.1f} us per scenario "
          f"(median of {a.repeats}); {int(out['fits'].sum())} fit")
    print(f"reference, per-row loop on the same rows: {loop_per_row * 1e6:.0f} us/row -> "
          f"{loop_per_row * a.n:.2f} s for {a.n} rows (timed on {len(rows)})")
    print(f"speed-up over the reference: {loop_per_row * a.n / vec:.0f}x")
    if a.profile:
        import cProfile
        import pstats

        prof = cProfile.Profile()
        prof.enable()
        estimate(df, law="chinchilla")
        prof.disable()
        pstats.Stats(prof).sort_stats("cumulative").print_stats(12)


if __name__ == "__main__":
    main()
