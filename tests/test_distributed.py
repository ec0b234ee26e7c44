"""One run on several ranks: torchrun with gloo on CPU, DDP and FSDP2, decisions taken together."""

from __future__ import annotations

import json

import pytest

import scalebench
from scalebench.config import load_sweep
from scalebench.sweep.planner import plan_runs
from scalebench.sweep.runner import run_sweep
from scalebench.train import train
from scalebench.train.faults import ENV
from scalebench.train.parallel import BYTES_PER_PARAM_STATES, choose_strategy

TINY_LADDER = 'shapes = [{n_layer = 2, d_model = 32, n_head = 2}, {n_layer = 1, d_model = 16, n_head = 1}]'
DEBUG = "L2-d32-h2"  # the debug flavour's shape; the 1-layer size only completes the ladder cheaply


def _sweep(write_sweep, name, strategy="ddp", ckpt=120.0, workers=1, ladder='sizes = ["debug", "100k"]'):
    # the template's [train] table is extended by appending keys to it: rewrite it instead
    path = write_sweep(name=name, tokens="[16384]", workers=workers)
    text = path.read_text().replace("compile = \"off\"", "compile = \"off\"\nmicro_batch = 4\n"
                                    f"checkpoint_interval_s = {ckpt}")
    text = text.replace('sizes = ["debug", "100k"]', ladder)
    path.write_text(text + f"\n[parallel]\nranks = 2\nstrategy = \"{strategy}\"\n[executor]\nmax_attempts = 2\n")
    return path


def test_auto_strategy_is_ddp_when_the_replicated_states_fit():
    small = choose_strategy("auto", params_total=10**6, world_size=2, device_type="cuda", memory_bytes=80 * 2**30)
    assert small[0] == "ddp"
    # 8e9 params x 16 B = 119 GiB of states: more than 60% of an 80 GiB card
    big = choose_strategy("auto", params_total=8 * 10**9, world_size=8, device_type="cuda", memory_bytes=80 * 2**30)
    assert big[0] == "fsdp" and "exceed" in big[1]
    assert BYTES_PER_PARAM_STATES * 8 * 10**9 > 0.6 * 80 * 2**30
    assert choose_strategy("fsdp", params_total=1, world_size=2, device_type="cpu", memory_bytes=None)[0] == "fsdp"
    assert choose_strategy("auto", params_total=1, world_size=1, device_type="cpu", memory_bytes=None)[0] == "single"


def test_a_batch_that_does_not_split_over_the_ranks_is_refused(write_sweep):
    path = write_sweep(name="odd", tokens="[16384]")
    path.write_text(path.read_text() + "\n[parallel]\nranks = 3\n")  # 16 sequences over 3 ranks
    with pytest.raises(scalebench.ConfigError, match="split evenly over the ranks"):
        plan_runs(load_sweep(path))


@pytest.mark.slow
def test_two_rank_ddp_follows_the_one_rank_curve(write_sweep, tmp_path):
    path = _sweep(write_sweep, "ddp", ladder=TINY_LADDER)
    outcome = run_sweep(path, tmp_path / "ddp")
    assert outcome.counts == {"done": 2}
    df = scalebench.load_results(tmp_path / "ddp").set_index("run_id")
    assert set(df.world_size) == {2} and set(df.strategy) == {"ddp"}
    run = next(r for r in plan_runs(load_sweep(path)).runs if r.size == DEBUG)
    one = train(run.__class__.from_dict({**run.to_dict(), "parallel": {"ranks": 1, "strategy": "auto"},
                                         "run_dir": str(tmp_path / "one")}))
    # same global batch (rank r takes micro-batches r, r+2, ...) and seed: the curves agree to float noise
    assert df.loc[run.run_id, "eval_loss"] == pytest.approx(one.eval_loss, rel=1e-4)
    steps = scalebench.load_steps(tmp_path / "ddp")
    assert len(steps[steps.run_id == run.run_id]) == run.steps


@pytest.mark.slow
def test_oom_on_one_rank_backs_off_all_and_a_diverging_rank_stops_all(write_sweep, tmp_path, monkeypatch):
    path = _sweep(write_sweep, "faults")
    runs = {r.size: r.run_id for r in plan_runs(load_sweep(path)).runs}
    monkeypatch.setenv(ENV, json.dumps([
        {"kind": "oom", "rank": 1, "step": 3, "micro_above": 2, "run_id": runs["debug"]},
        {"kind": "nan", "rank": 1, "step": 12, "run_id": runs["100k"]},
    ]))
    outcome = run_sweep(path, tmp_path / "faults")
    df = scalebench.load_results(tmp_path / "faults").set_index("run_id")
    oom = df.loc[runs["debug"]]
    # rank 1 alone ran out; both ranks halved the micro-batch (8 rows per rank: 4 -> 2) and finished
    assert oom.status == "done" and oom.micro_batch == 2 and oom.oom_backoffs == 1 and oom.grad_accum == 8
    div = df.loc[runs["100k"]]
    assert div.status == "diverged" and "loss became nan" in div.error
    assert outcome.counts == {"done": 1, "diverged": 1}


@pytest.mark.slow
def test_fsdp_rank_killed_mid_run_resumes_from_its_sharded_checkpoint(write_sweep, tmp_path, monkeypatch):
    path = _sweep(write_sweep, "fsdp", strategy="fsdp", ckpt=1e-6, ladder=TINY_LADDER)
    plan = plan_runs(load_sweep(path))
    run = next(r for r in plan.runs if r.size == DEBUG)
    monkeypatch.setenv(ENV, json.dumps({"kind": "kill", "rank": 1, "step": 21, "run_id": run.run_id,
                                        "once": str(tmp_path / "killed")}))
    outcome = run_sweep(path, tmp_path / "fsdp")
    assert outcome.counts == {"done": 2}
    events = scalebench.load_events(tmp_path / "fsdp")
    mine = events[events.run_id == run.run_id]
    assert "retry" in set(mine.kind) and any(mine.message.str.startswith("resumed from checkpoint at step 2"))
    steps = scalebench.load_steps(tmp_path / "fsdp")
    got = steps[steps.run_id == run.run_id].step.tolist()
    assert got == list(range(run.steps))  # nothing lost, nothing recorded twice
    df = scalebench.load_results(tmp_path / "fsdp").set_index("run_id")
    assert df.loc[run.run_id, "strategy"] == "fsdp" and df.loc[run.run_id, "attempts"] == 2
