"""The synthetic language (a Zipf mixture of Markov chains) and the known-floor check on fits."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from scalebench.config import DataSpec, SyntheticDataSpec
from scalebench.data.synthetic import Source, SyntheticBatches, prepare
from scalebench.data.tasks import get_task
from scalebench.errors import ConfigError
from scalebench.laws import FitResult, fit, fit_frame, get_law

SMALL = SyntheticDataSpec(sources=40, symbols=8, concentration=0.2, seq_len=16, val_documents=64, seed=3)


def _source(spec=SMALL) -> Source:
    return Source(**{k: getattr(spec, k) for k in ("sources", "symbols", "zipf_exponent", "concentration",
                                                   "seq_len", "seed")})


@pytest.mark.parametrize("bad, match", [({"sources": 65, "symbols": 8}, "at most symbols"),
                                        ({"zipf_exponent": 1.0}, "zipf_exponent"),
                                        ({"symbols": 1}, "symbols"), ({"seq_len": 1}, "seq_len"),
                                        ({"concentration": 0}, "concentration")])
def test_bad_specs_say_what_to_change(bad, match):
    with pytest.raises(ConfigError, match=match):
        SyntheticDataSpec(**bad)


def test_the_floor_is_the_bayes_loss_of_the_held_out_documents():
    info = prepare(SMALL)
    again = prepare(SMALL)
    assert info == again and info.vocab_size == 8 and info.val_tokens == 64 * 16
    src = _source()
    val = src.documents(np.random.default_rng((SMALL.seed, 1)), SMALL.val_documents)
    # by hand: header token 1 given header token 0, then each token given the one before under its chain
    pi = (np.arange(40) + 1.0) ** -SMALL.zipf_exponent
    pi /= pi.sum()
    t = np.exp(src.log_t)
    total = 0.0
    for doc in val:
        k = doc[0] * 8 + doc[1]
        same_hi = pi[(np.arange(40) // 8) == doc[0]].sum()
        total += -math.log(pi[k] / same_hi)
        total += sum(-math.log(t[k, doc[i - 1], doc[i]]) for i in range(2, 17))
    assert info.irreducible_loss == pytest.approx(total / val[:, 1:].size, rel=1e-9)
    assert 0 < info.irreducible_loss < math.log(8)


def test_documents_follow_their_chains_and_the_zipf_mix():
    src = _source()
    doc = src.documents(np.random.default_rng(0), 20000)
    chains = src.chains_of(doc)
    assert np.bincount(chains, minlength=40)[:3] / 20000 == pytest.approx(src.pi[:3], abs=0.01)
    k = 0  # the most common chain: its empirical transitions match its matrix
    mine = doc[chains == k]
    counts = np.zeros((8, 8))
    np.add.at(counts, (mine[:, 1:-1].ravel(), mine[:, 2:].ravel()), 1)
    rows = counts.sum(1) > 2000
    assert np.abs(counts[rows] / counts[rows].sum(1, keepdims=True) - np.exp(src.log_t[k])[rows]).max() < 0.05


def test_one_header_token_when_the_chains_fit_the_vocabulary():
    spec = SyntheticDataSpec(sources=8, symbols=8, seq_len=8, val_documents=4)
    src = _source(spec)
    doc = src.documents(np.random.default_rng(0), 5)
    assert src.header == 1 and (src.chains_of(doc) == doc[:, 0]).all()
    assert np.isfinite(src.bayes_loss(doc)).all()


def test_batches_are_deterministic_windows_and_check_the_context_length():
    task = get_task("text")
    info = task.prepare(DataSpec(source="synthetic", synthetic=SMALL), 0.05)
    assert task.info_from_dict(info.as_dict()) == info
    b = SyntheticBatches(info, 16)
    x, y = b.batch(0, 5, 0, 4)
    assert x.shape == y.shape == (4, 16) and (x[:, 1:] == y[:, :-1]).all()
    assert (b.batch(0, 5, 0, 4)[0] == x).all() and not (b.batch(0, 6, 0, 4)[0] == x).all()
    evals = list(b.eval_batches(32, 1))
    assert len(evals) == 2 and (evals[0][0] == list(b.eval_batches(32, 1))[0][0]).all()
    with pytest.raises(ConfigError, match="seq_len"):
        SyntheticBatches(info, 32)


def _chinchilla_frame(e_true: float) -> pd.DataFrame:
    truth = FitResult.from_params("chinchilla", {"E": e_true, "A": 400.0, "B": 2000.0, "alpha": 0.34,
                                                 "beta": 0.36})
    rng = np.random.default_rng(0)
    rows = [{"params": n, "tokens": d, "loss": float(truth.predict(n, d)) * math.exp(rng.normal(0, 0.002))}
            for n in np.logspace(7.5, 9.5, 6) for d in np.logspace(9, 11, 5)]
    return pd.DataFrame(rows)


def test_an_E_below_a_known_floor_is_a_reason_and_one_at_it_is_not():
    frame = _chinchilla_frame(1.8)
    law = get_law("chinchilla")
    at = fit_frame(frame, law, known_floor=1.8).diagnostics
    assert not any("known irreducible loss" in r for r in at.reasons) and at.checks["known_floor"] == 1.8
    below = fit_frame(frame, law, known_floor=2.5).diagnostics  # the data say E ~ 1.8: impossible if 2.5
    assert below.verdict != "reliable"
    assert any("below the data's known irreducible loss 2.5" in r for r in below.reasons)
    assert any("--fix E=2.5" in s for s in below.suggestions)
    above = fit_frame(frame, law, known_floor=1.2).diagnostics
    assert any(r.startswith("E = ") for r in above.cautions) and not any("E = " in r for r in above.reasons)


def test_a_frame_has_no_known_floor():
    assert "known_floor" not in fit(_chinchilla_frame(1.8)).diagnostics.checks


def test_the_planner_refuses_a_window_or_eval_that_does_not_match_the_documents(tmp_path):
    from scalebench.config import load_sweep
    from scalebench.sweep.planner import plan_runs

    def spec(train_seq, eval_tokens):
        p = tmp_path / "s.toml"
        p.write_text(f"""name = "s"
[model]
shapes = [{{ n_layer = 1, d_model = 16, n_head = 1 }}, {{ n_layer = 1, d_model = 32, n_head = 2 }}]
[budget]
tokens = [4096]
[data]
source = "synthetic"
[data.synthetic]
symbols = 8
sources = 16
seq_len = 16
val_documents = 32
[train]
seq_len = {train_seq}
batch_tokens = 256
[eval]
eval_tokens = {eval_tokens}
""")
        return load_sweep(p)

    assert len(plan_runs(spec(16, 512), sweep_dir=tmp_path / "ok").runs) == 2
    with pytest.raises(ConfigError, match="train.seq_len = 32 but data.synthetic.seq_len = 16"):
        plan_runs(spec(32, 1024), sweep_dir=tmp_path / "a")
    with pytest.raises(ConfigError, match="eval.eval_tokens = 256 evaluates fewer than the 512"):
        plan_runs(spec(16, 256), sweep_dir=tmp_path / "b")
