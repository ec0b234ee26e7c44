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
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(y.transpose(1, 2).reshape(b, t, c))
        return x + self.fc2(F.gelu(self.fc(self.ln2(x))))


class GPT(nn.Module):
    def __init__(self, s: GPTShape) -> None:
        super().__init__()
        self.shape = s
        self.wte = nn.Embedding(s.vocab_size, s.d_model)
        self.wpe = nn.Embedding(s.seq_len, s.d_model)
        self.blocks = nn.ModuleList(Block(s) for _ in range(s.n_layer))
        self.ln_f = nn.LayerNorm(s.d_model)
        self.head = None if s.tie_embeddings else nn.Linear(s.d_model, s.vocab_size, bias=False)
        self.apply(self._init)
        # GPT-2 scaling of residual projections keeps the residual stream's variance flat with depth.
        for name, p in self.named_parameters():
            if name.endswith(("proj.weight", "fc2.weight")):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * s.n_layer))

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """Logits (batch, seq, vocab); the loss is the family's (``gpt.loss``)."""
        t = idx.shape[1]
        pos = torch.arange(t, device=idx.device)
        x = self.wte(idx) + self.wpe(pos)
        for block in self.blocks:
            x = block(x)
        x = self.ln_f(x)
        return self.head(x) if self.head is not None else x @ self.wte.weight.t()


def next_token_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy in nats per token, computed in fp32 whatever the autocast dtype."""
    return F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets.reshape(-1))
