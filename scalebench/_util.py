"""Small helpers several modules share: the cache folder, JSON-safe values, lazy package attributes."""

from __future__ import annotations

import contextlib
import importlib
import math
import os
import sys
import types
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any


def scalebench_home() -> Path:
    """Corpus caches and calibrations: ``$SCALEBENCH_HOME``, default ``~/.cache/scalebench``."""
    return Path(os.environ.get("SCALEBENCH_HOME") or Path.home() / ".cache" / "scalebench")


def json_safe(value: Any) -> Any:
    """A value ``json.dumps`` writes as strict JSON: NaN/inf become null, numpy scalars Python numbers."""
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return value
    try:  # numpy (and other) scalars without importing numpy here
        import numpy as np

        if isinstance(value, np.bool_):
            return bool(value)
        if isinstance(value, np.integer):
            return int(value)
        if isinstance(value, np.floating):
            value = float(value)
    except ImportError:  # pragma: no cover - numpy is a dependency
        pass
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return str(value)


def lazy_attributes(package: str, names: Mapping[str, str], namespace: dict[str, Any], *,
                    functions_win: bool = False) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for a package whose public names load on first use.

    ``functions_win``: where a public name is also a submodule's name (``planning.plan``), the public
    object, not the submodule, is what ``package.name`` gives, as if the package had imported it eagerly.
    """

    def __getattr__(name: str) -> Any:
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(namespace.get("__all__", names))

    module = sys.modules.get(package)
    if functions_win and module is not None and type(module) is types.ModuleType:
        module.__class__ = _make_lazy_class(frozenset(names))
    return __getattr__, __dir__


def _make_lazy_class(public: frozenset[str]) -> type:
    class _LazyPackage(types.ModuleType):
        """A package whose public name may equal a submodule's (``planning.plan`` the function and the module).

        Importing the submodule makes the import system set that name on the package to the module; the
        public function must win, as it did when the package imported it eagerly, so that binding is dropped
        and the name resolves through ``__getattr__`` (the submodule stays in ``sys.modules``).
        """

        def __setattr__(self, name: str, value: Any) -> None:
            if (name in public and isinstance(value, types.ModuleType)
                    and value.__name__ == f"{self.__name__}.{name}"):
                return
            super().__setattr__(name, value)

    return _LazyPackage


# --- files: exclusive, no-follow creation and whole-or-nothing writes ---------------------------------

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def file_error(exc: OSError, path: str | os.PathLike, what: str) -> Exception:
    """A ``ConfigError`` (a place that cannot be written: exit 2) or ``StoreError`` (disk full, I/O: exit 1)
    for an ``OSError`` met while writing ``path``, saying what was being written and what to do. The
    ``errno`` is kept on the error, so a caller can add its own advice."""
    err = _file_error(exc, path, what)
    err.errno = exc.errno
    return err


def _file_error(exc: OSError, path: str | os.PathLike, what: str) -> Exception:
    import errno

    from scalebench.errors import ConfigError, StoreError

    p = str(path)
    code = exc.errno
    if code in (errno.ENOSPC, errno.EDQUOT):
        return StoreError(f"{what}: the disk holding {p} is full ({exc.strerror}); free space and run again "
                          "(nothing half-written was kept)")
    if code in (errno.EACCES, errno.EPERM, errno.EROFS):
        return ConfigError(f"{what}: cannot write {p}: {exc.strerror}; choose a folder you can write to")
    if code == errno.ENOTDIR:
        return ConfigError(f"{what}: {p}: a part of this path is a file, not a folder; choose another path")
    if code == errno.EISDIR:
        return ConfigError(f"{what}: {p} is a folder; give a file name")
    if code == errno.ENOENT:
        return ConfigError(f"{what}: the folder of {p} does not exist; create it first or choose another")
    if code == errno.ELOOP:
        return ConfigError(f"{what}: {p} is a symbolic link; scalebench does not write through links it did "
                           "not make (remove it)")
    if code == errno.EEXIST:
        return ConfigError(f"{what}: {p} already exists and was not made by scalebench; remove it")
    return StoreError(f"{what}: writing {p} failed: {exc.strerror or exc}")


def make_folder(path: Path) -> None:
    """``mkdir -p``, where a file in the way is reported as one (mkdir says only "File exists")."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise NotADirectoryError(20, "Not a directory", str(path)) from None


def open_exclusive(path: str | os.PathLike, mode: int = 0o644) -> int:
    """A new file for writing, never following a planted symlink nor reusing an existing file."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | getattr(os, "O_CLOEXEC", 0), mode)


def open_nofollow(path: str | os.PathLike, mode: int = 0o644) -> int:
    """A lock file: created if absent, opened if present, but never through a symbolic link."""
    return os.open(path, os.O_RDWR | os.O_CREAT | _NOFOLLOW | getattr(os, "O_CLOEXEC", 0), mode)


def open_append(path: str | os.PathLike, binary: bool = True):
    """A log or outbox opened for appending, never through a symbolic link: a link planted at its name (the
    run's own folder) is removed first, and one planted again meanwhile makes the open fail (ELOOP)."""
    path = Path(path)
    if path.is_symlink():
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | _NOFOLLOW | getattr(os, "O_CLOEXEC", 0), 0o644)
    return os.fdopen(fd, "ab") if binary else os.fdopen(fd, "a", encoding="utf-8")


def write_bytes_atomic(path: str | os.PathLike, chunks: Any, *, what: str, make_parents: bool = False) -> int:
    """Write ``chunks`` (bytes, or an iterable of bytes) to ``path`` whole or not at all.

    A temp file beside the target (exclusive, no-follow) is filled, fsynced and renamed over it; on any
    failure (a full disk among them) the temp file is removed, so nothing half-written is left behind,
    let alone filling the disk. Returns the bytes written.
    """
    path = Path(path)
    if isinstance(chunks, (bytes, bytearray, memoryview)):
        chunks = (chunks,)
    try:
        if make_parents:
            make_folder(path.parent)
        elif not path.parent.is_dir():
            raise FileNotFoundError(2, "No such file or directory", str(path.parent))
        if path.is_dir():
            raise IsADirectoryError(21, "Is a directory", str(path))
    except OSError as exc:
        raise file_error(exc, path, what) from None
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    n = 0
    try:
        fd = open_exclusive(tmp)
        with os.fdopen(fd, "wb") as f:
            for c in chunks:
                f.write(c)
                n += len(c)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise file_error(exc, path, what) from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return n


def write_text_atomic(path: str | os.PathLike, text: str, *, what: str, make_parents: bool = False) -> int:
    return write_bytes_atomic(path, text.encode("utf-8"), what=what, make_parents=make_parents)
