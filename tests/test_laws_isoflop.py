"""IsoFLOP Approaches 1 and 2 on synthetic data drawn from a known Chinchilla law."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose

from scalebench.errors import FitError
from scalebench.laws import FitResult, isoflop_approach1, isoflop_approach2

EPOCH = {"E": 1.8172, "A": 482.01, "B": 2085.43, "alpha": 0.3478, "beta": 0.3658}
TRUTH = FitResult.from_params("chinchilla", EPOCH)


def isoflop_grid(budgets, sizes_per_budget=9, half_width_dex=1.0, offset_dex=0.0, noise=0.002, seed=0):
    """Runs on isoFLOP lines, sizes log-spaced around each budget's true optimum (shifted by offset_dex)."""
    rng = np.random.default_rng(seed)
    rows = []
    for c in budgets:
        n_opt = TRUTH.compute_optimal(c)["params"].iloc[0]
        for n in n_opt * np.logspace(-half_width_dex, half_width_dex, sizes_per_budget) * 10**offset_dex:
            d = c / (6 * n)
            rows.append(
                {"params": n, "tokens": d, "loss": TRUTH.predict(n, d) * np.exp(rng.normal(0, noise))}
            )
    return pd.DataFrame(rows)


def test_approach2_recovers_the_exponent():
    budgets = np.logspace(18, 21, 7)
    result = isoflop_approach2(isoflop_grid(budgets))
    assert result.approach == 2 and len(result.frontier) == 7
    assert_allclose(result.a, TRUTH.a, atol=0.01)
    assert_allclose(result.a + result.b, 1.0, atol=1e-9)  # D = C / (6N) makes b = 1 − a exactly
    assert_allclose(result.params_opt(1e20), TRUTH.compute_optimal(1e20)["params"].iloc[0], rtol=0.15)
    assert result.profiles["vertex_inside"].all()
    assert set(result.summary()) >= {"a", "b", "approach"}


def test_approach2_groups_budgets_from_flops_with_tolerance():
    frame = isoflop_grid(np.logspace(18, 20, 5), noise=0.0)
    frame["tokens"] *= np.random.default_rng(1).uniform(0.97, 1.03, len(frame))  # budgets only ±3% exact
    result = isoflop_approach2(frame)
    assert len(result.frontier) == 5
    assert_allclose(result.a, TRUTH.a, atol=0.01)


def test_approach2_warns_when_the_minimum_is_outside_the_grid():
    frame = isoflop_grid(np.logspace(18, 20, 3), half_width_dex=0.3, offset_dex=0.8, noise=0.0)
    with pytest.warns(UserWarning, match="outside the sampled sizes"):
        result = isoflop_approach2(frame)
    assert not result.profiles["vertex_inside"].any()


def test_approach2_needs_two_budgets_with_three_sizes():
    frame = isoflop_grid([1e19], noise=0.0)
    with pytest.raises(FitError, match="2 or more compute levels"):
        isoflop_approach2(frame)
    two_sizes = isoflop_grid(np.logspace(18, 20, 3), sizes_per_budget=2)
    with pytest.warns(UserWarning, match="fewer than 3 model sizes"), pytest.raises(FitError):
        isoflop_approach2(two_sizes)


def training_curves(sizes, n_checkpoints=60):
    """Each run's curve: the law at the tokens seen so far (an idealised, schedule-matched curve)."""
    rows = []
    for i, n in enumerate(sizes):
        for d in np.logspace(8, 11.5, n_checkpoints):
            rows.append({"run_id": f"run{i}", "params": n, "tokens": d, "loss": TRUTH.predict(n, d)})
    return pd.DataFrame(rows)


def test_approach1_recovers_the_exponent_from_training_curves():
    result = isoflop_approach1(training_curves(np.logspace(7, 10, 40)))
    assert result.approach == 1 and len(result.frontier) >= 10
    assert_allclose(result.a, TRUTH.a, atol=0.03)
    # every envelope point lies on the curve of the run that produced it
    assert_allclose(
        result.frontier["loss"],
        TRUTH.predict(result.frontier["params"], result.frontier["tokens"]),
        rtol=1e-3,
    )


def test_approach1_needs_curves():
    finals = training_curves(np.logspace(7, 10, 5), n_checkpoints=1)
    with pytest.raises(FitError, match="training curves"):
        isoflop_approach1(finals)


def _labelled(frame: pd.DataFrame) -> pd.DataFrame:
    """Budget labels as a column, and each budget's flops blurred ±30% so clustering alone would fail."""
    out = frame.copy()
    flops = 6 * out["params"] * out["tokens"]
    out["budget"] = [f"C{round(np.log10(c))}" for c in flops]
    out["tokens"] *= np.random.default_rng(2).uniform(0.7, 1.3, len(out))
    return out


def test_approach2_budget_col_from_a_parquet_file(tmp_path):
    frame = _labelled(isoflop_grid(np.logspace(18, 20, 3), noise=0.0))
    path = tmp_path / "runs.parquet"
    frame.to_parquet(path)
    result = isoflop_approach2(path, budget_col="budget")
    assert len(result.frontier) == 3
    assert len(isoflop_approach2(frame, budget_col="budget").frontier) == 3
    with pytest.raises(FitError, match="no column.*'nope'"):
        isoflop_approach2(path, budget_col="nope")


def test_approach2_budget_col_from_a_sweep_keeps_rows_aligned(tmp_path, monkeypatch):
    import sys
    import types

    frame = _labelled(isoflop_grid(np.logspace(18, 20, 3), noise=0.0)).rename(columns={"loss": "eval_loss"})
    # unfinished runs first: dropping them must not shift the budget labels against the losses
    junk = frame.head(4).assign(status="failed", eval_loss=np.nan, budget="C99")
    sweep = pd.concat([junk, frame.assign(status="done")], ignore_index=True)
    (tmp_path / "scalebench.sqlite").touch()
    store = types.ModuleType("scalebench.store")
    store.load_results = lambda sweep_dir: sweep.copy()
    monkeypatch.setitem(sys.modules, "scalebench.store", store)
    monkeypatch.setattr("scalebench.store", store, raising=False)
    with pytest.warns(UserWarning, match="excluded 4 failed"):
        result = isoflop_approach2(tmp_path, budget_col="budget")
    assert len(result.frontier) == 3 and set(result.profiles["n_runs"]) == {9}
    expected = isoflop_approach2(frame.rename(columns={"eval_loss": "loss"}), budget_col="budget")
    assert_allclose(result.frontier["params"], expected.frontier["params"], rtol=1e-12)
