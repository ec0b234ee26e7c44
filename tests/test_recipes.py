"""Recipes: each built-in's values against its source's formula; explicit values, grid axes and user tables."""

from __future__ import annotations

import math

import pytest

from scalebench.cli import main
from scalebench.config import load_sweep
from scalebench.errors import ConfigError
from scalebench.recipes import Recipe, get_recipe, register_recipe
from scalebench.sweep.planner import plan_runs

HEAD = 'name = "r"\n[model]\nsizes = ["debug", "100k", "400k"]\n[budget]\ntokens_per_param = [4, 8]\n'


def _plan(tmp_path, train: str, extra: str = ""):
    path = tmp_path / "s.toml"
    path.write_text(HEAD + "[train]\nseq_len = 32\n" + train + extra)
    return plan_runs(load_sweep(path))


def test_marin_lr_and_beta2_follow_batch_and_width(tmp_path):
    plan = _plan(tmp_path, 'recipe = "marin"\nbatch_tokens = 2048\n')
    b = 2048 / 32
    for r in plan.runs:
        assert r.train.lr == pytest.approx(0.33 * math.sqrt(b) / r.shape["d_model"])
        assert r.train.betas == pytest.approx((0.95, 0.98 ** (b / 128)))
        assert (r.train.warmup_share, r.train.weight_decay, r.train.min_lr_ratio) == (0.1, 0.1, 0.0)
        assert r.train.batch_tokens == 2048


def test_olmo_batch_lr_beta2_and_warmup_follow_params(tmp_path):
    plan = _plan(tmp_path, 'recipe = "olmo"\n')
    for r in plan.runs:
        ratio = r.params / 108e6
        assert r.train.lr == pytest.approx(0.0047 * ratio ** (-1 / 3))
        want_rows = 2048 * 160 * ratio ** (2 / 3) / 32
        assert r.train.batch_seqs == max(1, round(want_rows))  # whole sequences
        assert r.train.betas == (0.9, 0.99)  # far below 524,288 tokens
        assert r.train.warmup_steps == math.ceil(r.params / r.train.batch_tokens)
    assert get_recipe("olmo-wsd").rule  # the WSD-S variant halves the lr
    half = _plan(tmp_path, 'recipe = "olmo-wsd"\n')
    assert [r.train.lr for r in half.runs] == pytest.approx([r.train.lr / 2 for r in plan.runs])


def test_deepseek_values_follow_each_cells_compute(tmp_path):
    plan = _plan(tmp_path, 'recipe = "deepseek"\n')
    seen = set()
    for r in plan.runs:
        c = r.flops_per_token * r.tokens  # tokens are rounded to whole batches after the recipe's batch
        assert r.train.lr == pytest.approx(0.3118 * c ** -0.125, rel=0.02)
        assert r.train.batch_tokens == pytest.approx(0.2920 * c ** 0.3271, abs=32 / 2 + 1, rel=0.02)
        seen.add(r.train.lr)
    assert len(seen) == len(plan.runs)  # per budget, not only per size
    with pytest.raises(ConfigError, match="wsd"):
        _plan(tmp_path, 'recipe = "deepseek"\nschedule = "wsd"\n')


def test_explicit_values_and_grid_axes_win_over_the_recipe(tmp_path):
    plan = _plan(tmp_path, 'recipe = "olmo"\nlr = 0.001\nbetas = [0.8, 0.9]\n')
    assert {r.train.lr for r in plan.runs} == {0.001}
    assert {r.train.betas for r in plan.runs} == {(0.8, 0.9)}
    assert len({r.train.batch_tokens for r in plan.runs}) == 3  # the batch still follows the size
    swept = _plan(tmp_path, 'recipe = "marin"\n', "[grid]\nlr = [0.01, 0.02]\n")
    assert {r.train.lr for r in swept.runs} == {0.01, 0.02}
    assert {r.train.betas[1] for r in swept.runs} == {0.98 ** (8192 / 32 / 128)}


def test_user_table_and_registered_function(tmp_path):
    table = ('[train.recipe_table.debug]\nlr = 0.01\n[train.recipe_table.100k]\nlr = 0.005\nbatch_tokens = 1024\n'
             '[train.recipe_table.400k]\nlr = 0.002\nweight_decay = 0.0\n')
    plan = _plan(tmp_path, "", table)
    got = {r.size: (r.train.lr, r.train.batch_tokens, r.train.weight_decay) for r in plan.runs}
    assert got == {"debug": (0.01, 8192, 0.1), "100k": (0.005, 1024, 0.1), "400k": (0.002, 8192, 0.0)}
    with pytest.raises(ConfigError, match="no row for size '400k'"):
        _plan(tmp_path, "", table.split("[train.recipe_table.400k]")[0])
    register_recipe(Recipe(name="test-inverse-width", formula="lr = 1/d", source="a test",
                           rule=lambda x: {"lr": 1.0 / x.d_model}))
    for r in _plan(tmp_path, 'recipe = "test-inverse-width"\n').runs:
        assert r.train.lr == pytest.approx(1 / r.shape["d_model"])


@pytest.mark.parametrize("train,fragment", [
    ('recipe = "nope"\n', "unknown recipe 'nope'"),
    ('[train.recipe_table.debug]\nlr = "high"\n', "recipe_table.debug.lr"),
    ('[train.recipe_table.debug]\nspeed = 1\n', "recipe_table.debug.speed"),
    ('recipe = "marin"\n[train.recipe_table.debug]\nlr = 1\n', "not both"),
])
def test_bad_recipes_name_the_key(tmp_path, train, fragment):
    path = tmp_path / "s.toml"
    path.write_text(HEAD + "[train]\nseq_len = 32\n" + train)
    with pytest.raises(ConfigError, match=fragment.replace("(", r"\(")):
        load_sweep(path)


def test_validate_prints_resolved_values_per_size(tmp_path, capsys):
    path = tmp_path / "s.toml"
    path.write_text(HEAD + '[train]\nseq_len = 32\nrecipe = "olmo"\n')
    assert main(["validate", str(path)]) == 0
    out = capsys.readouterr().out
    assert "recipe olmo:" in out and "Bhagia" in out
    for col in ("lr", "batch", "beta2", "warmup_steps", "weight_decay"):
        assert col in out
