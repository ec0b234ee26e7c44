"""`scalebench next` against the designs a person would pick, measured the way a user measures them.

Each seed draws a ground-truth Chinchilla law (E, A, B, α, β around published fits) and a noise σ in log
loss, "runs" a starting ladder (losses = law · exp(noise)), fits it with a bootstrap, and spends one budget
four ways:

* **larger size** — the ladder's next size (its own size step) at the ladder's tokens per parameter; its
  cost in FLOPs (C = 6·N·D) *is* the budget;
* **ratios extended** — every ladder size once more, at one longer tokens-per-parameter ratio chosen so the
  cost equals the budget;
* **random** — runs at random sizes (1/4 of the smallest to 16x the largest) and tokens per parameter (the
  ladder's range widened 3x each way) until the budget is spent (the last one trimmed to the budget);
* **advisor** — ``scalebench.advise``, the function `scalebench next` calls, with the same budget and the
  ladder's fit (never more than the budget).

The new runs' losses are drawn from the truth, the law is refitted on old + new runs with a bootstrap, and
the interval on N_opt at C* is the one `scalebench fit --at-flops C* --bootstrap B` prints
(``laws.optimum.optimum_at``: percentile bootstrap). Ladders: ``small`` (4 sizes 2M-20M x ratios 5, 20, 80)
and ``issue`` (3 sizes 20M-100M x ratios 10, 20, 40); targets ``near`` (C* = 30x the largest run) and
``far`` (1000x). Printed: every seed's log-widths, the median ratio advisor / best human design, the share
of seeds the advisor lost, and each design's coverage of the true N_opt.

CPU cost: the fits use the CLI's default start grid with 8 refined starts (the CLI refines 64) and no
diagnostics; the bootstrap has 30 resamples by default (the CLI's `--bootstrap` is the user's choice); the
advisor runs its simulated refits (``--replicates``, default 4). A case took 30-90 s of a loaded core with
``--bootstrap 20``: the 80 cases of the default run are about an hour of one core, so split them with
``--first-seed``/``--seeds`` and ``--csv``, then ``--summarise`` the CSVs. Cases run seed by seed over the
scenarios, so a run cut short still has every scenario.

    python benchmarks/advisor_sim.py                        # 20 seeds x 4 scenarios
    python benchmarks/advisor_sim.py --seeds 5 --scenarios small-far --bootstrap 20
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
from scalebench.advisor.simulate import REPLICATES
from scalebench.laws import fit_frame, get_law
from scalebench.laws.intervals import interval as one_interval
from scalebench.laws.optimum import target_log

FORM = get_law("chinchilla")
LADDERS = {  # name: (sizes, tokens-per-parameter ratios)
    "small": (np.geomspace(2e6, 2e7, 4), (5.0, 20.0, 80.0)),
    "issue": (np.geomspace(2e7, 1e8, 3), (10.0, 20.0, 40.0)),
}
TARGETS = {"near": 30.0, "far": 1000.0}  # C* as a multiple of the ladder's largest run
DESIGNS = ("larger size", "ratios extended", "random", "advisor")
HUMAN = DESIGNS[:3]


def draw_truth(rng: np.random.Generator) -> tuple[np.ndarray, float]:
    alpha, beta = rng.uniform(0.28, 0.45, 2)
    params = {"E": rng.uniform(1.5, 2.5), "A": 400.0 * np.exp(rng.normal(0, 0.5)) * 1e6 ** (alpha - 0.34),
              "B": 2000.0 * np.exp(rng.normal(0, 0.5)) * 1e8 ** (beta - 0.37), "alpha": alpha, "beta": beta}
    return FORM.from_public(params), float(rng.uniform(0.005, 0.015))


def simulate(theta: np.ndarray, sigma: float, params, tokens, rng) -> pd.DataFrame:
    n, d = np.asarray(params, dtype=float), np.asarray(tokens, dtype=float)
    log_l = FORM.log_predict(theta, np.log(np.vstack([n, d])))[0] + rng.normal(0, sigma, n.size)
    return pd.DataFrame({"params": n, "tokens": d, "flops": 6 * n * d, "loss": np.exp(log_l)})


def fit(frame: pd.DataFrame, bootstrap: int, seed: int):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fit_frame(frame, FORM, bootstrap=bootstrap, seed=seed, n_refine=8, diagnostics=False)


def interval(result, c_star: float, confidence: float) -> tuple[float, float]:
    iv = one_interval(result, "params", c_star, confidence)  # what `fit --at-flops` prints
    return (iv.low, iv.high) if iv.determined and 0 < iv.low < iv.high else (math.nan, math.nan)


def human_designs(sizes, ratios, rng) -> tuple[dict[str, tuple[list, list]], float]:
    big = float(sizes[-1] * sizes[-1] / sizes[-2])
    budget = float(sum(6 * big * big * r for r in ratios))
    longer = budget / (6 * float(np.sum(np.square(sizes))))
    designs = {"larger size": ([big] * len(ratios), [big * r for r in ratios]),
               "ratios extended": (list(sizes), [n * longer for n in sizes]),
               "random": random_design(sizes, ratios, budget, rng)}
    return designs, budget


def random_design(sizes, ratios, budget: float, rng) -> tuple[list[float], list[float]]:
    params, tokens, spent = [], [], 0.0
    while spent < budget * (1 - 1e-9):
        n = float(np.exp(rng.uniform(np.log(sizes[0] / 4), np.log(sizes[-1] * 16))))
        d = n * float(np.exp(rng.uniform(np.log(ratios[0] / 3), np.log(ratios[-1] * 3))))
        d = min(d, (budget - spent) / (6 * n))
        params.append(n)
        tokens.append(d)
        spent += 6 * n * d
    return params, tokens


def one_case(ladder: str, target: str, seed: int, bootstrap: int, confidence: float,
             replicates: int = REPLICATES) -> dict:
    rng = np.random.default_rng([seed, list(LADDERS).index(ladder), list(TARGETS).index(target)])
    sizes, ratios = LADDERS[ladder]
    theta, sigma = draw_truth(rng)
    n0 = np.repeat(sizes, len(ratios))
    runs = simulate(theta, sigma, n0, n0 * np.tile(ratios, len(sizes)), rng)
    c_star = TARGETS[target] * float(runs["flops"].max())
    truth = float(np.exp(target_log(FORM, theta, "params", math.log(c_star))[0]))
    start = fit(runs, bootstrap, seed)
    designs, budget = human_designs(sizes, ratios, rng)
    advice = advise(runs, fit=start, target_flops=c_star, budget_flops=budget, seed=seed, confidence=confidence,
                    bootstrap=bootstrap, replicates=replicates)
    designs["advisor"] = ([r.params for r in advice.runs], [r.tokens for r in advice.runs])
    lo, hi = interval(start, c_star, confidence)
    row = {"ladder": ladder, "target": target, "seed": seed, "start": math.log(hi / lo),
           "advisor runs": len(advice.runs), "advisor cost": advice.total_cost / budget,
           "advisor is larger size": advice.design_name == "larger size", "advisor design": advice.design_name,
           "advisor verdict": advice.verdict,
           "predicted": math.log(advice.expected_width / advice.current_width) if advice.runs else 0.0,
           **{f"predicted {name}": ratio for name, ratio in advice.candidates}}  # each candidate's, after / now
    noise = rng.normal(0, sigma, 64)  # the same noise draws for every design: a paired comparison
    for name, (n, d) in designs.items():
        new = simulate(theta, 0.0, n, d, rng)
        new["loss"] *= np.exp(noise[: len(new)])
        lo, hi = interval(fit(pd.concat([runs, new], ignore_index=True), bootstrap, seed), c_star, confidence)
        row[name] = math.log(hi / lo)
        row[f"{name} covers"] = bool(lo <= truth <= hi)
    return row


SHORT = {"advisor": "adv", "larger size": "larger", "ratios extended": "ratios"}


def summarise(rows: pd.DataFrame, confidence: float) -> list[str]:
    best = rows[list(HUMAN)].min(axis=1)
    ratio = rows["advisor"] / best  # ratio of log-widths, advisor / best human design of that seed
    chosen = rows["advisor design"] if "advisor design" in rows else pd.Series("?", index=rows.index)
    out = [f"{'ladder':>6} {'target':>6} {'seed':>4} {'start':>6} " + " ".join(f"{d:>15}" for d in DESIGNS)
           + f" {'adv/best':>8} {'runs':>4} {'chose':>7}"]
    for (_, r), q, c in zip(rows.iterrows(), ratio, chosen, strict=True):
        out.append(f"{r['ladder']:>6} {r['target']:>6} {r['seed']:>4} {r['start']:>6.3f} "
                   + " ".join(f"{r[d]:>15.3f}" for d in DESIGNS)
                   + f" {q:>8.2f} {r['advisor runs']:>4} {SHORT.get(str(c), str(c)):>7}")
    out.append("")
    out.append(f"log-width ln(hi/lo) of the {100 * confidence:g}% bootstrap interval on N_opt (`fit --at-flops`); "
               "adv/best = the advisor's over the narrowest human design's of the same seed (an oracle: no "
               "person knows in advance which design that is)")
    for key, part in [("all", rows.index), *rows.groupby(["ladder", "target"]).groups.items()]:
        q = ratio[part]
        label = key if isinstance(key, str) else f"{key[0]}-{key[1]}"
        out.append(f"  {label:>10}: median adv/best {np.median(q):.2f}  (quartiles {np.quantile(q, 0.25):.2f}"
                   f"-{np.quantile(q, 0.75):.2f}), advisor lost {np.mean(q > 1):.0%} of {len(q)} seeds "
                   f"(by >10%: {np.mean(q > 1.1):.0%})")
    medians = {d: float(np.median(rows[d] / rows["start"])) for d in HUMAN}
    fixed = min(medians, key=medians.get)
    for d in HUMAN:
        q = rows["advisor"] / rows[d]
        tag = " (the best single design: lowest median narrowing over all seeds)" if d == fixed else ""
        out.append(f"  advisor / {d}: median log-width ratio {np.median(q):.2f}, advisor wider in {np.mean(q > 1):.0%} "
                   f"of seeds (by >10%: {np.mean(q > 1.1):.0%}){tag}")
    for d in HUMAN:  # the same test for a person's design: against the narrowest of the other two
        q = rows[d] / rows[[h for h in HUMAN if h != d]].min(axis=1)
        out.append(f"  {d} against the narrowest other human design: lost {np.mean(q > 1):.0%} of seeds "
                   f"(by >10%: {np.mean(q > 1.1):.0%})")
    narrowest = rows[list(DESIGNS)].idxmin(axis=1).value_counts(normalize=True)
    out.append("  narrowest of all four designs: " + ", ".join(f"{d} {narrowest.get(d, 0.0):.0%}" for d in DESIGNS))
    out.append(f"  coverage of the true N_opt ({100 * confidence:g}% intervals): " + ", ".join(
        f"{d} {rows[f'{d} covers'].mean():.0%}" for d in DESIGNS))
    realised = np.log(rows["advisor"] / rows["start"])
    out.append(f"  advisor: median predicted narrowing {np.exp(-np.median(rows['predicted'])):.2f}x, realised "
               f"{np.exp(-np.median(realised)):.2f}x (log-widths); cost {rows['advisor cost'].median():.0%} of the "
               f"budget (max {rows['advisor cost'].max():.0%})")
    out.append("  advisor chose: " + ", ".join(f"{k} {v:.0%}" for k, v in chosen.value_counts(normalize=True).items()))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--first-seed", type=int, default=0, help="seeds run from this one (to split a run)")
    ap.add_argument("--scenarios", nargs="+", default=[f"{lad}-{t}" for lad in LADDERS for t in TARGETS],
                    help="ladder-target pairs, e.g. small-far issue-near")
    ap.add_argument("--bootstrap", type=int, default=30, help="bootstrap resamples per fit (default 30)")
    ap.add_argument("--confidence", type=float, default=0.9)
    ap.add_argument("--replicates", type=int, default=REPLICATES,
                    help=f"the advisor's simulated refits per candidate design (default {REPLICATES})")
    ap.add_argument("--csv", default=None, help="also write the per-seed rows to this CSV")
    ap.add_argument("--summarise", nargs="+", metavar="CSV", default=None,
                    help="print the summary of rows saved by earlier --csv runs (e.g. scenarios run in parallel)")
    args = ap.parse_args(argv)
    if args.summarise:
        frame = pd.concat([pd.read_csv(p) for p in args.summarise], ignore_index=True)
        print("\n".join(summarise(frame, args.confidence)))
        return 0
    t0 = time.perf_counter()
    rows = []
    for seed in range(args.first_seed, args.first_seed + args.seeds):  # seed-major: a cut-short run has them all
        for scenario in args.scenarios:
            ladder, target = scenario.split("-")
            rows.append(one_case(ladder, target, seed, args.bootstrap, args.confidence, args.replicates))
            if args.csv:  # after every case: an interrupted run keeps what it measured
                pd.DataFrame(rows).to_csv(args.csv, index=False)
            print(f"{scenario} seed {seed}: {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    frame = pd.DataFrame(rows)
    print(f"advisor_sim: {args.seeds} seeds x {len(args.scenarios)} scenarios, bootstrap {args.bootstrap}, "
          f"replicates {args.replicates}, {time.perf_counter() - t0:.0f} s")
    print("\n".join(summarise(frame, args.confidence)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
