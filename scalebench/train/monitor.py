"""Divergence: a non-finite loss, or a smoothed loss far above the best seen so far.

The monitor sees the loss averaged over ranks, so every rank reaches the same verdict at the same step.
"""

from __future__ import annotations

import math

EMA = 0.9  # smoothing of the train loss
FLUSH_STEPS = 10  # steps between host reads of the loss (one sync per block, not per step)


class DivergenceMonitor:
    def __init__(self, *, factor: float, warmup_steps: int, ema: float | None = None, best_ema: float = math.inf) -> None:
        self.factor, self.warmup_steps = factor, warmup_steps
        self.ema, self.best_ema = ema, best_ema

    def observe(self, step: int, loss: float) -> str | None:
        """Update with one step's loss; the reason the run diverged, or None."""
        if not math.isfinite(loss):
            return f"loss became {loss} at step {step}"
        self.ema = loss if self.ema is None else EMA * self.ema + (1 - EMA) * loss
        why = None
        if step > self.warmup_steps + FLUSH_STEPS and self.ema > self.factor * self.best_ema:
            why = (f"smoothed loss {self.ema:.3g} at step {step} exceeds {self.factor:g}x the best "
                   f"smoothed loss {self.best_ema:.3g}")
        self.best_ema = min(self.best_ema, self.ema)
        return why
