"""Grid axes: [grid] parsing and validation, the crossing rules, each point's TrainSpec; planning and a run."""

from __future__ import annotations

import pytest

from scalebench.config import SweepSpec, load_sweep
from scalebench.errors import ConfigError
from scalebench.sweep.grid import check_precision, grid_points, point_label, train_for_point

BASE = """
name = "g"
family = "mlp"
[model]
sizes = ["debug", "2k"]
[budget]
tokens = [4096]
[train]
batch_samples = 64
lr = 3e-3
"""


def _spec(tmp_path, extra: str, base: str = BASE) -> SweepSpec:
    p = tmp_path / "s.toml"
    p.write_text(base + extra)
    return load_sweep(p)


def test_momentum_crosses_sgd_only_and_labels_carry_every_axis(tmp_path):
    spec = _spec(tmp_path, """
[grid]
optimizer = ["adamw", "sgd"]
momentum = [0.0, 0.9]
lr = [1e-3, 1e-2]
""")
    points = grid_points(spec)
    assert len(points) == 2 + 2 * 2  # adamw x 2 lr; sgd x 2 momenta x 2 lr
    assert {"optimizer": "adamw", "momentum": None, "lr": 1e-3} in points  # Adam runs: no momentum value
    assert {"optimizer": "sgd", "momentum": 0.9, "lr": 1e-2} in points
    assert point_label({"optimizer": "sgd", "momentum": 0.9, "lr": 0.01, "batch": 256, "precision": "bf16"}) \
        == "sgd-m0.9-lr0.01-b256-bf16"
    t = train_for_point(spec, family="mlp", point={"optimizer": "sgd", "momentum": 0.0, "lr": 0.01}, unit="samples",
                        full_batch_rows=1000, task="teacher")
    assert (t.optimizer, t.momentum, t.lr, t.batch_samples) == ("sgd", 0.0, 0.01, 64)


def test_per_optimizer_settings_and_batch_axis_in_the_family_unit(tmp_path):
    spec = _spec(tmp_path, """
[grid]
optimizer = ["adamw", "sgd"]
batch = [32, 128]
[grid.per_optimizer.sgd]
lr = 0.2
momentum = 0.9
""")
    t = train_for_point(spec, family="mlp", point={"optimizer": "sgd", "batch": 128}, unit="samples", full_batch_rows=1000, task="teacher")
    assert (t.lr, t.momentum, t.batch_samples) == (0.2, 0.9, 128)
    a = train_for_point(spec, family="mlp", point={"optimizer": "adamw", "batch": 32}, unit="samples", full_batch_rows=1000, task="teacher")
    assert (a.lr, a.batch_samples) == (3e-3, 32)
    tok = train_for_point(spec, family="mlp", point={"optimizer": "adamw", "batch": 2048}, unit="tokens", full_batch_rows=None, task="text")
    assert tok.batch_tokens == 2048


def test_gd_takes_the_whole_training_set_and_text_refuses_it(tmp_path):
    spec = _spec(tmp_path, """
[grid]
optimizer = ["gd", "adamw"]
batch = [32, 64]
""")
    points = grid_points(spec)
    assert points.count({"optimizer": "gd", "batch": None}) == 1  # the batch axis does not apply to full-batch GD
    t = train_for_point(spec, family="mlp", point={"optimizer": "gd"}, unit="samples", full_batch_rows=1000, task="teacher")
    assert t.batch_samples == 1000 and 1000 % t.micro_batch == 0 and t.micro_batch <= 64
    with pytest.raises(ConfigError, match="gd.*finite training set.*'text'"):
        train_for_point(spec, family="mlp", point={"optimizer": "gd"}, unit="tokens", full_batch_rows=None, task="text")


def test_precision_refusals_name_the_device():
    check_precision("fp32", "cpu")
    with pytest.raises(ConfigError, match="fp8.*FP8 tensor cores.*runs on cpu"):
        check_precision("fp8", "cpu")
    with pytest.raises(ConfigError, match="'bf16' on cpu"):
        check_precision("bf16", "cpu")


@pytest.mark.parametrize("extra,match", [
    ('[grid]\nfamily = ["mlp", "cnn"]\n', "mixes data tasks.*mlp: teacher.*cnn: images"),
    ('[grid]\nmomentum = [0.9]\noptimizer = ["adamw"]\n', "momentum applies to sgd and gd"),
    ('[grid]\noptimizer = ["sgd", "sgd"]\n', "distinct"),
    ('[grid]\noptimizer = ["lion"]\n', "grid.optimizer\\[0\\].*'lion'"),
    ('[grid]\nprecision = ["fp64"]\n', "grid.precision"),
    ('[grid]\nlr = [0.0]\n', "grid.lr\\[0\\]"),
    ('[grid]\noptimizer = ["sgd"]\n[grid.per_optimizer.adamw]\nlr = 1e-3\n', "'adamw' is not in grid.optimizer"),
    ('[grid]\noptimizer = ["sgd"]\n[grid.per_optimizer.sgd]\nnesterov = true\n', "nesterov.*not settable"),
    ('[grid]\noptimizer = ["sgd"]\nlr = [0.1]\n[grid.per_optimizer.sgd]\nlr = 0.2\n', "also a grid axis"),
    ('[grid]\noptimizer = ["sgd"]\n[grid.per_optimizer.sgd]\nmomentum = 1.5\n', "per_optimizer.sgd.*momentum"),
    ('[grid]\nfamily = ["mlp", "nope"]\n', "unknown model family 'nope'"),
    ('[grid]\nbatchsize = [1]\n', "unknown key 'grid.batchsize'"),
])
def test_bad_grids_are_refused_naming_the_key(tmp_path, extra, match):
    with pytest.raises(ConfigError, match=match):
        _spec(tmp_path, extra)


def test_family_axis_replaces_family(tmp_path):
    spec = _spec(tmp_path, '[grid]\nfamily = ["GPT", "lstm"]\n',
                 base=BASE.replace('family = "mlp"', 'family = "gpt"'))
    assert spec.families == ("gpt", "lstm")
    with pytest.raises(ConfigError, match="mixes data tasks.*gpt: text.*cnn: images.*one sweep per task"):
        _spec(tmp_path, '[grid]\nfamily = ["gpt", "cnn"]\n', base=BASE.replace('family = "mlp"', 'family = "gpt"'))
    with pytest.raises(ConfigError, match="grid.family replaces family"):
        _spec(tmp_path, '[grid]\nfamily = ["gpt", "lstm"]\n')  # family = "mlp" is not in the list
    with pytest.raises(ConfigError, match="model.shapes.*one family"):
        _spec(tmp_path, '[grid]\nfamily = ["gpt", "lstm"]\n',
              base=BASE.replace('family = "mlp"', 'family = "gpt"').replace(
                  'sizes = ["debug", "2k"]', 'shapes = [{n_layer = 1, d_model = 32}, {n_layer = 2, d_model = 32}]'))


PLAN = BASE.replace('tokens = [4096]', 'tokens = [4096, 8192]') + """
[data.teacher]
train_samples = 2048
val_samples = 256
"""


def test_plan_crosses_sizes_budgets_and_points_and_carries_the_axes(tmp_path):
    from scalebench.sweep.planner import plan_runs

    spec = _spec(tmp_path, """
[grid]
optimizer = ["adamw", "sgd"]
momentum = [0.0, 0.9]
batch = [32, 64]
[grid.per_optimizer.sgd]
lr = 0.05
""", base=PLAN)
    plan = plan_runs(spec)
    assert len(plan.runs) == 2 * 2 * (2 + 2 * 2)  # sizes x budgets x (adamw x 2 batches + sgd x 2 m x 2 batches)
    by_id = {r.run_id: r for r in plan.runs}
    r = by_id["mlp-2k-t8.19e3-sgd-m0.9-b32"]
    assert r.axes == {"optimizer": "sgd", "momentum": 0.9, "batch": 32}
    assert (r.train.optimizer, r.train.momentum, r.train.lr, r.train.batch_samples) == ("sgd", 0.9, 0.05, 32)
    assert r.steps == 8192 // 32 and r.tokens == 8192
    a = by_id["mlp-debug-t4.1e3-adamw-b64"]
    assert a.axes == {"optimizer": "adamw", "momentum": None, "batch": 64} and a.train.lr == 3e-3
    table = plan.table()
    assert {"optimizer", "momentum", "batch", "lr"} <= set(table.columns)  # `scalebench validate` prints these
    assert set(table.lr) == {3e-3, 0.05}  # the per-optimizer lr is shown though lr is no axis
    assert len({r.spec_hash() for r in plan.runs}) == len(plan.runs)


def test_plan_gd_uses_the_full_training_set_and_needs_the_budget_for_it(tmp_path):
    from scalebench.sweep.planner import plan_runs

    spec = _spec(tmp_path, '[grid]\noptimizer = ["gd", "sgd"]\n',
                 base=PLAN.replace('tokens = [4096, 8192]', 'tokens = [20480, 40960]\nmax_epochs = 25'))
    plan = plan_runs(spec)
    gd = [r for r in plan.runs if r.axes["optimizer"] == "gd"]
    assert {r.train.batch_samples for r in gd} == {2048} and {r.steps for r in gd} == {10, 20}
    too_small = _spec(tmp_path, '[grid]\noptimizer = ["gd"]\n', base=PLAN)
    with pytest.raises(ConfigError, match="whole training set \\(2048 samples: optimizer 'gd'\\)"):
        plan_runs(too_small)


def test_plan_refuses_gd_for_text_and_fp8_on_cpu(tmp_path):
    from scalebench.sweep.planner import plan_runs

    gpt = """
name = "t"
family = "lstm"
[model]
sizes = ["debug", "100k"]
[budget]
tokens = [8192]
[train]
batch_tokens = 256
seq_len = 16
[devices]
device = "cpu"
"""
    with pytest.raises(ConfigError, match="optimizer 'gd'.*'text' task"):
        plan_runs(_spec(tmp_path, '[grid]\noptimizer = ["gd", "adamw"]\n', base=gpt))
    with pytest.raises(ConfigError, match="grid.precision: precision 'fp8'.*runs on cpu"):
        plan_runs(_spec(tmp_path, '[grid]\nprecision = ["fp32", "fp8"]\n', base=gpt))


def test_per_family_settings_apply_to_that_family_only(tmp_path):
    gpt_base = BASE.replace('family = "mlp"', 'family = "gpt"')
    spec = _spec(tmp_path, '[grid]\nfamily = ["gpt", "lstm"]\n[grid.per_family.LSTM]\nlr = 2e-2\n', base=gpt_base)
    lstm = train_for_point(spec, {}, family="lstm", unit="tokens", full_batch_rows=None, task="text")
    gpt = train_for_point(spec, {}, family="gpt", unit="tokens", full_batch_rows=None, task="text")
    assert (lstm.lr, gpt.lr) == (2e-2, 3e-3)
    with pytest.raises(ConfigError, match="grid.per_family.cnn: 'cnn' is not in grid.family"):
        _spec(tmp_path, '[grid]\nfamily = ["gpt", "lstm"]\n[grid.per_family.cnn]\nlr = 2e-2\n', base=gpt_base)
    with pytest.raises(ConfigError, match="per_family.lstm.lr and grid.per_optimizer.sgd.lr both set it"):
        _spec(tmp_path, '[grid]\nfamily = ["gpt", "lstm"]\noptimizer = ["sgd"]\n[grid.per_family.lstm]\nlr = 2e-2\n'
                        '[grid.per_optimizer.sgd]\nlr = 0.1\n', base=gpt_base)
    with pytest.raises(ConfigError, match="per_family.*trains 'mlp' only"):
        _spec(tmp_path, '[grid.per_family.gpt]\nlr = 2e-2\n')
