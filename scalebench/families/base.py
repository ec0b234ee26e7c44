"""The family interface and registry: the one place that knows what a model is.

A family turns a size into a shape and a shape into a module, and knows the shape's exact parameter
count and analytic FLOPs. The trainer, the planner, the store, the laws and the report reach a model only
through this interface (DESIGN.md, "Where model-specific knowledge lives").

Built-in families register when first asked for; third-party families register through the entry-point
group ``scalebench.families`` (each entry point resolves to a :class:`Family`), so a family installed as a
package is seen by every worker subprocess too.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from scalebench.errors import ConfigError

ENTRY_POINT_GROUP = "scalebench.families"
BUILTIN_MODULES = ("scalebench.families.gpt", "scalebench.families.llama", "scalebench.families.lstm",
                   "scalebench.families.cnn", "scalebench.families.mlp")


class Shape(Protocol):
    """A family's concrete architecture; frozen, hashable, JSON-able through ``as_dict``."""

    @property
    def label(self) -> str: ...

    def as_dict(self) -> dict[str, Any]: ...


@dataclass(frozen=True, kw_only=True)
class Family:
    """What the sweep needs of a model family.

    ``params`` is the count the scaling laws use (each family documents its choice); ``params_total``
    counts every trainable parameter. ``flops_per_token`` is analytic training FLOPs (forward + backward)
    per unit: per token for ``unit = "tokens"``, per sample for ``unit = "samples"``. ``build(shape)``
    returns a module whose forward maps inputs to outputs only; ``loss(outputs, targets)`` is the mean loss
    in nats per unit, so the trainer, the profiler and the FLOP counter call the same pieces.
    """

    name: str  # found case-insensitively
    unit: Literal["tokens", "samples"]
    task: str  # the data task (scalebench.data.tasks): "text", "images", "teacher"
    flavours: Mapping[str, Mapping[str, Any]]
    make_shape: Callable[..., Any]  # (**fields) -> shape; ConfigError naming the field
    shape_for_params: Callable[..., Any]  # (target_params, **context) -> shape, by the family's rule
    shape_context: Callable[..., dict[str, Any]]  # (data info, TrainSpec, ModelSpec) -> fields fixed per sweep
    build: Callable[[Any], Any]  # shape -> torch.nn.Module
    loss: Callable[[Any, Any], Any]  # (outputs, targets) -> scalar tensor, nats per unit
    params: Callable[[Any], int]
    params_total: Callable[[Any], int]
    flops_per_token: Callable[[Any], float]  # per unit
    flops_formula: str  # one line with its source, shown in the report
    example_batch: Callable[[Any, int], tuple[Any, Any]]  # (shape, rows) -> CPU (inputs, targets)
    memory_model: Callable[..., int] | None = None  # (shape, micro_rows, precision) -> bytes, optional
    fsdp_blocks: Callable[[Any], list[Any]] | None = None  # module -> the submodules FSDP2 shards one by one
    params_nonembedding: Callable[[Any], int] | None = None  # Kaplan's N; default: see ``nonembedding``

    def __post_init__(self) -> None:
        if not self.name or not self.name.strip():
            raise ValueError(f"family name must be non-empty, got {self.name!r}")
        if self.unit not in ("tokens", "samples"):
            raise ValueError(f"family {self.name}: unit must be 'tokens' or 'samples', got {self.unit!r}")
        if "debug" not in self.flavours:
            raise ValueError(f"family {self.name}: needs a 'debug' flavour that trains on a CPU in seconds")

    def shape_from_flavour(self, flavour: str, **context: Any) -> Any:
        key = str(flavour).lower()
        if key not in self.flavours:
            known = ", ".join(self.flavours)
            raise ConfigError(f"unknown {self.name} flavour {flavour!r}; known flavours: {known}")
        return self.make_shape(**{**self.flavours[key], **context})

    def nonembedding(self, shape: Any) -> int:
        """Parameters without the token embedding and the output head (Kaplan et al. 2020's N): the family's
        own count, else ``params`` less the head (V·d, which every text family's ``params`` counts once),
        else ``params`` (a family without embeddings)."""
        if self.params_nonembedding is not None:
            return int(self.params_nonembedding(shape))
        vocab, width = getattr(shape, "vocab_size", None), getattr(shape, "d_model", None)
        head = vocab * width if self.task == "text" and vocab and width else 0
        return int(self.params(shape)) - head

    def label(self, shape: Any) -> str:
        return getattr(shape, "label", None) or ",".join(f"{k}={v}" for k, v in shape.as_dict().items())


_REGISTRY: dict[str, Family] = {}
_LOADED = False
_LOCK = threading.Lock()


def register_family(family: Family) -> Family:
    """Add (or replace) a family; names are case-insensitive."""
    _REGISTRY[family.name.lower()] = family
    return family


def _load_all() -> None:
    """Import the built-in families and the entry points, once; a broken plug-in is named, not fatal."""
    global _LOADED
    with _LOCK:
        if _LOADED:
            return
        _LOADED = True
        import importlib

        for module in BUILTIN_MODULES:  # each defines FAMILY; registered here, not by import side effects
            try:
                fam = importlib.import_module(module).FAMILY
            except ModuleNotFoundError as exc:
                if exc.name != module:  # the module exists but something it needs is missing
                    raise
                continue
            _REGISTRY.setdefault(fam.name.lower(), fam)
        from importlib.metadata import entry_points

        for ep in entry_points(group=ENTRY_POINT_GROUP):
            try:
                fam = ep.load()
            except Exception as exc:  # noqa: BLE001 - one broken plug-in must not hide the others
                _BROKEN[ep.name] = f"{type(exc).__name__}: {exc}"
                continue
            if not isinstance(fam, Family):
                _BROKEN[ep.name] = f"entry point {ep.value} is a {type(fam).__name__}, not a Family"
                continue
            register_family(fam)


_BROKEN: dict[str, str] = {}


def get_family(name: str) -> Family:
    _load_all()
    key = str(name).lower()
    if key in _REGISTRY:
        return _REGISTRY[key]
    if key in _BROKEN:
        raise ConfigError(f"model family {name!r} is registered through the {ENTRY_POINT_GROUP!r} entry points "
                          f"but failed to load: {_BROKEN[key]}")
    raise ConfigError(f"unknown model family {name!r}; known families: {', '.join(list_families())}")


def list_families() -> list[str]:
    _load_all()
    return sorted(_REGISTRY)
