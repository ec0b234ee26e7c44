"""The GPT module itself (torch); shapes and costs live in ``gpt.py`` so planning needs no torch."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from scalebench.families.gpt import GPTShape


class Block(nn.Module):
    def __init__(self, s: GPTShape) -> None:
        super().__init__()
        d = s.d_model
        self.n_head = s.n_head
        scaling = s.scaling
        # None: SDPA's own 1/sqrt(d_head) (standard); muP and CompleteP use 1/d_head
        self.attn_scale = None if scaling.kind == "standard" else scaling.attention_scale(d // s.n_head)
        self.branch_mult = scaling.branch_mult  # CompleteP: 1/m_L on each residual branch
        self.ln1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d, bias=False)
        self.proj = nn.Linear(d, d, bias=False)
        self.ln2 = nn.LayerNorm(d)
        self.fc = nn.Linear(d, s.ffn, bias=False)
        self.fc2 = nn.Linear(s.ffn, d, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = (
            z.view(b, t, self.n_head, c // self.n_head).transpose(1, 2)
            for z in self.qkv(self.ln1(x)).split(c, dim=2)
        )
        # SDPA picks flash / memory-efficient kernels on GPU and a fused kernel on CPU.
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=self.attn_scale)
        if self.branch_mult == 1.0:
            x = x + self.proj(y.transpose(1, 2).reshape(b, t, c))
            return x + self.fc2(F.gelu(self.fc(self.ln2(x))))
        x = x + self.branch_mult * self.proj(y.transpose(1, 2).reshape(b, t, c))
        return x + self.branch_mult * self.fc2(F.gelu(self.fc(self.ln2(x))))


class GPT(nn.Module):
    def __init__(self, s: GPTShape) -> None:
        super().__init__()
        self.shape = s
        self.wte = nn.Embedding(s.vocab_size, s.d_model)
        self.wpe = nn.Embedding(s.seq_len, s.d_model)
        self.blocks = nn.ModuleList(Block(s) for _ in range(s.n_layer))
        self.ln_f = nn.LayerNorm(s.d_model)
        self.head = None if s.tie_embeddings else nn.Linear(s.d_model, s.vocab_size, bias=False)
        self.scaling = s.scaling
        self.output_mult = self.scaling.output_mult
        if self.scaling.kind == "standard":
            self.apply(self._init)
            # GPT-2 scaling of residual projections keeps the residual stream's variance flat with depth.
            for name, p in self.named_parameters():
                if name.endswith(("proj.weight", "fc2.weight")):
                    nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * s.n_layer))
        else:
            for name, p in self.named_parameters():
                if p.dim() >= 2:
                    nn.init.normal_(p, mean=0.0, std=self.scaling.init_std(self.role(name, p)))

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    @staticmethod
    def role(name: str, p: torch.Tensor) -> str:
        """The parameter's role in scalebench/families/parametrization.py."""
        if p.dim() < 2:
            return "vector"
        if name.startswith(("wte.", "wpe.")):
            return "embedding"
        if name.startswith("head."):
            return "head"
        return "residual" if name.endswith(("proj.weight", "fc2.weight")) else "hidden"

    def optimizer_groups(self, weight_decay: float) -> list[dict] | None:
        """Per-role groups (lr, weight-decay and eps multipliers) under muP/CompleteP; None: the standard two."""
        if self.scaling.kind == "standard":
            return None
        from scalebench.families.parametrization import optimizer_groups

        return optimizer_groups(self.named_parameters(), self.role, self.scaling, weight_decay)

    def coord_modules(self) -> dict[str, nn.Module]:
        return coord_modules(self)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """Logits (batch, seq, vocab); the loss is the family's (``gpt.loss``)."""
        t = idx.shape[1]
        pos = torch.arange(t, device=idx.device)
        x = self.wte(idx) + self.wpe(pos)
        for block in self.blocks:
            x = block(x)
        x = self.ln_f(x)
        logits = self.head(x) if self.head is not None else x @ self.wte.weight.t()
        return logits if self.output_mult == 1.0 else logits * self.output_mult


def next_token_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy in nats per token, computed in fp32 whatever the autocast dtype."""
    return F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets.reshape(-1))


def coord_modules(model: GPT) -> dict[str, nn.Module]:
    """Modules whose outputs a coordinate check follows: the embedding, each block's attention and MLP
    outputs and the residual stream after it (the logits are the model's output)."""
    out: dict[str, nn.Module] = {"embedding": model.wte}
    for i, block in enumerate(model.blocks):
        out[f"block{i}.attn"] = block.proj
        out[f"block{i}.mlp"] = block.fc2
        out[f"block{i}"] = block
    return out
