"""Scaling-law fitting: known answers, gradients, frontier, presets, inputs, errors, CLI."""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose
from scipy.optimize import approx_fprime, minimize_scalar

from scalebench.errors import ConfigError, FitError
from scalebench.laws import (
    LAWS,
    FitResult,
    LawForm,
    PowerLaw,
    backtest,
    fit,
    get_law,
    get_preset,
    list_presets,
    register_law,
)
from scalebench.laws import optimize as optimize_mod
from scalebench.laws.objective import objective_and_grad

EPOCH = {"E": 1.8172, "A": 482.01, "B": 2085.43, "alpha": 0.3478, "beta": 0.3658}  # Besiroglu et al. 2024
KAPLAN = {"N_c": 6.4e13, "D_c": 1.8e13, "alpha_N": 0.076, "alpha_D": 0.103}  # Kaplan et al. 2020 eq. 1.5
SMALL_GRID = {"alpha": (0.5,), "beta": (0.5,), "e": (0.0, 0.5), "a": (5.0, 10.0), "b": (5.0, 10.0)}


def synth(law: str, params: dict, n: int = 240, noise: float = 0.01, seed: int = 0) -> pd.DataFrame:
    """Points drawn from a known law over realistic ranges (N 1e7–1e10, D 1e8–1e11), log-normal noise."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"params": 10 ** rng.uniform(7, 10, n), "tokens": 10 ** rng.uniform(8, 11, n)})
    frame["flops"] = 6 * frame["params"] * frame["tokens"]
    truth = FitResult.from_params(law, params)
    loss = truth.predict(params=frame["params"], tokens=frame["tokens"], flops=frame["flops"])
    frame["loss"] = loss * np.exp(rng.normal(0.0, noise, n))
    return frame


# --- known answers ---------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1])
def test_chinchilla_recovers_known_coefficients(seed):
    # tolerances: 2-3x the largest error seen over 10 seeds at 1% noise (0.012, 0.0095, 0.039, 0.0079)
    result = fit(synth("chinchilla", EPOCH, seed=seed), "chinchilla")
    truth = FitResult.from_params("chinchilla", EPOCH)
    assert result.success, result.message
    assert result.n_starts == 4500 and result.n_refined == 64 and result.n_at_best >= 1
    assert result.on_bound == ()
    assert_allclose(result.params["alpha"], EPOCH["alpha"], atol=0.025)
    assert_allclose(result.params["beta"], EPOCH["beta"], atol=0.025)
    assert_allclose(result.params["E"], EPOCH["E"], atol=0.08)
    assert_allclose(result.a, truth.a, atol=0.015)
    assert_allclose(result.a + result.b, 1.0)


def test_kaplan_joint_recovers_known_coefficients():
    result = fit(synth("kaplan-joint", KAPLAN, n=120, noise=0.005, seed=1), "kaplan-joint")
    assert result.success, result.message
    assert_allclose(result.params["alpha_N"], KAPLAN["alpha_N"], atol=0.003)
    assert_allclose(result.params["alpha_D"], KAPLAN["alpha_D"], atol=0.004)
    assert_allclose(math.log10(result.params["N_c"]), math.log10(KAPLAN["N_c"]), atol=0.15)
    assert_allclose(math.log10(result.params["D_c"]), math.log10(KAPLAN["D_c"]), atol=0.15)


@pytest.mark.parametrize("variable", ["params", "tokens", "flops"])
def test_one_variable_laws_recover_known_coefficients(variable):
    rng = np.random.default_rng(3)
    lo, hi = {"params": (7, 10), "tokens": (8, 11), "flops": (16, 21)}[variable]
    x = 10 ** rng.uniform(lo, hi, 120)
    alpha = 0.1 if variable == "flops" else 0.3
    saturating = {"E": 1.7, "A": 300.0, "alpha": alpha}
    pure = {"A": 50.0, "alpha": 0.08}
    for law, truth in ((f"power-{variable}", saturating), (f"kaplan-{variable}", pure)):
        loss = FitResult.from_params(law, truth).predict(**{variable: x}) * np.exp(
            rng.normal(0, 0.005, x.size)
        )
        result = fit(pd.DataFrame({variable: x, "loss": loss}), law)
        assert result.success, (law, result.message)
        assert_allclose(result.params["alpha"], truth["alpha"], atol=0.012, err_msg=law)
        if "E" in truth:
            assert_allclose(result.params["E"], truth["E"], atol=0.06, err_msg=law)
        else:
            assert_allclose(result.params["A"], truth["A"], rtol=0.05, err_msg=law)


def test_huber_resists_an_outlier():
    frame = synth("chinchilla", EPOCH, n=120, noise=0.005, seed=4)
    frame.loc[0, "loss"] *= 1.5  # one diverged-looking run
    result = fit(frame, grid=SMALL_GRID, n_refine=8)
    assert_allclose(
        [result.params["alpha"], result.params["beta"]], [EPOCH["alpha"], EPOCH["beta"]], atol=0.02
    )
    assert abs(result.residuals["residual"].iloc[0]) > 0.3  # left as an outlier, not fitted


def test_pure_power_data_pins_irreducible_loss_to_its_bound():
    frame = synth("chinchilla", {**EPOCH, "E": 1e-9}, n=80, noise=0.002, seed=5)
    result = fit(frame, grid=SMALL_GRID, n_refine=8)
    assert "E" in result.on_bound
    assert "bound" in result.report()


def test_non_convergence_is_flagged_not_raised(monkeypatch):
    monkeypatch.setitem(optimize_mod.LBFGS_OPTIONS, "maxiter", 2)
    result = fit(synth("chinchilla", EPOCH, n=60), grid=SMALL_GRID, n_refine=4)
    assert result.success is False
    assert "ITERATIONS" in result.message.upper()
    assert result.summary()["success"] is False


# --- forms, gradients, registry ---------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(LAWS))
def test_analytic_gradient_matches_finite_differences(name):
    form = get_law(name)
    frame = synth("chinchilla", EPOCH, n=50, seed=6)
    frame["unique_tokens"] = frame["tokens"] / np.random.default_rng(8).uniform(0.5, 40.0, len(frame))
    logx = np.log(frame[list(form.variables)].to_numpy().T)
    logy = np.log(frame["loss"].to_numpy())
    rng = np.random.default_rng(7)
    lo, hi = np.array(form.bounds).T
    for start in form.init_grid()[rng.choice(len(form.init_grid()), 5, replace=False)]:
        theta = np.clip(start + rng.normal(0, 0.05, form.n_params), lo + 0.01, hi - 0.01)
        _, grad = objective_and_grad(form, theta, logx, logy, 1e-3)
        numeric = approx_fprime(theta, lambda t: objective_and_grad(form, t, logx, logy, 1e-3)[0], 1e-7)
        assert_allclose(grad, numeric, rtol=1e-4, atol=1e-6 * max(1.0, np.abs(grad).max()))


def test_log_space_prediction_does_not_overflow():
    form = get_law("chinchilla")
    theta = np.array([[0.0, 800.0, 0.0, 0.0, 0.0]])  # A = e^800 overflows float64 outside log space
    log_pred = form.log_predict(theta, np.log(np.array([[1e9], [1e10]])))
    assert np.isfinite(log_pred).all() and log_pred[0, 0] == pytest.approx(800.0)


def test_chinchilla_grid_is_hoffmann_et_al():
    grid = get_law("chinchilla").init_grid()
    assert grid.shape == (4500, 5)
    assert sorted(set(grid[:, 3])) == [0.0, 0.5, 1.0, 1.5, 2.0]
    assert sorted(set(grid[:, 1])) == [0.0, 5.0, 10.0, 15.0, 20.0, 25.0]


def test_registry_extends_and_refuses_duplicates():
    @dataclass(frozen=True, kw_only=True)
    class Linear(LawForm):  # log L = c − k·log N: a user-defined form
        name: str = "test-linear"
        variables: tuple = ("params",)
        raw_names: tuple = ("c", "k")
        param_names: tuple = ("c", "k")
        bounds: tuple = ((-10.0, 10.0), (0.0, 2.0))
        grid: tuple = (("c", (0.0, 2.0)), ("k", (0.1,)))

        def log_predict_grad(self, theta, logx):
            theta = np.atleast_2d(theta)
            f = theta[:, :1] - theta[:, 1:2] * logx[0]
            return f, np.stack([np.ones_like(f), -np.broadcast_to(logx[0], f.shape)], axis=1)

    try:
        register_law(Linear())
        with pytest.raises(ConfigError, match="already registered"):
            register_law(Linear())
        register_law(Linear(), overwrite=True)
        x = np.logspace(7, 10, 20)
        result = fit(pd.DataFrame({"params": x, "loss": 3.0 * x**-0.05}), "TEST-linear")
        assert_allclose([result.params["c"], result.params["k"]], [math.log(3.0), 0.05], atol=1e-4)
    finally:
        LAWS.pop("test-linear", None)
    with pytest.raises(ConfigError, match="known laws: .*chinchilla"):
        get_law("no-such-law")
    with pytest.raises(ConfigError):
        PowerLaw(variable="epochs")


# --- frontier, prediction, presets -----------------------------------------------------------------
@pytest.mark.parametrize("preset", ["chinchilla", "chinchilla-epoch", "kaplan"])
def test_compute_optimal_matches_brute_force_minimum(preset):
    law = get_preset(preset)
    budgets = np.array([1e19, 1e21, 1e23])
    frontier = law.compute_optimal(budgets)
    for c, row in zip(budgets, frontier.itertuples(), strict=True):
        best = minimize_scalar(
            lambda ln, c=c: law.predict(math.exp(ln), c / (6 * math.exp(ln))),
            bounds=(10, 40),
            method="bounded",
            options={"xatol": 1e-9},
        )
        assert_allclose(row.params, math.exp(best.x), rtol=1e-3)
        assert_allclose(row.loss, best.fun, rtol=1e-9)
        assert_allclose(row.params * row.tokens * 6, c, rtol=1e-12)
        assert_allclose(row.tokens_per_param, row.tokens / row.params)


def test_chinchilla_frontier_closed_form():
    law = get_preset("chinchilla")
    p = law.params
    a, b = p["beta"] / (p["alpha"] + p["beta"]), p["alpha"] / (p["alpha"] + p["beta"])
    g = (p["alpha"] * p["A"] / (p["beta"] * p["B"])) ** (1 / (p["alpha"] + p["beta"]))
    c = np.array([1e20, 5.76e23])
    frontier = law.compute_optimal(c)
    assert_allclose([law.a, law.b], [a, b])
    assert_allclose(frontier["params"], g * (c / 6) ** a, rtol=1e-12)
    assert_allclose(frontier["tokens"], (c / 6) ** b / g, rtol=1e-12)


def test_compute_for_loss_inverts_the_frontier():
    law = get_preset("chinchilla-epoch")
    budgets = np.array([1e18, 1e20, 1e22, 1e24])
    losses = law.compute_optimal(budgets)["loss"].to_numpy()
    inverse = law.compute_for_loss(losses)
    assert_allclose(inverse["flops"], budgets, rtol=1e-8)
    unreachable = law.compute_for_loss([law.params["E"], 1.0])
    assert np.isinf(unreachable["flops"]).all()
    with pytest.raises(FitError, match="no compute-optimal frontier"):
        FitResult.from_params("power-params", {"E": 1.0, "A": 10.0, "alpha": 0.3}).compute_optimal(1e20)
    power_c = FitResult.from_params("power-flops", {"E": 1.0, "A": 10.0, "alpha": 0.1})
    assert_allclose(power_c.compute_for_loss(power_c.predict(flops=1e21))["flops"], [1e21], rtol=1e-8)


def test_predict_is_vectorised_and_broadcasts():
    law = get_preset("chinchilla")
    p = law.params
    n, d = np.array([1e8, 1e9, 1e10]), np.array([[1e9], [1e11]])
    out = law.predict(n, d)
    assert out.shape == (2, 3)
    assert_allclose(out, p["E"] + p["A"] / n ** p["alpha"] + p["B"] / d ** p["beta"], rtol=1e-12)
    assert isinstance(law.predict(1e9, 2e10), float)
    assert_allclose(law.predict(params=1e9, flops=6 * 1e9 * 2e10), law.predict(1e9, 2e10))
    with pytest.raises(FitError, match="missing"):
        law.predict(params=1e9)
    with pytest.raises(FitError, match="positive"):
        law.predict(-1.0, 1e9)


def test_presets():
    assert {"chinchilla", "chinchilla-epoch"} <= set(list_presets())
    hoffmann = get_preset("Chinchilla")
    assert hoffmann.params == {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}
    assert "Hoffmann" in hoffmann.metadata["citation"]
    epoch = get_preset("CHINCHILLA-EPOCH")
    assert epoch.params["B"] == 2085.43 and "Besiroglu" in epoch.summary()["citation"]
    assert_allclose(epoch.a, 0.3658 / (0.3478 + 0.3658))
    with pytest.raises(ConfigError, match="known presets: chinchilla"):
        get_preset("gpt-5")
    with pytest.raises(ConfigError, match="missing"):
        FitResult.from_params("chinchilla", {"E": 1.0})


def test_summary_is_json_safe_and_has_the_documented_keys():
    result = fit(synth("chinchilla", EPOCH, n=60), grid=SMALL_GRID, n_refine=8, backtest_below=1e18)
    summary = result.summary()
    json.dumps(summary, allow_nan=False)
    assert {"law", "params", "a", "b", "objective", "n_points", "ci", "backtest"} <= set(summary)
    assert set(summary["params"]) == {"E", "A", "B", "alpha", "beta"}
    assert summary["n_points"] == 60 and summary["ci"] == {}
    assert summary["backtest"]["n_train"] + summary["backtest"]["n_test"] == 60
    assert list(result.residuals.columns) == [
        "params",
        "tokens",
        "flops",
        "loss",
        "predicted",
        "residual",
        "huber",
    ]
    text = result.report()
    assert "alpha" in text and "converged: yes" in text and "MAPE" in text


def test_backtest_predicts_larger_runs():
    frame = synth("chinchilla", EPOCH, n=150, noise=0.005, seed=8)
    bt = backtest(frame, "chinchilla", below_flops=3e18, grid=SMALL_GRID, n_refine=8)
    assert bt.n_train == int((frame["flops"] < 3e18).sum()) and bt.n_train + bt.n_test == 150
    assert_allclose(bt.mape, np.mean(np.abs(bt.errors["rel_error"])))
    assert bt.mape < 0.02  # 0.5% noise: extrapolation error stays at the noise level
    with pytest.raises(FitError, match="no runs at or above"):
        backtest(frame, "chinchilla", below_flops=1e30)


# --- inputs and misuse ------------------------------------------------------------------------------
def test_bad_inputs_raise_fit_error():
    good = synth("chinchilla", EPOCH, n=30)
    for column, value, match in (
        ("loss", np.nan, "NaN"),
        ("params", 0.0, "non-positive"),
        ("tokens", -5.0, "non-positive"),
    ):
        bad = good.copy()
        bad.loc[3, column] = value
        with pytest.raises(FitError, match=match):
            fit(bad)
    with pytest.raises(FitError, match="at least 6 points"):
        fit(good.head(5))
    single = good.assign(params=1e8)
    with pytest.raises(FitError, match="single model size"):
        fit(single)
    fit(single, "power-tokens", grid={"alpha": (0.3,)})  # one size is fine for a law in tokens alone
    with pytest.raises(FitError, match="missing column"):
        fit(good[["params", "loss"]])
    with pytest.raises(FitError, match="no loss column"):
        fit(good.rename(columns={"loss": "val"}))
    with pytest.raises(FitError, match="no such file"):
        fit("/nonexistent/runs.csv")
    with pytest.raises(ConfigError, match="huber_delta"):
        fit(good, huber_delta=0.0)
    with pytest.raises(ConfigError, match="confidence"):
        fit(good, confidence=95)


def test_csv_input_with_flops_and_custom_columns(tmp_path):
    frame = synth("chinchilla", EPOCH, n=40)
    path = tmp_path / "runs.csv"
    frame.rename(columns={"params": "n", "loss": "val_loss"})[["n", "flops", "val_loss"]].to_csv(
        path, index=False
    )
    result = fit(path, params_col="n", loss_col="val_loss", grid=SMALL_GRID, n_refine=4)
    assert_allclose(result.residuals["tokens"], frame["tokens"], rtol=1e-12)  # tokens = flops / (6·params)
    assert result.source == str(path) and result.n_points == 40


def test_sweep_directory_uses_done_runs_and_eval_loss(tmp_path, monkeypatch):
    frame = synth("chinchilla", EPOCH, n=40).rename(columns={"loss": "eval_loss"})
    frame["train_loss"] = frame["eval_loss"] * 0.98
    frame["run_id"] = [f"r{i}" for i in range(40)]
    frame["status"] = ["done"] * 36 + ["failed", "diverged", "diverged", "running"]
    frame.loc[36:, "eval_loss"] = np.nan  # unfinished runs have no loss; they must not reach validation
    from scalebench import store

    (tmp_path / "scalebench.sqlite").touch()
    monkeypatch.setattr(store, "load_results", lambda sweep_dir: frame.copy())
    monkeypatch.setattr(store, "load_meta", lambda sweep_dir: {})
    monkeypatch.setattr(store, "load_all", lambda sweep_dir: {  # a sweep's tables, as one read gives them
        "results": frame.copy(), "steps": pd.DataFrame(), "meta": {}, "axes": (), "telemetry": pd.DataFrame(),
        "events": pd.DataFrame()})
    with pytest.warns(UserWarning, match="excluded 1 failed, 2 diverged, 1 running"):
        result = fit(tmp_path, grid=SMALL_GRID, n_refine=4)
    assert result.n_points == 36
    assert_allclose(result.residuals["loss"], frame["eval_loss"][:36])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert_allclose(
            fit(tmp_path, loss_col="train_loss", grid=SMALL_GRID, n_refine=4).residuals["loss"],
            frame["train_loss"][:36],
        )
    (tmp_path / "scalebench.sqlite").unlink()
    with pytest.raises(FitError, match="without scalebench.sqlite"):
        fit(tmp_path)


# --- CLI --------------------------------------------------------------------------------------------
@pytest.fixture
def runs_csv(tmp_path):
    path = tmp_path / "runs.csv"
    synth("chinchilla", EPOCH, n=80, noise=0.005, seed=9).to_csv(path, index=False)
    return str(path)


def test_cli_fit_json(runs_csv, capsys):
    from scalebench.cli import main

    code = main(
        ["fit", runs_csv, "--law", "chinchilla", "--json", "--bootstrap", "10", "--backtest-below", "3e18"]
    )
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert out["law"] == "chinchilla" and set(out["params"]) == {"E", "A", "B", "alpha", "beta"}
    assert set(out["ci"]) == {"E", "A", "B", "alpha", "beta", "a", "b"}
    assert all(lo <= hi for lo, hi in out["ci"].values())
    assert out["n_points"] == 80 and out["backtest"]["below_flops"] == 3e18
    assert abs(out["a"] - 0.5126) < 0.03


def test_cli_fit_text_and_errors(runs_csv, capsys, tmp_path):
    from scalebench.cli import main

    assert main(["fit", runs_csv, "--law", "power-params"]) == 0
    assert "law: power-params" in capsys.readouterr().out
    assert main(["fit", str(tmp_path / "missing.csv")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["fit", runs_csv, "--law", "nope"]) == 2


# --- properties -------------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    e=st.floats(0.5, 3.0),
    a=st.floats(10.0, 5000.0),
    b=st.floats(10.0, 5000.0),
    alpha=st.floats(0.1, 0.8),
    beta=st.floats(0.1, 0.8),
    log10_c=st.floats(15.0, 26.0),
)
def test_frontier_properties(e, a, b, alpha, beta, log10_c):
    params = {"E": e, "A": a, "B": b, "alpha": alpha, "beta": beta}
    law = FitResult.from_params("chinchilla", params)
    form = law.form
    assert_allclose(
        [form.to_public(form.from_public(params))[k] for k in params], list(params.values()), rtol=1e-12
    )
    c = 10.0**log10_c
    row = law.compute_optimal(c).iloc[0]
    assert_allclose(6 * row.params * row.tokens, c, rtol=1e-10)
    # the optimum beats moving the allocation either way along the isoFLOP line
    for factor in (0.9, 1.1):
        n = row.params * factor
        assert law.predict(n, c / (6 * n)) >= row.loss * (1 - 1e-12)
    assert_allclose(law.compute_for_loss(row.loss)["flops"].iloc[0], c, rtol=1e-6)


# --- review findings: validation of parameters and options ---------------------------------------------
@pytest.mark.parametrize("law,params,match", [
    ("chinchilla", {**EPOCH, "E": 0}, r"'E' must be positive.*kaplan-params"),
    ("chinchilla", {**EPOCH, "E": "x"}, r"'E' must be a finite number, got 'x'"),
    ("chinchilla", {**EPOCH, "A": -1.0}, r"'A' must be positive"),
    ("chinchilla", {**EPOCH, "beta": math.nan}, r"'beta' must be a finite number"),
    ("chinchilla", {**EPOCH, "alpha": True}, r"'alpha' must be a finite number"),
    ("power-params", {"E": 0.0, "A": 10.0, "alpha": 0.3}, r"'E' must be positive.*kaplan"),
    ("kaplan-joint", {**KAPLAN, "N_c": math.inf}, r"'N_c' must be a finite number"),
    ("kaplan-params", {"A": 0.0, "alpha": 0.1}, r"'A' must be positive"),
])
def test_from_params_validates_values(law, params, match):
    with pytest.raises(FitError, match=match):
        FitResult.from_params(law, params)


def test_from_params_accepts_numpy_numbers():
    r = FitResult.from_params("chinchilla", {k: np.float64(v) for k, v in EPOCH.items()})
    assert r.params == EPOCH
    assert FitResult.from_params("kaplan-params", {"A": np.int64(50), "alpha": 0.08}).params["A"] == 50.0


@pytest.mark.parametrize("kw,match", [
    (dict(seed=-1, bootstrap=2), "seed must be a non-negative integer"),
    (dict(seed=1.5), "seed must be a non-negative integer"),
    (dict(n_refine=2.5), "n_refine must be an integer"),
    (dict(n_refine=0), "n_refine must be an integer >= 1"),
    (dict(confidence="0.9"), "confidence must be a number in"),
    (dict(bootstrap=True), "bootstrap must be a non-negative integer"),
    (dict(huber_delta=math.inf), "huber_delta must be a positive number"),
    (dict(grid={"alpha": ()}), r"grid\['alpha'\] is empty"),
    (dict(grid={"alpha": ("x",)}), r"grid\['alpha'\] must hold finite numbers"),
    (dict(grid={"alpha": "0.5"}), r"grid\['alpha'\] must be a sequence"),
    (dict(grid=[0.5]), "grid must map raw parameter names"),
    (dict(grid=np.empty((0, 5))), "grid .*needs one or more rows"),
    (dict(backtest_below="1e18"), "backtest_below must be a positive FLOP count"),
    (dict(backtest_below=-1.0), "backtest_below must be a positive FLOP count"),
])
def test_fit_options_raise_config_error_naming_the_argument(kw, match):
    with pytest.raises(ConfigError, match=match):
        fit(synth("chinchilla", EPOCH, n=30), **kw)


def test_fit_option_numpy_integers_are_accepted():
    result = fit(synth("chinchilla", EPOCH, n=30), grid=SMALL_GRID, n_refine=np.int64(2), seed=np.int64(3),
                 bootstrap=np.int64(2), backtest_below=np.float64(3e18))
    assert result.n_refined == 2 and result.backtest is not None


@pytest.mark.parametrize("source", [5, None, 3.5])
def test_fit_source_must_be_a_frame_or_path(source):
    with pytest.raises(FitError, match="source must be a DataFrame, a CSV/Parquet path or a sweep directory"):
        fit(source)


def test_backtest_threshold_must_be_a_number():
    frame = synth("chinchilla", EPOCH, n=30)
    with pytest.raises(ConfigError, match="below_flops must be a positive FLOP count"):
        backtest(frame, "chinchilla", below_flops="1e18")
    with pytest.raises(ConfigError, match="below_flops must be a positive FLOP count"):
        backtest(frame, "chinchilla")  # the default 0 is no threshold


def test_cli_bad_seed_exits_2(runs_csv, capsys):
    from scalebench.cli import main

    assert main(["fit", runs_csv, "--seed", "-1", "--bootstrap", "2"]) == 2
    assert "seed must be a non-negative integer" in capsys.readouterr().err
