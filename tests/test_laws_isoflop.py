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


def test_approach2_drops_budgets_whose_optimum_is_at_the_grid_edge_naming_them():
    centred = isoflop_grid(np.logspace(18, 20, 3), noise=0.0)
    off = isoflop_grid([1e21], half_width_dex=0.3, offset_dex=0.8, noise=0.0)  # every size too big
    with pytest.warns(UserWarning, match=r"budget 1e\+21 FLOPs dropped: its lowest loss is at the smallest size"):
        result = isoflop_approach2(pd.concat([centred, off], ignore_index=True))
    assert result.n_budgets == 3 and [c for c, _ in result.dropped] == [pytest.approx(1e21)]
    assert result.summary()["dropped"][0]["flops"] == pytest.approx(1e21)
    with pytest.warns(UserWarning, match="dropped"), pytest.raises(FitError, match="2 or more compute levels"):
        isoflop_approach2(off)


def wide_asymmetric_grid(budgets, seed=0, noise=0.001):
    """Public-style grids: 21 sizes over 2.5 decades per budget, reaching far up the undertrained (large-
    model) side of every profile, and placed off-centre by an amount that drifts with the budget."""
    rng = np.random.default_rng(seed)
    rows = []
    for i, c in enumerate(budgets):
        n_opt = TRUTH.compute_optimal(c)["params"].iloc[0]
        shift = 0.8 * (i / (len(budgets) - 1) - 0.5)
        for n in n_opt * 10 ** (np.linspace(-0.5, 2.0, 21) + shift):
            d = c / (6 * n)
            rows.append({"params": n, "tokens": d, "loss": TRUTH.predict(n, d) * np.exp(rng.normal(0, noise))})
    return pd.DataFrame(rows)


def test_approach2_recovers_a_on_wide_asymmetric_grids():
    exact = wide_asymmetric_grid(np.logspace(18, 22, 5), noise=0.0)
    assert abs(isoflop_approach2(exact, window=None).a - TRUTH.a) > 0.04  # a parabola through every point
    assert_allclose(isoflop_approach2(exact).a, TRUTH.a, atol=1e-3)  # local fits: no bias left
    with pytest.warns(UserWarning, match=r"budget 1e\+22 FLOPs dropped: its lowest loss is at the smallest"):
        robust = isoflop_approach2(wide_asymmetric_grid(np.logspace(18, 22, 7)), bootstrap=100, seed=1)
    assert robust.n_budgets == 6  # the last grid starts above its optimum: named and dropped
    assert_allclose(robust.a, TRUTH.a, atol=0.01)
    lo, hi = robust.intervals["a"]
    assert lo < robust.a < hi and hi - lo < 0.1
    assert robust.n_bootstrap == 100 and robust.summary()["ci"]["a"] == [lo, hi]
    assert robust.verdict == "reliable", robust.diagnostics.reasons


def test_approach2_on_two_budgets_is_weak_and_says_so():
    result = isoflop_approach2(isoflop_grid([1e18, 1e19], noise=0.0))
    assert result.verdict == "weak" and "2 budgets" in result.diagnostics.reasons[0]


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


def test_approach1_bootstrap_gives_intervals():
    result = isoflop_approach1(training_curves(np.logspace(7, 10, 20), n_checkpoints=30), bootstrap=40)
    lo, hi = result.intervals["a"]
    assert lo <= result.a <= hi and "b" in result.intervals


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
