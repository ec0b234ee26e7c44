"""Corpora as token memmaps: the embedded default (installed Python sources), text files, or .bin tokens.

Every corpus is materialised once into ``$SCALEBENCH_HOME/corpus/<key>/`` as ``train.bin`` and
``val.bin`` plus ``meta.json``; runs open the memmaps and never re-read the sources. ``checksums.json``
records each file's size and sha256, checked whenever a sweep uses the cache: a truncated, emptied, missing
or altered file, or a garbage ``meta.json``, makes the cache be rebuilt from its sources, with a warning,
instead of training on what is left (a cache from before checksums is checked by size, then its checksums
are recorded). Workers verify the data again (sizes and sha256; a ``.bin`` corpus by its fingerprint) as they
open it and once they have trained (``verify_corpus``), so data altered under a sweep never gives a "done" run. The checksums live beside
``meta.json``, not in it, so older scalebench versions sharing ``$SCALEBENCH_HOME`` still read the cache.

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

import errno
import fcntl
import hashlib
import json
import os
import sysconfig
import warnings
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from scalebench._util import file_error, make_folder, open_nofollow, scalebench_home, write_bytes_atomic
from scalebench.config import DataSpec
from scalebench.errors import ConfigError, StoreError

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
    tokenizer: str = "bytes"  # "bytes", "bpe4096", or the user's tokenizer file name (data/tokenizer.py)
    tokenizer_path: str = ""  # the tokenizer.json a tokenized corpus was built with
    val_bytes: int = 0  # UTF-8 bytes of held-out text behind the held-out tokens (tokenized corpora)

    @property
    def train_units(self) -> int:  # the task-generic names (scalebench.data.tasks)
        return self.train_tokens

    @property
    def val_units(self) -> int:
        return self.val_tokens

    def as_dict(self) -> dict:
        return asdict(self)

    def expected_bytes(self) -> tuple[int, int]:
        size = np.dtype(self.dtype).itemsize
        return self.train_tokens * size, self.val_tokens * size


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
        # os.walk, not rglob: it never descends into the stdlib's site-packages (often inside it, and large),
        # and a folder that vanishes mid-walk (pip at work beside us) is skipped instead of raising.
        for dirpath, dirnames, filenames in os.walk(root):
            if label == "stdlib" and Path(dirpath) == root:
                dirnames[:] = [d for d in dirnames if d not in ("site-packages", "dist-packages")]
            dirnames.sort()
            for name in filenames:
                p = Path(dirpath) / name
                if name.endswith(".py") and p.is_file():
                    files.append((f"{label}/{p.relative_to(root).as_posix()}", p))
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


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _write_atomic_array(path: Path, chunks: list[bytes]) -> tuple[int, str]:
    """Write the split whole or not at all (a full disk leaves no temp file behind); its size and sha256."""
    h = hashlib.sha256()
    for c in chunks:
        h.update(c)
    n = write_bytes_atomic(path, chunks, what=f"corpus cache {path.parent}")
    return n, h.hexdigest()
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
    single = len(docs) == 1
    if single:  # a single usable text file: hold out its tail (a positional split, as for .bin)
        rel, data, digest = docs[0]
        cut = len(data) - int(len(data) * held_out_share)
        docs = [(rel, data[:cut], digest), (rel + "#tail", data[cut:], digest)]
    train, val = [], []
    fp = hashlib.sha256()
    n_val = 0
    for i, (rel, data, digest) in enumerate(docs):
        is_val = rel.endswith("#tail") if single else _held_out(rel, held_out_share)
        n_val += is_val
        (val if is_val else train).append(data + SEPARATOR)
        fp.update(digest + (b"v%d" % i if is_val else b"t"))
    if not train or not val:
        raise ConfigError(
            f"data.source {source!r}: {len(docs)} usable files give an empty "
            f"{'held-out' if train else 'training'} split; add files or change eval.held_out_share"
        )
    n_train, train_sha = _write_atomic_array(out / "train.bin", train)
    n_valt, val_sha = _write_atomic_array(out / "val.bin", val)
    _write_checksums(out, {"train.bin": (n_train, train_sha), "val.bin": (n_valt, val_sha)})
    return CorpusInfo(source=source, path=str(out), dtype="uint8", vocab_size=BYTE_VOCAB, train_tokens=n_train,
                      val_tokens=n_valt, n_files=len(docs) if len(files) > 1 else 1, n_val_files=n_val,
                      fingerprint=fp.hexdigest()[:16])


def _check_token_file(key: str, name: str, dtype: str, vocab_size: int) -> np.ndarray:
    """A .bin token file that exists, is not empty, is whole tokens, and holds only ids below vocab_size."""
    path = Path(name).expanduser()
    if not path.is_file():
        raise ConfigError(f"data.{key}: token file {name!r} does not exist")
    size = path.stat().st_size
    itemsize = np.dtype(dtype).itemsize
    if size == 0:
        raise ConfigError(f"data.{key}: token file {name!r} is empty (0 bytes); give a file of {dtype} tokens")
    if size % itemsize:
        raise ConfigError(f"data.{key}: {name!r} is not a whole number of {dtype} tokens "
                          f"({size} bytes); check data.dtype")
    tokens = np.memmap(path, dtype=dtype, mode="r")
    top = int(tokens.max())  # one pass; cheap beside training
    if top >= vocab_size:
        raise ConfigError(f"data.vocab_size: {name!r} holds token id {top}, not below vocab_size = {vocab_size}; "
                          "set vocab_size above the largest id")
    return tokens


def _bin_corpus(spec: DataSpec, held_out_share: float) -> CorpusInfo:
    path = Path(spec.source).expanduser()
    vocab = int(spec.vocab_size or 0)
    tokens = _check_token_file("source", spec.source, spec.dtype, vocab)
    if spec.val_source:
        n_train = len(tokens)
        n_val = len(_check_token_file("val_source", spec.val_source, spec.dtype, vocab))
    else:
        n_val = int(len(tokens) * held_out_share)
        n_train = len(tokens) - n_val
    fp = _bin_fingerprint(spec, n_val)
    return CorpusInfo(source=spec.source, path=str(path.parent), dtype=spec.dtype,
                      vocab_size=int(spec.vocab_size or 0), train_tokens=n_train, val_tokens=n_val,
                      n_files=1 + bool(spec.val_source), n_val_files=int(bool(spec.val_source)), fingerprint=fp)


def _bin_fingerprint(spec: DataSpec, n_val: int) -> str:
    ident = ""
    for f in filter(None, (spec.source, spec.val_source)):  # either file changed: another corpus
        st = Path(f).expanduser().stat()
        ident += f"{Path(f).expanduser().resolve()}\0{st.st_size}\0{st.st_mtime_ns}\0"
    return hashlib.sha256(f"{ident}{n_val}".encode()).hexdigest()[:16]


def verify_corpus(info: CorpusInfo, spec: DataSpec | None = None) -> None:
    """The data a run trains on is the data its sweep recorded: a cache's files by size and sha256, a ``.bin``
    corpus by its fingerprint (path, size, modification time). Else a ConfigError naming the file and the fix."""
    if spec is not None and spec.source.endswith(".bin"):
        try:
            same = _bin_fingerprint(spec, info.val_tokens) == info.fingerprint
        except OSError:
            same = False
        if not same:
            raise ConfigError(f"data.source: {spec.source!r} (or data.val_source) changed or vanished since the "
                              "sweep recorded it; this run's data would not be the sweep's. Restore the file, or "
                              "run the sweep into a new folder (--out)")
        return
    found, problem = _cached(Path(info.path))
    if found is None or found.fingerprint != info.fingerprint:
        raise ConfigError(f"corpus cache {info.path}: {problem or 'holds another corpus than the sweep recorded'}; "
                          "the run's data is not the sweep's. Run the sweep again to rebuild the cache (finished "
                          "runs are kept, this one is retrained)")


def refuse_token_keys(spec: DataSpec) -> None:
    """A text source (files, documents, the default corpus) would ignore the keys of token files: refuse them."""
    if spec.source.endswith(".bin"):
        return
    for key in ("val_source", "vocab_size"):
        if getattr(spec, key) is not None:
            raise ConfigError(f"data.{key} applies to token files (.bin, shards), and source {spec.source!r} is "
                              "text (held out by eval.held_out_share, its vocabulary its tokenizer's); remove "
                              f"data.{key}")


def prepare_corpus(spec: DataSpec, held_out_share: float) -> CorpusInfo:
    """Materialise (once) and describe the corpus a sweep trains on; a damaged cache is rebuilt."""
    if spec.source.endswith(".bin"):
        return _bin_corpus(spec, held_out_share)
    if spec.source == "default":
        files = default_source_files(spec.include_site_packages)
        label = "default (installed Python sources" + (" + site-packages)" if spec.include_site_packages else ")")
    else:
        files = text_source_files(Path(spec.source).expanduser(), spec.patterns)
        label = spec.source
    out = scalebench_home() / "corpus" / _cache_key(spec, held_out_share, files)
    try:
        make_folder(out)
        lock_fd = open_nofollow(out / ".lock")
    except OSError as exc:
        raise _home_error(exc, out) from None
    with os.fdopen(lock_fd, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two sweeps preparing the same corpus: one builds, one waits
        info, problem = _cached(out)
        if info is not None:
            return info
        if problem:
            warnings.warn(f"corpus cache {out}: {problem}; rebuilding it from its sources", stacklevel=2)
        for name in ("meta.json", CHECKSUMS, "train.bin", "val.bin"):  # meta first: never a meta beside other files
            (out / name).unlink(missing_ok=True)
        try:
            info = _build_byte_corpus(files, held_out_share, out, label)
            # meta last: a half-built cache is never mistaken for a finished one
            write_bytes_atomic(out / "meta.json", json.dumps(info.as_dict(), indent=1).encode(),
                               what=f"corpus cache {out}")
        except (StoreError, ConfigError) as exc:
            if getattr(exc, "errno", None) not in _HOME_ERRNOS:
                raise
            for name in (CHECKSUMS, "train.bin", "val.bin"):  # a full disk: give back what the half-done build took
                (out / name).unlink(missing_ok=True)
            raise _home_error(exc, out) from None
        return info


_HOME_ERRNOS = (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.ENOTDIR)


def _home_error(exc: Exception, out: Path) -> Exception:
    """An unwritable or full cache folder, with the way out: SCALEBENCH_HOME."""
    err = file_error(exc, out, "corpus cache") if isinstance(exc, OSError) else exc
    if getattr(exc, "errno", None) in _HOME_ERRNOS:
        where = "$SCALEBENCH_HOME" if os.environ.get("SCALEBENCH_HOME") else "the default ~/.cache/scalebench"
        return type(err)(f"{err}. Corpus caches and calibrations live in {where}; set SCALEBENCH_HOME to a "
                         "folder you can write (export SCALEBENCH_HOME=/path/with/room)")
    return err


CHECKSUMS = "checksums.json"


def _write_checksums(out: Path, sums: dict[str, tuple[int, str]]) -> None:
    doc = {name: {"bytes": n, "sha256": digest} for name, (n, digest) in sums.items()}
    write_bytes_atomic(out / CHECKSUMS, json.dumps(doc, indent=1).encode(), what=f"corpus cache {out}")


def _cached(out: Path) -> tuple[CorpusInfo | None, str]:
    """The cache's description if its files are whole (sizes and sha256 as recorded), else why not."""
    meta = out / "meta.json"
    if not meta.is_file():
        return None, ""
    try:
        raw = json.loads(meta.read_text(encoding="utf-8"))
        known = {f.name for f in fields(CorpusInfo)}
        info = CorpusInfo(**{k: v for k, v in raw.items() if k in known})
        want = dict(zip(("train.bin", "val.bin"), info.expected_bytes(), strict=True))
    except (ValueError, TypeError, AttributeError, UnicodeDecodeError) as exc:
        return None, f"meta.json is not a corpus description ({type(exc).__name__})"
    try:
        sums = json.loads((out / CHECKSUMS).read_text(encoding="utf-8"))
        recorded = {name: (int(sums[name]["bytes"]), str(sums[name]["sha256"])) for name in want}
    except FileNotFoundError:
        recorded = None  # built before checksums were kept: check sizes, then record them
    except (ValueError, TypeError, KeyError, AttributeError, UnicodeDecodeError):
        return None, f"{CHECKSUMS} is not a list of checksums"
    for name, size in want.items():
        path = out / name
        if not path.is_file():
            return None, f"{name} is missing"
        if path.stat().st_size != size:
            return None, f"{name} holds {path.stat().st_size:,} bytes, not the {size:,} recorded"
        if recorded is not None and (recorded[name][0] != size or _sha256(path) != recorded[name][1]):
            return None, f"{name} does not match its recorded sha256 (altered since it was built)"
    if recorded is None:
        _write_checksums(out, {name: (size, _sha256(out / name)) for name, size in want.items()})
    if info.path != str(out):  # the cache folder was moved or SCALEBENCH_HOME renamed: it is here now
        info = CorpusInfo(**{**info.as_dict(), "path": str(out)})
    return info, ""


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
            train, val = (self._open_cached(Path(info.path) / name, size)
                          for name, size in zip(("train.bin", "val.bin"), info.expected_bytes(), strict=True))
        verify_corpus(info, spec)  # the content, not only the sizes
        self.train, self.val = train, val

    def _open_cached(self, path: Path, size: int) -> np.ndarray:
        """A cache file as the sweep recorded it, or a clear error (never training on what is left of it)."""
        got = path.stat().st_size if path.is_file() else None
        if got != size:
            found = "is missing" if got is None else f"holds {got:,} bytes, not the {size:,} the sweep recorded"
            raise ConfigError(f"corpus cache {path.parent}: {path.name} {found}; run the sweep again to "
                              "rebuild the cache (finished runs are kept)")
        return np.memmap(path, dtype=self.info.dtype, mode="r")

    def batch(self, seed: int, step: int, micro: int, n_seqs: int, seq_len: int,
              batch_rows: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Micro-batch ``micro`` of step ``step``: ``n_seqs`` random windows of seq_len + 1 tokens. With
        ``batch_rows`` (the global batch) the step's windows are drawn once and micro-batch ``micro`` is
        its slice, so any split over micro-batches and ranks trains on the same windows as one batch."""
        if batch_rows is None:
            rng = np.random.default_rng((seed, step, micro))
            starts = rng.integers(0, len(self.train) - seq_len - 1, size=n_seqs)
        else:
            rng = np.random.default_rng((seed, step, 0))
            starts = rng.integers(0, len(self.train) - seq_len - 1, size=batch_rows)[micro * n_seqs:][:n_seqs]
        return self._windows(self.train, starts, seq_len)

    def eval_starts(self, eval_tokens: int, seq_len: int) -> np.ndarray:
        """The same evenly spaced held-out windows for every run, so eval losses are comparable."""
        n = max(1, min(eval_tokens // seq_len, (len(self.val) - 1) // seq_len))
        return np.linspace(0, len(self.val) - seq_len - 1, n).astype(np.int64)

    def eval_batches(self, eval_tokens: int, seq_len: int, batch_seqs: int):
        starts = self.eval_starts(eval_tokens, seq_len)
        for i in range(0, len(starts), batch_seqs):
            yield self._windows(self.val, starts[i : i + batch_seqs], seq_len)

    @staticmethod
    def _windows(arr: np.ndarray, starts: np.ndarray, seq_len: int) -> tuple[np.ndarray, np.ndarray]:
        idx = starts[:, None] + np.arange(seq_len + 1)[None, :]
        w = np.asarray(arr[idx], dtype=np.int64)
        return w[:, :-1], w[:, 1:]
