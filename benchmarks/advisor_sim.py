"""`scalebench next` against the designs a person would pick, on simulated laws with known truth.

Each seed draws a ground-truth Chinchilla law (E, A, B, α, β around published fits) and noise σ in log
loss, "runs" a starting ladder (4 sizes × 3 tokens-per-parameter ratios, losses = law · exp(noise)), fits it,
and then spends one budget three ways:

* **larger size** — what a person usually does: the ladder's next size (same size ratio) at the ladder's
  tokens-per-parameter ratios; its cost in FLOPs (C = 6·N·D) *is* the budget;
* **random** — runs at random sizes (1/4 of the smallest to 16x the largest) and tokens per parameter (the
  ladder's range widened 3x each way, the advisor's default trusted range), drawn until the budget is
  spent (the last one's tokens trimmed so the cost is exactly the budget);
* **advisor** — ``scalebench.advise`` with the same budget (never more).

The new runs' losses are simulated from the truth, the law is refitted on old + new runs, and the 95%
interval on the target (N_opt at C* = 300x the largest run, by default) is computed by the delta method
(``optimum_at``). Printed: the median over seeds of (better baseline's width / advisor's width), of each
baseline's, the same for the root-mean-square error of log N_opt against the truth, how often the three
intervals cover the truth, and the advisor's predicted against realised width. Goal: >= 1.2x.

    python benchmarks/advisor_sim.py              # 40 seeds, about a minute on one core
    python benchmarks/advisor_sim.py --seeds 100 --target loss
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import warnings

import numpy as np
import pandas as pd

from scalebench.advisor import advise
from scalebench.laws import fit_frame, get_law
from scalebench.laws.optimum import optimum_at, target_log

FORM = get_law("chinchilla")
RATIOS = (5.0, 20.0, 80.0)  # the ladder's tokens per parameter
SIZES = np.geomspace(2e6, 2e7, 4)  # the ladder (a factor 10^(1/3) apart)


def draw_truth(rng: np.random.Generator) -> tuple[np.ndarray, float]:
    alpha, beta = rng.uniform(0.28, 0.45, 2)
    params = {"E": rng.uniform(1.5, 2.5), "A": 400.0 * np.exp(rng.normal(0, 0.5)) * 1e6 ** (alpha - 0.34),
              "B": 2000.0 * np.exp(rng.normal(0, 0.5)) * 1e8 ** (beta - 0.37), "alpha": alpha, "beta": beta}
    return FORM.from_public(params), float(rng.uniform(0.005, 0.015))


def simulate(theta: np.ndarray, sigma: float, params, tokens, rng) -> pd.DataFrame:
    n, d = np.asarray(params, dtype=float), np.asarray(tokens, dtype=float)
    log_l = FORM.log_predict(theta, np.log(np.vstack([n, d])))[0] + rng.normal(0, sigma, n.size)
    return pd.DataFrame({"params": n, "tokens": d, "flops": 6 * n * d, "loss": np.exp(log_l)})


def refit(frame: pd.DataFrame, start: np.ndarray, bootstrap: int = 0, seed: int = 0):
    # the full-grid fit, refined from the 16 best starts plus the previous optimum: quick and robust
    starts = np.vstack([FORM.init_grid(), start])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fit_frame(frame, FORM, grid=starts, n_refine=16, bootstrap=bootstrap, seed=seed)


def width(result, target: str, c_star: float) -> float:
    opt = optimum_at(result, c_star, confidence=0.95)
    lo, hi = opt["ci"][target]
    return math.log(hi / lo) if lo and hi and hi > lo else math.inf


def random_design(budget: float, rng) -> tuple[list[float], list[float]]:
    params, tokens, spent = [], [], 0.0
    while spent < budget * (1 - 1e-9):
        n = float(np.exp(rng.uniform(np.log(SIZES[0] / 4), np.log(SIZES[-1] * 16))))
        d = n * float(np.exp(rng.uniform(np.log(RATIOS[0] / 3), np.log(RATIOS[-1] * 3))))
        d = min(d, (budget - spent) / (6 * n))
        params.append(n)
        tokens.append(d)
        spent += 6 * n * d
    return params, tokens


def one_seed(seed: int, target: str, c_mult: float) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    theta, sigma = draw_truth(rng)
    ladder = simulate(theta, sigma, np.repeat(SIZES, len(RATIOS)), np.repeat(SIZES, len(RATIOS)) * np.tile(RATIOS, len(SIZES)), rng)
    c_star = c_mult * float(ladder["flops"].max())
    truth = float(target_log(FORM, theta, target, math.log(c_star))[0])
    start = refit(ladder, theta, bootstrap=16, seed=seed)
    step = SIZES[1] / SIZES[0]
    big = SIZES[-1] * step
    budget = float(sum(6 * big * big * r for r in RATIOS))
    designs = {"larger size": ([big] * len(RATIOS), [big * r for r in RATIOS]),
               "random": random_design(budget, rng)}
    advice = advise(ladder, fit=start, target_flops=c_star, target=target, budget_flops=budget, seed=seed)
    designs["advisor"] = ([r.params for r in advice.runs], [r.tokens for r in advice.runs])
    out = {"advisor_cost": advice.total_cost / budget, "predicted": math.log(advice.expected_width
                                                                              / advice.current_width + 1e-300)}
    for name, (n, d) in designs.items():
        data = pd.concat([ladder, simulate(theta, sigma, n, d, rng)], ignore_index=True)
        res = refit(data, start.theta)
        w = width(res, target, c_star)
        est = float(target_log(FORM, res.theta, target, math.log(c_star))[0])
        out[f"{name}_width"] = w
        out[f"{name}_error"] = est - truth
        out[f"{name}_covered"] = float(abs(est - truth) <= w / 2)  # log-symmetric delta interval
    out["start_width"] = width(start, target, c_star)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=40)
    ap.add_argument("--target", default="params", choices=("params", "tokens", "loss"))
    ap.add_argument("--c-mult", type=float, default=300.0, help="C* as a multiple of the largest run's FLOPs")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    rows = pd.DataFrame([one_seed(s, args.target, args.c_mult) for s in range(args.seeds)])
    better = np.minimum(rows["larger size_width"], rows["random_width"])
    print(f"advisor_sim: {args.seeds} seeds, target {args.target} at {args.c_mult:g}x the largest run, "
          f"budget = one larger size at the ladder's {len(RATIOS)} ratios ({time.perf_counter() - t0:.0f} s)")
    print(f"  median width ratio, better baseline / advisor: {np.median(better / rows['advisor_width']):.2f}x"
          "   (goal >= 1.2x)")
    for name in ("larger size", "random"):
        print(f"  median width ratio, {name:>11} / advisor: {np.median(rows[f'{name}_width'] / rows['advisor_width']):.2f}x")
    rmse = {n: float(np.sqrt(np.mean(rows[f"{n}_error"] ** 2))) for n in ("larger size", "random", "advisor")}
    print("  RMS error of log target vs truth: " + ", ".join(f"{n} {v:.3f}" for n, v in rmse.items()))
    print("  95% interval coverage of the truth: " + ", ".join(
        f"{n} {rows[f'{n}_covered'].mean():.0%}" for n in ("larger size", "random", "advisor")))
    realised = np.log(rows["advisor_width"] / rows["start_width"])
    print(f"  advisor: median predicted narrowing {np.exp(-np.nanmedian(rows['predicted'])):.2f}x, realised "
          f"{np.exp(-np.median(realised)):.2f}x; cost used {rows['advisor_cost'].median():.0%} of the budget "
          f"(max {rows['advisor_cost'].max():.0%})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
