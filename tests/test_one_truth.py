"""One sweep, one truth: the CLI, ``scalebench.Sweep(dir)`` and the page show the same fit, verdict, reasons and
intervals; the page renders what fit.json holds (it never fits or advises); a sweep with an axis is compared
per group and its string axis draws."""

from __future__ import annotations

import json

import numpy as np
import pytest

from scalebench import Sweep
from scalebench.cli import main
from scalebench.report import ReportOptions, build_report_data, render_html
from scalebench.report.synthetic import make_synthetic_sweep

B = 20  # bootstrap resamples: enough for the percentile definition (laws.intervals.MIN_BOOTSTRAP)


def _flat(intervals) -> dict:
    return {f"{k}.{end}": v for k, pair in intervals.items() for end, v in zip(("lo", "hi"), pair, strict=True)}


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    return make_synthetic_sweep(tmp_path_factory.mktemp("one") / "sweep", n_sizes=5, n_budgets=3)


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    return make_synthetic_sweep(tmp_path_factory.mktemp("mixed") / "sweep", n_sizes=5, n_budgets=3,
                                families={"gpt": {}, "lstm": {"alpha": 0.5}})


def test_cli_python_and_page_show_one_fit(single, capsys):
    assert main(["fit", str(single), "--bootstrap", str(B), "--json", "--at-flops", "1e20"]) == 0
    printed = json.loads(capsys.readouterr().out)
    sweep = Sweep(single)
    ours = sweep.fit(bootstrap=B, save=False)
    from scalebench import fit

    for r in (ours, fit(single, bootstrap=B)):
        assert r.params == pytest.approx(printed["params"])
        assert _flat(r.intervals) == pytest.approx(_flat(printed["ci"]))
        assert r.diagnostics.summary()["reasons"] == printed["diagnostics"]["reasons"]
        assert r.verdict == printed["diagnostics"]["verdict"]
    data = build_report_data(single, ReportOptions(bootstrap=B))
    assert data.fit_origin == "saved" and data.fit.params == pytest.approx(printed["params"])
    assert data.fit.verdict == printed["diagnostics"]["verdict"]
    assert list(data.fit.diagnostics.reasons) == printed["diagnostics"]["reasons"]
    # fit.json holds the residuals and the backtest the page draws
    assert data.fit.residuals is not None and len(data.fit.residuals) == printed["n_points"]
    assert data.backtest is not None and data.backtest.mape == pytest.approx(printed["backtest"]["mape"])
    # one interval per quantity: `fit --at-flops` and the page's frontier give the same numbers
    row = data.fit.compute_optimal([1e20]).iloc[0]
    opt = printed["optimum"]
    assert opt["ci_method"] == "bootstrap"
    for q in ("params", "tokens", "loss"):
        assert [row[f"{q}_low"], row[f"{q}_high"]] == pytest.approx(opt["ci"][q])
    html = render_html(data)
    assert f">{printed['diagnostics']['verdict']}<" in html


def test_the_page_renders_saved_results_and_never_fits_or_advises(single, monkeypatch):
    build_report_data(single, ReportOptions(bootstrap=B))  # completes fit.json (analysis section) if needed
    saved = json.loads((single / "fit.json").read_text())
    assert saved["residuals"]["rows"] and "analysis" in saved

    def refuse(*args, **kwargs):
        raise AssertionError("the report fitted or advised at render time")

    import importlib

    for module, name in (("scalebench.laws.fitting", "fit_frame"), ("scalebench.advisor.advise", "advise"),
                         ("scalebench.laws.isoflop", "isoflop_approach2"),
                         ("scalebench.laws.isoflop", "isoflop_approach1")):
        monkeypatch.setattr(importlib.import_module(module), name, refuse)
    data = build_report_data(single, ReportOptions(bootstrap=B))
    html = render_html(data)
    assert data.fit_origin == "saved" and data.isoflop is not None and 'id="fig-residuals"' in html
    assert "no proposal saved" in html and "scalebench next" in html


def test_the_store_is_opened_once_per_report(single, monkeypatch):
    from scalebench import store

    build_report_data(single, ReportOptions(bootstrap=B))
    opened = []
    real = store.ResultStore.__init__
    monkeypatch.setattr(store.ResultStore, "__init__", lambda self, *a, **k: (opened.append(a), real(self, *a, **k))[1])
    render_html(build_report_data(Sweep(single), ReportOptions(bootstrap=B)))
    assert len(opened) == 1


def test_a_mixed_sweep_is_compared_per_group_the_same_everywhere(mixed, capsys):
    assert main(["fit", str(mixed), "--group-by", "family", "--bootstrap", str(B), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    grouped = Sweep(mixed).fit(group_by="family", bootstrap=B)
    data = build_report_data(mixed, ReportOptions(bootstrap=B))
    assert data.groups.by == "family" and set(data.groups.results) == {"gpt", "lstm"}
    for g in ("gpt", "lstm"):
        cli = printed["groups"][g]
        for r in (grouped.results[g], data.groups.results[g]):
            assert r.params == pytest.approx(cli["params"])
            assert _flat(r.intervals) == pytest.approx(_flat(cli["ci"]))
            assert r.verdict == cli["diagnostics"]["verdict"]
    assert grouped.differences() == printed["differences"] == data.groups.differences()
    # never a pooled headline from mixed groups
    assert data.fit is None and "family" in data.missing["fit"]
    assert data.predictions is None and "plan" in data.missing


def test_a_string_axis_comparison_draws_its_points(mixed):
    from matplotlib.figure import Figure

    from scalebench.report.figures import fig_groups

    data = build_report_data(mixed, ReportOptions(bootstrap=B))
    fig = Figure()
    fig_groups(data, fig)
    points = [line for line in fig.axes[0].lines if line.get_marker() == "o"]
    assert len(points) == 2 and sum(len(line.get_xdata()) for line in points) == len(data.done)


def test_compare_and_law_give_one_verdict(single):
    from scalebench.laws import compare_laws

    table = compare_laws(single, ["chinchilla", "kaplan-joint"], bootstrap=B)
    for law in ("chinchilla", "kaplan-joint"):
        verdict = table.loc[table["law"] == law, "verdict"].iloc[0]
        assert verdict == Sweep(single).fit(law, bootstrap=B, save=False).verdict


def test_a_difference_is_claimed_only_between_determined_fits():
    from scalebench.laws.diagnostics import Diagnostics
    from scalebench.laws.groups import GroupedFit
    from scalebench.laws.result import FitResult

    def result(a_lo, a_hi, verdict):
        r = FitResult.from_params("chinchilla", {"E": 1.7, "A": 400.0, "B": 410.0, "alpha": 0.34, "beta": 0.28})
        import dataclasses

        return dataclasses.replace(r, intervals={"a": (a_lo, a_hi)}, diagnostics=Diagnostics(
            verdict=verdict, reasons=("8 points for 5 free parameters",) if verdict != "reliable" else ()))

    apart = GroupedFit(by="family", results={"gpt": result(0.40, 0.45, "reliable"),
                                             "lstm": result(0.50, 0.55, "undetermined")})
    text = " ".join(apart.differences())
    assert "differs" not in text and "lstm" in text and "undetermined" in text
    both = GroupedFit(by="family", results={"gpt": result(0.40, 0.45, "reliable"),
                                            "lstm": result(0.50, 0.55, "reliable")})
    assert any("differs between gpt" in d for d in both.differences())
    assert np.isfinite(both.comparison()["value"]).all()
    three = GroupedFit(by="group", results={"adamw": result(0.40, 0.45, "weak"), "sgd-m0.9": result(0.43, 0.5, "weak"),
                                            "sgd-m0": result(0.6, 0.9, "weak")})
    said = three.differences()  # one sentence per pair: two differences and one overlap
    assert len(said) == 3 and sum("differs" in d for d in said) == 2
    assert any(d.startswith("no difference in a shown between adamw") and "sgd-m0.9" in d for d in said)


def test_runs_differing_in_two_axes_are_compared_per_combination(tmp_path):
    """optimizer x momentum: `group` names each combination (the page's default grouping), and grouping by
    optimizer alone, which pools momentum 0 and 0.9 into one law, says so."""
    from scalebench.laws.analysis import group_axis
    from scalebench.laws.sweepfit import _warn_if_pooled
    from scalebench.store import ResultStore, SweepTables

    with ResultStore(tmp_path, create=True) as store:
        for i, (opt, m) in enumerate([("adamw", None), ("sgd", 0.0), ("sgd", 0.9)] * 2):
            run_id = f"mlp-{i}-{opt}-{m}"
            store.add_runs([(run_id, f"h{i}", {"family": "mlp", "params": 1e3 * (1 + i), "tokens": 1e4,
                                               "flops": 6e7 * (1 + i), "axes": {"optimizer": opt, "momentum": m}})])
            store.set_status(run_id, "running", pid=1, host="x")
            store.set_status(run_id, "done", record={"eval_loss": 1.0 + i / 10})
    sweep = SweepTables(tmp_path)
    assert sorted(set(sweep.results["group"])) == ["optimizer=adamw", "optimizer=sgd momentum=0.0",
                                                   "optimizer=sgd momentum=0.9"]
    assert group_axis(sweep.results, None, sweep.axes) == "group"
    with pytest.warns(UserWarning, match="optimizer=sgd holds optimizer=sgd momentum=0.0 and .*--group-by group"):
        _warn_if_pooled(sweep, "optimizer")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _warn_if_pooled(sweep, "group")


def test_a_plan_from_a_weak_fit_carries_its_flag_on_every_surface(tmp_path, capsys):
    import scalebench

    folder = make_synthetic_sweep(tmp_path / "weak", n_sizes=4, n_budgets=2)  # 8 runs on 2 budgets
    assert main(["fit", str(folder), "--bootstrap", "0", "--json"]) in (0, 1)
    verdict = json.loads(capsys.readouterr().out)["diagnostics"]["verdict"]
    assert verdict != "reliable"
    with pytest.warns(UserWarning, match=f"plan: from an? {verdict} fit"):
        planned = scalebench.plan(law=str(folder), flops=1e23, gpu="H100-SXM")
    assert planned.caveats and not planned.to_dict()["trusted"]
    assert any("beyond the fit's largest run" in c for c in planned.caveats)
    assert f"caution: from an {verdict} fit" in planned.report() or f"caution: from a {verdict} fit" in planned.report()
    assert main(["plan", "--law", str(folder / "fit.json"), "--flops", "1e23", "--gpu", "H100-SXM", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["trusted"] is False and printed["caveats"] == list(planned.caveats)
    html = render_html(build_report_data(folder, ReportOptions(bootstrap=0)))
    assert 'id="plan-warning"' in html and 'id="predictions-warning"' in html
    # a published preset has no runs to be outside of, and no verdict: nothing to mark
    assert not scalebench.plan(law="chinchilla-epoch", flops=1e23, gpu="H100-SXM").caveats
    with pytest.raises(scalebench.ConfigError, match="holds no fit.json"):
        scalebench.plan(law=str(tmp_path), flops=1e23, gpu="H100-SXM")


def test_epochs_240_chinchilla_points_are_reliable_with_two_cautions():
    """Two large runs sit ~2.5% off the law: a caution, not a downgrade (the law itself holds)."""
    from pathlib import Path

    from scalebench import fit

    result = fit(Path(__file__).parent / "data" / "epoch_chinchilla_240.csv", bootstrap=40)
    d = result.diagnostics
    assert d.verdict == "reliable", d.reasons
    assert len(d.cautions) == 2 and all("off the law" in c for c in d.cautions)
    assert result.params["alpha"] == pytest.approx(0.348, abs=0.01)  # Besiroglu et al. 2024: 0.3478
    assert result.params["beta"] == pytest.approx(0.366, abs=0.01)  # 0.3658
    assert "cautions (not lowering the verdict)" in result.report()


def test_the_degenerate_first_quickstart_stays_not_reliable(tmp_path):
    from scalebench import fit

    folder = make_synthetic_sweep(tmp_path / "eight", n_sizes=4, n_budgets=2)  # 8 runs on two budgets
    assert fit(folder, bootstrap=B).verdict == "undetermined"
