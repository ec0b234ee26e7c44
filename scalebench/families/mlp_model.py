"""The MLP family's module (see ``mlp.py``)."""

from __future__ import annotations

import torch
from torch import nn


class MLP(nn.Module):
    """input_dim -> n_layer hidden layers of ``width`` (ReLU) -> num_classes logits."""

    def __init__(self, shape) -> None:
        super().__init__()
        dims = [shape.input_dim] + [shape.width] * shape.n_layer
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:], strict=True))
        self.head = nn.Linear(shape.width, shape.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.hidden:
            x = torch.relu(layer(x))
        return self.head(x)
