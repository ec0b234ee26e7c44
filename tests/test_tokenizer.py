"""Tokenizers: a BPE trained on the training split (deterministic, cached by corpus and settings), a user's
tokenizer.json, and bits per byte against a hand computation."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

import scalebench
from scalebench.config import DataSpec
from scalebench.data.tasks import get_task

pytest.importorskip("tokenizers")

WORDS = ("alpha beta gamma delta épsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma tau "
         "upsilon phi chi psi omega").split()


def _text_folder(root: Path, n_files: int = 40, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n_files):
        words = rng.choice(WORDS, size=400)
        (root / f"doc{i:03d}.txt").write_text(" ".join(words) + "\n", encoding="utf-8")
    return root


def _prepare(folder: Path, tokenizer) -> scalebench.data.CorpusInfo:
    return get_task("text").prepare(DataSpec(source=str(folder), tokenizer=tokenizer), 0.2)


def test_bpe_is_trained_once_deterministically_and_rebuilt_when_settings_change(tmp_path):
    folder = _text_folder(tmp_path / "text")
    a = _prepare(folder, {"bpe": 300})
    assert a.tokenizer == "bpe300" and a.vocab_size == 300 and a.dtype == "uint16"
    again = _prepare(folder, {"bpe": 300})
    assert again == a  # the cache: same folder, same ids
    first = Path(a.path, "tokenizer.json").read_bytes()
    ids = np.fromfile(Path(a.path, "train.bin"), dtype=np.uint16)
    # the same text elsewhere (another cache key) trains the same merges and gives the same ids
    import shutil

    shutil.rmtree(a.path)
    rebuilt = _prepare(folder, {"bpe": 300})
    assert Path(rebuilt.path, "tokenizer.json").read_bytes() == first
    assert np.array_equal(np.fromfile(Path(rebuilt.path, "train.bin"), dtype=np.uint16), ids)
    other = _prepare(folder, {"bpe": 320})
    assert other.path != a.path and other.vocab_size == 320
    assert other.train_tokens < a.train_tokens  # more merges, fewer tokens


def test_bpe_learns_from_the_training_split_only(tmp_path):
    folder = _text_folder(tmp_path / "text")
    info = _prepare(folder, {"bpe": 400})
    byte_info = get_task("text").prepare(DataSpec(source=str(folder)), 0.2)
    held_out_only = "held-out-only-word-" * 50
    # a word only the held-out files contain does not become one token: add it to a held-out file's text
    from scalebench.data.corpus import _held_out

    val_file = next(p for p in sorted(folder.iterdir()) if _held_out(p.name, 0.2))
    val_file.write_text(val_file.read_text() + held_out_only)
    info2 = _prepare(folder, {"bpe": 400})
    import tokenizers

    tok = tokenizers.Tokenizer.from_file(info2.tokenizer_path)
    assert "held" not in "".join(tok.get_vocab())  # never seen in training
    assert info.val_bytes == byte_info.val_tokens


def test_held_out_token_bytes_cover_the_held_out_text_exactly(tmp_path):
    folder = _text_folder(tmp_path / "text")
    info = _prepare(folder, {"bpe": 300})
    per_token = np.fromfile(Path(info.path, "val_bytes.bin"), dtype=np.uint32)
    byte_info = get_task("text").prepare(DataSpec(source=str(folder)), 0.2)
    assert len(per_token) == info.val_tokens and int(per_token.sum()) == byte_info.val_tokens
    # a multi-byte character (é) stands for two bytes in whatever token holds it
    import tokenizers

    tok = tokenizers.Tokenizer.from_file(info.tokenizer_path)
    val = np.fromfile(Path(info.path, "val.bin"), dtype=np.uint16)
    text = tok.decode(val[:200].tolist(), skip_special_tokens=False)
    assert len(text.encode("utf-8")) == int(per_token[:200].sum())


def test_a_users_tokenizer_json_is_used_as_given(tmp_path):
    folder = _text_folder(tmp_path / "text")
    trained = _prepare(folder, {"bpe": 280})
    mine = tmp_path / "my-tokenizer.json"
    mine.write_bytes(Path(trained.tokenizer_path).read_bytes())
    info = _prepare(folder, str(mine))
    assert info.tokenizer == "my-tokenizer.json" and info.vocab_size == 280
    assert np.array_equal(np.fromfile(Path(info.path, "val.bin"), dtype=np.uint16),
                          np.fromfile(Path(trained.path, "val.bin"), dtype=np.uint16))


@pytest.mark.parametrize("bad,match", [({"bpe": 100}, "257"), ({"vocab": 4096}, "bpe = VOCAB"),
                                       ("gpt2", "tokenizer.json"), ({"bpe": 300, "train_bytes": 0}, "positive")])
def test_bad_tokenizer_settings_name_the_key(bad, match):
    with pytest.raises(scalebench.ConfigError, match=match):
        DataSpec(tokenizer=bad)


def test_a_tokenizer_on_token_files_is_refused():
    with pytest.raises(scalebench.ConfigError, match="already tokens"):
        DataSpec(source="x.bin", vocab_size=300, tokenizer={"bpe": 300})


def test_bits_per_byte_against_a_hand_computation(tmp_path):
    from types import SimpleNamespace

    from scalebench.train.evaluate import Evaluator

    folder = _text_folder(tmp_path / "text")
    info = _prepare(folder, {"bpe": 300})
    run = SimpleNamespace(train=SimpleNamespace(seq_len=16), eval=SimpleNamespace(eval_tokens=64), data=DataSpec())
    batches = get_task("text").open(info, run)
    ev = Evaluator(run=run, family=None, model=None, data=batches, precision="fp32", device=None, ctx=None,
                   strategy="single")
    # by hand: the four evenly spaced windows, and the bytes of their 16 target tokens each
    per_token = np.fromfile(Path(info.path, "val_bytes.bin"), dtype=np.uint32)
    starts = np.linspace(0, info.val_tokens - 17, 4).astype(int)
    n_bytes = sum(int(per_token[s + 1 : s + 17].sum()) for s in starts)
    assert ev.bits_per_byte(2.0) == pytest.approx(2.0 * 64 / (math.log(2) * n_bytes))
    # bytes: one token per byte, so bits per byte is the loss in bits
    byte_info = get_task("text").prepare(DataSpec(source=str(folder)), 0.2)
    ev_bytes = Evaluator(run=run, family=None, model=None, data=get_task("text").open(byte_info, run),
                         precision="fp32", device=None, ctx=None, strategy="single")
    assert ev_bytes.bits_per_byte(2.0) == pytest.approx(2.0 / math.log(2))


def test_shards_with_the_tokenizer_that_made_them_record_bits_per_byte(tmp_path):
    """nanoGPT shards written by a BPE, given that BPE's tokenizer.json: every held-out token's bytes by its id,
    the held-out total equal to the text's, and bits per byte over the evaluated windows by a decode by hand."""
    from types import SimpleNamespace

    from scalebench.data.tokenizer import load_tokenizer
    from scalebench.train.evaluate import Evaluator

    rng = np.random.default_rng(1)
    text = tmp_path / "text"
    text.mkdir()
    for i in range(40):  # ASCII, so that a window's decoded text has exactly the bytes its tokens stand for
        (text / f"doc{i:03d}.txt").write_text(" ".join(rng.choice(WORDS[:4] + WORDS[5:], 300)) + "\n")
    corpus = _prepare(text, {"bpe": 300})
    shards = tmp_path / "shards"
    shards.mkdir()
    for split in ("train", "val"):
        (shards / f"{split}.bin").write_bytes(Path(corpus.path, f"{split}.bin").read_bytes())
    mine = tmp_path / "made-them.json"
    mine.write_bytes(Path(corpus.tokenizer_path).read_bytes())
    info = get_task("text").prepare(DataSpec(source=str(shards), vocab_size=320, tokenizer=str(mine)), 0.2)
    assert info.tokenizer == "shards" and Path(info.tokenizer_path).read_bytes() == mine.read_bytes()
    assert info.val_bytes == int(np.fromfile(Path(corpus.path, "val_bytes.bin"), dtype=np.uint32).sum())
    run = SimpleNamespace(train=SimpleNamespace(seq_len=16), eval=SimpleNamespace(eval_tokens=64), data=DataSpec())
    data = get_task("text").open(info, run)
    ev = Evaluator(run=run, family=None, model=None, data=data, precision="fp32", device=None, ctx=None,
                   strategy="single")
    tok, sep = load_tokenizer(mine), load_tokenizer(mine).token_to_id("<|endoftext|>")
    by_hand = 0
    for _, targets in data.eval_batches(64, 4):
        for row in targets:
            by_hand += len(tok.decode(row.tolist(), skip_special_tokens=True).encode()) + int((row == sep).sum())
    assert ev.bits_per_byte(2.0) == pytest.approx(2.0 * 64 / (math.log(2) * by_hand))
    # without the tokenizer, no bits per byte; a tokenizer whose vocabulary misses the shards' ids is refused
    plain = get_task("text").prepare(DataSpec(source=str(shards), vocab_size=320), 0.2)
    assert get_task("text").open(plain, run).eval_bytes(64) is None
    small = _prepare(text, {"bpe": 270})
    with pytest.raises(scalebench.ConfigError, match="not the tokenizer that made them"):
        get_task("text").prepare(DataSpec(source=str(shards), vocab_size=320, tokenizer=small.tokenizer_path), 0.2)
    with pytest.raises(scalebench.ConfigError, match="tokenizer.json that made them"):
        get_task("text").prepare(DataSpec(source=str(shards), vocab_size=320, tokenizer={"bpe": 300}), 0.2)
