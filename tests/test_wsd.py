"""Warmup-stable-decay: the schedule, branches planned off each size's longest run, and a branch that is
bit for bit the run it would be from scratch."""

from __future__ import annotations

import dataclasses
import sqlite3

import pytest

from scalebench.config import TrainSpec, load_sweep
from scalebench.errors import ConfigError
from scalebench.store import load_results
from scalebench.sweep.planner import plan_runs
from scalebench.sweep.runner import run_sweep
from scalebench.train.optim import cooldown_start, lr_at

SPEC = """
name = "{name}"
[model]
shapes = [{{ n_layer = 1, d_model = 16, n_head = 1 }}, {{ n_layer = 1, d_model = 32, n_head = 2 }}]
[budget]
tokens = {tokens}
[train]
lr = 3e-3
schedule = "wsd"
warmup_share = 0.25
compile = "off"
checkpoint_interval_s = 0
batch_tokens = 128
seq_len = 16
[eval]
interval_steps = 8
eval_tokens = 1024
[devices]
device = "cpu"
cpu_workers = 2
[profiling]
profiler = "off"
{extra}
"""


def _write(tmp_path, name, tokens="[2048, 4096, 8192]", extra=""):
    p = tmp_path / f"{name}.toml"
    p.write_text(SPEC.format(name=name, tokens=tokens, extra=extra))
    return p


def test_the_schedule_warms_up_holds_and_cools_down_linearly():
    t = TrainSpec(schedule="wsd", warmup_steps=2, lr=1.0, min_lr_ratio=0.0, cooldown_share=0.5, batch_tokens=128,
                  seq_len=128)
    assert [round(lr_at(s, 10, t), 6) for s in range(10)] == [0.5, 1.0, 1.0, 1.0, 1.0, 0.8, 0.6, 0.4, 0.2, 0.0]
    assert cooldown_start(10, t) == 5
    # before a run's cooldown the rate depends on the step alone: a longer run shares the shorter one's prefix
    assert [lr_at(s, 10, t) for s in range(5)] == [lr_at(s, 40, t) for s in range(5)]
    with pytest.raises(ConfigError, match="cooldown_share"):
        TrainSpec(schedule="wsd", cooldown_share=0)


def test_branches_are_planned_off_each_sizes_longest_run(tmp_path):
    plan = plan_runs(load_sweep(_write(tmp_path, "p")), sweep_dir=tmp_path / "p")
    runs = {r.run_id: r for r in plan.runs}
    assert [bool(r.fork_from) for r in plan.runs] == [False, False, True, True, True, True]  # trunks first
    trunk = runs["gpt-L1-d16-h1-t8.19e3"]
    assert trunk.fork_steps == (13, 26) and not trunk.fork_from
    branch = runs["gpt-L1-d16-h1-t4.1e3"]
    assert branch.fork_from == {"run_id": trunk.run_id, "step": 26, "shared": 1, "spec_hash": trunk.spec_hash()}
    assert branch.fork_from["step"] == cooldown_start(branch.steps, branch.train)
    assert {r.train.warmup_steps for r in plan.runs} == {4}  # 25% of the shortest run's 16 steps, for all


def test_a_longer_budget_extends_a_sweep_without_touching_its_runs(tmp_path):
    before = plan_runs(load_sweep(_write(tmp_path, "e")), sweep_dir=tmp_path / "e")
    after = plan_runs(load_sweep(_write(tmp_path, "e", tokens="[2048, 4096, 8192, 16384]")), sweep_dir=tmp_path / "e")
    hashes = {r.run_id: r.spec_hash() for r in after.runs}
    assert all(hashes[r.run_id] == r.spec_hash() for r in before.runs)  # the old trunk is now a branch: same run
    assert next(r for r in after.runs if r.run_id == "gpt-L1-d16-h1-t8.19e3").fork_from["step"] == 51


def test_two_budgets_cooling_down_from_one_step_share_its_fork(tmp_path):
    plan = plan_runs(load_sweep(_write(tmp_path, "s", tokens="[1536, 1664, 8192]")), sweep_dir=tmp_path / "s")
    runs = [r for r in plan.runs if r.size == "L1-d16-h1"]
    branches = [r.fork_from for r in runs if r.fork_from]
    assert [(f["step"], f["shared"]) for f in branches] == [(10, 2), (10, 2)]  # 12 and 13 steps: cooldown from 10
    assert next(r for r in runs if not r.fork_from).fork_steps == (10,)


def test_a_warm_up_longer_than_the_stable_phase_is_refused(tmp_path):
    p = _write(tmp_path, "w")
    p.write_text(p.read_text().replace("warmup_share = 0.25", "warmup_share = 0.9"))
    with pytest.raises(ConfigError, match="warm-up steps, but run .* starts its cooldown"):
        plan_runs(load_sweep(p), sweep_dir=tmp_path / "w")


@pytest.mark.slow
def test_a_branch_waits_for_its_running_trunk(tmp_path):
    spec = _write(tmp_path, "one")
    spec.write_text(spec.read_text().replace("cpu_workers = 2", "cpu_workers = 3"))
    out = run_sweep(spec, tmp_path / "one")  # 3 workers, 2 trunks: a branch starts beside its running trunk
    with sqlite3.connect(out.sweep_dir / "scalebench.sqlite") as db:
        kinds = [k for (k,) in db.execute("SELECT kind FROM events WHERE kind IN ('branch', 'fork-missing')")]
    assert kinds == ["branch"] * 4


def test_wsd_branches_are_refused_where_they_cannot_be_ordered(tmp_path):
    for extra, match in (('[executor]\nkind = "slurm"', "local executor"), ("[parallel]\nranks = 2", "ranks")):
        with pytest.raises(ConfigError, match=match):
            plan_runs(load_sweep(_write(tmp_path, "x", extra=extra)), sweep_dir=tmp_path / "x")


@pytest.mark.slow
def test_a_branch_is_the_run_it_would_be_from_scratch(tmp_path):
    forked = run_sweep(_write(tmp_path, "a"), tmp_path / "a")
    scratch = run_sweep(_write(tmp_path, "b", tokens="[2048]"), tmp_path / "b")  # same warm-up: same shortest run
    a, b = (load_results(o.sweep_dir).set_index("run_id") for o in (forked, scratch))
    assert set(a.status) == {"done"} and len(a) == 6
    for run_id in b.index:
        assert a.loc[run_id, "eval_loss"] == b.loc[run_id, "eval_loss"]  # bit for bit
        assert a.loc[run_id, "train_loss"] == b.loc[run_id, "train_loss"]
        assert a.loc[run_id, "fork_step"] == 13
    with sqlite3.connect(forked.sweep_dir / "scalebench.sqlite") as db:
        kinds = [k for (k,) in db.execute("SELECT kind FROM events WHERE kind IN ('branch', 'fork-missing')")]
    assert kinds == ["branch"] * 4
    assert not list((forked.sweep_dir / "runs").glob("*/forks/*"))  # each removed once its branch committed
    # `scalebench next` extends the sweep with the warm-up its runs share, whatever budgets it proposes
    from scalebench.advisor.space import _pin_wsd_warmup
    from scalebench.store import load_meta

    spec = load_meta(forked.sweep_dir)["spec"]
    assert spec["train"]["warmup_steps"] is None
    assert _pin_wsd_warmup(forked.sweep_dir, spec)["train"]["warmup_steps"] == 4


def test_a_branch_without_its_trunks_state_trains_from_scratch(tmp_path):
    from scalebench.train import train
    from scalebench.train.record import NullSink

    plan = plan_runs(load_sweep(_write(tmp_path, "c", tokens="[2048, 4096]")), sweep_dir=tmp_path / "c")
    branch = next(r for r in plan.runs if r.fork_from and r.size == "L1-d16-h1")  # no store: its trunk is not running

    class Events(NullSink):
        kinds: list = []

        def add_event(self, run_id, kind, message):
            self.kinds.append(kind)

    sink = Events()
    got = train(branch, sink=sink, run_dir=tmp_path / "c" / "runs" / branch.run_id)
    alone = train(dataclasses.replace(branch, fork_from={}), run_dir=tmp_path / "alone")
    assert "fork-missing" in sink.kinds and got.eval_loss == alone.eval_loss and got.steps == alone.steps
