"""Small helpers several modules share: the cache folder, JSON-safe values, lazy package attributes."""

from __future__ import annotations

import importlib
import math
import os
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


def lazy_attributes(package: str, names: Mapping[str, str], namespace: dict[str, Any]
                    ) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for a package whose public names load on first use."""

    def __getattr__(name: str) -> Any:
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(namespace.get("__all__", names))

    return __getattr__, __dir__
