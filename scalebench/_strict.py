"""Strict construction of frozen dataclasses from TOML tables.

Unknown keys, wrong types and impossible values are errors that name the file, the key path and what is
accepted; nothing is coerced silently except int -> float where a float is expected.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any, Literal, TypeVar, get_args, get_origin, get_type_hints

from scalebench.errors import ConfigError

T = TypeVar("T")


def _describe(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in get_args(tp) if a is not type(None))
    if origin in (list, tuple):
        args = [a for a in get_args(tp) if a is not Ellipsis]
        return f"a list of {_describe(args[0])}" if args else "a list"
    if tp is float:
        return "a finite number"
    if tp is int:
        return "an integer"
    if tp is bool:
        return "true or false"
    if tp is str:
        return "a string"
    if dataclasses.is_dataclass(tp):
        return "a table"
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, file: str, key: str) -> Any:
    where = f"{file}: {key}"
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, file, key)
            except ConfigError:
                continue
        raise ConfigError(f"{where}: got {value!r}, expected {_describe(tp)}")
    if origin is Literal:
        choices = get_args(tp)
        key = value.lower() if isinstance(value, str) else value
        if key in choices:
            return key
        raise ConfigError(f"{where}: got {value!r}, expected {_describe(tp)}")
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: got {value!r}, expected {_describe(tp)}")
        (inner, *_) = get_args(tp) or (Any,)
        return tuple(_coerce(v, inner, file, f"{key}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: got {value!r}, expected a table")
        return dict(value)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: got {value!r}, expected a table")
        return build(tp, value, file, key)
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():  # 1e6 written in TOML is a float
            return int(value)
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):  # TOML allows nan and inf; no setting means them
                raise ConfigError(f"{where}: got {value!r}, expected a finite number")
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    elif isinstance(value, tp):
        return value
    raise ConfigError(f"{where}: got {value!r}, expected {_describe(tp)}")


def build(cls: type[T], table: dict[str, Any], file: str, keypath: str = "") -> T:
    """Construct dataclass ``cls`` from ``table`` read from ``file`` at ``keypath`` (for messages)."""
    where = f"{file}: {keypath}" if keypath else file
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(table) - set(fields))
    renamed = getattr(cls, "renamed_keys", {})
    for old in unknown:
        if old in renamed:
            prefix = f"{keypath}." if keypath else ""
            new = prefix + renamed[old]
            raise ConfigError(f"{file}: {prefix}{old} is now {new} (the [{new.rsplit('.', 1)[0]}] table, "
                              f"key {new.rsplit('.', 1)[1]!r})")
    if unknown:
        bad = f"{keypath}.{unknown[0]}" if keypath else unknown[0]
        raise ConfigError(f"{file}: unknown key {bad!r}; accepted keys here: {', '.join(sorted(fields))}")
    kwargs = {}
    for name, value in table.items():
        key = f"{keypath}.{name}" if keypath else name
        kwargs[name] = _coerce(value, hints[name], file, key)
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        if str(exc).startswith(file + ":"):
            raise
        raise ConfigError(f"{file}: [{keypath or 'top level'}] {exc}") from None
    except TypeError as exc:  # a required key is missing
        missing = [n for n, f in fields.items() if n not in table and f.default is dataclasses.MISSING
                   and f.default_factory is dataclasses.MISSING]
        if missing:
            raise ConfigError(f"{where}: missing required key {missing[0]!r}") from None
        raise ConfigError(f"{where}: {exc}") from None
