"""Strict sweep specs: every bad input names the file, the key and what is accepted."""

from __future__ import annotations

import pytest

from scalebench.cli import main
from scalebench.config import load_sweep
from scalebench.errors import ConfigError
from scalebench.sweep.planner import plan_runs

BASE = """
name = "t"
[model]
sizes = ["debug", "100k"]
[budget]
tokens = [1e5]
"""

BAD = [
    # (TOML, fragments the message must contain)
    (BASE + "[train]\nlr = -1\n", ["[train]", "lr must be positive", "-1"]),
    (BASE + "[train]\noptimzer = 'adamw'\n", ["unknown key 'train.optimzer'", "optimizer"]),
    (BASE + "[train]\noptimizer = 'lion'\n", ["train.optimizer", "'adamw', 'adam', 'sgd', 'gd'"]),
    (BASE + "[train]\nseq_len = 'long'\n", ["train.seq_len", "expected an integer"]),
    (BASE + "[train]\nbatch_tokens = 1000\nseq_len = 128\n", ["batch_tokens (1000)", "multiple of seq_len"]),
    (BASE + "[train]\ncompile = 'maybe'\n", ["train.compile", "'auto', 'on', 'off'"]),
    ("colour = 'red'\n" + BASE, ["unknown key 'colour'", "budget"]),
    (BASE + "speed = 3\n", ["unknown key 'budget.speed'", "tokens_per_param"]),
    ('name = "t"\n[model]\nsizes = ["debug"]\n[budget]\ntokens = [1e5]\n', ["[model]", "at least 2 sizes"]),
    ('name = "t"\n[model]\nparams = [1e5, -3]\n[budget]\ntokens = [1e5]\n', ["params[1]", "positive"]),
    ('name = "t"\n[model]\nsizes = ["debug", "100k"]\nparams = [1e5, 1e6]\n[budget]\ntokens = [1e5]\n',
     ["exactly one of 'sizes'"]),
    ('name = "t"\n[model]\nsizes = ["debug", "100k"]\n[budget]\n', ["[budget]", "exactly one of 'tokens'"]),
    ('name = "t"\n[model]\nsizes = ["debug", "100k"]\n[budget]\ntokens = [0]\n', ["tokens[0] must be positive"]),
    ('name = "t"\n[model]\nsizes = ["debug", "100k"]\n[budget]\ntokens = "many"\n', ["budget.tokens", "a list"]),
    ('name = "a/b"\n[model]\nsizes = ["debug", "100k"]\n[budget]\ntokens = [1e5]\n', ["plain folder name"]),
    ('name = "t"\nfamily = "rnn"\n[model]\nsizes = ["debug", "100k"]\n[budget]\ntokens = [1e5]\n',
     ["unknown model family 'rnn'", "gpt"]),
    (BASE + "[eval]\nheld_out_share = 0.9\n", ["held_out_share", "(0, 0.5)"]),
    (BASE + "[devices]\ncpu_workers = 0\n", ["cpu_workers must be positive"]),
    (BASE + "[data]\nsource = 'tokens.bin'\n", ["vocab_size"]),
    ("name = \n", ["not valid TOML"]),
]


@pytest.mark.parametrize("text,fragments", BAD, ids=[f"bad{i}" for i in range(len(BAD))])
def test_bad_specs_name_file_key_and_accepted_values(tmp_path, text, fragments):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_sweep(path)
    msg = str(err.value)
    assert str(path) in msg
    for fragment in fragments:
        assert fragment in msg, f"{fragment!r} not in {msg!r}"


PLAN_BAD = [
    ('[model]\nsizes = ["debug", "huge"]\n[budget]\ntokens = [1e5]\n', ["unknown gpt flavour 'huge'", "debug"]),
    ('[model]\nsizes = ["debug", "100k"]\n[budget]\ntokens = [100]\n', ["budget.tokens", "min_steps"]),
    ('[model]\nsizes = ["debug", "100k"]\n[budget]\nflops = [10]\n', ["too small for every size"]),
    ('[model]\nsizes = ["debug", "100k"]\n[budget]\ntokens = [1e12]\n', ["max_epochs"]),
    ('[model]\nshapes = [{n_layer = 2, d_model = 30, n_head = 4}, {n_layer = 1, d_model = 32, n_head = 2}]\n'
     '[budget]\ntokens = [1e5]\n', ["model.shapes[0]", "divisible by n_head"]),
    ('[model]\nsizes = ["debug", "debug"]\n[budget]\ntokens = [1e5]\n', ["same size"]),
]


@pytest.mark.parametrize("text,fragments", PLAN_BAD, ids=[f"plan{i}" for i in range(len(PLAN_BAD))])
def test_impossible_plans_are_refused_before_anything_starts(tmp_path, text, fragments):
    path = tmp_path / "bad.toml"
    path.write_text('name = "t"\n' + text)
    with pytest.raises(ConfigError) as err:
        plan_runs(load_sweep(path), source=str(path))
    for fragment in fragments:
        assert fragment in str(err.value)
    assert not (tmp_path / "reports").exists()


def test_budget_kinds_give_the_documented_tokens(tmp_path):
    from scalebench.families.gpt import FLAVOURS, flops_per_token, make_shape, params

    path = tmp_path / "s.toml"
    path.write_text('name = "t"\n[model]\nsizes = ["debug", "100k"]\n[budget]\n'
                    'tokens_per_param = [2]\n[train]\nbatch_tokens = 512\nseq_len = 32\n')
    plan = plan_runs(load_sweep(path))
    for run in plan.runs:
        shape = make_shape(**FLAVOURS[run.size], vocab_size=256, seq_len=32)
        assert run.params == params(shape)
        assert abs(run.tokens - 2 * run.params) <= 512 / 2  # rounded to whole batches
        assert run.flops == pytest.approx(flops_per_token(shape) * run.tokens)
    path.write_text('name = "t"\n[model]\nsizes = ["debug", "100k"]\n[budget]\n'
                    'flops = [1e11]\n[train]\nbatch_tokens = 512\nseq_len = 32\n')
    for run in plan_runs(load_sweep(path)).runs:  # isoFLOP: every size spends the same compute
        assert run.flops == pytest.approx(1e11, rel=512 * run.flops_per_token / 1e11)


def test_validate_prints_the_plan_and_bad_input_exits_2(tmp_path, capsys, write_sweep):
    assert main(["validate", str(write_sweep())]) == 0
    out = capsys.readouterr().out
    assert "gpt-debug-t8.19e3" in out and "L2-d32-h2" in out and "FLOPs" in out
    bad = tmp_path / "bad.toml"
    bad.write_text(BASE + "[train]\nlr = 'fast'\n")
    assert main(["validate", str(bad)]) == 2
    assert "train.lr" in capsys.readouterr().err
    assert main(["validate", str(tmp_path / "missing.toml")]) == 2


REVIEW_BAD = [
    (BASE + "[train]\ngrad_clip = nan\n", ["train.grad_clip", "finite"]),
    (BASE + "[train]\nlr = inf\n", ["train.lr", "finite"]),
    (BASE + "[train]\ndivergence_factor = 0.5\n", ["divergence_factor must be > 1"]),
    (BASE + "[train]\nseed = -1\n", ["seed must be >= 0"]),
    (BASE + "[train]\nmomentum = -5\n", ["momentum"]),
    ('name = "t"\n[model]\nparams = [1e5, inf]\n[budget]\ntokens = [1e5]\n', ["model.params[1]", "finite"]),
    ('name = "t"\n[model]\nsizes = ["debug", "100k"]\n[budget]\ntokens = [inf]\n', ["budget.tokens[0]", "finite"]),
]


@pytest.mark.parametrize("text,fragments", REVIEW_BAD, ids=[f"nonfinite{i}" for i in range(len(REVIEW_BAD))])
def test_non_finite_and_out_of_range_numbers_are_refused(tmp_path, text, fragments):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_sweep(path)
    for fragment in fragments:
        assert fragment in str(err.value)


def test_shapes_cannot_override_sweep_wide_settings(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text('name = "t"\n[model]\nshapes = [{n_layer = 1, d_model = 32, n_head = 2, seq_len = 16}, '
                    '{n_layer = 2, d_model = 32, n_head = 2}]\n[budget]\ntokens = [1e5]\n')
    with pytest.raises(ConfigError, match=r"model.shapes\[0\]: 'seq_len' is set for the whole sweep"):
        plan_runs(load_sweep(path), source=str(path))


def test_a_corpus_too_small_for_one_window_is_refused(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "only.txt").write_text("tiny " * 20)  # one file: positional split, a 10-byte held-out tail
    path = tmp_path / "s.toml"
    path.write_text(f'name = "t"\n[model]\nsizes = ["debug", "100k"]\n[budget]\ntokens = [1e4]\n'
                    f'[data]\nsource = "{corpus}"\n[train]\nbatch_tokens = 512\nseq_len = 32\n')
    with pytest.raises(ConfigError, match="held-out split has .* tokens, fewer than one window"):
        plan_runs(load_sweep(path), source=str(path))
