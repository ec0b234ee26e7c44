"""The LSTM language model's modules (see ``lstm.py`` for counts, FLOPs and why the cell is spelled out)."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


class LSTMLayer(nn.Module):
    """One LSTM layer; gates ordered (input, forget, output, cell) so three share one sigmoid."""

    def __init__(self, d: int) -> None:
        super().__init__()
        bound = 1 / math.sqrt(d)  # nn.LSTM's initialisation
        self.w_ih = nn.Parameter(torch.empty(4 * d, d).uniform_(-bound, bound))
        self.w_hh = nn.Parameter(torch.empty(4 * d, d).uniform_(-bound, bound))
        bias = torch.zeros(4 * d)
        bias[d:2 * d] = 1.0  # forget-gate bias 1: remember by default (Jozefowicz et al. 2015)
        self.bias = nn.Parameter(bias)
        self.d = d

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = self.d
        gates_x = F.linear(x, self.w_ih, self.bias)  # every position at once: (B, T, 4d)
        c = torch.zeros_like(gates_x[:, 0, :d])
        h, outs = None, []
        for t in range(x.shape[1]):
            # the first step's recurrent product would multiply the zero state: skipped
            g = gates_x[:, t] if h is None else torch.addmm(gates_x[:, t], h, self.w_hh.t())
            sig = torch.sigmoid(g[:, : 3 * d])
            c = sig[:, d:2 * d] * c + sig[:, :d] * torch.tanh(g[:, 3 * d:])
            h = sig[:, 2 * d:] * torch.tanh(c)
            outs.append(h)
        return torch.stack(outs, dim=1)


class LSTMLM(nn.Module):
    """Embedding -> n_layer LSTM layers -> head (tied to the embedding unless the shape says otherwise)."""

    def __init__(self, shape) -> None:
        super().__init__()
        self.shape = shape
        d = shape.d_model
        self.wte = nn.Embedding(shape.vocab_size, d)
        nn.init.normal_(self.wte.weight, std=d ** -0.5)
        self.layers = nn.ModuleList(LSTMLayer(d) for _ in range(shape.n_layer))
        self.head = None
        if not shape.tie_embeddings:
            self.head = nn.Linear(d, shape.vocab_size, bias=False)
            nn.init.normal_(self.head.weight, std=d ** -0.5)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.wte(idx)
        for layer in self.layers:
            x = layer(x)
        return F.linear(x, self.wte.weight if self.head is None else self.head.weight)
