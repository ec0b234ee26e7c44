"""The Llama module itself (torch); shapes and costs live in ``llama.py`` so planning needs no torch.

Initialisation is one function of a parameter's name and kind (:func:`param_kind`, :func:`init_std`), so a
parametrisation (muP and relatives) can replace the standard deviations and group the parameters for the
optimizer without touching the module.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from scalebench.families.llama import LlamaShape


def rope_tables(seq_len: int, head_dim: int, theta: float, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin, (seq_len, head_dim): pair (i, i + head_dim/2) turns by position · theta^(-2i/head_dim)
    (Su et al. 2021, RoFormer; the half-split layout of GPT-NeoX and Hugging Face's Llama)."""
    inv_freq = theta ** (-torch.arange(0, head_dim, 2, dtype=torch.float64, device=device) / head_dim)
    angles = torch.outer(torch.arange(seq_len, dtype=torch.float64, device=device), inv_freq)
    angles = torch.cat([angles, angles], dim=-1)
    return angles.cos().float(), angles.sin().float()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate (batch, heads, seq, head_dim) by position."""
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos.to(x.dtype) + rotated * sin.to(x.dtype)


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.rms_norm(x, (x.shape[-1],), self.weight, self.eps)


class Attention(nn.Module):
    def __init__(self, s: LlamaShape) -> None:
        super().__init__()
        q = s.head_dim
        self.n_head, self.n_kv_head, self.head_dim = s.n_head, s.kv_heads, q
        self.wq = nn.Linear(s.d_model, s.n_head * q, bias=False)
        self.wk = nn.Linear(s.d_model, s.kv_heads * q, bias=False)
        self.wv = nn.Linear(s.d_model, s.kv_heads * q, bias=False)
        self.wo = nn.Linear(s.n_head * q, s.d_model, bias=False)
        self.q_norm = RMSNorm(q) if s.qk_norm else None
        self.k_norm = RMSNorm(q) if s.qk_norm else None
        scaling = s.scaling  # None: SDPA's 1/sqrt(d_head) (standard); muP and CompleteP use 1/d_head
        self.scale = None if scaling.kind == "standard" else scaling.attention_scale(q)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        q = self.wq(x).view(b, t, self.n_head, self.head_dim)
        k = self.wk(x).view(b, t, self.n_kv_head, self.head_dim)
        v = self.wv(x).view(b, t, self.n_kv_head, self.head_dim).transpose(1, 2)
        if self.q_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        q, k = apply_rope(q.transpose(1, 2), cos, sin), apply_rope(k.transpose(1, 2), cos, sin)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=self.n_kv_head != self.n_head,
                                           scale=self.scale)
        return self.wo(y.transpose(1, 2).reshape(b, t, self.n_head * self.head_dim))


class SwiGLU(nn.Module):
    """w2(silu(w1 x) · w3 x) (Shazeer 2020)."""

    def __init__(self, s: LlamaShape) -> None:
        super().__init__()
        self.w1 = nn.Linear(s.d_model, s.ffn, bias=False)
        self.w3 = nn.Linear(s.d_model, s.ffn, bias=False)
        self.w2 = nn.Linear(s.ffn, s.d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class Block(nn.Module):
    def __init__(self, s: LlamaShape) -> None:
        super().__init__()
        self.attn_norm = RMSNorm(s.d_model)
        self.attn = Attention(s)
        self.mlp_norm = RMSNorm(s.d_model)
        self.mlp = SwiGLU(s)
        self.branch_mult = s.scaling.branch_mult  # CompleteP: 1/m_L on each residual branch

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        if self.branch_mult == 1.0:
            x = x + self.attn(self.attn_norm(x), cos, sin)
            return x + self.mlp(self.mlp_norm(x))
        x = x + self.branch_mult * self.attn(self.attn_norm(x), cos, sin)
        return x + self.branch_mult * self.mlp(self.mlp_norm(x))


def param_kind(name: str) -> str:
    """``embedding``, ``output`` (the untied head), ``vector`` (norm weights) or ``hidden`` (block matrices)."""
    if name.startswith("embed."):
        return "embedding"
    if name.startswith("head."):
        return "output"
    return "vector" if name.endswith("norm.weight") else "hidden"


def init_std(name: str, s: LlamaShape) -> float | None:
    """Standard initialisation: N(0, 0.02²) for every matrix, residual projections (wo, w2) scaled by
    1/sqrt(2L) (GPT-2, Radford et al. 2019); None keeps a norm weight at one."""
    kind = param_kind(name)
    if kind == "vector":
        return None
    if s.parametrization != "standard":
        return s.scaling.init_std(role(name))
    if name.endswith(("attn.wo.weight", "mlp.w2.weight")):
        return 0.02 / math.sqrt(2 * s.n_layer)
    return 0.02


def role(name: str) -> str:
    """The parameter's role in scalebench/families/parametrization.py."""
    kind = param_kind(name)
    if kind == "hidden" and name.endswith(("attn.wo.weight", "mlp.w2.weight")):
        return "residual"
    return {"output": "head"}.get(kind, kind)


class Llama(nn.Module):
    def __init__(self, s: LlamaShape) -> None:
        super().__init__()
        self.shape = s
        self.embed = nn.Embedding(s.vocab_size, s.d_model)
        self.blocks = nn.ModuleList(Block(s) for _ in range(s.n_layer))
        self.norm = RMSNorm(s.d_model)
        self.head = None if s.tie_embeddings else nn.Linear(s.d_model, s.vocab_size, bias=False)
        cos, sin = rope_tables(s.seq_len, s.head_dim, s.rope_theta)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        self.output_mult = s.scaling.output_mult
        self.reset_parameters()

    def optimizer_groups(self, weight_decay: float) -> list[dict] | None:
        """Per-role groups (lr, weight-decay and eps multipliers) under muP/CompleteP; None: the standard two."""
        if self.shape.parametrization == "standard":
            return None
        from scalebench.families.parametrization import optimizer_groups

        return optimizer_groups(self.named_parameters(), lambda name, _p: role(name), self.shape.scaling,
                                weight_decay)

    def coord_modules(self) -> dict[str, nn.Module]:
        """Outputs a coordinate check follows (scalebench/train/coordcheck.py)."""
        out: dict[str, nn.Module] = {"embedding": self.embed}
        for i, block in enumerate(self.blocks):
            out.update({f"block{i}.attn": block.attn.wo, f"block{i}.mlp": block.mlp.w2, f"block{i}": block})
        return out

    def reset_parameters(self) -> None:
        with torch.no_grad():
            for name, p in self.named_parameters():
                std = init_std(name, self.shape)
                if std is None:
                    p.fill_(1.0)
                else:
                    p.normal_(0.0, std)

    def forward(self, idx: torch.Tensor):
        """Logits (batch, seq, vocab); in training with ``z_loss`` > 0, (logits, z-loss term)."""
        t = idx.shape[1]
        cos, sin = self.rope_cos[:t], self.rope_sin[:t]
        x = self.embed(idx)
        for block in self.blocks:
            x = block(x, cos, sin)
        x = self.norm(x)
        logits = self.head(x) if self.head is not None else x @ self.embed.weight.t()
        if self.output_mult != 1.0:
            logits = logits * self.output_mult
        if self.training and self.shape.z_loss > 0:
            # PaLM's auxiliary loss z_loss·log²Z keeps the softmax normaliser near 1 (Chowdhery et al. 2022, §5)
            log_z = torch.logsumexp(logits.float(), dim=-1)
            return logits, self.shape.z_loss * log_z.pow(2).mean()
        return logits


def llama_loss(outputs, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy in nats per token (fp32), plus the z-loss term when the model returned one; held-out
    evaluation runs the model in eval mode, so ``eval_loss`` is cross-entropy alone."""
    aux = None
    if isinstance(outputs, tuple):
        outputs, aux = outputs
    loss = F.cross_entropy(outputs.float().view(-1, outputs.size(-1)), targets.reshape(-1))
    return loss if aux is None else loss + aux
