"""GPT: pre-LN decoder-only transformer (GELU MLP, SDPA attention, learned positions, tied embeddings).

Parameter counts (exact, matching the module built by ``gpt_model``), with d = d_model, L = n_layer,
f = d_ff (4d by default), V = vocab_size, T = seq_len:

    per block      = 2·2d (two LayerNorms, weight + bias) + 3d² (qkv) + d² (proj) + 2·d·f (MLP), no biases
    params_total   = L·block + 2d (final LayerNorm) + V·d (token embedding) + T·d (positions)
                     [+ V·d when the output head is untied]
    params         = params_total − T·d − (V·d if untied else 0)
                   = non-embedding parameters plus the output head (V·d), counted once.

``params`` keeps the head because its matmul is real compute (it is what 6N must count), and drops the
position table, which is a lookup. With a byte-level vocabulary (V = 256) the head is small; with GPT-2's
50k vocabulary it matters, and this is the convention of Hoffmann et al. (2022) rather than Kaplan et al.
(2020), who exclude all embeddings.

Training FLOPs per token (PaLM, Chowdhery et al. 2022, appendix B):

    flops_per_token = 6·N_matmul + 12·L·T·d

6·N: each weight is used in one multiply-add (2 FLOPs) forward and two backward (input and weight
gradients). 12·L·T·d: QKᵀ and AV, 2·T·d each forward per layer, times 3 for forward + backward. Causal
attention is not halved (kernels compute the full square); ``N_matmul`` is ``params`` less the LayerNorm
vectors, which are not multiplied in matmuls.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from scalebench.errors import ConfigError
from scalebench.families.base import Family, register_family

# name: (n_layer, d_model, n_head). Small flavours are named by their non-embedding parameter count;
# from 124m up they carry the names the GPT-2 / GPT-3 papers gave these shapes (50k-vocabulary totals).
FLAVOURS: dict[str, dict[str, int]] = {
    "debug": dict(n_layer=2, d_model=32, n_head=2),
    "100k": dict(n_layer=2, d_model=64, n_head=2),
    "200k": dict(n_layer=3, d_model=72, n_head=2),
    "400k": dict(n_layer=4, d_model=96, n_head=3),
    "1m": dict(n_layer=4, d_model=144, n_head=4),
    "3m": dict(n_layer=4, d_model=256, n_head=4),
    "6m": dict(n_layer=6, d_model=288, n_head=6),
    "20m": dict(n_layer=6, d_model=512, n_head=8),
    "50m": dict(n_layer=8, d_model=704, n_head=11),
    "124m": dict(n_layer=12, d_model=768, n_head=12),
    "350m": dict(n_layer=24, d_model=1024, n_head=16),
    "774m": dict(n_layer=36, d_model=1280, n_head=20),
    "1.3b": dict(n_layer=24, d_model=2048, n_head=16),
}

# Width/depth rule for target parameter counts: aspect ratio d_model / n_layer ≈ 64 (Kaplan et al. 2020,
# fig. 5: loss is flat within a few per cent for ratios 20–200) and head dimension 64 (32 below d=256).
ASPECT_RATIO = 64


@dataclass(frozen=True, kw_only=True)
class GPTShape:
    n_layer: int
    d_model: int
    n_head: int
    vocab_size: int = 256
    seq_len: int = 256
    d_ff: int | None = None  # 4·d_model when None
    tie_embeddings: bool = True
    # scalebench/families/parametrization.py: how init, per-layer lr and output scale follow the base shape
    parametrization: str = "standard"
    base_d_model: int | None = None
    base_n_layer: int | None = None

    def __post_init__(self) -> None:
        self.scaling  # noqa: B018 - checks the parametrisation's fields
        for name in ("n_layer", "d_model", "n_head", "vocab_size", "seq_len"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"gpt shape: {name} must be a positive integer, got {value!r}")
        if self.d_model % self.n_head:
            raise ConfigError(
                f"gpt shape: d_model ({self.d_model}) must be divisible by n_head ({self.n_head})"
            )
        if self.d_ff is not None and (not isinstance(self.d_ff, int) or isinstance(self.d_ff, bool) or self.d_ff < 1):
            raise ConfigError(f"gpt shape: d_ff must be a positive integer or omitted, got {self.d_ff!r}")

    @property
    def ffn(self) -> int:
        return self.d_ff if self.d_ff is not None else 4 * self.d_model

    @property
    def label(self) -> str:
        return f"L{self.n_layer}-d{self.d_model}-h{self.n_head}"

    @property
    def scaling(self):
        from scalebench.families.parametrization import Scaling

        return Scaling(kind=self.parametrization, d_model=self.d_model, n_layer=self.n_layer,
                       base_d_model=self.base_d_model, base_n_layer=self.base_n_layer)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if self.parametrization == "standard":  # shapes stored before parametrisations existed stay as they were
            for key in ("parametrization", "base_d_model", "base_n_layer"):
                d.pop(key)
        return d


def make_shape(**fields: Any) -> GPTShape:
    from scalebench.families._shapes import make_strict

    return make_strict(GPTShape, "gpt", fields)  # an unknown key is named with the accepted ones


def _block_params(s: GPTShape) -> int:
    d = s.d_model
    return 4 * d + 4 * d * d + 2 * d * s.ffn


def params_total(s: GPTShape) -> int:
    emb = s.vocab_size * s.d_model
    head = 0 if s.tie_embeddings else emb
    return s.n_layer * _block_params(s) + 2 * s.d_model + emb + s.seq_len * s.d_model + head


def memory_model(s: GPTShape, micro_rows: int, precision: str) -> int:
    """Training bytes on one device: model states plus activations (Korthikanti et al. 2022, flash attention,
    no recomputation; ``scalebench.memory``), as the estimator counts them."""
    from scalebench.families._memory import training_bytes
    from scalebench.memory import activation_bytes

    acts = activation_bytes(n_layer=s.n_layer, d_model=s.d_model, n_head=s.n_head, seq_len=s.seq_len,
                            micro_batch=micro_rows, vocab_size=s.vocab_size, checkpointing="none", d_ff=s.ffn)
    return training_bytes(params_total(s), float(acts) / 2.0, precision)  # the table counts 2-byte values


def params(s: GPTShape) -> int:
    """Non-embedding parameters plus the output head (see the module docstring)."""
    return s.n_layer * _block_params(s) + 2 * s.d_model + s.vocab_size * s.d_model


def matmul_params(s: GPTShape) -> int:
    return params(s) - s.n_layer * 4 * s.d_model - 2 * s.d_model


def flops_per_token(s: GPTShape, *, causal_half: bool = False) -> float:
    """Model FLOPs per training token; ``causal_half`` counts only the unmasked half of attention."""
    attention = 12.0 * s.n_layer * s.seq_len * s.d_model
    return 6.0 * matmul_params(s) + (attention / 2 if causal_half else attention)


def shape_for_params(target_params: float, **context: Any) -> GPTShape:
    """The shape whose non-embedding parameters (12·L·d²) best match ``target_params`` under the rule."""
    if not target_params or target_params <= 0:
        raise ConfigError(f"gpt: target parameter count must be positive, got {target_params!r}")
    n_layer = max(1, round((target_params / (12 * ASPECT_RATIO**2)) ** (1 / 3)))
    d_exact = math.sqrt(target_params / (12 * n_layer))
    head_dim = 64 if d_exact >= 256 else 32 if d_exact >= 64 else 16
    d_model = max(head_dim, head_dim * round(d_exact / head_dim))
    return GPTShape(n_layer=n_layer, d_model=d_model, n_head=d_model // head_dim, **context)


def build(s: GPTShape):
    from scalebench.families.gpt_model import GPT

    return GPT(s)


def loss(logits, targets):
    from scalebench.families.gpt_model import next_token_loss

    return next_token_loss(logits, targets)


def shape_context(info: Any, train: Any, model: Any) -> dict[str, Any]:
    """Fixed for the whole sweep: the corpus vocabulary, the training context, tied embeddings."""
    context = {"vocab_size": info.vocab_size, "seq_len": train.seq_len, "tie_embeddings": model.tie_embeddings}
    if getattr(model, "parametrization", "standard") != "standard":
        context.update(parametrization=model.parametrization, base_d_model=model.base_d_model,
                       base_n_layer=model.base_n_layer)
    return context


def example_batch(s: GPTShape, rows: int):
    import torch

    g = torch.Generator().manual_seed(0)
    idx = torch.randint(0, s.vocab_size, (rows, s.seq_len + 1), generator=g)
    return idx[:, :-1], idx[:, 1:]


def fsdp_blocks(model) -> list:
    return list(model.blocks)


FLOPS_FORMULA = "6·N_matmul + 12·L·T·d per token (PaLM, Chowdhery et al. 2022, app. B; causal attention not halved)"

FAMILY = GPT_FAMILY = register_family(
    Family(
        name="gpt",
        unit="tokens",
        task="text",
        flavours=FLAVOURS,
        make_shape=make_shape,
        shape_for_params=shape_for_params,
        shape_context=shape_context,
        build=build,
        loss=loss,
        params=params,
        params_total=params_total,
        flops_per_token=flops_per_token,
        flops_formula=FLOPS_FORMULA,
        example_batch=example_batch,
        memory_model=memory_model,
        fsdp_blocks=fsdp_blocks,
    )
)
