"""Ladder health: probes, spikes, crossing curves, cells left out and seed noise, on ladders built to be
untuned (a too-high lr at the top sizes) and tuned, written into real stores; their findings join the fit."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from scalebench.cli import main
from scalebench.laws.health import health_of, ladder_health, spikes
from scalebench.laws.hyper import cell_optima
from scalebench.store import ResultStore

SIZES = (2e5, 4e5, 8e5, 1.6e6, 3.2e6)
TOKENS = 2e7


def _opt_lr(n: float) -> float:
    return 0.5 * n**-0.3


def _loss(n: float, t: float, lr: float) -> float:
    """A Chinchilla-like curve with a penalty for the lr's distance from the size's optimum."""
    return 1.7 + 120 / n**0.34 + 60 / t**0.28 + 0.08 * math.log(lr / _opt_lr(n)) ** 2


def make_ladder(tmp_path, *, untuned: bool, seeds: int = 2, noise: float = 0.002, status: dict | None = None):
    rng = np.random.default_rng(0)
    out = tmp_path / ("untuned" if untuned else "tuned")
    runs = []
    for i, n in enumerate(SIZES):
        lr = _opt_lr(n) * (8.0 if untuned and i >= len(SIZES) - 2 else 1.0)
        for s in range(seeds):
            runs.append((f"n{i}-s{s}", n, lr, {"seed": s}))
        if i in (0, len(SIZES) - 1):
            for f in (0.5, 2.0):
                runs.append((f"n{i}-probe{f:g}", n, lr * f, {"probe": f}))
    with ResultStore(out, create=True) as store:
        store.set_meta(spec={"name": out.name}, env={}, corpus={}, plan_notes=[], sweep_name=out.name)
        for run_id, n, lr, axes in runs:
            store.add_runs([(run_id, run_id, {"family": "gpt", "size": f"{n:.2g}", "budget_label": "t2e7",
                                              "params": n, "params_total": n, "tokens": TOKENS, "flops": 6 * n * TOKENS,
                                              "flops_per_token": 6 * n, "axes": axes, "train": {"lr": lr},
                                              "shape": {"n_layer": 2, "d_model": 64, "n_head": 2}})])
        for run_id, n, lr, _axes in runs:
            toks = np.linspace(TOKENS / 80, TOKENS, 80)
            curve = [_loss(n, t, lr) + rng.normal(0, noise) for t in toks]
            if untuned and n == SIZES[-1] and "probe" not in run_id:
                curve[50] *= 1.6  # a too-high lr spikes
            store.add_steps(run_id, [{"step": j, "tokens": int(t), "loss": float(x), "lr": lr}
                                     for j, (t, x) in enumerate(zip(toks, curve, strict=True))])
            final = _loss(n, TOKENS, lr) + rng.normal(0, noise)
            st = (status or {}).get(run_id, "done")
            store.set_status(run_id, "running", pid=1, host="t")
            store.set_status(run_id, st, record={"eval_loss": final} if st == "done" else None,
                             error=None if st == "done" else "boom")
    return out


def test_an_untuned_ladder_is_named_and_a_tuned_one_is_not(tmp_path):
    bad = ladder_health(make_ladder(tmp_path, untuned=True))
    kinds = {f.kind for f in bad.findings if f.level == "weak"}
    assert {"untuned", "spike", "crossing"} <= kinds, bad.report()
    untuned = [f for f in bad.findings if f.kind == "untuned"]
    top = f"{SIZES[-1]:.2g}"
    assert [f.where.split()[0] for f in untuned] == [top]
    better = 8 * _opt_lr(SIZES[-1]) * 0.5
    assert f"{better:.3g}" in untuned[0].message and "x0.5" in untuned[0].message
    assert bad.noise["dof"] > 0 and bad.noise["sigma"] == pytest.approx(0.002, rel=0.6)
    good = ladder_health(make_ladder(tmp_path, untuned=False))
    assert good.level == "ok", good.report()
    assert {f.kind for f in good.findings} == {"tuned"}


def test_findings_join_the_fits_verdict(tmp_path, capsys):
    sweep = make_ladder(tmp_path, untuned=True)
    main(["fit", str(sweep), "--law", "power-params", "--bootstrap", "0", "--no-save"])
    out = capsys.readouterr().out
    assert "ladder: untuned rung" in out and "RELIABLE" not in out
    assert "ladder: curves cross" in out


def test_cells_left_out_are_said(tmp_path):
    sweep = make_ladder(tmp_path, untuned=False, status={"n1-s1": "diverged", "n2-s0": "failed"})
    health = ladder_health(sweep)
    text = health.report()
    assert "1 diverged cell(s) excluded from the fit (n1-s1)" in text and "1 failed" in text
    assert health.level == "ok"  # said; the fit's own checks weigh the cells that remain


def test_spike_rule():
    rng = np.random.default_rng(1)
    loss = 3 - np.linspace(0, 1, 100) + rng.normal(0, 0.01, 100)
    assert spikes(loss) == []
    loss[60] += 0.5
    assert [i for i, _ in spikes(loss)] == [60]


def test_seeds_feed_the_weights_of_each_cells_optimum():
    rows = []
    for n, spread in ((1e5, 0.001), (1e6, 0.05)):
        for lr in np.geomspace(1e-3, 1e-1, 5):
            for s, sign in enumerate((-1, 1)):
                rows.append({"params": n, "tokens": 1e7, "budget": "t", "lr": lr, "seed": s,
                             "loss": 2 + 0.1 * np.log(lr / 1e-2) ** 2 + sign * spread})
    quiet, noisy = cell_optima(pd.DataFrame(rows), "lr")
    assert noisy.se > 10 * quiet.se  # the noisier cell's seeds widen its optimum, so it weighs less
    one_seed = health_of(pd.DataFrame([{"run_id": "a", "status": "done", "size": "s", "budget": "b",
                                        "eval_loss": 2.0}]))
    assert one_seed.noise["dof"] == 0 and "no seeds" in one_seed.noise["source"]


def test_an_lr_sweep_compares_each_size_at_its_best_lr():
    rows, steps = [], []
    for size, n in (("s", 1e5), ("l", 1e6)):
        for lr in (1e-3, 1e-2):
            bad = size == "l" and lr == 1e-2  # the large size mistuned at one grid point only
            final = (2.5 if size == "s" else 2.3) + (0.5 if bad else 0.0)
            run_id = f"{size}-{lr:g}"
            rows.append({"run_id": run_id, "status": "done", "size": size, "budget": "t", "lr": lr, "params": n,
                         "eval_loss": final})
            steps += [{"run_id": run_id, "step": j, "tokens": 1000 * (j + 1), "loss": final + 1.0 / (j + 1)}
                      for j in range(40)]
    health = health_of(pd.DataFrame(rows), pd.DataFrame(steps))
    assert not [f for f in health.findings if f.kind == "crossing"], health.report()
    rows[-1]["eval_loss"] = rows[-2]["eval_loss"] = 2.7  # now worse at both: it crosses at its best lr too
    steps = [dict(s, loss=2.7 + 1.0 / (s["step"] + 1)) if s["run_id"].startswith("l-") else s for s in steps]
    health = health_of(pd.DataFrame(rows), pd.DataFrame(steps))
    assert [f.where for f in health.findings if f.kind == "crossing"] == ["s/l"], health.report()
