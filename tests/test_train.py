"""One run in-process: learning, OOM back-off, divergence, checkpoint and resume."""

from __future__ import annotations

import dataclasses

import pytest
import torch

import scalebench.train as train_mod
from scalebench.config import load_sweep
from scalebench.errors import DeviceError
from scalebench.sweep.planner import plan_runs
from scalebench.train import train


class Collect:
    def __init__(self):
        self.steps, self.events = [], []

    def add_steps(self, run_id, rows):
        self.steps.extend(rows)

    def add_event(self, run_id, kind, message):
        self.events.append((kind, message))

    def add_telemetry(self, run_id, samples):
        self.telemetry = samples

    def truncate_steps(self, run_id, after_step=-1):
        self.steps = [r for r in self.steps if r["step"] <= after_step]


@pytest.fixture
def run_spec(write_sweep, tmp_path):
    plan = plan_runs(load_sweep(write_sweep(tokens="[16384]")), sweep_dir=tmp_path / "sweep")
    return next(r for r in plan.runs if r.size == "debug")


@pytest.fixture(autouse=True)
def _no_fault():
    yield
    train_mod.fault_hook = None


def test_a_run_learns_and_reports_every_step(run_spec):
    sink = Collect()
    rec = train(run_spec, sink=sink)
    assert rec.status == "done" and rec.steps == run_spec.steps == 32
    assert rec.tokens == run_spec.tokens and rec.flops == pytest.approx(run_spec.flops)
    assert [r["step"] for r in sink.steps] == list(range(32))
    assert sink.steps[-1]["loss"] < sink.steps[0]["loss"] - 1.0  # from ~ln 256 = 5.5 down
    assert rec.eval_loss < 4.5 and rec.train_loss < 4.5
    assert sum(r.get("eval_loss") is not None for r in sink.steps) == 4  # every 10 steps and at the end
    lrs = [r["lr"] for r in sink.steps]
    assert max(lrs) == pytest.approx(run_spec.train.lr, rel=0.05) and lrs[-1] < 0.2 * max(lrs)  # cosine


def test_same_seed_same_result(run_spec):
    a, b = train(run_spec), train(run_spec)
    assert a.eval_loss == pytest.approx(b.eval_loss, rel=1e-6)


def test_oom_halves_the_micro_batch_keeping_the_global_batch(run_spec):
    def hook(step, micro):
        if micro > 4:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (injected)")

    train_mod.fault_hook = hook
    sink = Collect()
    rec = train(run_spec, sink=sink)
    assert rec.status == "done" and rec.micro_batch == 4 and rec.grad_accum == 4  # 16 seqs = 4 x 4
    assert rec.oom_backoffs == 2 and rec.tokens == run_spec.tokens
    assert [k for k, _ in sink.events] == ["oom-backoff", "oom-backoff"]
    assert "micro-batch halved to 8" in sink.events[0][1]


def test_oom_at_micro_batch_1_fails_with_a_clear_error(run_spec):
    def hook(step, micro):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory (injected)")

    train_mod.fault_hook = hook
    with pytest.raises(DeviceError, match="out of memory at micro-batch 1"):
        train(run_spec)


def test_exploding_loss_is_marked_diverged_with_the_reason(run_spec):
    hot = dataclasses.replace(run_spec, train=dataclasses.replace(run_spec.train, lr=50.0, warmup_share=0.0,
                                                                   grad_clip=0.0))
    rec = train(hot)
    assert rec.status == "diverged"
    assert "loss" in rec.error and ("nan" in rec.error or "inf" in rec.error or "exceeds" in rec.error)
    assert rec.steps < run_spec.steps and rec.eval_loss is None


def test_checkpoint_resume_continues_where_it_stopped(run_spec, tmp_path):
    ckpt_spec = dataclasses.replace(run_spec, train=dataclasses.replace(run_spec.train, checkpoint_interval_s=1e-6))
    reference = train(run_spec)

    def crash(step, micro):
        if step == 25:
            raise RuntimeError("worker crashed (injected)")

    train_mod.fault_hook = crash
    sink = Collect()
    with pytest.raises(RuntimeError, match="injected"):
        train(ckpt_spec, sink=sink, run_dir=tmp_path)
    assert (tmp_path / "checkpoint.pt").is_file()
    train_mod.fault_hook = None
    rec = train(ckpt_spec, sink=sink, run_dir=tmp_path)
    assert ("resume", "resumed from checkpoint at step 20") in sink.events
    assert [r["step"] for r in sink.steps] == list(range(32))  # no step lost, none recorded twice
    assert rec.eval_loss == pytest.approx(reference.eval_loss, rel=1e-4)
    assert not (tmp_path / "checkpoint.pt").exists()  # removed once the run is done


def test_oom_backoff_keeps_an_odd_global_batch_exact(write_sweep, tmp_path):
    extra = "\n"  # 6 sequences per step: 6 -> 3 -> 2 keeps 6 = micro x accumulation
    path = write_sweep(tokens="[3840]", extra=extra)
    path.write_text(path.read_text().replace("batch_tokens = 512", "batch_tokens = 192"))
    run = next(r for r in plan_runs(load_sweep(path)).runs if r.size == "debug")

    def hook(step, micro):
        if micro > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (injected)")

    train_mod.fault_hook = hook
    rec = train(run)
    assert (rec.micro_batch, rec.grad_accum, rec.oom_backoffs) == (2, 3, 2)
    assert rec.tokens == run.tokens == 20 * 192


def test_a_checkpoint_from_other_settings_is_not_resumed(run_spec, tmp_path):
    ckpt_spec = dataclasses.replace(run_spec, train=dataclasses.replace(run_spec.train, checkpoint_interval_s=1e-6))

    def crash(step, micro):
        if step == 25:
            raise RuntimeError("worker crashed (injected)")

    train_mod.fault_hook = crash
    with pytest.raises(RuntimeError):
        train(ckpt_spec, run_dir=tmp_path)
    train_mod.fault_hook = None
    changed = dataclasses.replace(ckpt_spec, train=dataclasses.replace(ckpt_spec.train, lr=1e-3))
    sink = Collect()
    rec = train(changed, sink=sink, run_dir=tmp_path)
    assert [k for k, _ in sink.events] == ["checkpoint-stale"] and rec.steps == 32
    assert [r["step"] for r in sink.steps] == list(range(32))


def test_a_torn_checkpoint_is_set_aside(run_spec, tmp_path):
    (tmp_path / "checkpoint.pt").write_bytes(b"PK\x03\x04 torn")
    sink = Collect()
    rec = train(run_spec, sink=sink, run_dir=tmp_path)
    assert rec.status == "done" and sink.events[0][0] == "checkpoint-unreadable"


@pytest.mark.parametrize("case", ["not-a-dict", "other-model", "bad-trainer-state"])
def test_a_checkpoint_that_loads_but_has_the_wrong_structure_is_set_aside(run_spec, tmp_path, case):
    """Issue 13 item 9: a file torch.load reads (weights_only) but that is not this run's checkpoint."""
    from scalebench.data.tasks import get_task

    corpus = get_task("text").prepare(run_spec.data, run_spec.eval.held_out_share).fingerprint
    good = {"step": 20, "micro_batch": 16, "ema": 3.0, "best_ema": 3.0, "backoffs": 0, "trained_s": 1.0,
            "spec_hash": run_spec.spec_hash(), "corpus": corpus}
    state = {
        "not-a-dict": torch.zeros(3),
        "other-model": {"model": {"wte.weight": torch.zeros(2, 2)}, "optimizer": {}, "trainer": good},
        "bad-trainer-state": {"model": {}, "optimizer": {}, "trainer": {**good, "step": "twenty"}},
    }[case]
    torch.save(state, tmp_path / "checkpoint.pt")
    sink = Collect()
    rec = train(run_spec, sink=sink, run_dir=tmp_path)
    assert rec.status == "done" and rec.steps == run_spec.steps  # started from scratch, not resumed
    assert sink.events[0][0] == "checkpoint-unusable" and "set aside" in sink.events[0][1]
    assert (tmp_path / "checkpoint.pt.unusable").is_file()
    assert not any(kind == "resume" for kind, _ in sink.events)


def test_a_checkpoint_that_fits_the_model_but_not_the_optimizer_leaves_the_initial_weights(tmp_path):
    """Set aside as unusable, it must not leave its weights behind: "from scratch" means the run's own init."""
    import torch

    from scalebench.train.checkpoint import Checkpointer

    class Ctx:
        is_main = True

        def barrier(self):
            pass

    class Sink:
        events: list = []

        def add_event(self, run_id, kind, message):
            self.events.append(kind)

    torch.manual_seed(1)
    other = torch.nn.Linear(4, 4)
    ck = Checkpointer(tmp_path, spec_hash="h", run_id="r", sink=Sink(), ctx=Ctx(), strategy="single", steps=10)
    ck.save(other, torch.optim.AdamW(other.parameters()), None,
            {"step": 3, "micro_batch": 1, "ema": None, "best_ema": 1.0, "backoffs": 0, "trained_s": 0.0})
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 4)
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    two_groups = torch.optim.AdamW([{"params": [model.weight]}, {"params": [model.bias]}])  # saved: one group
    assert ck.load(model, two_groups, "cpu") is None and Sink.events == ["checkpoint-unusable"]
    assert all(torch.equal(initial[k], v) for k, v in model.state_dict().items())
