"""Held-out evaluation: the mean loss over the task's fixed held-out rows, in nats per unit, and for text
the same loss in bits per byte of the held-out text (``eval_bpb``: nats · target tokens / (ln 2 · the bytes
those tokens cover); ``scalebench/data/tokenizer.py``).

Under DDP each rank takes every W-th batch and the sums are all-reduced; under FSDP2 every rank must run
the same forwards (each all-gathers parameters), so all ranks evaluate every batch.
"""

from __future__ import annotations

import math
from typing import Any

from scalebench.train.precision import autocast


class Evaluator:
    def __init__(self, *, run: Any, family: Any, model: Any, data: Any, precision: str, device: Any, ctx: Any,
                 strategy: str) -> None:
        self.run, self.family, self.model, self.data = run, family, model, data
        self.precision, self.device, self.ctx, self.strategy = precision, device, ctx, strategy
        self._bytes: tuple[int, int] | None | bool = False  # (target tokens, bytes), computed on first use

    def __call__(self, micro: int, train_module: Any) -> float:
        import torch

        shard = self.strategy == "ddp"
        w, r = self.ctx.world_size, self.ctx.rank
        train_module.eval()
        total, n = 0.0, 0
        with torch.no_grad(), autocast(self.precision, self.device.type):
            for i, (x, y) in enumerate(self.data.eval_batches(self.run.eval.eval_tokens, micro)):
                if shard and i % w != r:
                    continue
                xb = torch.as_tensor(x).to(self.device)
                yb = torch.as_tensor(y).to(self.device)
                loss = self.family.loss(self.model(xb), yb)
                units = xb.shape[0] * self.run.units_per_row
                total += float(loss) * units
                n += units
        train_module.train()
        if shard:
            total, n = self.ctx.sum([total, float(n)])
        return total / n

    def bits_per_byte(self, eval_loss: float | None) -> float | None:
        """``eval_loss`` (nats per token over the held-out windows) in bits per byte of their text; None when
        the task has no text behind its tokens (synthetic language, images, token shards without
        the tokenizer.json that made them)."""
        if eval_loss is None:
            return None
        if self._bytes is False:
            counter = getattr(self.data, "eval_bytes", None)
            self._bytes = counter(self.run.eval.eval_tokens) if counter is not None else None
        if not self._bytes or not self._bytes[1]:
            return None
        tokens, n_bytes = self._bytes
        return eval_loss * tokens / (math.log(2) * n_bytes)
