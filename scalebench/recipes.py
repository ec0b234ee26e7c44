"""Recipes: size-aware learning rate, batch, Adam betas, warm-up and weight decay, each rule with its source.

``[train] recipe = NAME`` resolves these per ladder cell at plan time (the planner calls :func:`resolve`),
so every run stores the values it trained with and ``scalebench validate`` prints them per size. A key
written in ``[train]`` beside a recipe wins over it (the loader records such keys in ``train.pinned``), as
do a grid axis (``[grid] lr = [...]``) and ``[grid.per_family]``/``[grid.per_optimizer]`` tables.

Built-in recipes (N = the run's ``params``, the laws' parameter count; B in sequences unless said):

* ``marin``: lr = 0.33·sqrt(B)/d_model, beta2 = 0.98^(B/128), beta1 = 0.95, warm-up 10 % of the steps,
  weight decay 0.1, decay to 0 (Marin's 2025 scaling recipe, marin-community/marin, ``ScalingRecipe``; the
  beta2 rule from Marek et al. 2025, arXiv 2507.07101). The batch is [train]'s.
* ``olmo``: batch = 2048·160·(N/108e6)^(2/3) tokens, lr = 0.0047·(N/108e6)^(-1/3), beta2 = 0.95 from a
  batch of 524,288 tokens up, else 0.99, warm-up N tokens (one per parameter), weight decay 0.1 (OLMo-core's
  model-ladder rules after Bhagia et al. 2024, "Establishing Task Scaling Laws via Compute-Efficient Model
  Ladders"; OLMo-core halves this lr for its WSD-S schedule, which ``olmo-wsd`` does).
* ``deepseek``: lr = 0.3118·C^-0.1250, batch = 0.2920·C^0.3271 tokens, C the run's training FLOPs, betas
  (0.9, 0.95), weight decay 0.1 (DeepSeek LLM, Bi et al. 2024, arXiv 2401.02954, §3.1 eq. 1). Their 2000
  warm-up steps belong to runs of 1e5 steps; the warm-up stays [train]'s. Depends on the budget, so each
  (size, budget) cell gets its own values.

A user recipe is either ``[train.recipe_table."SIZE"]`` tables (a size's values, for every ladder size) or a
function registered with :func:`register_recipe` (or through the ``scalebench.recipes`` entry point group)
that maps a :class:`RecipeInput` to a dict of :data:`OUTPUT_KEYS`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from scalebench.errors import ConfigError

# what a recipe may return; warmup_tokens is turned into warm-up steps with the resolved batch
OUTPUT_KEYS = ("lr", "batch_tokens", "beta1", "beta2", "warmup_share", "warmup_tokens", "weight_decay",
               "min_lr_ratio")
# [train] keys that, given beside a recipe, win over it
PINNABLE = ("lr", "batch_tokens", "batch_samples", "betas", "warmup_share", "warmup_steps", "weight_decay",
            "min_lr_ratio")
_PIN_OF = {"lr": ("lr",), "batch_tokens": ("batch_tokens", "batch_samples"), "beta1": ("betas",),
           "beta2": ("betas",), "warmup_share": ("warmup_share", "warmup_steps"),
           "warmup_tokens": ("warmup_share", "warmup_steps"), "weight_decay": ("weight_decay",),
           "min_lr_ratio": ("min_lr_ratio",)}


@dataclass(frozen=True, kw_only=True)
class RecipeInput:
    """What a rule may depend on, for one ladder cell."""

    family: str
    size: str  # the ladder entry as written
    params: int  # N, the laws' parameter count
    d_model: int | None
    n_layer: int | None
    seq_len: int  # tokens per row (1 for sample families)
    batch_tokens: int  # the global batch in the family's unit (the recipe's own, once it set one)
    tokens: float  # the run's budget in the family's unit
    flops: float  # the run's training FLOPs, C


@dataclass(frozen=True, kw_only=True)
class Recipe:
    name: str
    source: str  # the citation shown beside its values
    formula: str  # one line
    rule: Callable[[RecipeInput], dict[str, float]]
    per_budget: bool = False  # depends on the run's compute, not only on its size

    def __post_init__(self) -> None:
        if not self.name or not callable(self.rule):
            raise ValueError("a recipe needs a name and a callable rule")


_RECIPES: dict[str, Recipe] = {}


def register_recipe(recipe: Recipe) -> Recipe:
    _RECIPES[recipe.name.lower()] = recipe
    return recipe


def _need_width(x: RecipeInput, recipe: str) -> int:
    if not x.d_model:
        raise ConfigError(f"recipe {recipe!r} sets the lr from d_model; the {x.family} shape {x.size!r} has none: "
                          "use another recipe or give train.lr")
    return x.d_model


def marin(x: RecipeInput) -> dict[str, float]:
    b = x.batch_tokens / x.seq_len
    return {"lr": 0.33 * math.sqrt(b) / _need_width(x, "marin"), "beta1": 0.95, "beta2": 0.98 ** (b / 128),
            "warmup_share": 0.1, "weight_decay": 0.1, "min_lr_ratio": 0.0}


def olmo(x: RecipeInput, *, lr_factor: float = 1.0) -> dict[str, float]:
    ratio = x.params / 108e6
    batch = 2048 * 160 * ratio ** (2 / 3)
    return {"batch_tokens": batch, "lr": lr_factor * 0.0047 * ratio ** (-1 / 3), "beta1": 0.9,
            "beta2": 0.95 if x.batch_tokens >= 524_288 else 0.99, "warmup_tokens": float(x.params),
            "weight_decay": 0.1}


def deepseek(x: RecipeInput) -> dict[str, float]:
    return {"lr": 0.3118 * x.flops ** -0.1250, "batch_tokens": 0.2920 * x.flops ** 0.3271, "beta1": 0.9,
            "beta2": 0.95, "weight_decay": 0.1}


register_recipe(Recipe(name="marin", rule=marin, formula="lr = 0.33·sqrt(B)/d_model; beta2 = 0.98^(B/128); "
                       "beta1 0.95; warm-up 10 %; wd 0.1; decay to 0",
                       source="Marin 2025 scaling recipe (marin-community/marin); beta2: Marek et al. 2025"))
register_recipe(Recipe(name="olmo", rule=olmo, formula="B = 2048·160·(N/108e6)^(2/3) tokens; lr = 0.0047·"
                       "(N/108e6)^(-1/3); beta2 0.95 if B >= 524288 else 0.99; warm-up N tokens; wd 0.1",
                       source="OLMo-core model ladder; Bhagia et al. 2024"))
register_recipe(Recipe(name="olmo-wsd", rule=lambda x: olmo(x, lr_factor=0.5), formula="olmo with lr / 2",
                       source="OLMo-core model ladder's WSD-S configurator; Bhagia et al. 2024"))
register_recipe(Recipe(name="deepseek", rule=deepseek, per_budget=True,
                       formula="lr = 0.3118·C^-0.125; B = 0.2920·C^0.3271 tokens; betas 0.9, 0.95; wd 0.1",
                       source="DeepSeek LLM, Bi et al. 2024 (arXiv 2401.02954), eq. 1"))


def _load_plugins() -> None:
    from importlib.metadata import entry_points

    for ep in entry_points(group="scalebench.recipes"):
        if ep.name.lower() not in _RECIPES:
            obj = ep.load()
            register_recipe(obj if isinstance(obj, Recipe) else Recipe(name=ep.name, rule=obj, formula="",
                                                                       source=f"plug-in {ep.value}"))


def get_recipe(name: str) -> Recipe:
    if name.lower() not in _RECIPES:
        _load_plugins()
    try:
        return _RECIPES[name.lower()]
    except KeyError:
        raise ConfigError(f"train.recipe: unknown recipe {name!r}; known: {', '.join(list_recipes())} (or give "
                          "[train.recipe_table.SIZE] tables, or register one with scalebench.recipes."
                          "register_recipe)") from None


def list_recipes() -> list[str]:
    return sorted(_RECIPES)


def check_recipe(train: Any) -> None:
    """TrainSpec's check of its recipe fields (names, table keys, pins)."""
    if train.recipe and train.recipe_table:
        raise ConfigError("train: give either recipe (a name) or recipe_table (values per size), not both")
    if train.recipe:
        get_recipe(train.recipe)
    for size, row in train.recipe_table.items():
        if not isinstance(row, dict):
            raise ConfigError(f"train.recipe_table.{size}: expected a table of {', '.join(OUTPUT_KEYS)}")
        for key, value in row.items():
            if key not in OUTPUT_KEYS:
                raise ConfigError(f"train.recipe_table.{size}.{key}: not a recipe value; one of {', '.join(OUTPUT_KEYS)}")
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ConfigError(f"train.recipe_table.{size}.{key}: expected a non-negative number, got {value!r}")
    for key in train.pinned:
        if key not in PINNABLE:
            raise ConfigError(f"train.pinned: {key!r} is not a key a recipe sets; one of {', '.join(PINNABLE)}")


def _rule(train: Any) -> tuple[Callable[[RecipeInput], dict[str, float]], str]:
    if train.recipe_table:
        def table(x: RecipeInput) -> dict[str, float]:
            if x.size not in train.recipe_table:
                raise ConfigError(f"train.recipe_table: no row for size {x.size!r}; the table has "
                                  f"{sorted(train.recipe_table)}; add [train.recipe_table.\"{x.size}\"]")
            return dict(train.recipe_table[x.size])
        return table, "recipe_table"
    return get_recipe(train.recipe).rule, train.recipe


def is_per_budget(train: Any) -> bool:
    return bool(train.recipe) and get_recipe(train.recipe).per_budget


def resolve(train: Any, x: RecipeInput, *, pinned: tuple[str, ...] = (), quantum: int = 1) -> Any:
    """``train`` with the recipe's values for one cell; keys in ``train.pinned`` or ``pinned`` stay.

    The batch is rounded to whole rows, a multiple of ``quantum`` rows (micro-batch and ranks must divide
    it). Returns ``train`` itself without a recipe."""
    if not (train.recipe or train.recipe_table):
        return train
    rule, name = _rule(train)
    keep = set(train.pinned) | set(pinned)
    first = _checked(rule(x), name, x)
    batch = x.batch_tokens
    if "batch_tokens" in first and not keep & set(_PIN_OF["batch_tokens"]):
        rows = max(quantum, quantum * round(first["batch_tokens"] / x.seq_len / quantum))
        batch = rows * x.seq_len
    values = _checked(rule(dataclasses.replace(x, batch_tokens=batch)), name, x) if batch != x.batch_tokens else first
    changes: dict[str, Any] = {}
    for key, value in values.items():
        if keep & set(_PIN_OF[key]):
            continue
        if key == "lr":
            changes["lr"] = float(value)
        elif key == "batch_tokens":
            changes["batch_samples" if x.seq_len == 1 and train.batch_samples is not None else "batch_tokens"] = batch
        elif key in ("beta1", "beta2"):
            betas = list(changes.get("betas", train.betas))
            betas[key == "beta2"] = float(value)
            changes["betas"] = tuple(betas)
        elif key == "warmup_tokens":
            changes["warmup_steps"] = math.ceil(value / batch)
        elif key == "warmup_share":
            changes["warmup_share"], changes["warmup_steps"] = float(value), None
        else:
            changes[key] = float(value)
    try:
        return dataclasses.replace(train, **changes)
    except ConfigError as exc:
        raise ConfigError(f"train.recipe {name!r} at size {x.size}: {exc}") from None


def _checked(values: dict[str, float], name: str, x: RecipeInput) -> dict[str, float]:
    for key, value in values.items():
        if key not in OUTPUT_KEYS:
            raise ConfigError(f"recipe {name!r} returned {key!r}, not a recipe value; one of {', '.join(OUTPUT_KEYS)}")
        if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise ConfigError(f"recipe {name!r} gave {key} = {value!r} for size {x.size}; expected a non-negative number")
    return values
