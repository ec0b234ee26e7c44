"""CNN image classifier: a ResNet of basic blocks (He et al. 2016, the CIFAR variant of §4.2).

Layout: a 3×3 stem convolution to ``width`` channels, then ``stages`` stages of ``blocks`` basic blocks
(two 3×3 convolutions and a residual); stage s has width·2^s channels, and every stage after the first
halves the resolution in its first block (stride 2, with a 1×1 projection on the shortcut). Global
average pooling and a linear head give the class logits. ``stages = 3`` and ``blocks = n`` is He et al.'s
ResNet-(6n+2); the label says so (``R20-w16`` is ResNet-20 at their width 16).

GroupNorm (Wu & He 2018, 8 channels a group) stands where the paper has BatchNorm, so a sample's output
never depends on the others in its micro-batch: gradient accumulation, the trainer's out-of-memory
back-off (a smaller micro-batch, the same global batch) and data-parallel ranks then compute the same
update, and a batch of one (FLOP counting, profiling) is a valid forward.

Parameter counts (exact). A k×k convolution from C_in to C_out channels has k²·C_in·C_out weights (no bias:
a normalisation follows); each GroupNorm has 2·C. ``params`` = ``params_total``: a CNN has no lookup
table, every weight is used in compute.

Training FLOPs per sample (the convolution formula): a k×k convolution costs 2·k²·C_in·C_out·H_out·W_out
FLOPs forward; backward computes the input and the weight gradients, twice the forward, so ×3 — except
the stem, whose input (the image) needs no gradient: ×2. The head costs 2·C·K forward, ×3. Norms,
activations, residual adds and pooling are not counted (as the GPT formula leaves out layer norms).

Width and depth for a target parameter count N: parameters grow as blocks·width², and the rule gives
depth a quarter of the growth (in log-parameters) and width the rest, from the base network (width 8,
1 block a stage, N₀ ≈ 20k at 3 channels and 10 classes): blocks = round((N/N₀)^¼), and the width (a
multiple of 8) is the one whose exact count is nearest N. Widening is the better use of parameters at
this scale (Zagoruyko & Komodakis 2016, wide residual networks: a 16-layer net 8× wider beat ResNet-1001
on CIFAR), and a shallow net runs faster on CPUs; EfficientNet's compound rule (Tan & Le 2019) splits the
growth about evenly instead, which at fixed resolution makes ResNet-128s out of 10M parameters.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from scalebench.errors import ConfigError
from scalebench.families._shapes import check_positive_ints, make_strict
from scalebench.families.base import Family, register_family

WIDTH_MULTIPLE = 8  # GroupNorm groups of 8 channels
DEPTH_SHARE = 0.25  # of the growth in log-parameters that goes to depth
BASE_WIDTH, BASE_BLOCKS = 8, 1

# name: (width, blocks), named by params (approximately) at 3 stages, 3 channels and 10 classes.
FLAVOURS: dict[str, dict[str, int]] = {
    "debug": dict(width=8, blocks=1),  # 20k
    "80k": dict(width=16, blocks=1),
    "180k": dict(width=16, blocks=2),
    "resnet20": dict(width=16, blocks=3),  # He et al.'s ResNet-20, 0.27M
    "400k": dict(width=24, blocks=2),
    "700k": dict(width=32, blocks=2),
    "resnet56": dict(width=16, blocks=9),  # ResNet-56, 0.86M
    "3m": dict(width=64, blocks=2),
    "11m": dict(width=128, blocks=2),
}


@dataclass(frozen=True, kw_only=True)
class CNNShape:
    width: int
    blocks: int
    stages: int = 3
    image_size: int = 16
    channels: int = 3
    num_classes: int = 10

    def __post_init__(self) -> None:
        check_positive_ints(self, "cnn", ("width", "blocks", "stages", "image_size", "channels", "num_classes"))
        if self.width % WIDTH_MULTIPLE:
            raise ConfigError(f"cnn shape: width must be a multiple of {WIDTH_MULTIPLE} (GroupNorm groups of "
                              f"{WIDTH_MULTIPLE} channels), got {self.width}")
        if self.image_size < 2 ** (self.stages - 1):
            raise ConfigError(f"cnn shape: {self.stages} stages halve the resolution {self.stages - 1} times; "
                              f"image_size {self.image_size} is too small (at least {2 ** (self.stages - 1)})")
        if self.num_classes < 2:
            raise ConfigError(f"cnn shape: num_classes must be at least 2, got {self.num_classes}")

    @property
    def depth(self) -> int:
        """Weighted layers: 2 per block, the stem and the head (He et al.'s 6n+2 at 3 stages)."""
        return 2 * self.blocks * self.stages + 2

    @property
    def label(self) -> str:
        s = "" if self.stages == 3 else f"-s{self.stages}"
        return f"R{self.depth}-w{self.width}{s}"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def make_shape(**fields: Any) -> CNNShape:
    return make_strict(CNNShape, "cnn", fields)


def _out(h: int, stride: int) -> int:
    return (h - 1) // stride + 1  # 3×3 padding 1, or 1×1 padding 0


def layers(s: CNNShape) -> list[tuple[int, int, int, int, int]]:
    """Every convolution and the head as (k, C_in, C_out, H_out·W_out, backward factor)."""
    h = s.image_size
    out = [(3, s.channels, s.width, h * h, 2)]  # the stem: no input gradient
    c_in = s.width
    for st in range(s.stages):
        c_out = s.width * 2**st
        for b in range(s.blocks):
            stride = 2 if (st > 0 and b == 0) else 1
            h = _out(h, stride)
            out.append((3, c_in, c_out, h * h, 3))
            out.append((3, c_out, c_out, h * h, 3))
            if stride != 1 or c_in != c_out:
                out.append((1, c_in, c_out, h * h, 3))
            c_in = c_out
    out.append((1, c_in, s.num_classes, 1, 3))  # the head as a 1×1 "convolution" on the pooled vector
    return out


def memory_model(s: CNNShape, micro_rows: int, precision: str) -> int:
    """Training bytes on one device: model states plus, per sample, the input and three values per output
    of every convolution (its output, the GroupNorm's and the ReLU's or the residual sum's)."""
    from scalebench.families._memory import training_bytes

    per_sample = s.channels * s.image_size**2 + sum(3 * co * hw for _, _, co, hw, _ in layers(s))
    return training_bytes(params_total(s), micro_rows * per_sample, precision)


def params_total(s: CNNShape) -> int:
    convs = layers(s)
    weights = sum(k * k * ci * co for k, ci, co, _, _ in convs)
    norms = sum(2 * co for _, _, co, _, _ in convs[:-1])  # one GroupNorm after every convolution
    return weights + norms + s.num_classes  # + the head's bias


def params(s: CNNShape) -> int:
    """Every trainable parameter (a CNN has no lookup table; see the module docstring)."""
    return params_total(s)


def flops_per_token(s: CNNShape) -> float:
    """Training FLOPs per sample (the budget unit of this family)."""
    return float(sum(f * 2 * k * k * ci * co * hw for k, ci, co, hw, f in layers(s)))


FLOPS_FORMULA = "Σ_conv 3·2·k²·C_in·C_out·H_out·W_out (stem ×2: no input gradient) + 3·2·C·K head, per sample"


def shape_for_params(target_params: float, **context: Any) -> CNNShape:
    """Depth takes a quarter of the growth, width the rest (module docstring)."""
    if not target_params or target_params <= 0:
        raise ConfigError(f"cnn: target parameter count must be positive, got {target_params!r}")
    base = params(make_shape(width=BASE_WIDTH, blocks=BASE_BLOCKS, **context))
    blocks = max(1, round(BASE_BLOCKS * max(1.0, target_params / base) ** DEPTH_SHARE))
    best = None
    width = WIDTH_MULTIPLE
    while True:
        n = params(make_shape(width=width, blocks=blocks, **context))
        miss = abs(math.log(n / target_params))
        if best is None or miss < best[0]:
            best = (miss, width)
        if n > target_params:
            break
        width += WIDTH_MULTIPLE
    return make_shape(width=best[1], blocks=blocks, **context)


def shape_context(info: Any, train: Any, model: Any) -> dict[str, Any]:
    return {"image_size": int(info.image_size), "channels": int(info.channels),
            "num_classes": int(info.num_classes)}


def build(s: CNNShape):
    from scalebench.families.cnn_model import ResNet

    return ResNet(s)


def loss(outputs, targets):
    """Mean cross-entropy in nats per sample (class indices, or class probabilities)."""
    from torch.nn import functional as F

    return F.cross_entropy(outputs.float(), targets)


def example_batch(s: CNNShape, rows: int):
    import torch

    g = torch.Generator().manual_seed(0)
    x = torch.randn(rows, s.channels, s.image_size, s.image_size, generator=g)
    return x, torch.randint(0, s.num_classes, (rows,), generator=g)


def fsdp_blocks(model) -> list:
    return list(model.blocks)


FAMILY = CNN_FAMILY = register_family(
    Family(
        name="cnn", unit="samples", task="images", flavours=FLAVOURS, make_shape=make_shape,
        shape_for_params=shape_for_params, shape_context=shape_context, build=build, loss=loss,
        params=params, params_total=params_total, flops_per_token=flops_per_token,
        flops_formula=FLOPS_FORMULA, example_batch=example_batch, fsdp_blocks=fsdp_blocks,
        memory_model=memory_model,
    )
)
