"""Corpora as token memmaps: the embedded default (installed Python sources), text files, or .bin tokens.

Every corpus is materialised once into ``$SCALEBENCH_HOME/corpus/<key>/`` as ``train.bin`` and
``val.bin`` plus ``meta.json``; runs open the memmaps and never re-read the sources.

* Default corpus: the ``*.py`` files of the standard library found through ``sysconfig`` (optionally
  site-packages too), in sorted relative-path order, deduplicated by content. Byte-level: one token per
  byte (vocabulary 256), files joined by a NUL byte, which source text does not contain.
* Split by file, not by position, so no file contributes to both sides: a file is held out when the first
  8 bytes of sha256(relative path) fall below ``held_out_share``. The rule depends only on the path, so
  adding files does not move existing files across the split.
* ``.bin`` corpora are token ids in nanoGPT's layout (a flat little-endian array, uint16 or uint32);
  without ``val_source`` the last ``held_out_share`` of the tokens is held out (a positional split, the
  best one can do without document boundaries).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import sysconfig
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from scalebench._util import scalebench_home
from scalebench.config import DataSpec
from scalebench.errors import ConfigError

SEPARATOR = b"\0"
BYTE_VOCAB = 256


@dataclass(frozen=True, kw_only=True)
class CorpusInfo:
    """Where a prepared corpus lives and what it is; recorded with every sweep."""

    source: str
    path: str  # folder holding train.bin / val.bin
    dtype: str
    vocab_size: int
    train_tokens: int
    val_tokens: int
    n_files: int
    n_val_files: int
    fingerprint: str  # sha256 of the token content and the split

    @property
    def train_units(self) -> int:  # the task-generic names (scalebench.data.tasks)
        return self.train_tokens

    @property
    def val_units(self) -> int:
        return self.val_tokens

    def as_dict(self) -> dict:
        return asdict(self)


def _held_out(rel_path: str, share: float) -> bool:
    h = int.from_bytes(hashlib.sha256(rel_path.encode()).digest()[:8], "big")
    return h / 2**64 < share


def default_source_files(include_site_packages: bool) -> list[tuple[str, Path]]:
    """(relative name, path) of installed Python sources, sorted, deterministic for one installation."""
    paths = sysconfig.get_paths()
    roots = [("stdlib", Path(paths["stdlib"]))]
    if include_site_packages:
        roots.append(("site-packages", Path(paths["purelib"])))
    files: list[tuple[str, Path]] = []
    for label, root in roots:
        for p in root.rglob("*.py"):
            rel = p.relative_to(root).as_posix()
            if label == "stdlib" and rel.split("/", 1)[0] in ("site-packages", "dist-packages"):
                continue
            if p.is_file():
                files.append((f"{label}/{rel}", p))
    files.sort(key=lambda item: item[0])
    return files


def text_source_files(source: Path, patterns: tuple[str, ...]) -> list[tuple[str, Path]]:
    if source.is_file():
        return [(source.name, source)]
    if not source.is_dir():
        raise ConfigError(f"data.source: {str(source)!r} is neither 'default', a file nor a folder")
    found = {p for pattern in patterns for p in source.rglob(pattern) if p.is_file()}
    if not found:
        raise ConfigError(
            f"data.source: no files matching {list(patterns)} under {str(source)!r}; set data.patterns"
        )
    return sorted(((p.relative_to(source).as_posix(), p) for p in found), key=lambda t: t[0])


def _cache_key(spec: DataSpec, held_out_share: float, files: list[tuple[str, Path]]) -> str:
    """Cheap key from names, sizes and mtimes; the content fingerprint is computed once when building."""
    h = hashlib.sha256(json.dumps([spec.source, spec.include_site_packages, held_out_share]).encode())
    for rel, p in files:
        st = p.stat()
        h.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:20]


def _write_atomic_array(path: Path, chunks: list[bytes]) -> int:
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    n = 0
    with open(tmp, "wb") as f:
        for c in chunks:
            f.write(c)
            n += len(c)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return n


def _build_byte_corpus(files: list[tuple[str, Path]], held_out_share: float, out: Path, source: str) -> CorpusInfo:
    seen: set[bytes] = set()
    docs: list[tuple[str, bytes, bytes]] = []
    for rel, p in files:
        try:
            data = p.read_bytes()
        except OSError:
            continue
        digest = hashlib.sha256(data).digest()
        if not data or digest in seen or SEPARATOR in data:
            continue  # empty, duplicate content, or binary
        seen.add(digest)
        docs.append((rel, data, digest))
    if len(docs) == 1:  # a single text file: hold out its tail (a positional split, as for .bin)
        rel, data, digest = docs[0]
        cut = len(data) - int(len(data) * held_out_share)
        docs = [(rel, data[:cut], digest), (rel + "#tail", data[cut:], digest)]
    train, val = [], []
    fp = hashlib.sha256()
    n_val = 0
    for i, (rel, data, digest) in enumerate(docs):
        is_val = rel.endswith("#tail") if len(files) == 1 else _held_out(rel, held_out_share)
        n_val += is_val
        (val if is_val else train).append(data + SEPARATOR)
        fp.update(digest + (b"v%d" % i if is_val else b"t"))
    if not train or not val:
        raise ConfigError(
            f"data.source {source!r}: {len(docs)} usable files give an empty "
            f"{'held-out' if train else 'training'} split; add files or change eval.held_out_share"
        )
    n_train = _write_atomic_array(out / "train.bin", train)
    n_valt = _write_atomic_array(out / "val.bin", val)
    return CorpusInfo(source=source, path=str(out), dtype="uint8", vocab_size=BYTE_VOCAB, train_tokens=n_train,
                      val_tokens=n_valt, n_files=len(docs) if len(files) > 1 else 1, n_val_files=n_val,
                      fingerprint=fp.hexdigest()[:16])


def _bin_corpus(spec: DataSpec, held_out_share: float) -> CorpusInfo:
    path = Path(spec.source).expanduser()
    if not path.is_file():
        raise ConfigError(f"data.source: token file {spec.source!r} does not exist")
    itemsize = np.dtype(spec.dtype).itemsize
    if path.stat().st_size % itemsize:
        raise ConfigError(f"data.source: {spec.source!r} is not a whole number of {spec.dtype} tokens")
    tokens = np.memmap(path, dtype=spec.dtype, mode="r")
    if len(tokens) and int(tokens.max()) >= int(spec.vocab_size or 0):  # one pass; cheap beside training
        raise ConfigError(f"data.vocab_size: {spec.source!r} holds token id {int(tokens.max())}, not below "
                          f"vocab_size = {spec.vocab_size}; set vocab_size above the largest id")
    if spec.val_source:
        val_path = Path(spec.val_source)
        if not val_path.is_file():
            raise ConfigError(f"data.val_source: token file {spec.val_source!r} does not exist")
        n_train, n_val = len(tokens), len(np.memmap(val_path, dtype=spec.dtype, mode="r"))
    else:
        n_val = int(len(tokens) * held_out_share)
        n_train = len(tokens) - n_val
    st = path.stat()
    fp = hashlib.sha256(f"{path.resolve()}\0{st.st_size}\0{st.st_mtime_ns}\0{n_val}".encode()).hexdigest()[:16]
    return CorpusInfo(source=spec.source, path=str(path.parent), dtype=spec.dtype,
                      vocab_size=int(spec.vocab_size or 0), train_tokens=n_train, val_tokens=n_val,
                      n_files=1 + bool(spec.val_source), n_val_files=int(bool(spec.val_source)), fingerprint=fp)


def prepare_corpus(spec: DataSpec, held_out_share: float) -> CorpusInfo:
    """Materialise (once) and describe the corpus a sweep trains on."""
    if spec.source.endswith(".bin"):
        return _bin_corpus(spec, held_out_share)
    if spec.source == "default":
        files = default_source_files(spec.include_site_packages)
        label = "default (installed Python sources" + (" + site-packages)" if spec.include_site_packages else ")")
    else:
        files = text_source_files(Path(spec.source).expanduser(), spec.patterns)
        label = spec.source
    out = scalebench_home() / "corpus" / _cache_key(spec, held_out_share, files)
    meta = out / "meta.json"
    out.mkdir(parents=True, exist_ok=True)
    with open(out / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two sweeps preparing the same corpus: one builds, one waits
        if meta.is_file():
            return CorpusInfo(**json.loads(meta.read_text()))
        info = _build_byte_corpus(files, held_out_share, out, label)
        tmp = meta.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(info.as_dict(), indent=1))
        os.replace(tmp, meta)  # meta last: a half-built cache is never mistaken for a finished one
        return info


class TokenData:
    """Batches from a prepared corpus. A step's batch depends only on (seed, step): resumable, no state."""

    def __init__(self, info: CorpusInfo, spec: DataSpec | None = None) -> None:
        self.info = info
        if spec is not None and spec.source.endswith(".bin"):
            train = np.memmap(spec.source, dtype=info.dtype, mode="r")
            if spec.val_source:
                val = np.memmap(spec.val_source, dtype=info.dtype, mode="r")
            else:
                val, train = train[info.train_tokens:], train[: info.train_tokens]
        else:
            train = np.memmap(Path(info.path) / "train.bin", dtype=info.dtype, mode="r")
            val = np.memmap(Path(info.path) / "val.bin", dtype=info.dtype, mode="r")
        self.train, self.val = train, val

    def batch(self, seed: int, step: int, micro: int, n_seqs: int, seq_len: int) -> tuple[np.ndarray, np.ndarray]:
        """Micro-batch ``micro`` of step ``step``: ``n_seqs`` random windows of seq_len + 1 tokens."""
        rng = np.random.default_rng((seed, step, micro))
        starts = rng.integers(0, len(self.train) - seq_len - 1, size=n_seqs)
        return self._windows(self.train, starts, seq_len)

    def eval_batches(self, eval_tokens: int, seq_len: int, batch_seqs: int):
        """The same evenly spaced held-out windows for every run, so eval losses are comparable."""
        n = max(1, min(eval_tokens // seq_len, (len(self.val) - 1) // seq_len))
        starts = np.linspace(0, len(self.val) - seq_len - 1, n).astype(np.int64)
        for i in range(0, n, batch_seqs):
            yield self._windows(self.val, starts[i : i + batch_seqs], seq_len)

    @staticmethod
    def _windows(arr: np.ndarray, starts: np.ndarray, seq_len: int) -> tuple[np.ndarray, np.ndarray]:
        idx = starts[:, None] + np.arange(seq_len + 1)[None, :]
        w = np.asarray(arr[idx], dtype=np.int64)
        return w[:, :-1], w[:, 1:]
