"""Benchmark: the Chinchilla fit and its bootstrap, each beside a reference measured in the same run.

* fit: the full 4,500-start fit against a naive scipy loop (one ``minimize(method="L-BFGS-B")`` per grid start
  with finite-difference gradients), timed on a random subset of the starts and extrapolated to all of them.
* bootstrap: the default warm, vectorised bootstrap (``bootstrap_method="warm"``) against the reference, the full
  start grid refitted on every resample (``"full"``), timed on ``--reference-resamples`` of the same resamples and
  extrapolated; with ``--full-intervals`` the reference runs on every resample and the two sets of intervals are
  printed side by side per parameter (same seed, so the same resamples).

Data: 240 synthetic points drawn from Epoch's law by default; ``--data runs.csv`` (columns params, tokens, loss),
a sweep folder, or Epoch's ``svg_extracted_data.csv`` (github.com/epoch-research/analyzing-chinchilla; its 240
points are the 245 less the five highest losses, as Besiroglu et al. 2024 fit them).

    python benchmarks/fit_speed.py [--data PATH] [--bootstrap 200] [--reference-resamples 8] [--full-intervals]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import logsumexp

from scalebench.laws import fit, get_law
from scalebench.laws.optimize import blas_single_thread

TRUTH = {"E": 1.8172, "A": 482.01, "B": 2085.43, "alpha": 0.3478, "beta": 0.3658}  # Besiroglu et al. 2024


def synthetic(n: int = 240, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n_params = 10 ** rng.uniform(7, 10, n)
    tokens = 10 ** rng.uniform(8, 11, n)
    t = TRUTH
    loss = t["E"] + t["A"] / n_params ** t["alpha"] + t["B"] / tokens ** t["beta"]
    return pd.DataFrame({"params": n_params, "tokens": tokens, "loss": loss * np.exp(rng.normal(0, 0.01, n))})


def load(path: str | None) -> tuple[object, str]:
    """(source for ``fit``, description)."""
    if path is None:
        return synthetic(), "240 points drawn from Epoch's law (1% noise)"
    if os.path.isdir(path):
        return path, f"sweep {path}"
    frame = pd.read_csv(path)
    if {"Model Size", "Training FLOP", "loss"} <= set(frame.columns):  # Epoch's extraction of Chinchilla's points
        frame = frame[["Model Size", "Training FLOP", "loss"]].dropna()
        frame = frame[frame["loss"] < np.sort(frame["loss"].to_numpy())[-5]]
        frame = pd.DataFrame({"params": frame["Model Size"], "loss": frame["loss"],
                              "tokens": frame["Training FLOP"] / (6 * frame["Model Size"])})
        return frame.reset_index(drop=True), f"Epoch's {len(frame)} Chinchilla points ({path})"
    return frame, f"{len(frame)} points from {path}"


def naive_per_start_s(frame: pd.DataFrame, n_starts: int, seed: int) -> tuple[float, float]:
    """Seconds per start of the plain loop, and the best objective it found on its subset."""
    log_n, log_d = np.log(frame["params"].to_numpy()), np.log(frame["tokens"].to_numpy())
    log_l = np.log(frame["loss"].to_numpy())

    def objective(x: np.ndarray) -> float:
        e, a, b, alpha, beta = x
        pred = logsumexp([a - alpha * log_n, b - beta * log_d, np.full_like(log_n, e)], axis=0)
        r = pred - log_l
        return float(np.sum(np.where(np.abs(r) <= 1e-3, 0.5 * r * r, 1e-3 * (np.abs(r) - 0.5e-3))))

    grid = get_law("chinchilla").init_grid()
    subset = grid[np.random.default_rng(seed).choice(len(grid), n_starts, replace=False)]
    t0 = time.perf_counter()
    with blas_single_thread():  # the same BLAS setting as ours, so the ratio is the method's, not threading's
        best = min(minimize(objective, x0, method="L-BFGS-B").fun for x0 in subset)
    return (time.perf_counter() - t0) / n_starts, best


def timed(fn, repeat: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), out


def reference_bootstrap_s(source, n_resamples: int, n_timed: int, seed: int) -> float:
    """Seconds per resample of the full-grid bootstrap, timed on its first ``n_timed`` resamples (the same
    resamples the warm bootstrap refits: the seed fixes them)."""
    from scalebench.laws.bootstrap import bootstrap
    from scalebench.laws.io import load_data
    from scalebench.laws.optimize import multistart

    form = get_law("chinchilla")
    frame = load_data(source, form.variables)
    logx = np.log(frame[list(form.variables)].to_numpy(dtype=float).T)
    logy = np.log(frame["loss"].to_numpy(dtype=float))
    grid = form.init_grid(None, logx=logx)
    outcome = multistart(form, logx, logy, delta=1e-3, starts=grid)
    groups = frame["run_id"].to_numpy() if "run_id" in frame else np.arange(len(frame))

    def stop(done: int, total: int) -> None:
        if done >= n_timed:
            raise _Enough

    t0 = time.perf_counter()
    try:
        bootstrap(form, logx, logy, groups, optima=outcome.optima, grid=grid, n_refine=64, n_resamples=n_resamples,
                  seed=seed, delta=1e-3, method="full", progress=stop)
    except _Enough:
        pass
    return (time.perf_counter() - t0) / n_timed


class _Enough(Exception):
    """Stops the reference after its timed resamples."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="CSV (params, tokens, loss, or Epoch's extraction) or a sweep folder")
    parser.add_argument("--naive-starts", type=int, default=40, help="grid starts timed for the naive loop")
    parser.add_argument("--bootstrap", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reference-resamples", type=int, default=8,
                        help="resamples timed for the full-grid reference (extrapolated to --bootstrap)")
    parser.add_argument("--full-intervals", action="store_true",
                        help="run the full-grid reference on every resample and compare the intervals")
    parser.add_argument("--noise-seeds", type=int, default=0,
                        help="also refit the warm bootstrap with this many other seeds and print how far each interval "
                             "endpoint moves from seed to seed (the resampling noise)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    source, what = load(args.data)
    fit(source, bootstrap=0)  # warm-up: imports, first-call overheads
    ours_s, result = timed(lambda: fit(source), args.repeat)
    print(f"data: {what}; grid: {result.n_starts} starts; load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"fit (no bootstrap): {ours_s:.3f} s (median of {args.repeat}; {result.n_refined} starts refined, "
          f"{result.n_at_best} reached the best objective {result.objective:.6g})")
    if args.naive_starts and isinstance(source, pd.DataFrame):
        per_start, naive_best = naive_per_start_s(source, args.naive_starts, seed=1)
        naive_s = per_start * result.n_starts
        print(f"  reference, naive scipy loop (finite-difference gradients): {1e3 * per_start:.1f} ms/start on "
              f"{args.naive_starts} starts -> {naive_s:.1f} s (best objective on its subset {naive_best:.6g}); "
              f"ratio reference/ours: {naive_s / ours_s:.0f}x")

    boot_s, warm = timed(lambda: fit(source, bootstrap=args.bootstrap, seed=args.seed), 1)
    warm_only = max(boot_s - ours_s, 1e-9)
    ref_per = reference_bootstrap_s(source, args.bootstrap, min(args.reference_resamples, args.bootstrap), args.seed)
    ref_s = ref_per * args.bootstrap
    m = warm.metadata
    print(f"fit with {args.bootstrap}-resample bootstrap (warm, vectorised): {boot_s:.2f} s, of which the bootstrap "
          f"{warm_only:.2f} s; audit: {m.get('bootstrap_disagree')} of {m.get('bootstrap_audited')} resamples "
          "disagree with the full grid")
    print(f"  reference, full grid on every resample: {ref_per:.3f} s/resample on "
          f"{min(args.reference_resamples, args.bootstrap)} -> {ref_s:.1f} s for {args.bootstrap}; "
          f"ratio reference/ours (bootstrap alone): {ref_s / warm_only:.0f}x, (fit + bootstrap): "
          f"{(ref_s + ours_s) / boot_s:.0f}x")
    if args.full_intervals:
        t0 = time.perf_counter()
        full = fit(source, bootstrap=args.bootstrap, seed=args.seed, bootstrap_method="full")
        print(f"  full-grid bootstrap measured: {time.perf_counter() - t0:.1f} s")
        print(f"  {'':6s} {'warm 95% interval':>26s} {'full grid 95% interval':>26s} {'max |diff| / width':>19s}")
        for name, (lo, hi) in full.intervals.items():
            wl, wh = warm.intervals[name]
            diff = max(abs(wl - lo), abs(wh - hi)) / (hi - lo) if hi > lo else 0.0
            print(f"  {name:6s} [{wl:10.5g}, {wh:10.5g}]   [{lo:10.5g}, {hi:10.5g}]   {diff:18.1%}")
    if args.noise_seeds:
        others = [fit(source, bootstrap=args.bootstrap, seed=args.seed + 1 + k).intervals for k in range(args.noise_seeds)]
        print(f"  resampling noise: each endpoint over seeds {args.seed}..{args.seed + args.noise_seeds} (warm)")
        for name, (lo, hi) in warm.intervals.items():
            los, his = [lo] + [o[name][0] for o in others], [hi] + [o[name][1] for o in others]
            print(f"  {name:6s} low {min(los):10.5g} .. {max(los):10.5g}   high {min(his):10.5g} .. {max(his):10.5g}")
    print(f"fitted: {', '.join(f'{k}={v:.4g}' for k, v in result.params.items())}, a={result.a:.4f}")


if __name__ == "__main__":
    main()
