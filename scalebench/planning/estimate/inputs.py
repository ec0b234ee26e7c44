"""Arguments (keywords, arrays or a DataFrame's columns) into numpy arrays, one value per scenario."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from scalebench.errors import ConfigError
from scalebench.planning.estimate.arguments import ARGUMENTS

# ----------------------------------------------------------------------------------------------- inputs

def _is_array(value: Any) -> bool:
    return isinstance(value, (list, tuple, np.ndarray, pd.Series, pd.Index)) and np.ndim(value) >= 1


def _gather(scenarios: pd.DataFrame | None, kwargs: dict[str, Any]) -> tuple[dict[str, Any], int, bool]:
    unknown = set(kwargs) - set(ARGUMENTS)
    if scenarios is not None:
        if not isinstance(scenarios, pd.DataFrame):
            raise ConfigError(f"estimate: the positional argument must be a DataFrame of scenarios, got {type(scenarios).__name__}")
        unknown |= set(scenarios.columns) - set(ARGUMENTS)
        both = set(scenarios.columns) & set(kwargs)
        if both:
            raise ConfigError(f"estimate: {', '.join(sorted(both))} given both as a column and as an argument")
    if unknown:
        raise ConfigError(f"estimate: unknown argument(s) {', '.join(sorted(map(str, unknown)))}; known: {', '.join(ARGUMENTS)}")
    values = {k: v for k, v in ARGUMENTS.items()}
    values.update(kwargs)
    values["_given"] = set(kwargs) | (set(scenarios.columns) if scenarios is not None else set())
    lengths = {k: len(v) for k, v in kwargs.items() if _is_array(v)}
    if scenarios is not None:
        values.update({c: scenarios[c].to_numpy() for c in scenarios.columns})
        lengths.update({c: len(scenarios) for c in scenarios.columns})
        lengths["(rows)"] = len(scenarios)
    sizes = set(lengths.values())
    if len(sizes) > 1:
        raise ConfigError(f"estimate: array arguments differ in length: {lengths}")
    n = sizes.pop() if sizes else 1
    if n == 0:
        raise ConfigError("estimate: no scenarios (zero rows)")
    return values, n, scenarios is not None or bool(lengths)


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _numeric(name: str, value: Any, n: int) -> np.ndarray:
    if _is_array(value):
        arr = np.asarray(value)
        if arr.dtype.kind in "fiu":
            return arr.astype(float)
        try:  # object columns: None/NaN are missing, the rest must be numbers
            return np.array([np.nan if _missing(x) else _number(name, x) for x in arr.ravel()], dtype=float)
        except (TypeError, ValueError):
            raise ConfigError(f"{name} must be numeric, got {value!r}") from None
    if _missing(value):
        return np.full(n, np.nan)
    return np.full(n, _number(name, value))


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or isinstance(value, (str, bytes)) and not value.strip():
        raise ConfigError(f"{name} must be a number, got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number, got {value!r}") from None


_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


def _flag(name: str, value: Any, default: bool) -> bool:
    """A boolean from a bool, 0/1, or "true"/"false" (also yes/no, on/off; any case); missing -> default."""
    if _missing(value):
        return default
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, str):
        key = value.strip().lower()
        if key in _TRUE or key in _FALSE:
            return key in _TRUE
    elif isinstance(value, (int, float, np.integer, np.floating)) and value in (0, 1):
        return bool(value)
    raise ConfigError(f"{name} must be true or false, got {value!r}")


def _flags(name: str, value: Any, n: int, default: bool) -> np.ndarray:
    if _is_array(value):
        arr = np.asarray(value)
        if arr.dtype == bool:
            return arr
        return np.array([_flag(name, x, default) for x in arr.ravel()], dtype=bool)
    return np.full(n, _flag(name, value, default))


def _categorical(value: Any, n: int, parse) -> tuple[np.ndarray, list[Any]]:
    """(codes, parsed uniques); codes -1 where missing."""
    if _is_array(value):
        codes, uniques = pd.factorize(np.asarray(value, dtype=object), use_na_sentinel=True)
        return codes, [parse(u) for u in uniques]
    if _missing(value):
        return np.full(n, -1), []
    return np.zeros(n, dtype=int), [parse(value)]


def _take(codes: np.ndarray, table: list[Any], missing: Any, dtype=float) -> np.ndarray:
    lut = np.array([*table, missing], dtype=dtype)
    return lut[codes]  # code -1 picks the trailing "missing" entry


