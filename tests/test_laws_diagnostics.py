"""Diagnostics, the new laws (broken power, data-constrained), fixed/tied parameters, duplicate runs,
law comparison, grouped fits and saved fits: known answers from seeded synthetic data."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose

from scalebench.errors import ConfigError, FitError
from scalebench.laws import (
    FitResult,
    compare_laws,
    constrain,
    fit,
    fit_groups,
    get_law,
    load_fit,
    save_fit,
)
from scalebench.laws.broken import BrokenPowerLaw
from scalebench.laws.constraints import parse_fix, parse_tie

EPOCH = {"E": 1.8172, "A": 482.01, "B": 2085.43, "alpha": 0.3478, "beta": 0.3658}
TRUTH = FitResult.from_params("chinchilla", EPOCH)


def _flat(intervals) -> dict:
    """{name: (lo, hi)} as {name.lo: lo, name.hi: hi}: pytest.approx (9.2+) compares flat mappings only."""
    return {f"{k}.{end}": v for k, pair in intervals.items() for end, v in zip(("lo", "hi"), pair, strict=True)}



def isoflop_design(budgets, sizes=7, half_dex=0.7, noise=0.005, seed=0):
    """Runs on isoFLOP lines around each budget's true optimum, log-normal noise."""
    rng = np.random.default_rng(seed)
    rows = []
    for c in budgets:
        n_opt = TRUTH.compute_optimal(c)["params"].iloc[0]
        for n in n_opt * np.logspace(-half_dex, half_dex, sizes):
            d = c / (6 * n)
            rows.append({"params": n, "tokens": d, "loss": TRUTH.predict(n, d) * np.exp(rng.normal(0, noise))})
    frame = pd.DataFrame(rows)
    frame["flops"] = 6 * frame["params"] * frame["tokens"]
    frame["run_id"] = [f"r{i}" for i in range(len(frame))]
    return frame


# --- diagnostics both ways ---------------------------------------------------------------------------
def test_a_well_determined_design_is_reliable():
    result = fit(isoflop_design(np.logspace(18, 22, 5)), bootstrap=40)
    d = result.diagnostics
    assert d.verdict == "reliable", d.reasons
    assert result.summary()["diagnostics"]["verdict"] == "reliable"
    assert "verdict: RELIABLE" in result.report().splitlines()[0]
    assert d.checks["points_per_param"] == 7.0 and d.checks["a_by_approach"]["2"] == pytest.approx(TRUTH.a, abs=0.03)


def _grid(sizes, budgets, noise=0.003, seed=0):
    rng = np.random.default_rng(seed)
    rows = [{"params": n, "tokens": d, "loss": TRUTH.predict(n, d) * np.exp(rng.normal(0, noise))}
            for n in sizes for d in budgets]
    return pd.DataFrame(rows)


def test_coefficient_and_exponent_are_judged_with_the_variable_centred():
    # A narrow, well-measured grid far from N = 1: in raw (log A, alpha) the correlation is ~0.9999 whatever
    # the data, which once made every such fit "weak"; centred on the data it is what the data say.
    frame = _grid(np.logspace(8, 9.5, 6), np.logspace(10, 11, 4))
    result = fit(frame, bootstrap=0)
    d = result.diagnostics
    assert not any("interchangeable" in r for r in d.reasons), d.reasons
    assert abs(d.checks["max_correlation"]["r"]) < 0.999
    logx = np.log(frame[["params", "tokens"]].to_numpy(float).T)
    raw = result.form.log_predict_grad(result.theta[None, :], logx)[1][0].T[:, [1, 3]]  # columns a, alpha
    assert abs(np.corrcoef(raw.T)[0, 1]) > 0.999  # what the uncentred check used to see


def test_tokens_proportional_to_params_leave_the_terms_inseparable():
    sizes = np.logspace(8, 10, 10)
    frame = pd.DataFrame({"params": sizes, "tokens": 20 * sizes})
    frame["loss"] = TRUTH.predict(frame["params"], frame["tokens"])
    d = fit(frame, bootstrap=0).diagnostics
    assert d.verdict != "reliable", d.reasons


def test_eight_points_on_two_budgets_is_not_reliable():
    frame = isoflop_design([1e18, 1e19], sizes=4, half_dex=0.5)
    result = fit(frame, bootstrap=40)
    d = result.diagnostics
    assert d.verdict == "undetermined", d.reasons
    assert any("8 points for 5 free parameters" in r for r in d.reasons)
    assert d.suggestions and any("add at least 7 runs" in s for s in d.suggestions)
    assert json.loads(json.dumps(result.summary(), allow_nan=False))["diagnostics"]["reasons"]


def test_an_influential_large_run_and_a_bound_are_reasons():
    frame = isoflop_design(np.logspace(18, 22, 5))
    big = frame["flops"].idxmax()
    frame.loc[big, "loss"] *= 1.06
    d = fit(frame).diagnostics
    assert d.verdict == "weak"
    assert any(frame.loc[big, "run_id"] in r for r in d.reasons)
    pure = isoflop_design(np.logspace(18, 22, 5), noise=0.0)
    pure["loss"] = 400 / pure["params"] ** 0.3 + 400 / pure["tokens"] ** 0.3  # no irreducible loss
    d = fit(pure).diagnostics
    assert any("E = " in r and "bound" in r for r in d.reasons)


# --- fixed and tied parameters ----------------------------------------------------------------------
def test_fixed_and_tied_parameters():
    frame = isoflop_design(np.logspace(18, 22, 5), noise=0.002)
    fixed = fit(frame, fix={"E": 1.8172, "alpha": 0.3478})
    assert fixed.form.n_params == 3 and fixed.params["E"] == pytest.approx(1.8172)
    assert fixed.params["alpha"] == pytest.approx(0.3478)
    assert_allclose(fixed.params["beta"], EPOCH["beta"], atol=0.02)
    assert "E = 1.8172 fixed" in fixed.form.formula
    assert fixed.summary()["constraints"] == {"fixed": {"E": 1.8172, "alpha": 0.3478}, "tied": {}}
    tied = fit(frame, tie={"alpha": "beta"})
    assert tied.form.n_params == 4 and tied.params["alpha"] == tied.params["beta"]
    assert_allclose(tied.params["alpha"], 0.357, atol=0.02)
    assert parse_fix("E=1.8, alpha=0.34") == {"E": 1.8, "alpha": 0.34} and parse_tie("alpha=beta") == {"alpha": "beta"}
    for bad, match in (({"fix": {"Q": 1.0}}, "no parameter 'Q'"), ({"fix": {"E": -1.0}}, "positive scale"),
                       ({"tie": {"alpha": "A"}}, "one is a scale"), ({"tie": {"alpha": "alpha"}}, "itself")):
        with pytest.raises(ConfigError, match=match):
            constrain("chinchilla", **bad)
    with pytest.raises(ConfigError, match="NAME=VALUE"):
        parse_fix("E")


def test_cli_fix_tie_and_saved_fit(tmp_path, capsys):
    from scalebench.cli import main

    path = tmp_path / "runs.csv"
    isoflop_design(np.logspace(18, 22, 5), noise=0.002).to_csv(path, index=False)
    assert main(["fit", str(path), "--fix", "E=1.8172", "--tie", "alpha=beta", "--bootstrap", "0", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["params"]["E"] == pytest.approx(1.8172) and out["params"]["alpha"] == out["params"]["beta"]
    assert out["diagnostics"]["verdict"] in ("reliable", "weak", "undetermined")
    assert main(["fit", str(path), "--fix", "Z=1"]) == 2
    assert "no parameter 'Z'" in capsys.readouterr().err


def test_save_and_load_give_the_same_numbers(tmp_path):
    result = fit(isoflop_design(np.logspace(18, 22, 4)), bootstrap=20, tie={"alpha": "beta"})
    path = save_fit(result, tmp_path / "fit.json")
    back = load_fit(path)
    assert back.params == pytest.approx(result.params) and _flat(back.intervals) == pytest.approx(_flat(result.intervals))
    assert back.verdict == result.verdict and back.form.n_params == 4
    assert_allclose(back.compute_optimal([1e23])["params_low"], result.compute_optimal([1e23])["params_low"])
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(FitError, match="not a saved scalebench fit"):
        load_fit(tmp_path / "bad.json")


# --- duplicates and columns -------------------------------------------------------------------------
def test_duplicate_rows_are_warned_about_and_cannot_narrow_intervals():
    frame = isoflop_design(np.logspace(18, 22, 4), noise=0.01).drop(columns="run_id")
    once = fit(frame, bootstrap=30)
    doubled = pd.concat([frame, frame], ignore_index=True)
    with pytest.warns(UserWarning, match=f"{len(frame)} duplicate row"):
        twice = fit(doubled, bootstrap=30)
    assert twice.n_points == len(frame)
    assert _flat(twice.intervals) == pytest.approx(_flat(once.intervals))


def test_column_flags_and_custom_law_columns(tmp_path, capsys):
    from scalebench.cli import main

    frame = isoflop_design(np.logspace(18, 22, 4)).rename(columns={"params": "N", "tokens": "D"})
    path = tmp_path / "runs.csv"
    frame.to_csv(path, index=False)
    assert main(["fit", str(path), "--params-col", "N", "--tokens-col", "D", "--bootstrap", "0", "--json"]) == 0
    assert abs(json.loads(capsys.readouterr().out)["a"] - TRUTH.a) < 0.03
    with pytest.raises(FitError, match="missing column.*'params'.*--params-col"):
        fit(path)
    with pytest.raises(FitError, match=r"missing column\(s\) 'unique_tokens'"):
        fit(frame.rename(columns={"N": "params", "D": "tokens"}), "data-constrained")


# --- broken power law ---------------------------------------------------------------------------------
def test_broken_power_law_recovers_a_known_break():
    law = get_law("broken-power-tokens")
    truth = {"E": 1.2, "A": 30.0, "alpha": 0.1, "alpha1": 0.35, "d1": 3e6, "f1": 0.3}
    x = np.logspace(4, 9, 40)
    rng = np.random.default_rng(3)
    loss = FitResult.from_params(law, truth).predict(tokens=x) * np.exp(rng.normal(0, 0.002, x.size))
    result = fit(pd.DataFrame({"tokens": x, "loss": loss}), law, n_refine=32)
    assert result.success
    assert_allclose(np.log10(result.params["d1"]), np.log10(3e6), atol=0.15)
    assert_allclose(result.params["alpha"] + result.params["alpha1"], 0.45, atol=0.05)  # slope past the break
    assert_allclose(result.params["alpha"], 0.1, atol=0.05)
    two = BrokenPowerLaw(variable="tokens", n_breaks=2)
    assert two.name == "broken-power-tokens-2" and {"d2", "alpha2", "f2"} <= set(two.param_names)
    with pytest.raises(ConfigError, match="n_breaks"):
        BrokenPowerLaw(n_breaks=0)


# --- data-constrained law -----------------------------------------------------------------------------
def test_data_constrained_law_recovers_rd_and_rn_star():
    law = get_law("data-constrained")
    truth = {**EPOCH, "rd_star": 15.4, "rn_star": 5.3}
    rng = np.random.default_rng(4)
    n = 10 ** rng.uniform(7.5, 9.5, 300)
    unique = 10 ** rng.uniform(8.5, 10, 300)
    tokens = unique * 10 ** rng.uniform(0, 2, 300)  # 1 to 100 epochs
    frame = pd.DataFrame({"params": n, "tokens": tokens, "unique_tokens": unique})
    frame["loss"] = FitResult.from_params(law, truth).predict(n, tokens, unique_tokens=unique) * np.exp(
        rng.normal(0, 0.002, len(frame)))
    result = fit(frame, law, n_refine=24)
    assert result.success
    assert_allclose(result.params["rd_star"], 15.4, rtol=0.15)
    assert_allclose(result.params["rn_star"], 5.3, rtol=0.25)
    assert_allclose(result.params["alpha"], EPOCH["alpha"], atol=0.05)
    # with fresh data (one epoch, models no larger than the data's optimum) it is the base law
    fresh = FitResult.from_params(law, truth).predict(1e7, 1e10, unique_tokens=1e10)
    assert fresh == pytest.approx(TRUTH.predict(1e7, 1e10))


# --- comparison and groups ----------------------------------------------------------------------------
def test_compare_ranks_the_true_law_first():
    frame = isoflop_design(np.logspace(18, 22, 5), noise=0.002)
    table = compare_laws(frame, ["chinchilla", "kaplan-joint", "power-flops"], n_refine=16)
    assert list(table.columns[:6]) == ["law", "k", "n_points", "rmse_log", "aic", "bic"]
    assert table["law"].iloc[0] == "chinchilla" and table["backtest_mape"].iloc[0] < 0.01
    assert table.set_index("law").loc["chinchilla", "bic"] < table.set_index("law").loc["power-flops", "bic"]


def test_group_by_fits_one_law_per_group_and_compares_exponents():
    a = isoflop_design(np.logspace(18, 22, 4), seed=1).assign(family="gpt")
    other = {**EPOCH, "alpha": 0.6}
    b = isoflop_design(np.logspace(18, 22, 4), seed=2)
    b["loss"] = FitResult.from_params("chinchilla", other).predict(b["params"], b["tokens"])
    b = b.assign(family="lstm")
    grouped = fit_groups(pd.concat([a, b], ignore_index=True), by="family", bootstrap=20)
    assert set(grouped.results) == {"gpt", "lstm"}
    assert_allclose(grouped.results["lstm"].params["alpha"], 0.6, atol=0.03)
    s = json.loads(json.dumps(grouped.summary(), allow_nan=False))
    assert set(s["groups"]) == {"gpt", "lstm"} and s["group_by"] == "family"
    rows = {(r["group"], r["quantity"]): r for r in s["comparison"]}
    assert rows[("lstm", "a")]["value"] < rows[("gpt", "a")]["value"]  # a = beta/(alpha+beta)
    assert rows[("gpt", "a")]["low"] <= rows[("gpt", "a")]["value"] <= rows[("gpt", "a")]["high"]
    assert any("differs between gpt" in d for d in s["differences"])
    with pytest.raises(FitError, match="no column"):
        fit_groups(a, by="optimizer")


def test_cli_every_approach_compare_and_group_by(tmp_path, capsys):
    from scalebench.cli import main
    from scalebench.report.synthetic import make_synthetic_sweep

    csv = tmp_path / "runs.csv"
    frame = isoflop_design(np.logspace(18, 22, 5), noise=0.002)
    frame.assign(budget=[f"C{round(np.log10(c))}" for c in frame["flops"]]).to_csv(csv, index=False)
    assert main(["fit", str(csv), "--approach", "2", "--budget-col", "budget", "--bootstrap", "50", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["approach"] == 2 and abs(out["a"] - TRUTH.a) < 0.02
    assert out["ci"]["a"][0] <= out["a"] <= out["ci"]["a"][1] and "b" in out["ci"]
    assert out["diagnostics"]["verdict"] == "reliable"
    sweep = make_synthetic_sweep(tmp_path / "sweep", n_sizes=5, n_budgets=3)
    assert main(["fit", str(sweep), "--approach", "1", "--bootstrap", "20"]) == 0
    text = capsys.readouterr().out
    assert "Approach 1 (training-curve envelope)" in text and "verdict:" in text
    assert not (sweep / "fit.json").exists()  # only the parametric fit is saved
    assert main(["fit", str(csv), "--compare", "chinchilla,power-flops", "--json"]) == 0
    table = json.loads(capsys.readouterr().out)["compare"]
    assert [r["law"] for r in table] == ["chinchilla", "power-flops"]
    assert main(["fit", str(csv), "--group-by", "budget", "--law", "power-params", "--bootstrap", "0", "--json"]) == 0
    grouped = json.loads(capsys.readouterr().out)
    assert set(grouped["groups"]) == {"C18", "C19", "C20", "C21", "C22"} and grouped["comparison"]
    assert main(["fit", str(csv), "--approach", "2", "--fix", "E=1"]) == 2
    assert main(["fit", str(csv), "--law", "chinchilla", "--breaks", "2"]) == 2
