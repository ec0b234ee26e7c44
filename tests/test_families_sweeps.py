"""End to end on CPU: each new family's debug-sized sweep, a grid over optimizers, the teacher's floor in meta."""

from __future__ import annotations

import math

import pytest

from scalebench.store import load_meta, load_results
from scalebench.sweep.runner import run_sweep

COMMON = """
[train]
lr = 3e-3
warmup_share = 0.0
compile = "off"
checkpoint_interval_s = 0
{train}
[eval]
interval_steps = 20
eval_tokens = {eval_units}
[devices]
device = "cpu"
cpu_workers = 2
[profiling]
profiler = "off"
"""


def _write(tmp_path, name: str, head: str, train: str = "", eval_units: int = 256) -> str:
    p = tmp_path / f"{name}.toml"
    p.write_text(f'name = "{name}"\n' + head + COMMON.format(train=train, eval_units=eval_units))
    return str(p)


def _finished(sweep_dir, n_runs: int):
    df = load_results(sweep_dir)
    assert len(df) == n_runs and set(df.status) == {"done"}, df[["run_id", "status", "error"]]
    assert all(math.isfinite(v) for v in df.eval_loss)
    return df


@pytest.mark.slow
def test_lstm_and_gpt_debug_sweep_over_the_family_axis(tmp_path):
    spec = _write(tmp_path, "fam", """
[grid]
family = ["gpt", "lstm"]
[model]
params = [2e4, 6e4]
[budget]
tokens = [4096]
""", train="batch_tokens = 256\nseq_len = 16", eval_units=1024)
    out = run_sweep(spec, tmp_path / "fam")
    df = _finished(out.sweep_dir, 4)
    assert sorted(df.family) == ["gpt", "gpt", "lstm", "lstm"]
    lstm = df[df.family == "lstm"]
    assert set(lstm.unit) == {"tokens"} and (lstm.flops_counted_ratio.round(6) == 1.0).all()
    assert all(r.startswith(("gpt-", "lstm-")) for r in df.run_id)


@pytest.mark.slow
def test_cnn_debug_sweep_counts_samples(tmp_path):
    spec = _write(tmp_path, "img", """
family = "cnn"
[model]
shapes = [{width = 8, blocks = 1}, {width = 16, blocks = 1}]
[budget]
tokens = [640]
[data.images]
image_size = 8
train_samples = 1024
val_samples = 256
""", train="batch_samples = 32")
    out = run_sweep(spec, tmp_path / "img")
    df = _finished(out.sweep_dir, 2)
    assert set(df.unit) == {"samples"} and set(df.tokens) == {640}
    assert (df.flops_counted_ratio.round(6) == 1.0).all()
    assert set(df["size"]) == {"R8-w8", "R8-w16"}
    meta = load_meta(out.sweep_dir)
    assert meta["corpus"]["kind"] == "procedural" and meta["corpus"]["train_units"] == 1024


@pytest.mark.slow
def test_mlp_grid_over_optimizers_records_axes_and_the_floor(tmp_path):
    spec = _write(tmp_path, "opt", """
family = "mlp"
[grid]
optimizer = ["adamw", "sgd"]
[grid.per_optimizer.sgd]
lr = 0.05
[model]
sizes = ["debug", "2k"]
[budget]
tokens = [2048]
[data.teacher]
train_samples = 4096
val_samples = 512
""", train="batch_samples = 64", eval_units=512)
    out = run_sweep(spec, tmp_path / "opt")
    df = _finished(out.sweep_dir, 4)
    assert sorted(df.optimizer) == ["adamw", "adamw", "sgd", "sgd"]
    assert all(r.endswith(("-adamw", "-sgd")) for r in df.run_id)
    meta = load_meta(out.sweep_dir)
    floor = meta["irreducible_loss"]
    assert floor == meta["corpus"]["irreducible_loss"] and 0 < floor < math.log(10)
    assert (df.eval_loss > floor).all()  # the Bayes loss bounds every student's held-out loss


def test_store_round_trips_non_gpt_shapes_and_axes(tmp_path):
    """A cnn and an mlp run as planned: shape fields and axis values come back as columns, shapes rebuild."""
    from scalebench.config import load_sweep
    from scalebench.families import get_family
    from scalebench.store import ResultStore
    from scalebench.sweep.planner import plan_runs

    spec = load_sweep(_write(tmp_path, "rt", """
family = "mlp"
[grid]
optimizer = ["adamw", "sgd"]
momentum = [0.9]
[model]
sizes = ["debug", "2k"]
[budget]
tokens = [2048]
[data.teacher]
train_samples = 1024
val_samples = 128
""", train="batch_samples = 64"))
    plan = plan_runs(spec)
    with ResultStore(tmp_path / "rt", create=True) as store:
        store.add_runs((r.run_id, r.spec_hash(), r.to_dict()) for r in plan.runs)
    df = load_results(tmp_path / "rt").set_index("run_id")
    row = df.loc["mlp-2k-t2.05e3-sgd-m0.9"]
    assert (row.optimizer, row.momentum, row.width, row.n_layer, row.unit) == ("sgd", 0.9, 32, 2, "samples")
    assert math.isnan(df.loc["mlp-2k-t2.05e3-adamw"].momentum)
    with ResultStore(tmp_path / "rt") as store:
        for r in store.runs():
            fam = get_family(r["spec"]["family"])
            shape = fam.make_shape(**r["spec"]["shape"])
            assert fam.params(shape) == r["spec"]["params"] and fam.label(shape) == df.loc[r["run_id"], "shape"]


def test_gpt_on_the_synthetic_language_records_its_floor_and_fit_checks_it(tmp_path):
    from scalebench.laws import fit

    spec = _write(tmp_path, "syn", """
[model]
shapes = [{ n_layer = 1, d_model = 16, n_head = 1 }, { n_layer = 1, d_model = 32, n_head = 2 }]
[budget]
tokens = [4096, 8192]
[data]
source = "synthetic"
[data.synthetic]
sources = 16
symbols = 8
seq_len = 16
val_documents = 32
""", train="batch_tokens = 256\nseq_len = 16", eval_units=512)
    out = run_sweep(spec, tmp_path / "syn")
    df = _finished(out.sweep_dir, 4)
    meta = load_meta(out.sweep_dir)
    floor = meta["irreducible_loss"]
    assert meta["corpus"]["source"] == "synthetic" and 0 < floor < math.log(8)
    assert (df.eval_loss > floor).all() and (df.eval_loss < 3 * math.log(8)).all()
    result = fit(out.sweep_dir, "power-tokens")
    assert result.diagnostics.checks["known_floor"] == floor
