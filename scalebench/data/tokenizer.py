"""Tokenizers for text corpora: bytes (one token per byte), a byte-level BPE trained here, or the user's
``tokenizer.json``; and the bytes each held-out token stands for, which gives bits per byte.

``[data] tokenizer``:

* ``"bytes"`` (the default): the byte corpus as it is (vocabulary 256).
* ``{bpe = 4096}``: a byte-level BPE (Sennrich et al. 2016; GPT-2's byte-level alphabet, so nothing is out
  of vocabulary) of that many tokens, trained with Hugging Face ``tokenizers`` on the *training* split only
  (never the held-out text). ``train_bytes`` (default all) caps the text it learns from: the first documents
  of the training split in corpus order. Training is deterministic: the same corpus and settings give the
  same merges and ids.
* ``"path/to/tokenizer.json"``: any tokenizer saved by Hugging Face ``tokenizers`` (``Tokenizer.save``).

A tokenized corpus is built once from the byte corpus (``scalebench.data.corpus``) into
``$SCALEBENCH_HOME/corpus/tok-<key>/``, keyed by the byte corpus's fingerprint and the tokenizer settings (the
file's sha256 for a user's tokenizer), with ``tokenizer.json``, ``train.bin``, ``val.bin`` and
``val_bytes.bin``: for each held-out token, the bytes of UTF-8 text it covers (from the tokenizer's offsets;
bytes a normaliser dropped go to the document's separator token, so the held-out tokens cover the held-out
text exactly). Documents are joined by the tokenizer's end-of-text token (one byte, as the byte corpus's
NUL separator is). The sweep saves the tokenizer in its folder (``tokenizer.json``).

Bits per byte (``eval_bpb``) of the evaluated held-out windows is their summed loss in nats over
ln 2 × the bytes their target tokens cover, a quantity that compares across tokenizers (Gao et al. 2020,
The Pile, §5; Radford et al. 2019 report it for byte-level data).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from scalebench.config import parse_tokenizer as parse
from scalebench.errors import ConfigError

SEPARATOR_TOKEN = "<|endoftext|>"
FORMAT = 1  # bump when the tokenized layout changes: old caches are then rebuilt, not misread
CHUNK_DOCS = 2048


def describe(value: Any) -> str:
    """A short name for the setting: ``bytes``, ``bpe4096`` or the file's name."""
    kind, arg = parse(value)
    return "bytes" if kind == "bytes" else f"bpe{arg['bpe']}" if kind == "bpe" else Path(arg).name


def _import_tokenizers():
    try:
        import tokenizers
    except ModuleNotFoundError:
        raise ConfigError("data.tokenizer: a BPE or a tokenizer.json needs Hugging Face tokenizers: "
                          "pip install 'scalebench[tokenizers]' (or pip install tokenizers)") from None
    return tokenizers


def _documents(path: Path, chunk_bytes: int = 1 << 24) -> Iterator[str]:
    """The documents of a byte-corpus split (NUL-separated), decoded as UTF-8 (bad bytes replaced)."""
    with open(path, "rb") as f:
        rest = b""
        while chunk := f.read(chunk_bytes):
            parts = (rest + chunk).split(b"\0")
            rest = parts.pop()
            for p in parts:
                yield p.decode("utf-8", errors="replace")
        if rest:
            yield rest.decode("utf-8", errors="replace")


def train_bpe(texts: Iterator[str], vocab_size: int):
    """A byte-level BPE of ``vocab_size`` tokens (one of them the end-of-text separator)."""
    tk = _import_tokenizers()
    tok = tk.Tokenizer(tk.models.BPE())
    tok.pre_tokenizer = tk.pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = tk.decoders.ByteLevel()
    trainer = tk.trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[SEPARATOR_TOKEN], show_progress=False,
                                     initial_alphabet=tk.pre_tokenizers.ByteLevel.alphabet(), min_frequency=2)
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def _capped(texts: Iterator[str], cap: int | None) -> Iterator[str]:
    seen = 0
    for t in texts:
        if cap is not None and seen >= cap:
            return
        seen += len(t)
        yield t


def load_tokenizer(path: str | Path):
    tk = _import_tokenizers()
    try:
        return tk.Tokenizer.from_file(str(path))
    except Exception as exc:  # noqa: BLE001 - the library raises plain Exceptions for bad files
        raise ConfigError(f"data.tokenizer: {str(path)!r} is not a tokenizer.json Hugging Face tokenizers can "
                          f"read ({exc})") from None


def _separator_id(tok) -> int:
    """The end-of-text token: ours, or a user tokenizer's own (``</s>``, ``<|endoftext|>``, ...)."""
    for name in (SEPARATOR_TOKEN, "</s>", "<|end_of_text|>", "<eos>", "[SEP]"):
        tid = tok.token_to_id(name)
        if tid is not None:
            return int(tid)
    raise ConfigError("data.tokenizer: the tokenizer has no end-of-text token (<|endoftext|>, </s>, "
                      "<|end_of_text|>, <eos> or [SEP]) to separate documents with; add one as a special token")


def _token_bytes(text: str, enc) -> np.ndarray:
    """Bytes of UTF-8 text each token covers (from its character offsets); overlapping tokens (byte
    fallback) share a character's bytes once."""
    cum = np.cumsum([0] + [len(ch.encode("utf-8")) for ch in text]) if text else np.zeros(1, dtype=np.int64)
    out = np.zeros(len(enc.ids), dtype=np.int64)
    covered = 0
    for i, (_, end) in enumerate(enc.offsets):
        stop = int(cum[min(end, len(text))])
        out[i] = max(0, stop - covered)
        covered = max(covered, stop)
    return out


def _encode_split(tok, src: Path, dst: Path, sep: int, dtype: str, bytes_dst: Path | None) -> int:
    """Encode a byte-corpus split document by document; ids joined by ``sep``; the tokens written."""
    n = 0
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    btmp = bytes_dst.with_name(f".{bytes_dst.name}.{os.getpid()}.tmp") if bytes_dst else None
    try:
        with open(tmp, "wb") as f, (open(btmp, "wb") if btmp else open(os.devnull, "wb")) as fb:
            batch: list[str] = []
            for doc in _documents(src):
                batch.append(doc)
                if len(batch) >= CHUNK_DOCS:
                    n += _write_batch(tok, batch, f, fb if btmp else None, sep, dtype)
                    batch = []
            if batch:
                n += _write_batch(tok, batch, f, fb if btmp else None, sep, dtype)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, dst)
        if btmp:
            os.replace(btmp, bytes_dst)
    finally:
        for t in (tmp, btmp):
            if t is not None and t.exists():
                t.unlink()
    return n


def _write_batch(tok, docs: list[str], f, fb, sep: int, dtype: str) -> int:
    encs = tok.encode_batch(docs, add_special_tokens=False)
    n = 0
    for doc, enc in zip(docs, encs, strict=True):
        ids = np.asarray(enc.ids + [sep], dtype=dtype)
        f.write(ids.tobytes())
        n += len(ids)
        if fb is not None:
            per = _token_bytes(doc, enc)
            total = len(doc.encode("utf-8"))
            sep_bytes = 1 + total - int(per.sum())  # the separator's NUL, and whatever a normaliser dropped
            fb.write(np.append(per, sep_bytes).astype(np.uint32).tobytes())
    return n


def _settings_key(value: Any) -> tuple[str, str]:
    kind, arg = parse(value)
    if kind == "bpe":
        return json.dumps({"bpe": arg["bpe"], "train_bytes": arg["train_bytes"], "format": FORMAT}), ""
    path = Path(arg).expanduser()
    if not path.is_file():
        raise ConfigError(f"data.tokenizer: {arg!r} does not exist; give the path of a tokenizer.json")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return json.dumps({"file": digest, "format": FORMAT}), str(path)


def cache_folder(byte_info, value: Any) -> Path:
    """Where ``byte_info`` tokenized by ``value`` is (or will be) cached."""
    from scalebench._util import scalebench_home

    settings, _ = _settings_key(value)
    key = hashlib.sha256(f"{byte_info.fingerprint}\0{byte_info.train_tokens}\0{settings}".encode()).hexdigest()[:20]
    return scalebench_home() / "corpus" / f"tok-{key}"


def cached_meta(out: Path):
    """A cache folder's description from its meta.json alone (no checksums read), or None."""
    from dataclasses import fields

    from scalebench.data.corpus import CorpusInfo

    try:
        raw = json.loads((out / "meta.json").read_text(encoding="utf-8"))
        return CorpusInfo(**{k: v for k, v in raw.items() if k in {f.name for f in fields(CorpusInfo)}})
    except (OSError, ValueError, TypeError):
        return None


def tokenize_corpus(byte_info, value: Any):
    """The byte corpus ``byte_info`` tokenized by ``value`` (cached; see the module docstring)."""
    from scalebench._util import make_folder, open_nofollow, write_bytes_atomic
    from scalebench.data.corpus import CorpusInfo

    settings, user_file = _settings_key(value)
    out = cache_folder(byte_info, value)
    make_folder(out)
    with os.fdopen(open_nofollow(out / ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        info = _cached(out)
        if info is not None:
            return info
        for name in ("meta.json", "tokenizer.json", "train.bin", "val.bin", "val_bytes.bin"):
            (out / name).unlink(missing_ok=True)
        byte_dir = Path(byte_info.path)
        if user_file:
            tok = load_tokenizer(user_file)
        else:
            cap = parse(value)[1]["train_bytes"]
            tok = train_bpe(_capped(_documents(byte_dir / "train.bin"), cap), parse(value)[1]["bpe"])
        tok.save(str(out / "tokenizer.json"))
        vocab = int(tok.get_vocab_size(with_added_tokens=True))
        dtype = "uint16" if vocab <= 2**16 else "uint32"
        sep = _separator_id(tok)
        n_train = _encode_split(tok, byte_dir / "train.bin", out / "train.bin", sep, dtype, None)
        n_val = _encode_split(tok, byte_dir / "val.bin", out / "val.bin", sep, dtype, out / "val_bytes.bin")
        fp = hashlib.sha256(f"{byte_info.fingerprint}\0{settings}".encode())
        fp.update((out / "tokenizer.json").read_bytes())
        info = CorpusInfo(source=byte_info.source, path=str(out), dtype=dtype, vocab_size=vocab, train_tokens=n_train,
                          val_tokens=n_val, n_files=byte_info.n_files, n_val_files=byte_info.n_val_files,
                          fingerprint=fp.hexdigest()[:16], tokenizer=describe(value),
                          tokenizer_path=str(out / "tokenizer.json"), val_bytes=int(byte_info.val_tokens))
        write_bytes_atomic(out / "meta.json", json.dumps(info.as_dict(), indent=1).encode(), what=f"corpus cache {out}")
        return info


def _cached(out: Path):
    """The cached tokenized corpus if its meta and files are whole, else None (it is rebuilt)."""
    from scalebench.data.corpus import CorpusInfo

    info = cached_meta(out)
    if info is None:
        return None
    want_train, want_val = info.expected_bytes()
    sizes = {"train.bin": want_train, "val.bin": want_val, "val_bytes.bin": info.val_tokens * 4}
    for name, size in sizes.items():
        p = out / name
        if not p.is_file() or p.stat().st_size != size:
            return None
    if not (out / "tokenizer.json").is_file():
        return None
    if info.path != str(out):
        info = CorpusInfo(**{**info.as_dict(), "path": str(out), "tokenizer_path": str(out / "tokenizer.json")})
    return info


def val_token_bytes(info) -> np.ndarray | None:
    """Bytes each held-out token covers: ones for the byte corpus, the recorded counts for a tokenized one,
    None where the text is unknown (pre-tokenized shards without it, the synthetic language)."""
    tokenizer = getattr(info, "tokenizer", "bytes")
    source = str(getattr(info, "source", ""))
    if tokenizer == "bytes" and source != "synthetic" and not source.endswith(".bin") and info.dtype == "uint8":
        return np.ones(info.val_tokens, dtype=np.uint8)
    path = Path(info.path) / "val_bytes.bin"
    if tokenizer != "bytes" and path.is_file():
        return np.memmap(path, dtype=np.uint32, mode="r")
    return None


def _decoder_kinds(tok) -> set[str]:
    """The decoder types of a tokenizer (a ``Sequence`` decoder's parts included)."""
    raw = json.loads(tok.to_str()).get("decoder") or {}
    parts = raw.get("decoders", []) if raw.get("type") == "Sequence" else [raw]
    return {d.get("type", "") for d in parts if isinstance(d, dict)}


def token_byte_lengths(tok) -> np.ndarray:
    """UTF-8 bytes of text each id stands for, by id, for ids without their text (shards): special tokens none,
    the end-of-text separator one (as the tokenized corpora here count it: the byte corpus's NUL).

    Byte-level tokenizers (GPT-2's alphabet: our BPE, GPT-2, Llama 3) spell every byte with one character, so a
    token's length is its string's; SentencePiece-style ones (``Metaspace``) spell a space ``▁`` and a byte
    fallback ``<0x0A>``; any other decodes each id alone. :func:`check_byte_lengths` then checks the counts on
    decoded text."""
    kinds = _decoder_kinds(tok)
    specials = {t.content for t in tok.get_added_tokens_decoder().values() if t.special}
    try:
        separator = _separator_id(tok)
    except ConfigError:
        separator = None
    alphabet = set(_import_tokenizers().pre_tokenizers.ByteLevel.alphabet())
    out = np.zeros(tok.get_vocab_size(with_added_tokens=True), dtype=np.uint32)
    for piece, i in tok.get_vocab(with_added_tokens=True).items():
        if piece in specials or i >= out.size:
            continue
        if "ByteLevel" in kinds and set(piece) <= alphabet:
            n = len(piece)
        elif "Metaspace" in kinds or "ByteFallback" in kinds:
            fallback = len(piece) == 6 and piece.startswith("<0x") and piece.endswith(">")
            n = 1 if fallback else len(piece.replace("\u2581", " ").encode("utf-8"))
        else:
            n = len(tok.decode([i], skip_special_tokens=True).encode("utf-8"))
        out[i] = n
    if separator is not None and separator < out.size:
        out[separator] = 1  # as in the tokenized corpora here: the byte corpus's NUL between documents
    return out


def check_byte_lengths(tok, lengths: np.ndarray, ids: np.ndarray, where: str, tolerance: float = 0.01) -> None:
    """Refuse per-id byte counts that disagree with the decoded text of ``ids`` (a held-out sample) by more
    than ``tolerance``: a tokenizer these counts do not describe, or not the one that made the tokens."""
    ids = np.asarray(ids, dtype=np.int64)
    if not ids.size:
        return
    special = np.array([i for i, t in tok.get_added_tokens_decoder().items() if t.special], dtype=np.int64)
    counted = int(lengths[ids[~np.isin(ids, special)]].sum(dtype=np.int64))  # decode skips them
    decoded = len(tok.decode(ids.tolist(), skip_special_tokens=True).encode("utf-8"))
    if abs(counted - decoded) > tolerance * max(decoded, 1):
        raise ConfigError(f"data.tokenizer: {where}: the tokens' text decodes to {decoded:,} bytes but the per-token "
                          f"counts give {counted:,}; bits per byte cannot be counted with this tokenizer (is it the "
                          "tokenizer that made the shards?); remove data.tokenizer to train without eval_bpb")


def save_with_sweep(info, sweep_dir: str | Path) -> None:
    """Copy the corpus's tokenizer into the sweep folder (``tokenizer.json``), so the sweep names what it used."""
    src = getattr(info, "tokenizer_path", "") or ""
    if src and Path(src).is_file():
        shutil.copyfile(src, Path(sweep_dir) / "tokenizer.json")
