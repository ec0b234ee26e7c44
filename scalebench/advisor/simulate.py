"""Which of a few candidate designs narrows the interval `fit` reports the most, by simulating the refit.

The greedy search (``advise``) ranks designs by a linearisation, which is optimistic where the law is
non-linear over the ensemble's spread: a refit on a design whose width hangs on one far run can come out
*wider* than the linearisation says (the bootstrap leaves that run out). So the final choice among a handful
of candidates — the search's designs and the designs a person would pick — is made on the quantity the user
will read: for each replicate r, a law θ_r is drawn from the fit's ensemble (the fit itself for r = 0, its
bootstrap refits after), each candidate's new runs get losses from θ_r with noise of the fit's σ in log loss,
the law is refitted on the runs done plus those runs with a bootstrap, and the interval is
``scalebench.laws.intervals.interval`` — the one definition `fit --at-flops` prints. A preposterior
simulation (Müller 1999, "Simulation-based optimal design", *Bayesian Statistics 6*), kept cheap: a few
replicates, the bootstrap's minimum resample count, and a refit that starts from θ_r, the fit and the
law's default grid.

Replicates share their law and noise draws across candidates (common random numbers), so the comparison
between designs is paired and a few replicates separate them where one is clearly better.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pandas as pd

from scalebench.errors import FitError
from scalebench.laws.intervals import MIN_BOOTSTRAP, interval

REPLICATES = 4  # simulated refits per candidate (the advice's default; 0 ranks by the linearisation alone)
REFINE = 2  # starts refined per simulated refit: θ_r and the fit are among the starts screened


def _refit_log_width(frame: pd.DataFrame, form, starts: np.ndarray, *, huber_delta: float, seed: int,
                     target: str, target_flops: float, confidence: float) -> float:
    """ln(hi/lo) of the interval `fit --at-flops` would print after refitting ``frame``; inf when undetermined."""
    from scalebench.laws.fitting import fit_frame

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            refit = fit_frame(frame, form, bootstrap=MIN_BOOTSTRAP, seed=seed, huber_delta=huber_delta,
                              n_refine=REFINE, grid=starts, diagnostics=False, confidence=confidence)
            iv = interval(refit, target, target_flops, confidence)
    except FitError:
        return math.inf
    if not (iv.determined and iv.low > 0 and iv.high > iv.low):
        return math.inf
    return math.log(iv.high / iv.low)


def simulated_log_widths(result: Any, frame: pd.DataFrame, designs: list[tuple[np.ndarray, np.ndarray]], *,
                         sigma: float, target: str, target_flops: float, confidence: float, replicates: int,
                         seed: int) -> np.ndarray:
    """(len(designs), replicates) array of simulated ln(hi/lo) after each design's new runs (params, tokens)
    are added to ``frame`` (the runs done); inf where a refit leaves the interval undetermined."""
    form = result.form
    variables = list(form.variables)
    done = frame[[*variables, "loss"]].reset_index(drop=True)
    boot = result.bootstrap_thetas
    rng = np.random.default_rng([seed, 20])
    members = [np.asarray(result.theta, dtype=float)]
    if boot is not None and len(boot):
        members += [np.asarray(boot[i], dtype=float) for i in rng.permutation(len(boot))[: max(replicates - 1, 0)]]
    longest = max((len(n) for n, _ in designs), default=0)
    default_starts = form.init_grid(None, logx=np.log(done[variables].to_numpy(dtype=float).T))
    out = np.full((len(designs), replicates), math.inf)
    for r in range(replicates):
        theta = members[r % len(members)]
        noise = rng.normal(0.0, sigma, longest)  # the same draws for every design: a paired comparison
        starts = np.vstack([theta, result.theta, default_starts])
        for k, (params, tokens) in enumerate(designs):
            n, d = np.asarray(params, dtype=float), np.asarray(tokens, dtype=float)
            if not n.size:
                continue
            new = pd.DataFrame({"params": n, "tokens": d})
            if "flops" in variables or "flops" in done:
                new["flops"] = 6.0 * n * d
            logx = np.log(new[variables].to_numpy(dtype=float).T)
            new["loss"] = np.exp(form.log_predict(theta, logx)[0] + noise[: n.size])
            both = pd.concat([done, new[[*variables, "loss"]]], ignore_index=True)
            out[k, r] = _refit_log_width(both, form, starts, huber_delta=result.huber_delta, seed=seed + r,
                                         target=target, target_flops=target_flops, confidence=confidence)
    return out


def scores(widths: np.ndarray, fallback: float) -> np.ndarray:
    """Mean log of each design's simulated log-widths (lower is narrower); an undetermined replicate counts as
    ``fallback`` (a width no design should be chosen for)."""
    w = np.where(np.isfinite(widths) & (widths > 0), widths, fallback)
    return np.mean(np.log(np.maximum(w, 1e-12)), axis=1)


__all__ = ["REPLICATES", "scores", "simulated_log_widths"]
