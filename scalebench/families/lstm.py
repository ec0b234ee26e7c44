"""LSTM language model: token embedding, ``n_layer`` stacked LSTM layers of width d, a linear head.

The architecture of the LSTM baselines in Kaplan et al. (2020, §3.2 and fig. 7): byte-level tokens in,
next-token logits out, no attention, no positions (the recurrence carries order). The head is tied to the
embedding by default, as in the GPT family, so the two are compared on the same footing.

Parameter counts (exact, matching the module built below), with d = d_model, L = n_layer, V = vocab_size:

    per layer      = 4d·d (input weights W_ih) + 4d·d (recurrent weights W_hh) + 4d (one bias vector)
    params         = L·(8d² + 4d) + V·d          (the layers plus the output head, counted once)
    params_total   = params [+ V·d for an untied input embedding]

PyTorch's ``nn.LSTM`` keeps two bias vectors (b_ih and b_hh) whose sum is all that matters; one is kept
here, so no parameter is redundant. ``params`` keeps the head and drops the untied input table (a lookup),
the same convention as ``gpt.params`` (Hoffmann et al. 2022).

Training FLOPs per token. Each gate pre-activation is ``W_ih·x_t + W_hh·h_(t−1) + b`` for 4 gates of
width d, so one step of one layer is 2·(d_in + d)·4d FLOPs forward (d_in = d here: the embedding has the
model width); the backward pass costs twice the forward (gradients of inputs and of weights), hence ×3.
The first step's recurrent product multiplies the zero initial state and is skipped, so the recurrent term
is counted for T − 1 of T positions. The head adds 2·d·V forward:

    flops_per_token = 6·[L·4d·d + L·4d·d·(T − 1)/T + d·V]      (≈ 6·params for long windows)

Gate non-linearities and element-wise products (about 10·d per token per layer) are not counted, as the
GPT formula does not count softmax or layer norms.

Why the cell is written from matmuls rather than ``nn.LSTM``: ``FlopCounterMode`` counts matmul-like aten
ops only, and on CPU ``nn.LSTM`` dispatches one fused ``aten.lstm`` op for the whole sequence that the
counter has no formula for: it counts 0 FLOPs for a whole ``nn.LSTM`` forward and backward (checked on
torch 2.13 CPU; ``tests/test_families_lstm.py`` keeps that observation honest). With the cell spelled out
(one batched input projection over all T positions, then one ``addmm`` per step), the counter sees every
multiply and checks the formula above; the price is a Python loop over positions, which costs speed on
long windows, not correctness.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from scalebench.errors import ConfigError
from scalebench.families._shapes import check_positive_ints, make_strict, round_to
from scalebench.families.base import Family, register_family

# name: (n_layer, d_model), named by ``params`` at the byte-level vocabulary (V = 256, tied head), the
# same names as the GPT flavours so a ladder can be compared size for size.
FLAVOURS: dict[str, dict[str, int]] = {
    "debug": dict(n_layer=2, d_model=32),
    "100k": dict(n_layer=2, d_model=72),
    "200k": dict(n_layer=2, d_model=104),
    "400k": dict(n_layer=2, d_model=152),
    "1m": dict(n_layer=2, d_model=240),
    "3m": dict(n_layer=2, d_model=424),
    "10m": dict(n_layer=4, d_model=560),
    "30m": dict(n_layer=4, d_model=960),
    "100m": dict(n_layer=4, d_model=1760),
}

# Width/depth rule: two layers below this many parameters, four above (Kaplan et al. 2020, fig. 7: extra
# LSTM layers help little at small size, a few per cent at tens of millions of parameters).
DEEP_FROM_PARAMS = 5e6
WIDTH_MULTIPLE = 8


@dataclass(frozen=True, kw_only=True)
class LSTMShape:
    n_layer: int
    d_model: int
    vocab_size: int = 256
    seq_len: int = 256
    tie_embeddings: bool = True

    def __post_init__(self) -> None:
        check_positive_ints(self, "lstm", ("n_layer", "d_model", "vocab_size", "seq_len"))
        if not isinstance(self.tie_embeddings, bool):
            raise ConfigError(f"lstm shape: tie_embeddings must be true or false, got {self.tie_embeddings!r}")

    @property
    def label(self) -> str:
        return f"L{self.n_layer}-d{self.d_model}"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def make_shape(**fields: Any) -> LSTMShape:
    return make_strict(LSTMShape, "lstm", fields)


def _layer_params(d: int) -> int:
    return 8 * d * d + 4 * d


def params(s: LSTMShape) -> int:
    """The layers plus the output head (see the module docstring)."""
    return s.n_layer * _layer_params(s.d_model) + s.vocab_size * s.d_model


def params_total(s: LSTMShape) -> int:
    return params(s) + (0 if s.tie_embeddings else s.vocab_size * s.d_model)


def memory_model(s: LSTMShape, micro_rows: int, precision: str) -> int:
    """Training bytes on one device: model states plus, per token and layer, the values the cell keeps for
    its backward (input projection and recurrent gates 8d, their sigmoids and tanh 4d, c, tanh(c), h: 15d),
    the embedding (d) and the logits with their softmax (2V)."""
    from scalebench.families._memory import training_bytes

    per_token = s.n_layer * 15 * s.d_model + s.d_model + 2 * s.vocab_size
    return training_bytes(params_total(s), micro_rows * s.seq_len * per_token, precision)


def flops_per_token(s: LSTMShape) -> float:
    d, T = s.d_model, s.seq_len
    input_proj = s.n_layer * 4 * d * d
    recurrent = s.n_layer * 4 * d * d * (T - 1) / T
    return 6.0 * (input_proj + recurrent + d * s.vocab_size)


FLOPS_FORMULA = "6·[L·4d² + L·4d²·(T−1)/T + d·V]  (4 gates × (input + recurrent) matmuls + head, ×3 fwd+bwd)"


def shape_for_params(target_params: float, **context: Any) -> LSTMShape:
    """n_layer by the depth rule; d_model solves L·(8d² + 4d) + V·d = target, rounded to a multiple of 8."""
    if not target_params or target_params <= 0:
        raise ConfigError(f"lstm: target parameter count must be positive, got {target_params!r}")
    n_layer = 2 if target_params < DEEP_FROM_PARAMS else 4
    vocab = int(context.get("vocab_size", 256))
    a, b = 8 * n_layer, 4 * n_layer + vocab
    d = (-b + math.sqrt(b * b + 4 * a * target_params)) / (2 * a)
    return make_shape(n_layer=n_layer, d_model=round_to(d, WIDTH_MULTIPLE), **context)


def shape_context(info: Any, train: Any, model: Any) -> dict[str, Any]:
    return {"vocab_size": int(info.vocab_size), "seq_len": int(train.seq_len),
            "tie_embeddings": bool(model.tie_embeddings)}


def build(s: LSTMShape):
    from scalebench.families.lstm_model import LSTMLM

    return LSTMLM(s)


def loss(outputs, targets):
    """Mean next-token cross-entropy in nats per token."""
    from torch.nn import functional as F

    return F.cross_entropy(outputs.reshape(-1, outputs.shape[-1]).float(), targets.reshape(-1))


def example_batch(s: LSTMShape, rows: int):
    import torch

    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, s.vocab_size, (rows, s.seq_len), generator=g)
    return x, torch.randint(0, s.vocab_size, (rows, s.seq_len), generator=g)


def fsdp_blocks(model) -> list:
    return list(model.layers)


FAMILY = LSTM_FAMILY = register_family(
    Family(
        name="lstm", unit="tokens", task="text", flavours=FLAVOURS, make_shape=make_shape,
        shape_for_params=shape_for_params, shape_context=shape_context, build=build, loss=loss,
        params=params, params_total=params_total, flops_per_token=flops_per_token,
        flops_formula=FLOPS_FORMULA, example_batch=example_batch, fsdp_blocks=fsdp_blocks,
        memory_model=memory_model,
    )
)
