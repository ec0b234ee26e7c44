"""Text as documents: JSON Lines and Parquet files (one document per line or row, in a named text column),
read once into the byte-corpus cache with a held-out split by document.

``[data] source`` is a ``.jsonl`` / ``.jsonl.gz`` / ``.parquet`` file, a folder holding such files (searched
recursively; other files are ignored), or a glob (``"data/shard-*.jsonl"``); ``text_column`` names the field
(default ``"text"``). The documents are written in the embedded corpus's layout (UTF-8 bytes, each followed
by a NUL separator; ``scalebench/data/corpus.py``) into ``$SCALEBENCH_HOME/corpus/docs-<key>/``, streaming, so
a data set larger than memory is read once and then memory-mapped. A document is held out when the first 8
bytes of sha256("<file>#<index>") fall below ``eval.held_out_share``: the split depends only on where the
document is, so appending files never moves a document across it. Documents with identical text are kept
once; empty ones and ones holding a NUL are skipped. ``tokenizer`` then applies as to any text source.
"""

from __future__ import annotations

import fcntl
import glob
import gzip
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

from scalebench.errors import ConfigError

SUFFIXES = (".jsonl", ".jsonl.gz", ".parquet")


def _is_document_file(p: Path) -> bool:
    return p.name.endswith(SUFFIXES)


def document_files(source: str) -> list[tuple[str, Path]] | None:
    """(relative name, path) of the JSONL/Parquet files ``source`` names, sorted; None when it names none
    (then it is another kind of source)."""
    if any(ch in source for ch in "*?["):
        paths = sorted(Path(p) for p in glob.glob(os.path.expanduser(source), recursive=True))
        files = [p for p in paths if p.is_file() and _is_document_file(p)]
        if not files:
            return None
        root = Path(os.path.commonpath([str(p.parent) for p in files]))
        return [(p.relative_to(root).as_posix(), p) for p in files]
    path = Path(source).expanduser()
    if path.is_file():
        return [(path.name, path)] if _is_document_file(path) else None
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and _is_document_file(p))
        return [(p.relative_to(path).as_posix(), p) for p in files] or None
    if source.endswith(SUFFIXES):
        raise ConfigError(f"data.source: {source!r} does not exist")
    return None


def _jsonl(path: Path, rel: str, column: str) -> Iterator[str]:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"data.source: {rel}:{lineno} is not JSON ({exc.msg}); each line must be one "
                                  "JSON object") from None
            if not isinstance(row, dict) or column not in row:
                keys = ", ".join(map(str, row)) if isinstance(row, dict) else type(row).__name__
                raise ConfigError(f"data.text_column: {rel}:{lineno} has no field {column!r} (it has: {keys}); "
                                  "set data.text_column")
            text = row[column]
            if not isinstance(text, str):
                raise ConfigError(f"data.text_column: {rel}:{lineno}: {column!r} is a {type(text).__name__}, "
                                  "not text")
            yield text


def _parquet(path: Path, rel: str, column: str) -> Iterator[str]:
    try:
        import pyarrow.parquet as pq
    except ModuleNotFoundError:
        raise ConfigError("data.source: Parquet files need pyarrow: pip install 'scalebench[parquet]'") from None
    pf = pq.ParquetFile(path)
    if column not in pf.schema_arrow.names:
        raise ConfigError(f"data.text_column: {rel} has no column {column!r} (it has: "
                          f"{', '.join(pf.schema_arrow.names)}); set data.text_column")
    for batch in pf.iter_batches(columns=[column], batch_size=4096):
        for text in batch.column(0).to_pylist():
            if text is not None:
                yield str(text)


def iter_documents(files: list[tuple[str, Path]], column: str) -> Iterator[tuple[str, str]]:
    """(document id "<file>#<index>", text) in file order."""
    for rel, path in files:
        read = _parquet if path.name.endswith(".parquet") else _jsonl
        for i, text in enumerate(read(path, rel, column)):
            yield f"{rel}#{i}", text


class _SplitWriter:
    """Two byte streams written to temp files with their sha256, renamed into place only when whole."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.tmp = {s: out / f".{s}.bin.{os.getpid()}.tmp" for s in ("train", "val")}
        self.f = {s: open(p, "wb") for s, p in self.tmp.items()}
        self.h = {s: hashlib.sha256() for s in self.tmp}
        self.n = {s: 0 for s in self.tmp}

    def write(self, split: str, data: bytes) -> None:
        self.f[split].write(data)
        self.h[split].update(data)
        self.n[split] += len(data)

    def close(self, keep: bool) -> None:
        for s, f in self.f.items():
            if keep:
                f.flush()
                os.fsync(f.fileno())
            f.close()
            if keep:
                os.replace(self.tmp[s], self.out / f"{s}.bin")
            else:
                self.tmp[s].unlink(missing_ok=True)


def _build(files: list[tuple[str, Path]], column: str, share: float, out: Path, source: str):
    from scalebench.data.corpus import SEPARATOR, CorpusInfo, _held_out, _write_checksums

    seen: set[bytes] = set()
    fp = hashlib.sha256()
    n_docs = n_val = 0
    w = _SplitWriter(out)
    try:
        for doc_id, text in iter_documents(files, column):
            data = text.encode("utf-8")
            digest = hashlib.sha256(data).digest()
            if not data or SEPARATOR in data or digest in seen:
                continue
            seen.add(digest)
            split = "val" if _held_out(doc_id, share) else "train"
            n_docs += 1
            n_val += split == "val"
            w.write(split, data + SEPARATOR)
            fp.update(digest + (b"v" if split == "val" else b"t"))
        if not w.n["train"] or not w.n["val"]:
            raise ConfigError(f"data.source {source!r}: {n_docs} usable documents give an empty "
                              f"{'held-out' if w.n['train'] else 'training'} split; add documents or change "
                              "eval.held_out_share")
    except BaseException:
        w.close(keep=False)
        raise
    w.close(keep=True)
    _write_checksums(out, {f"{s}.bin": (w.n[s], w.h[s].hexdigest()) for s in ("train", "val")})
    return CorpusInfo(source=source, path=str(out), dtype="uint8", vocab_size=256, train_tokens=w.n["train"],
                      val_tokens=w.n["val"], n_files=n_docs, n_val_files=n_val, fingerprint=fp.hexdigest()[:16])


def cache_folder(spec, held_out_share: float, files: list[tuple[str, Path]]) -> Path:
    """Where the documents' byte corpus is (or will be) cached: keyed by names, sizes, mtimes and split."""
    from scalebench._util import scalebench_home

    h = hashlib.sha256(json.dumps(["documents", spec.text_column, held_out_share]).encode())
    for rel, p in files:
        st = p.stat()
        h.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return scalebench_home() / "corpus" / f"docs-{h.hexdigest()[:20]}"


def prepare_documents(spec, held_out_share: float, files: list[tuple[str, Path]]):
    """Build (once) the byte corpus of the documents in ``files``; cached by names, sizes, mtimes and split."""
    from scalebench._util import make_folder, open_nofollow, write_bytes_atomic
    from scalebench.data.corpus import CHECKSUMS, _cached

    out = cache_folder(spec, held_out_share, files)
    make_folder(out)
    with os.fdopen(open_nofollow(out / ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        info, _problem = _cached(out)
        if info is not None:
            return info
        for name in ("meta.json", CHECKSUMS, "train.bin", "val.bin"):
            (out / name).unlink(missing_ok=True)
        info = _build(files, spec.text_column, held_out_share, out, spec.source)
        write_bytes_atomic(out / "meta.json", json.dumps(info.as_dict(), indent=1).encode(), what=f"corpus cache {out}")
        return info
