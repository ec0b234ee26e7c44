"""MLP classifier: ``n_layer`` hidden ReLU layers of ``width``, then a linear head (the student of the
teacher–student task in ``scalebench/data/teacher.py``, whose irreducible loss is known exactly).

Parameter counts (exact), with d = input_dim, w = width, L = n_layer, K = num_classes:

    params = params_total = (d·w + w) + (L − 1)·(w² + w) + (w·K + K)

(weights and biases; there is no lookup table, every weight is used in compute).

Training FLOPs per sample: a linear layer of a×b weights costs 2·a·b FLOPs forward and twice that
backward (input and weight gradients), ×3 — except the first, whose input (the data) needs no gradient,
×2:

    flops_per_sample = 4·d·w + 6·(L − 1)·w² + 6·w·K

Biases and activations are not counted (as in the other families).

Width and depth for a target parameter count: depth grows by one hidden layer per decade of parameters
(2 below 10⁵, 3 below 10⁶, 4 above), and the width solves the exact count above; widths are multiples of 8.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from scalebench.errors import ConfigError
from scalebench.families._shapes import check_positive_ints, make_strict, round_to
from scalebench.families.base import Family, register_family

WIDTH_MULTIPLE = 8

# name: (n_layer, width), named by params (approximately) at input_dim 8 and 10 classes.
FLAVOURS: dict[str, dict[str, int]] = {
    "debug": dict(n_layer=2, width=16),  # 0.6k
    "2k": dict(n_layer=2, width=32),
    "6k": dict(n_layer=2, width=64),
    "20k": dict(n_layer=2, width=128),
    "70k": dict(n_layer=2, width=256),
    "200k": dict(n_layer=3, width=320),
    "800k": dict(n_layer=3, width=640),
    "3m": dict(n_layer=4, width=1024),
}


@dataclass(frozen=True, kw_only=True)
class MLPShape:
    n_layer: int
    width: int
    input_dim: int = 8
    num_classes: int = 10

    def __post_init__(self) -> None:
        check_positive_ints(self, "mlp", ("n_layer", "width", "input_dim", "num_classes"))
        if self.num_classes < 2:
            raise ConfigError(f"mlp shape: num_classes must be at least 2, got {self.num_classes}")

    @property
    def label(self) -> str:
        return f"L{self.n_layer}-w{self.width}"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def make_shape(**fields: Any) -> MLPShape:
    return make_strict(MLPShape, "mlp", fields)


def params(s: MLPShape) -> int:
    d, w, k = s.input_dim, s.width, s.num_classes
    return d * w + w + (s.n_layer - 1) * (w * w + w) + w * k + k


def memory_model(s: MLPShape, micro_rows: int, precision: str) -> int:
    """Training bytes on one device: model states plus, per sample, the input, each hidden layer's output
    before and after its ReLU, and the logits with their softmax."""
    from scalebench.families._memory import training_bytes

    per_sample = s.input_dim + 2 * s.n_layer * s.width + 2 * s.num_classes
    return training_bytes(params_total(s), micro_rows * per_sample, precision)


def params_total(s: MLPShape) -> int:
    return params(s)


def flops_per_token(s: MLPShape) -> float:
    """Training FLOPs per sample (the budget unit of this family)."""
    d, w, k = s.input_dim, s.width, s.num_classes
    return float(4 * d * w + 6 * (s.n_layer - 1) * w * w + 6 * w * k)


FLOPS_FORMULA = "4·d·w + 6·(L−1)·w² + 6·w·K per sample (first layer ×2: no input gradient; others ×3)"


def depth_for_params(target_params: float) -> int:
    return 2 if target_params < 1e5 else 3 if target_params < 1e6 else 4


def shape_for_params(target_params: float, **context: Any) -> MLPShape:
    """Depth by the decade rule, width solving the exact count (module docstring)."""
    if not target_params or target_params <= 0:
        raise ConfigError(f"mlp: target parameter count must be positive, got {target_params!r}")
    n_layer = depth_for_params(target_params)
    d, k = int(context.get("input_dim", 8)), int(context.get("num_classes", 10))
    a, b, c = n_layer - 1, d + 1 + (n_layer - 1) + k, k - target_params
    w = -c / b if a == 0 else (-b + math.sqrt(b * b - 4 * a * c)) / (2 * a)
    return make_shape(n_layer=n_layer, width=round_to(w, WIDTH_MULTIPLE), **context)


def shape_context(info: Any, train: Any, model: Any) -> dict[str, Any]:
    return {"input_dim": int(info.input_dim), "num_classes": int(info.num_classes)}


def build(s: MLPShape):
    from scalebench.families.mlp_model import MLP

    return MLP(s)


def loss(outputs, targets):
    """Mean cross-entropy in nats per sample; ``targets`` are class indices or class probabilities."""
    from torch.nn import functional as F

    return F.cross_entropy(outputs.float(), targets)


def example_batch(s: MLPShape, rows: int):
    import torch

    g = torch.Generator().manual_seed(0)
    return torch.randn(rows, s.input_dim, generator=g), torch.randint(0, s.num_classes, (rows,), generator=g)


FAMILY = MLP_FAMILY = register_family(
    Family(
        name="mlp", unit="samples", task="teacher", flavours=FLAVOURS, make_shape=make_shape,
        shape_for_params=shape_for_params, shape_context=shape_context, build=build, loss=loss,
        params=params, params_total=params_total, flops_per_token=flops_per_token,
        flops_formula=FLOPS_FORMULA, example_batch=example_batch, memory_model=memory_model,
    )
)
