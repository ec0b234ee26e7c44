"""Corpora: the embedded default, text folders and .bin memmaps; no train/held-out leakage."""

from __future__ import annotations

import numpy as np
import pytest

from scalebench.config import DataSpec
from scalebench.data import TokenData, prepare_corpus
from scalebench.data.corpus import SEPARATOR, default_source_files
from scalebench.errors import ConfigError


def _docs(arr: np.ndarray) -> set[bytes]:
    return {d for d in bytes(np.asarray(arr, dtype=np.uint8)).split(SEPARATOR) if d}


def test_default_corpus_is_real_python_split_by_file_without_overlap():
    info = prepare_corpus(DataSpec(), 0.05)
    assert info.vocab_size == 256 and info.train_tokens > 5_000_000 and info.val_tokens > 100_000
    data = TokenData(info)
    train, val = _docs(data.train), _docs(data.val)
    assert not train & val  # no file on both sides
    assert info.n_val_files / info.n_files == pytest.approx(0.05, abs=0.03)
    assert any(b"def " in d for d in list(val)[:20])
    again = prepare_corpus(DataSpec(), 0.05)  # cached: same fingerprint, same files
    assert again.fingerprint == info.fingerprint and again.path == info.path


def test_default_sources_are_sorted_and_exclude_site_packages():
    files = default_source_files(False)
    names = [n for n, _ in files]
    assert names == sorted(names) and not any("site-packages" in n for n in names)


def test_text_folder_and_batches_are_deterministic(tmp_path):
    for i in range(40):
        (tmp_path / f"f{i:02d}.txt").write_text(f"document {i} " * 200)
    (tmp_path / "skip.bin").write_bytes(b"\0\1\2")
    info = prepare_corpus(DataSpec(source=str(tmp_path), patterns=("*.txt",)), 0.2)
    assert info.n_files == 40 and 0 < info.n_val_files < 40
    data = TokenData(info)
    x1, y1 = data.batch(seed=1, step=5, micro=0, n_seqs=4, seq_len=16)
    x2, _ = data.batch(seed=1, step=5, micro=0, n_seqs=4, seq_len=16)
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(x1[:, 1:], y1[:, :-1])  # targets are inputs shifted by one
    evals = list(data.eval_batches(eval_tokens=256, seq_len=16, batch_seqs=4))
    assert sum(len(x) for x, _ in evals) == 16


def test_bin_corpus_nanogpt_layout(tmp_path):
    tokens = np.arange(10_000, dtype=np.uint16) % 50_000
    path = tmp_path / "train.bin"
    tokens.tofile(path)
    info = prepare_corpus(DataSpec(source=str(path), vocab_size=50304, dtype="uint16"), 0.1)
    assert (info.train_tokens, info.val_tokens) == (9000, 1000)
    data = TokenData(info, DataSpec(source=str(path), vocab_size=50304, dtype="uint16"))
    x, _ = data.batch(0, 0, 0, 2, 8)
    assert x.max() < 9000  # training windows never reach the held-out tail
    assert int(data.val[0]) == 9000


def test_bad_sources_are_clear(tmp_path):
    with pytest.raises(ConfigError, match="neither 'default', a file nor a folder"):
        prepare_corpus(DataSpec(source=str(tmp_path / "nope")), 0.1)
    with pytest.raises(ConfigError, match="no files matching"):
        prepare_corpus(DataSpec(source=str(tmp_path)), 0.1)
    odd = tmp_path / "odd.bin"
    odd.write_bytes(b"\0\0\0")
    with pytest.raises(ConfigError, match="whole number of uint16"):
        prepare_corpus(DataSpec(source=str(odd), vocab_size=10), 0.1)


def test_a_single_text_file_is_split_by_position(tmp_path):
    path = tmp_path / "book.txt"
    path.write_text("".join(f"line {i}\n" for i in range(5000)))
    info = prepare_corpus(DataSpec(source=str(path)), 0.1)
    assert info.n_files == 1 and info.val_tokens == pytest.approx(0.1 * path.stat().st_size, abs=2)
    data = TokenData(info)
    assert b"line 4999" in bytes(np.asarray(data.val, dtype=np.uint8))
    assert b"line 4999" not in bytes(np.asarray(data.train, dtype=np.uint8))


def test_bin_token_ids_must_fit_the_vocabulary(tmp_path):
    path = tmp_path / "t.bin"
    np.array([1, 2, 300], dtype=np.uint16).tofile(path)
    with pytest.raises(ConfigError, match="token id 300, not below vocab_size = 256"):
        prepare_corpus(DataSpec(source=str(path), vocab_size=256), 0.1)


def test_concurrent_preparation_of_one_corpus_builds_it_once(tmp_path):
    import multiprocessing as mp

    for i in range(30):
        (tmp_path / f"f{i}.txt").write_text(f"text {i} " * 3000)
    ctx = mp.get_context("spawn")
    with ctx.Pool(3) as pool:
        infos = pool.starmap(prepare_corpus, [(DataSpec(source=str(tmp_path), patterns=("*.txt",)), 0.2)] * 3)
    assert len({i.fingerprint for i in infos}) == 1 and len({i.path for i in infos}) == 1


def test_default_sources_never_walk_the_stdlib_site_packages(tmp_path, monkeypatch):
    """The stdlib walk prunes site-packages (pip may change it under us: a vanished folder once failed a plan)."""
    import sysconfig

    from scalebench.data import corpus

    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "a.py").write_text("a = 1\n")
    (tmp_path / "b.py").write_text("b = 1\n")
    (tmp_path / "c.txt").write_text("not python\n")
    site = tmp_path / "site-packages" / "x"
    site.mkdir(parents=True)
    (site / "x.py").write_text("x = 1\n")
    monkeypatch.setattr(sysconfig, "get_paths", lambda: {"stdlib": str(tmp_path), "purelib": str(site.parent)})
    entered = []
    real_walk = corpus.os.walk

    def walk(root):
        for dirpath, dirnames, filenames in real_walk(root):
            entered.append(dirpath)
            yield dirpath, dirnames, filenames

    monkeypatch.setattr(corpus.os, "walk", walk)
    assert [name for name, _ in corpus.default_source_files(False)] == ["stdlib/b.py", "stdlib/pkg/a.py"]
    assert not any("site-packages" in d for d in entered)
    assert "site-packages/x/x.py" in [name for name, _ in corpus.default_source_files(True)]
