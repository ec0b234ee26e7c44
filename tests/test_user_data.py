"""The user's data: JSONL / Parquet documents with a held-out split by document, and folders or globs of
token shards (nanoGPT, llm.c and .npy layouts), memory-mapped."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import scalebench
from scalebench.config import DataSpec
from scalebench.data.tasks import get_task

TEXT = get_task("text")


def _docs(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(["one", "two", "three", "four", "five"], 30)) + f" doc {i}" for i in range(n)]


def _run(seq_len: int = 8):
    return SimpleNamespace(train=SimpleNamespace(seq_len=seq_len), eval=SimpleNamespace(eval_tokens=64),
                           data=DataSpec())


def test_jsonl_folder_gz_and_parquet_become_one_corpus_split_by_document(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    folder = tmp_path / "docs"
    (folder / "more").mkdir(parents=True)
    docs = _docs(60)
    (folder / "a.jsonl").write_text("".join(json.dumps({"body": d, "id": i}) + "\n" for i, d in enumerate(docs[:20])))
    with gzip.open(folder / "more" / "b.jsonl.gz", "wt") as f:
        f.write("".join(json.dumps({"body": d}) + "\n" for d in docs[20:40]))
    pq.write_table(pa.table({"body": docs[40:], "n": list(range(20))}), folder / "c.parquet")
    (folder / "notes.txt").write_text("not a document file: ignored\n")
    info = TEXT.prepare(DataSpec(source=str(folder), text_column="body"), 0.25)
    assert info.n_files == 60 and 0 < info.n_val_files < 60
    train = Path(info.path, "train.bin").read_bytes().split(b"\0")[:-1]
    val = Path(info.path, "val.bin").read_bytes().split(b"\0")[:-1]
    assert sorted(d.decode() for d in train + val) == sorted(docs)  # every document whole, on one side
    assert len(val) == info.n_val_files
    again = TEXT.prepare(DataSpec(source=str(folder), text_column="body"), 0.25)
    assert again == info  # cached
    # the split is by document position: adding a file moves no document across it
    (folder / "d.jsonl").write_text(json.dumps({"body": "a new document"}) + "\n")
    grown = TEXT.prepare(DataSpec(source=str(folder), text_column="body"), 0.25)
    assert set(Path(grown.path, "val.bin").read_bytes().split(b"\0")) >= set(val)
    # a glob names the same files
    glob_info = TEXT.prepare(DataSpec(source=str(folder / "*.jsonl"), text_column="body"), 0.25)
    assert glob_info.n_files == 21


def test_a_missing_text_column_names_the_file_the_line_and_the_key(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text(json.dumps({"text": "fine"}) + "\n" + json.dumps({"content": "no text"}) + "\n")
    with pytest.raises(scalebench.ConfigError, match=r"x.jsonl:2 has no field 'text' \(it has: content\)"):
        TEXT.prepare(DataSpec(source=str(path)), 0.5)
    path.write_text("{not json\n")
    with pytest.raises(scalebench.ConfigError, match="x.jsonl:1 is not JSON"):
        TEXT.prepare(DataSpec(source=str(path)), 0.5)


def test_nanogpt_folder_reads_train_and_val_shards_by_name(tmp_path):
    folder = tmp_path / "nano"
    folder.mkdir()
    np.arange(1000, dtype=np.uint16).tofile(folder / "train.bin")
    (np.arange(200, dtype=np.uint16) + 5000).tofile(folder / "val.bin")
    info = TEXT.prepare(DataSpec(source=str(folder), vocab_size=6000), 0.1)
    assert (info.train_tokens, info.val_tokens, info.tokenizer) == (1000, 200, "shards")
    data = TEXT.open(info, _run())
    x, y = data.batch(seed=0, step=3, micro=0, rows=4)
    assert np.array_equal(y, x + 1) and x.max() < 1000  # consecutive tokens of the training shard
    xs = [x for x, _ in data.eval_batches(64, 4)]
    assert all(((x >= 5000) & (x < 5200)).all() for x in xs)
    assert data.eval_bytes(64) is None  # no text behind the tokens: no bits per byte
    with pytest.raises(scalebench.ConfigError, match="vocab_size"):
        TEXT.prepare(DataSpec(source=str(folder)), 0.1)
    with pytest.raises(scalebench.ConfigError, match="token id 5199"):
        TEXT.prepare(DataSpec(source=str(folder), vocab_size=5000), 0.1)


def test_llmc_headers_and_npy_shards_by_glob_with_the_last_shards_tail_held_out(tmp_path):
    folder = tmp_path / "fw"
    folder.mkdir()
    for k in range(2):  # llm.c: 256 int32 header (magic, version, count), then uint16 tokens
        tokens = np.arange(k * 500, k * 500 + 500, dtype=np.uint16)
        header = np.zeros(256, dtype=np.int32)
        header[:3] = (20240520, 1, len(tokens))
        with open(folder / f"fineweb_train_{k:06d}.bin", "wb") as f:
            f.write(header.tobytes() + tokens.tobytes())
    info = TEXT.prepare(DataSpec(source=str(folder / "fineweb_*.bin"), vocab_size=1000), 0.2)
    assert (info.train_tokens, info.val_tokens, info.dtype) == (900, 100, "uint16")
    data = TEXT.open(info, _run(seq_len=16))
    for step in range(20):  # a window never crosses two shards (ids jump by one within a shard)
        x, y = data.batch(seed=1, step=step, micro=0, rows=8)
        assert np.array_equal(y, x + 1) and (x < 900).all()
    assert all((x >= 900).all() for x, _ in data.eval_batches(64, 4))
    npy = tmp_path / "npy"
    npy.mkdir()
    np.save(npy / "part0.npy", np.arange(300, dtype=np.int32))
    np.save(npy / "part_val.npy", np.arange(100, dtype=np.int32))
    info = TEXT.prepare(DataSpec(source=str(npy), vocab_size=400), 0.1)
    assert (info.train_tokens, info.val_tokens, info.dtype) == (300, 100, "int32")


def test_validate_plans_from_file_sizes_and_builds_no_corpus(tmp_path, capsys, monkeypatch):
    from scalebench.cli import main

    monkeypatch.setenv("SCALEBENCH_HOME", str(tmp_path / "home"))
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.jsonl").write_text("".join(json.dumps({"text": d}) + "\n" for d in _docs(200)))
    spec = tmp_path / "s.toml"
    spec.write_text(f'name = "v"\nfamily = "llama"\n[model]\nsizes = ["debug", "d2"]\n[budget]\ntokens = [4096]\n'
                    f'[data]\nsource = "{folder}"\ntokenizer = {{bpe = 512}}\n[train]\nbatch_tokens = 256\n'
                    'seq_len = 32\ncompile = "off"\n[eval]\neval_tokens = 256\nheld_out_share = 0.1\n'
                    '[devices]\ndevice = "cpu"\n')
    assert main(["validate", str(spec)]) == 0
    out = capsys.readouterr().out
    assert "not built yet" in out and "vocab 512" in out and "tokenizer bpe512" in out
    assert not list((tmp_path / "home").rglob("*.bin"))  # nothing built
