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
    t = train_for_point(spec, {"optimizer": "sgd", "momentum": 0.0, "lr": 0.01}, unit="samples",
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
    t = train_for_point(spec, {"optimizer": "sgd", "batch": 128}, unit="samples", full_batch_rows=1000, task="teacher")
    assert (t.lr, t.momentum, t.batch_samples) == (0.2, 0.9, 128)
    a = train_for_point(spec, {"optimizer": "adamw", "batch": 32}, unit="samples", full_batch_rows=1000, task="teacher")
    assert (a.lr, a.batch_samples) == (3e-3, 32)
    tok = train_for_point(spec, {"optimizer": "adamw", "batch": 2048}, unit="tokens", full_batch_rows=None, task="text")
    assert tok.batch_tokens == 2048


def test_gd_takes_the_whole_training_set_and_text_refuses_it(tmp_path):
    spec = _spec(tmp_path, """
[grid]
optimizer = ["gd", "adamw"]
batch = [32, 64]
""")
    points = grid_points(spec)
    assert points.count({"optimizer": "gd", "batch": None}) == 1  # the batch axis does not apply to full-batch GD
    t = train_for_point(spec, {"optimizer": "gd"}, unit="samples", full_batch_rows=1000, task="teacher")
    assert t.batch_samples == 1000 and 1000 % t.micro_batch == 0 and t.micro_batch <= 64
    with pytest.raises(ConfigError, match="gd.*finite training set.*'text'"):
        train_for_point(spec, {"optimizer": "gd"}, unit="tokens", full_batch_rows=None, task="text")


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
