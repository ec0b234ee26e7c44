"""Llama: the decoder ladder teams train today (RMSNorm, RoPE, SwiGLU, grouped-query attention, optional
QK-norm, untied embeddings, optional z-loss), as in Llama 2/3, OLMo 2, Qwen 3 and nanochat.

Parameter counts (exact, matching the module built by ``llama_model``), with d = d_model, L = n_layer,
H = n_head, K = n_kv_head, q = head_dim (d / H), f = d_ff (SwiGLU width), V = vocab_size:

    per block      = 2d (two RMSNorm weights) + d·H·q (wq) + 2·d·K·q (wk, wv) + H·q·d (wo) + 3·d·f (SwiGLU)
                     [+ 2q with QK-norm: one RMSNorm weight over the head dimension for queries, one for keys]
    params_total   = L·block + d (final RMSNorm) + V·d (token embedding) [+ V·d for the untied output head]
    params         = params_total − V·d when untied: non-embedding parameters plus the output head, counted
                     once (the GPT family's convention, Hoffmann et al. 2022; RoPE has no parameters)
    params_nonembedding = params − V·d: Kaplan et al. (2020)'s N, without any embedding or head

Training FLOPs per token (PaLM, Chowdhery et al. 2022, appendix B):

    flops_per_token = 6·N_matmul + 12·L·T·H·q

N_matmul is every weight used in a matmul: the blocks' projections and the output head (the token embedding
is a lookup, the norm weights are elementwise). Grouped-query attention shrinks wk/wv and the KV cache, not the
score and value matmuls: every query head still attends over T keys, so the attention term is PaLM's
12·L·T·(H·q) for any K. Causal attention is not halved (kernels compute the full square). RoPE, RMSNorm,
SwiGLU's product and the z-loss are elementwise and left out, as FlopCounterMode leaves them out.

The estimator's Llama presets (``planning.presets``, ``family = "llama"``) are shapes of this family: their
parameters are this ``params_total`` (every weight; Llama 2 7B: 6,738,415,616) and their FLOPs this
``flops_per_token``, one definition (``test_llama.py`` checks that a preset and the same shape given as a
family agree exactly). The papers' 6·N over every weight is 6·V·d (the token embedding's lookup) above it.

Shapes by rule: ``depth`` sets everything (nanochat's dial): d_model = 64·depth (Kaplan et al. 2020's aspect
ratio, as for GPT), head dimension 64 (32 below d_model 256, 16 below 64), K = the largest divisor of H not
above ``kv_heads`` (all heads when ``kv_heads`` is 0), d_ff = 8d/3 rounded up to a multiple of 256 from
d_model 1024 (Llama's ``multiple_of``; 11008 at d 4096), else of 32. ``shape_for_params`` picks the depth whose
non-embedding parameters come nearest a target. Flavours are named by depth (``d4``, ``d12``, ...), not by a
parameter count: with a BPE vocabulary the embedding and head dominate small models, and a name that counts
them would change with the tokenizer.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from scalebench.errors import ConfigError
from scalebench.families.base import Family, register_family

ASPECT_RATIO = 64
DEPTHS = (2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 24, 32)
FLAVOURS: dict[str, dict[str, int]] = {
    "debug": dict(n_layer=2, d_model=32, n_head=2, n_kv_head=1),
    **{f"d{n}": dict(depth=n) for n in DEPTHS},
}


@dataclass(frozen=True, kw_only=True)
class LlamaShape:
    n_layer: int
    d_model: int
    n_head: int
    n_kv_head: int | None = None  # grouped-query attention; None = n_head (multi-head attention)
    d_ff: int | None = None  # SwiGLU width; None = the rule (8d/3 rounded up)
    vocab_size: int = 256
    seq_len: int = 256
    qk_norm: bool = False  # RMSNorm on queries and keys per head (OLMo 2, Qwen 3)
    tie_embeddings: bool = False
    z_loss: float = 0.0  # coefficient of log²Z added to the training loss (PaLM uses 1e-4)
    rope_theta: float = 10000.0
    # scalebench/families/parametrization.py: how init, per-layer lr and output scale follow the base shape
    parametrization: str = "standard"
    base_d_model: int | None = None
    base_n_layer: int | None = None

    def __post_init__(self) -> None:
        self.scaling  # noqa: B018 - checks the parametrisation's fields
        for name in ("n_layer", "d_model", "n_head", "vocab_size", "seq_len"):
            _check_int(name, getattr(self, name))
        for name in ("n_kv_head", "d_ff"):
            if getattr(self, name) is not None:
                _check_int(name, getattr(self, name))
        if self.d_model % self.n_head:
            raise ConfigError(f"llama shape: d_model ({self.d_model}) must be divisible by n_head ({self.n_head})")
        if self.head_dim % 2:
            raise ConfigError(f"llama shape: head dimension d_model / n_head = {self.head_dim} must be even (RoPE "
                              "rotates pairs); change d_model or n_head")
        if self.n_head % self.kv_heads:
            raise ConfigError(f"llama shape: n_head ({self.n_head}) must be a multiple of n_kv_head "
                              f"({self.kv_heads})")
        for name in ("qk_norm", "tie_embeddings"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"llama shape: {name} must be true or false, got {getattr(self, name)!r}")
        if not isinstance(self.z_loss, (int, float)) or isinstance(self.z_loss, bool) or not 0 <= self.z_loss < 1:
            raise ConfigError(f"llama shape: z_loss must be a number in [0, 1), got {self.z_loss!r}")
        if not isinstance(self.rope_theta, (int, float)) or isinstance(self.rope_theta, bool) or self.rope_theta <= 1:
            raise ConfigError(f"llama shape: rope_theta must be a number above 1, got {self.rope_theta!r}")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_head

    @property
    def kv_heads(self) -> int:
        return self.n_kv_head if self.n_kv_head is not None else self.n_head

    @property
    def ffn(self) -> int:
        return self.d_ff if self.d_ff is not None else swiglu_width(self.d_model)

    @property
    def mlp(self) -> str:
        """The MLP's kind, as the estimator's presets name it (gated: three matrices, more activations)."""
        return "swiglu"

    @property
    def label(self) -> str:
        kv = f"-kv{self.kv_heads}" if self.kv_heads != self.n_head else ""
        return f"L{self.n_layer}-d{self.d_model}-h{self.n_head}{kv}"

    @property
    def scaling(self):
        from scalebench.families.parametrization import Scaling

        return Scaling(kind=self.parametrization, d_model=self.d_model, n_layer=self.n_layer,
                       base_d_model=self.base_d_model, base_n_layer=self.base_n_layer)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if self.parametrization == "standard":
            for key in ("parametrization", "base_d_model", "base_n_layer"):
                d.pop(key)
        return d


def _check_int(name: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"llama shape: {name} must be a positive integer, got {value!r}")


def swiglu_width(d_model: int) -> int:
    multiple = 256 if d_model >= 1024 else 32
    return multiple * math.ceil(8 * d_model / 3 / multiple)


def _head_dim(d_model: int) -> int:
    return 64 if d_model >= 256 else 32 if d_model >= 64 else 16


def _kv_for(n_head: int, kv_heads: int) -> int:
    if not kv_heads:
        return n_head
    return max(k for k in range(1, min(n_head, kv_heads) + 1) if n_head % k == 0)


def make_shape(*, depth: int | None = None, kv_heads: int = 0, **fields: Any) -> LlamaShape:
    """A shape from its fields, or from ``depth`` alone (the rule in the module docstring).

    ``kv_heads`` (a sweep-wide setting) caps the KV heads of every shape that does not give ``n_kv_head``."""
    if not isinstance(kv_heads, int) or isinstance(kv_heads, bool) or kv_heads < 0:
        raise ConfigError(f"llama: kv_heads must be a non-negative integer (0 = one per query head), got {kv_heads!r}")
    if depth is not None:
        _check_int("depth", depth)
        clash = sorted({"n_layer", "d_model", "n_head"} & set(fields))
        if clash:
            raise ConfigError(f"llama shape: depth sets {clash[0]} by rule; give depth or the explicit fields")
        d_model = ASPECT_RATIO * depth
        fields = {"n_layer": depth, "d_model": d_model, "n_head": d_model // _head_dim(d_model), **fields}
    known = set(LlamaShape.__dataclass_fields__)
    unknown = sorted(set(fields) - known)
    if unknown:
        raise ConfigError(f"llama shape: unknown field {unknown[0]!r}; fields: depth, {', '.join(known)}")
    missing = [k for k in ("n_layer", "d_model", "n_head") if k not in fields]
    if missing:
        raise ConfigError(f"llama shape: missing field {missing[0]!r}; give n_layer, d_model, n_head or depth")
    if fields.get("n_kv_head") is None and kv_heads and isinstance(fields["n_head"], int) and fields["n_head"] > 0:
        fields["n_kv_head"] = _kv_for(fields["n_head"], kv_heads)
    return LlamaShape(**fields)


def _block_matmul_params(s: LlamaShape) -> int:
    d, q = s.d_model, s.head_dim
    return 2 * d * s.n_head * q + 2 * d * s.kv_heads * q + 3 * d * s.ffn


def _block_params(s: LlamaShape) -> int:
    return _block_matmul_params(s) + 2 * s.d_model + (2 * s.head_dim if s.qk_norm else 0)


def params_total(s: LlamaShape) -> int:
    emb = s.vocab_size * s.d_model
    return s.n_layer * _block_params(s) + s.d_model + emb + (0 if s.tie_embeddings else emb)


def params(s: LlamaShape) -> int:
    """Non-embedding parameters plus the output head, counted once (see the module docstring)."""
    return s.n_layer * _block_params(s) + s.d_model + s.vocab_size * s.d_model


def params_nonembedding(s: LlamaShape) -> int:
    """Kaplan et al. (2020)'s N: no token embedding, no output head."""
    return params(s) - s.vocab_size * s.d_model


def matmul_params(s: LlamaShape) -> int:
    return s.n_layer * _block_matmul_params(s) + s.vocab_size * s.d_model


def flops_per_token(s: LlamaShape, *, causal_half: bool = False) -> float:
    """Model FLOPs per training token; ``causal_half`` counts only the unmasked half of attention."""
    attention = 12.0 * s.n_layer * s.seq_len * s.n_head * s.head_dim
    return 6.0 * matmul_params(s) + (attention / 2 if causal_half else attention)


def shape_for_params(target_params: float, **context: Any) -> LlamaShape:
    """The depth-rule shape whose non-embedding parameters come nearest ``target_params`` (in log)."""
    if not target_params or target_params <= 0:
        raise ConfigError(f"llama: target parameter count must be positive, got {target_params!r}")
    guess = max(1, round((target_params / (12 * ASPECT_RATIO**2)) ** (1 / 3)))
    candidates = [make_shape(depth=n, **context) for n in range(max(1, guess - 2), guess + 3)]
    return min(candidates, key=lambda s: abs(math.log(max(1, params_nonembedding(s)) / target_params)))


def build(s: LlamaShape):
    from scalebench.families.llama_model import Llama

    return Llama(s)


def loss(outputs, targets):
    from scalebench.families.llama_model import llama_loss

    return llama_loss(outputs, targets)


def shape_context(info: Any, train: Any, model: Any) -> dict[str, Any]:
    """Fixed for the whole sweep: the tokenizer's vocabulary, the context, and ``[model.llama]``'s options."""
    options = getattr(model, "llama", None)
    context = {"vocab_size": info.vocab_size, "seq_len": train.seq_len}
    if options is not None:
        context.update(options.shape_fields())
    if getattr(model, "parametrization", "standard") != "standard":
        context.update(parametrization=model.parametrization, base_d_model=model.base_d_model,
                       base_n_layer=model.base_n_layer)
    return context


def example_batch(s: LlamaShape, rows: int):
    import torch

    g = torch.Generator().manual_seed(0)
    idx = torch.randint(0, s.vocab_size, (rows, s.seq_len + 1), generator=g)
    return idx[:, :-1], idx[:, 1:]


def fsdp_blocks(model) -> list:
    return list(model.blocks)


def activation_values_per_token(s: LlamaShape) -> float:
    """Values the eager module keeps for its backward pass, per token (counted from the tensors autograd saves,
    ``test_llama.py`` checks it exactly against torch's MemTracker on CPU), logits aside:

        per block: each RMSNorm its input, the normalised input and the weighted output (3d, two norms: 6d)
                   + queries after RoPE (H·q = d) + keys and values (2·K·q) + the attention output (d)
                   + SwiGLU's gate, silu(gate), up and their product (4f)
                   + one rstd per norm and one log-sum-exp per head (2 + H)
                   [QK-norm: the per-head norms' inputs and normalised values, 2·(H + K)·q, and their rstds]
        outside:   the final norm (3d + 1) and the token ids (8 bytes, counted as two 4-byte values)

    Korthikanti et al. (2022)'s 16-bit formula with Megatron's fused kernels (the estimator's, which stores
    gate, up and product and one tensor per norm) is the at-scale count; this is the module scalebench
    trains, unfused."""
    d, q, f = s.d_model, s.head_dim, s.ffn
    block = 6 * d + d + 2 * s.kv_heads * q + d + 4 * f + 2 + s.n_head
    if s.qk_norm:
        block += 2 * (s.n_head + s.kv_heads) * q + s.n_head + s.kv_heads
    return float(s.n_layer * block + 3 * d + 1 + 2)


def memory_model(s: LlamaShape, micro_rows: int, precision: str) -> int:
    """Allocated training bytes on one device as scalebench's trainer holds them: AdamW states with fp32
    weights under autocast (16 bytes per parameter, ``scalebench.memory``'s ``autocast`` row), the activations
    of :func:`activation_values_per_token` at the precision's activation width, and the logits in fp32
    (4·V bytes per token, whatever the precision). No allocator overhead: this is what
    ``torch.cuda.max_memory_allocated`` measures."""
    from scalebench.memory import ACTIVATION_SCALE, parse_precision, state_bytes_per_param

    prec = parse_precision(precision)
    w, g, o = state_bytes_per_param(prec, "adamw", "autocast")
    tokens = float(micro_rows) * s.seq_len
    value_bytes = 2.0 * ACTIVATION_SCALE[prec]  # the table's scale counts 2-byte values
    acts = tokens * (activation_values_per_token(s) * value_bytes + 4.0 * s.vocab_size)
    return int(params_total(s) * (w + g + o) + acts)


FLOPS_FORMULA = ("6·N_matmul + 12·L·T·(H·q) per token (PaLM, Chowdhery et al. 2022, app. B; grouped K/V heads do "
                 "not shrink the attention term; causal attention not halved)")

FAMILY = LLAMA_FAMILY = register_family(
    Family(
        name="llama",
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
        params_nonembedding=params_nonembedding,
    )
)
