"""Helpers the non-GPT families share: strict shape construction and integer-field checks."""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

from scalebench.errors import ConfigError

S = TypeVar("S")


def make_strict(cls: type[S], family: str, fields: dict[str, Any]) -> S:
    """``cls(**fields)``, with an unknown or missing field named in a ``ConfigError`` (not a TypeError)."""
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(fields) - set(known))
    if unknown:
        raise ConfigError(f"{family} shape: unknown field {unknown[0]!r}; fields: {', '.join(known)}")
    missing = [n for n, f in known.items() if n not in fields and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ConfigError(f"{family} shape: missing field {missing[0]!r}; fields: {', '.join(known)}")
    return cls(**fields)


def check_positive_ints(shape: Any, family: str, names: tuple[str, ...]) -> None:
    for name in names:
        value = getattr(shape, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"{family} shape: {name} must be a positive integer, got {value!r}")


def round_to(x: float, multiple: int) -> int:
    return max(multiple, multiple * round(x / multiple))
