"""A tiny llama ladder end to end on CPU: a folder of JSON Lines documents, a BPE trained on its training split, the sweep,
bits per byte in the store, the tokenizer in the sweep folder, and a fit in bits per byte."""

from __future__ import annotations

import json

import numpy as np
import pytest

import scalebench
from scalebench.sweep.runner import run_sweep

pytest.importorskip("tokenizers")

SWEEP = """
name = "llama-bpe"
family = "llama"
[model]
shapes = [{{n_layer = 1, d_model = 16, n_head = 2}}, {{n_layer = 2, d_model = 32, n_head = 2, n_kv_head = 1}},
          {{n_layer = 2, d_model = 48, n_head = 2}}]
[model.llama]
qk_norm = true
[budget]
tokens = [3072, 6144]
[data]
source = "{source}"
text_column = "content"
tokenizer = {{bpe = 300}}
[train]
batch_tokens = 256
seq_len = 32
lr = 3e-3
compile = "off"
[eval]
interval_steps = 8
eval_tokens = 1024
held_out_share = 0.2
[devices]
device = "cpu"
cpu_workers = 1
"""


@pytest.mark.slow  # six runs, each its own worker process
def test_a_llama_ladder_on_a_text_folder_with_a_bpe_fits_in_bits_per_byte(tmp_path):
    rng = np.random.default_rng(0)
    words = "the cat sat on a mat and then it ran off to see its friend who lived by the sea".split()
    text = tmp_path / "corpus"  # docs/data.md's worked example: a folder of JSON Lines
    text.mkdir()
    for k in range(3):
        (text / f"part-{k:03d}.jsonl").write_text("".join(
            json.dumps({"content": " ".join(rng.choice(words, 100)), "url": f"u{i}"}) + "\n" for i in range(30)))
    spec = tmp_path / "sweep.toml"
    spec.write_text(SWEEP.format(source=text))
    out = tmp_path / "out"
    outcome = run_sweep(spec, out)
    assert outcome.counts == {"done": 6}
    df = scalebench.load_results(out)
    assert df["eval_bpb"].notna().all() and (df["eval_bpb"] > 0).all()
    assert (out / "tokenizer.json").is_file()
    meta = scalebench.store.load_meta(out)
    assert meta["corpus"]["tokenizer"] == "bpe300" and meta["corpus"]["vocab_size"] == 300
    # bits per byte is the same loss in other units: nats/token × tokens/byte / ln 2, tokens per byte < 1
    ratio = (df["eval_bpb"] / df["eval_loss"]).to_numpy()
    assert np.allclose(ratio, ratio[0]) and ratio[0] < 1 / np.log(2)
    assert (df["params_nonembedding"] == df["params"] - 300 * df["d_model"]).all()
    result = scalebench.fit(out, loss_col="eval_bpb", law="chinchilla", params_col="params_nonembedding")
    assert np.isfinite(result.params["alpha"])


def test_mixed_families_default_to_bits_per_byte_in_the_one_sweep_fit():
    import pandas as pd

    from scalebench.laws.sweepfit import sweep_loss_col

    results = pd.DataFrame({"run_id": ["a", "b"], "status": "done", "family": ["gpt", "llama"],
                            "params": [10, 20], "params_nonembedding": [5, 15], "tokens": [100, 200],
                            "flops": [1e3, 2e3], "eval_loss": [3.0, 2.5], "eval_bpb": [1.5, 1.2]})
    assert sweep_loss_col(results) == "eval_bpb"  # two families: bits per byte compare across tokenizers
    assert sweep_loss_col(results[results.family == "gpt"]) == "eval_loss"
    assert sweep_loss_col(results, "eval_loss") == "eval_loss"  # the column asked for wins
