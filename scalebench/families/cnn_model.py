"""The CNN family's modules: a ResNet with basic blocks and GroupNorm (see ``cnn.py``)."""

from __future__ import annotations

import torch
from torch import nn

CHANNELS_PER_GROUP = 8  # GroupNorm with 8 channels a group (widths are multiples of 8)


def _norm(c: int) -> nn.GroupNorm:
    return nn.GroupNorm(c // CHANNELS_PER_GROUP, c)


class BasicBlock(nn.Module):
    """Two 3×3 convolutions with a residual (He et al. 2016); a 1×1 projection where the shape changes."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.norm1 = _norm(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.norm2 = _norm(c_out)
        nn.init.zeros_(self.norm2.weight)  # each block starts as the identity (Goyal et al. 2017)
        self.shortcut = None
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), _norm(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.norm1(self.conv1(x)))
        y = self.norm2(self.conv2(y))
        return torch.relu(y + (x if self.shortcut is None else self.shortcut(x)))


class ResNet(nn.Module):
    def __init__(self, shape) -> None:
        super().__init__()
        w = shape.width
        self.stem = nn.Sequential(nn.Conv2d(shape.channels, w, 3, padding=1, bias=False), _norm(w), nn.ReLU())
        blocks, c_in = [], w
        for s in range(shape.stages):
            c_out = w * 2**s
            for b in range(shape.blocks):
                blocks.append(BasicBlock(c_in, c_out, 2 if (s > 0 and b == 0) else 1))
                c_in = c_out
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Linear(c_in, shape.num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for block in self.blocks:
            x = block(x)
        return self.head(x.mean(dim=(2, 3)))  # global average pooling
