"""Seed noise weighs the loss fit: repeated runs of one cell measure its noise, the fit weighs runs by it and the
bootstrap resamples cells; without repeats the fit is the unweighted one, bit for bit."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from scalebench.laws.fitting import fit, fit_frame
from scalebench.laws.forms import get_law
from scalebench.laws.noise import seed_noise
from scalebench.laws.sweepfit import fit_sweep

E, A, ALPHA = 1.8, 400.0, 0.34
SIZES = np.geomspace(1e5, 1e8, 8)


def _noise(n: float) -> float:
    """Small models are noisier: 0.001 in log loss at the top of the ladder, 63x that at its bottom."""
    return 0.001 * (n / SIZES.max()) ** -0.6


def _ladder(seed: int, seeds: int = 4, floor: float = E) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for i, n in enumerate(SIZES):
        for k in range(seeds):
            rows.append({"params": n, "tokens": 2e9, "run_id": f"n{i}-s{k}", "cell": f"n{i}",
                         "loss": (floor + A / n**ALPHA) * np.exp(rng.normal(0, _noise(n)))})
    return pd.DataFrame(rows)


def test_the_weighted_fit_recovers_the_exponent_better_under_heteroscedastic_noise():
    form = get_law("kaplan-params")  # L = (N_c/N)^alpha: a known exponent, and a fit cheap enough for 40 ladders
    weighted, plain = [], []
    for seed in range(40):
        frame = _ladder(seed, floor=0.0)
        weighted.append(fit_frame(frame, form, cell_col="cell", diagnostics=False, n_refine=4).params["alpha"])
        plain.append(fit_frame(frame, form, diagnostics=False, n_refine=4).params["alpha"])
    err_w, err_p = np.abs(np.array(weighted) - ALPHA), np.abs(np.array(plain) - ALPHA)
    # Over 40 seeded ladders the weighted fit's errors are about half the unweighted one's (0.43-0.53 measured on
    # three blocks of 40 seeds); the bounds leave room for the block-to-block spread, not for no gain at all
    assert np.sqrt(np.mean(err_w**2)) < 0.75 * np.sqrt(np.mean(err_p**2))
    assert np.mean(err_w) < 0.75 * np.mean(err_p)
    diff = err_p - err_w
    assert diff.mean() / (diff.std(ddof=1) / np.sqrt(diff.size)) > 2.0  # paired: better ladder by ladder


def test_without_repeats_the_fit_is_unchanged():
    form = get_law("kaplan-params")
    frame = _ladder(0, seeds=1, floor=0.0)
    plain = fit_frame(frame, form, bootstrap=20, diagnostics=False, n_refine=4)
    same = fit_frame(frame, form, bootstrap=20, diagnostics=False, n_refine=4, cell_col="cell")  # one run a cell
    np.testing.assert_array_equal(plain.theta, same.theta)
    np.testing.assert_array_equal(plain.bootstrap_thetas, same.bootstrap_thetas)
    assert "seed_noise" not in same.metadata and "bootstrap_groups" not in same.metadata
    steady = _ladder(0, seeds=2).assign(loss=lambda f: f.groupby("cell")["loss"].transform("first"))
    assert seed_noise(np.log([steady["params"]]), np.log(steady["loss"].to_numpy()), steady["cell"],
                      ["params"]) is None  # seeds that do not move the loss measure no noise


def test_the_noise_model_follows_the_measured_spread():
    sizes = np.geomspace(1e5, 1e8, 12)
    rng = np.random.default_rng(3)
    n = np.repeat(sizes, 3)
    sigma = 0.002 * (n / sizes.max()) ** -0.5
    logy = rng.normal(0, sigma)
    cells = np.repeat(np.arange(12), 3)
    noise = seed_noise(np.log([n]), logy, cells, ["params"])
    assert noise.slopes["params"] == pytest.approx(-0.5, abs=0.15)  # σ ∝ N^-0.5, from three seeds a cell
    assert noise.reference == pytest.approx(np.exp(np.mean(np.log(sigma))), rel=0.3)
    flat = seed_noise(np.log([n]), rng.normal(0, 0.01, n.size), cells, ["params"])
    assert flat.slopes == {} and np.ptp(flat.sigma) < 0.5 * flat.reference  # equal noise: close to equal weights


def test_cell_col_on_a_frame_and_a_bad_name(tmp_path):
    frame = _ladder(1)
    result = fit(frame, "power-params", cell_col="cell", bootstrap=20)
    assert result.metadata["bootstrap_groups"] == "cells"
    assert result.diagnostics.checks["seed_noise"]["replicated_cells"] == len(SIZES)
    assert "weights: seed noise of 8 repeated cells" in result.report()
    with pytest.raises(Exception, match="cell_col 'nope'"):
        fit_frame(frame, get_law("power-params"), cell_col="nope")


def test_a_seeded_sweep_is_fitted_weighted_and_resampled_by_cell(tmp_path):
    from test_ladder_health import make_ladder

    sweep = make_ladder(tmp_path, untuned=False, seeds=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # neither the seeds nor the probes are groups of their own
        result = fit_sweep(sweep, "power-params", bootstrap=10, n_refine=4)
    assert result.metadata["bootstrap_groups"] == "cells"
    noise = result.diagnostics.checks["seed_noise"]
    assert noise["replicated_cells"] == 5 and noise["dof"] == 10
    unseeded = fit_sweep(make_ladder(tmp_path / "one", untuned=False, seeds=1), "power-params", bootstrap=0,
                         n_refine=4)
    assert "seed_noise" not in unseeded.diagnostics.checks
