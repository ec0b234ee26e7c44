"""Pre-tokenized shards: a folder or glob of ``.bin`` / ``.npy`` token files, memory-mapped, never copied.

``[data] source`` is a folder holding token files, or a glob (``"fineweb10B/*.bin"``); ``vocab_size`` is
required (``dtype`` for headerless ``.bin``). Layouts read:

* nanoGPT: headerless little-endian ``.bin`` arrays of ``data.dtype`` (``train.bin`` and ``val.bin``);
* llm.c / modded-nanogpt: a 256 × int32 header (magic 20240520, version 1, token count) then uint16 tokens;
* ``.npy`` (``numpy.save``; its header gives the dtype).

Held-out data: the shards whose file name contains ``val`` (``val.bin``, ``fineweb_val_000000.bin``); without
one, the last ``eval.held_out_share`` of the last shard's tokens (a positional split: shards carry no
document boundaries). A training window never crosses two shards. ``shards.json`` in
``$SCALEBENCH_HOME/corpus/shards-<key>/`` lists each shard's path, header offset, tokens and split; the key
covers names, sizes and mtimes (and the tokenizer's sha256), so a changed shard is listed again. Every run
memory-maps the shards, so a data set larger than memory trains.

Bits per byte needs the text behind the tokens, which shards do not carry. With ``[data] tokenizer`` set to
the ``tokenizer.json`` that made them, each held-out token's bytes are its id's decoded length
(``data.tokenizer.token_byte_lengths``, checked against the decoded text of a held-out sample, refused where
they disagree by more than 1 %), saved beside ``shards.json`` as ``token_bytes.npy``, and runs record
``eval_bpb``; without it, ``eval_loss`` only.
"""

from __future__ import annotations

import glob
import hashlib
import io
import json
import os
from pathlib import Path

import numpy as np

from scalebench.errors import ConfigError

SUFFIXES = (".bin", ".npy")
LLMC_MAGIC, LLMC_HEADER_BYTES = 20240520, 256 * 4


def shard_files(source: str) -> list[Path] | None:
    """The token files ``source`` (a folder or a glob) names, sorted; None for another kind of source."""
    if any(ch in source for ch in "*?["):
        files = sorted(Path(p) for p in glob.glob(os.path.expanduser(source), recursive=True))
        files = [p for p in files if p.is_file() and p.name.endswith(SUFFIXES)]
        return files or None
    path = Path(source).expanduser()
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.name.endswith(SUFFIXES))
        return files or None
    return None


def _layout(path: Path, dtype: str) -> tuple[str, int, int]:
    """(dtype, byte offset of the first token, tokens) of one shard; ConfigError naming it when unreadable."""
    size = path.stat().st_size
    if path.suffix == ".npy":
        try:
            arr = np.load(path, mmap_mode="r")
        except (ValueError, OSError) as exc:
            raise ConfigError(f"data.source: {path} is not a .npy array ({exc})") from None
        if arr.ndim != 1 or arr.dtype.kind not in "iu":
            raise ConfigError(f"data.source: {path} holds a {arr.dtype} array of shape {arr.shape}; token shards "
                              "are one-dimensional integer arrays")
        return str(arr.dtype), int(arr.offset), int(arr.shape[0])
    if size >= LLMC_HEADER_BYTES:
        header = np.fromfile(path, dtype="<i4", count=3)
        if int(header[0]) == LLMC_MAGIC:
            n = int(header[2])
            if LLMC_HEADER_BYTES + 2 * n > size:
                raise ConfigError(f"data.source: {path} has an llm.c header promising {n:,} tokens but holds "
                                  f"{(size - LLMC_HEADER_BYTES) // 2:,}; the shard is truncated")
            return "uint16", LLMC_HEADER_BYTES, n
    itemsize = np.dtype(dtype).itemsize
    if size == 0 or size % itemsize:
        raise ConfigError(f"data.source: {path} ({size} bytes) is not a whole number of {dtype} tokens; check "
                          "data.dtype")
    return dtype, 0, size // itemsize


def open_shard(entry: dict) -> np.ndarray:
    return np.memmap(entry["path"], dtype=entry["dtype"], mode="r", offset=entry["offset"], shape=(entry["tokens"],))


CHECK_TOKENS = 200_000  # held-out tokens decoded to check a tokenizer's per-token byte counts


def prepare_shards(spec, held_out_share: float, files: list[Path], tokenizer: str | None = None):
    """Describe the shards (listed once in the cache); ``CorpusInfo.path`` is the folder of ``shards.json``.
    ``tokenizer``: the path of the tokenizer.json that made them, for bits per byte (module docstring)."""
    from scalebench._util import make_folder, scalebench_home, write_bytes_atomic
    from scalebench.data.corpus import CorpusInfo

    if spec.vocab_size is None:
        raise ConfigError(f"data.vocab_size: {spec.source!r} holds token shards; set vocab_size (e.g. 50304)")
    h = hashlib.sha256(json.dumps(["shards", spec.dtype, held_out_share]).encode())
    if tokenizer is not None:
        path = Path(tokenizer).expanduser()
        if not path.is_file():
            raise ConfigError(f"data.tokenizer: {tokenizer!r} does not exist; give the path of the tokenizer.json "
                              "that made the shards")
        h.update(b"tokenizer\0" + hashlib.sha256(path.read_bytes()).digest())
    for p in files:
        st = p.stat()
        h.update(f"{p.resolve()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    out = scalebench_home() / "corpus" / f"shards-{h.hexdigest()[:20]}"
    entries = []
    for p in files:
        dtype, offset, n = _layout(p, spec.dtype)
        entries.append({"path": str(p.resolve()), "dtype": dtype, "offset": offset, "tokens": n,
                        "split": "val" if "val" in p.name.lower() else "train"})
    if len({e["dtype"] for e in entries}) > 1:
        raise ConfigError(f"data.source: the shards mix token types ({sorted({e['dtype'] for e in entries})}); "
                          "write them with one dtype")
    if not any(e["split"] == "train" for e in entries):
        raise ConfigError(f"data.source: every shard of {spec.source!r} is a held-out ('val') shard; add training "
                          "shards")
    if not any(e["split"] == "val" for e in entries):  # hold out the tail of the last shard
        last = entries[-1]
        n_val = int(last["tokens"] * held_out_share)
        itemsize = np.dtype(last["dtype"]).itemsize
        entries[-1] = {**last, "tokens": last["tokens"] - n_val}
        entries.append({**last, "offset": last["offset"] + (last["tokens"] - n_val) * itemsize, "tokens": n_val,
                        "split": "val"})
    top = max(int(open_shard(e).max()) for e in entries if e["tokens"])
    if top >= spec.vocab_size:
        raise ConfigError(f"data.vocab_size: the shards hold token id {top}, not below vocab_size = "
                          f"{spec.vocab_size}; set vocab_size above the largest id")
    make_folder(out)
    tokenizer_path, val_bytes = "", 0
    if tokenizer is not None:
        tokenizer_path, val_bytes = _token_bytes(out, Path(tokenizer).expanduser(), entries, top)
    write_bytes_atomic(out / "shards.json", json.dumps(entries, indent=1).encode(), what=f"corpus cache {out}")
    train = sum(e["tokens"] for e in entries if e["split"] == "train")
    val = sum(e["tokens"] for e in entries if e["split"] == "val")
    return CorpusInfo(source=spec.source, path=str(out), dtype=entries[0]["dtype"], vocab_size=int(spec.vocab_size),
                      train_tokens=train, val_tokens=val, n_files=len(files),
                      n_val_files=sum("val" in p.name.lower() for p in files), fingerprint=h.hexdigest()[:16],
                      tokenizer="shards", tokenizer_path=tokenizer_path, val_bytes=val_bytes)


def _token_bytes(out: Path, path: Path, entries: list[dict], top: int) -> tuple[str, int]:
    """Save the tokenizer and its per-id byte counts beside ``shards.json``; (its path, held-out bytes)."""
    from scalebench._util import write_bytes_atomic
    from scalebench.data.tokenizer import check_byte_lengths, load_tokenizer, token_byte_lengths

    tok = load_tokenizer(path)
    lengths = token_byte_lengths(tok)
    if top >= lengths.size:
        raise ConfigError(f"data.tokenizer: the shards hold token id {top}, beyond {path.name}'s vocabulary of "
                          f"{lengths.size}; it is not the tokenizer that made them")
    val = [open_shard(e) for e in entries if e["split"] == "val"]
    check_byte_lengths(tok, lengths, np.asarray(val[0][:CHECK_TOKENS]), f"{path.name} on the held-out shard")
    total = sum(int(lengths[np.asarray(v[i : i + (1 << 24)])].sum(dtype=np.int64)) for v in val
                for i in range(0, len(v), 1 << 24))
    buf = io.BytesIO()
    np.save(buf, lengths)
    write_bytes_atomic(out / "token_bytes.npy", buf.getvalue(), what=f"corpus cache {out}")
    write_bytes_atomic(out / "tokenizer.json", path.read_bytes(), what=f"corpus cache {out}")
    return str(out / "tokenizer.json"), total


def is_shard_corpus(info) -> bool:
    return getattr(info, "tokenizer", "") == "shards"


class ShardData:
    """Windows over memory-mapped shards; a step's batch depends only on (seed, step, micro)."""

    def __init__(self, info) -> None:
        self.info = info
        entries = json.loads((Path(info.path) / "shards.json").read_text(encoding="utf-8"))
        self.train = [open_shard(e) for e in entries if e["split"] == "train"]
        self.val = [open_shard(e) for e in entries if e["split"] == "val"]
        lengths = Path(info.path) / "token_bytes.npy"
        self.token_bytes = np.load(lengths) if getattr(info, "tokenizer_path", "") and lengths.is_file() else None

    @staticmethod
    def _starts(shards: list[np.ndarray], seq_len: int) -> np.ndarray:
        return np.array([max(0, len(s) - seq_len - 1) for s in shards], dtype=np.int64)

    @staticmethod
    def _windows(shards, which: np.ndarray, starts: np.ndarray, seq_len: int):
        w = np.stack([np.asarray(shards[k][s : s + seq_len + 1], dtype=np.int64) for k, s in zip(which, starts,
                                                                                               strict=True)])
        return w[:, :-1], w[:, 1:]

    def _locate(self, shards, seq_len: int, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        usable = self._starts(shards, seq_len)
        if not usable.sum():
            raise ConfigError(f"data.source: no shard holds a window of train.seq_len + 1 = {seq_len + 1} tokens")
        edges = np.cumsum(usable)
        which = np.searchsorted(edges, positions, side="right")
        return which, positions - (edges[which] - usable[which])

    def batch(self, seed: int, step: int, micro: int, n_seqs: int, seq_len: int, batch_rows: int | None = None):
        """As ``TokenData.batch``: with ``batch_rows`` the step's windows are drawn once and sliced."""
        rng = np.random.default_rng((seed, step, micro if batch_rows is None else 0))
        total = int(self._starts(self.train, seq_len).sum())
        drawn = rng.integers(0, max(1, total), size=n_seqs if batch_rows is None else batch_rows)
        if batch_rows is not None:
            drawn = drawn[micro * n_seqs:][:n_seqs]
        which, starts = self._locate(self.train, seq_len, drawn)
        return self._windows(self.train, which, starts, seq_len)

    def _eval_windows(self, eval_tokens: int, seq_len: int) -> tuple[np.ndarray, np.ndarray]:
        total = int(self._starts(self.val, seq_len).sum())
        n = max(1, min(eval_tokens // seq_len, total // seq_len))
        return self._locate(self.val, seq_len, np.linspace(0, max(0, total - 1), n).astype(np.int64))

    def eval_batches(self, eval_tokens: int, seq_len: int, batch_seqs: int):
        which, starts = self._eval_windows(eval_tokens, seq_len)
        for i in range(0, len(starts), batch_seqs):
            yield self._windows(self.val, which[i : i + batch_seqs], starts[i : i + batch_seqs], seq_len)

    def eval_bytes(self, eval_tokens: int, seq_len: int) -> tuple[int, int] | None:
        """(target tokens, bytes of text they stand for) over the held-out windows; None without a tokenizer."""
        if self.token_bytes is None:
            return None
        which, starts = self._eval_windows(eval_tokens, seq_len)
        total = sum(int(self.token_bytes[np.asarray(self.val[k][s + 1 : s + 1 + seq_len])].sum(dtype=np.int64))
                    for k, s in zip(which, starts, strict=True))
        return len(starts) * seq_len, total
