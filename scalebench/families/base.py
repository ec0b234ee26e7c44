"""The family interface and registry: a family turns a size into a model and knows its exact costs."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from scalebench.errors import ConfigError


class Shape(Protocol):
    """A family's concrete architecture; frozen, hashable, JSON-able through ``as_dict``."""

    def as_dict(self) -> dict[str, Any]: ...


@dataclass(frozen=True, kw_only=True)
class Family:
    """What the sweep needs of a model family.

    ``params`` is the count the scaling laws use (non-embedding, with the output head);
    ``params_total`` counts every trainable parameter. ``flops_per_token`` is analytic training FLOPs
    (forward + backward) per token (or per sample for non-sequence families).
    """

    name: str
    flavours: Mapping[str, Mapping[str, int]]
    make_shape: Callable[..., Any]  # (**fields) -> shape, validates
    shape_for_params: Callable[..., Any]  # (target_params, **context) -> shape
    build: Callable[[Any], Any]  # shape -> torch.nn.Module
    params: Callable[[Any], int]
    params_total: Callable[[Any], int]
    flops_per_token: Callable[[Any], float]
    sequence: bool = True  # token sequences (True) or samples

    def shape_from_flavour(self, flavour: str, **context: Any) -> Any:
        key = flavour.lower()
        if key not in self.flavours:
            known = ", ".join(self.flavours)
            raise ConfigError(f"unknown {self.name} flavour {flavour!r}; known flavours: {known}")
        return self.make_shape(**self.flavours[key], **context)


_REGISTRY: dict[str, Family] = {}


def register_family(family: Family) -> Family:
    _REGISTRY[family.name] = family
    return family


def get_family(name: str) -> Family:
    if not _REGISTRY:
        import scalebench.families.gpt  # noqa: F401  (registers itself)
    try:
        return _REGISTRY[name.lower()]
    except KeyError:
        raise ConfigError(f"unknown model family {name!r}; known families: {', '.join(sorted(_REGISTRY))}") from None


def list_families() -> list[str]:
    get_family("gpt")
    return sorted(_REGISTRY)
