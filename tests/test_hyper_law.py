"""fit --hyper lr: each cell's best lr from a parabola in log lr, and a power law in N (and D), known answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from scalebench.cli import main
from scalebench.errors import FitError
from scalebench.laws.hyper import cell_optimum, fit_hyper_frame, load_hyper, save_hyper


def synthetic(a=-0.35, b=0.0, k=2.0, sizes=(1e5, 3e5, 1e6, 3e6, 1e7), budgets=(1e8,), seeds=2, noise=0.002,
              span=(0.25, 4.0), points=7, seed=0):
    """Losses E + A/N^0.3 + 0.08·(ln lr − ln lr*)² with lr* = k·N^a·(D/1e8)^b, plus Gaussian noise."""
    rng = np.random.default_rng(seed)
    rows = []
    for n in sizes:
        for d in budgets:
            opt = k * n**a * (d / 1e8) ** b
            for lr in opt * np.geomspace(*span, points):
                for s in range(seeds):
                    loss = 1.8 + 50 / n**0.3 + 0.08 * np.log(lr / opt) ** 2 + rng.normal(0, noise)
                    rows.append({"params": n, "tokens": d, "budget": f"t{d:g}", "lr": lr, "seed": s, "loss": loss})
    return pd.DataFrame(rows)


def test_parabola_vertex_is_the_optimum():
    h = np.geomspace(1e-3, 1e-1, 5)
    log_opt, se, edge, _ = cell_optimum(h, 2.0 + 0.1 * np.log(h / 0.01) ** 2)
    assert np.exp(log_opt) == pytest.approx(0.01) and not edge


def test_known_lr_exponent_is_recovered_with_its_interval():
    law = fit_hyper_frame(synthetic(), "lr")
    assert law.variables == ("params",)
    lo, hi = law.interval("a")
    assert lo < -0.35 < hi and hi - lo < 0.1
    np.testing.assert_allclose(law.coef["a"], -0.35, atol=0.03)
    assert law.verdict == "reliable", law.report()
    covered = {"a": 0, "lr": 0}  # the 95 % intervals cover the truth about that often over noise draws
    for seed in range(20):
        law = fit_hyper_frame(synthetic(seed=seed), "lr")
        lo, hi = law.interval("a")
        covered["a"] += lo < -0.35 < hi
        pred = law.predict(2e6)
        covered["lr"] += pred["low"] < 2.0 * 2e6**-0.35 < pred["high"]
    assert covered["a"] >= 16 and covered["lr"] >= 16, covered


def test_a_law_in_n_and_d_when_budgets_vary():
    law = fit_hyper_frame(synthetic(b=-0.2, budgets=(1e8, 4e8, 1.6e9), seeds=1, noise=0.001), "lr")
    assert law.variables == ("params", "tokens")
    np.testing.assert_allclose([law.coef["a"], law.coef["b"]], [-0.35, -0.2], atol=0.05)
    assert law.interval("b")[0] < -0.2 < law.interval("b")[1]


def test_an_unbracketed_optimum_makes_the_law_weak_and_names_the_cell():
    frame = synthetic()
    top = frame["params"] == 1e7
    frame = frame[~top | (frame["lr"] > 2.0 * 1e7**-0.35 * 1.5)]  # the top size only sampled above its optimum
    law = fit_hyper_frame(frame, "lr")
    assert law.verdict == "weak"
    assert any("N=1e+07" in r for r in law.reasons), law.reasons


def test_too_few_cells_is_an_error_and_the_law_round_trips(tmp_path):
    with pytest.raises(FitError, match="cell"):
        fit_hyper_frame(synthetic(sizes=(1e5, 1e6)), "lr")
    law = fit_hyper_frame(synthetic(), "lr")
    again = load_hyper(save_hyper(law, tmp_path))
    assert again.predict(1e8)["value"] == pytest.approx(law.predict(1e8)["value"])


def test_cli_fits_a_csv_and_predicts_the_target(tmp_path, capsys):
    path = tmp_path / "sweep.csv"
    synthetic().to_csv(path, index=False)
    assert main(["fit", str(path), "--hyper", "lr", "--at-params", "1e8"]) == 0
    out = capsys.readouterr().out
    assert "lr law" in out and "exponent of N" in out and "at N=1e+08" in out
    assert main(["fit", str(path), "--hyper", "momentum"]) == 2


def _batch_store(tmp_path, a=0.4, k=30.0, sizes=(1e5, 3e5, 1e6, 3e6, 1e7), tokens=1e9, seeds=2, noise=0.002):
    """A sweep folder with a [grid] batch axis: losses with a penalty 0.05·(ln B − ln B*)², B* = k·N^a tokens."""
    from scalebench.store import ResultStore

    rng = np.random.default_rng(4)
    out = tmp_path / "batch-law"
    runs = []
    for i, n in enumerate(sizes):
        opt = k * n**a
        for j, batch in enumerate(opt * np.geomspace(0.25, 4.0, 5)):
            for s in range(seeds):
                loss = 1.8 + 50 / n**0.3 + 0.05 * np.log(batch / opt) ** 2 + rng.normal(0, noise)
                runs.append((f"n{i}-b{j}-s{s}", n, float(batch), s, loss))
    with ResultStore(out, create=True) as store:
        store.set_meta(spec={"name": out.name}, env={}, corpus={}, plan_notes=[], sweep_name=out.name)
        for run_id, n, batch, s, loss in runs:
            store.add_runs([(run_id, run_id, {"family": "gpt", "size": f"{n:.2g}", "budget_label": "t1e9",
                                              "params": n, "params_total": n, "tokens": tokens, "flops": 6 * n * tokens,
                                              "flops_per_token": 6 * n, "axes": {"batch": batch, "seed": s},
                                              "train": {"lr": 1e-3, "batch_tokens": batch},
                                              "shape": {"n_layer": 2, "d_model": 64, "n_head": 2}})])
            store.set_status(run_id, "running", pid=1, host="t")
            store.set_status(run_id, "done", record={"eval_loss": loss})
    return out


def test_fit_hyper_batch_on_a_sweep_folder_recovers_the_batch_exponent(tmp_path, capsys):
    sweep = _batch_store(tmp_path)
    assert main(["fit", str(sweep), "--hyper", "batch", "--at-params", "1e8"]) == 0
    out = capsys.readouterr().out
    assert "batch law" in out and "exponent of N" in out and "at N=1e+08" in out
    law = load_hyper(sweep, "batch")
    assert law.hyper == "batch" and law.variables == ("params",)
    lo, hi = law.interval("a")
    assert lo < 0.4 < hi and hi - lo < 0.2, law.report()
    np.testing.assert_allclose(law.coef["a"], 0.4, atol=0.05)
    assert law.predict(1e8)["value"] == pytest.approx(30.0 * 1e8**0.4, rel=0.3)
