"""The optimizer and the learning-rate schedule of a run."""

from __future__ import annotations

import math
from typing import Any

ADAM_EPS = 1e-8  # torch's default, the base of CompleteP's eps scaling


def warmup_steps(steps: int, train: Any) -> int:
    return train.warmup_steps if train.warmup_steps is not None else int(train.warmup_share * steps)


def cooldown_start(steps: int, train: Any) -> int:
    """wsd: the first step of the cooldown (a branch's fork point)."""
    return steps - max(1, round(train.cooldown_share * steps))


def lr_at(step: int, steps: int, train: Any) -> float:
    """Linear warm-up (``warmup_steps``, else ``warmup_share`` of the steps), then cosine to lr·min_lr_ratio,
    constant, or wsd: constant until ``cooldown_start``, then linear to lr·min_lr_ratio at the last step.
    Under wsd the rate before a cooldown depends on the step alone, so every budget of a size shares it."""
    warmup = warmup_steps(steps, train)
    if step < warmup:
        return train.lr * (step + 1) / warmup
    if train.schedule == "constant":
        return train.lr
    if train.schedule == "wsd":
        start = cooldown_start(steps, train)
        if step < start:
            return train.lr
        done = (step - start + 1) / (steps - start)
        return train.lr * (1 - (1 - train.min_lr_ratio) * done)
    progress = (step - warmup) / max(1, steps - warmup)
    return train.lr * (train.min_lr_ratio + (1 - train.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def build_optimizer(model: Any, train: Any, device_type: str):
    """Weight decay on matrices only (not on norms and biases), as in GPT-2/nanoGPT.

    adamw: decoupled decay (Loshchilov & Hutter); adam: L2 decay in the gradient (Kingma & Ba); sgd and
    gd: SGD with ``momentum`` (0 = plain); gd is full-batch only because the planner makes the batch the
    whole training split.
    """
    import torch

    base = getattr(model, "module", model)  # DDP wraps; the family's module knows its parametrisation
    own = getattr(base, "optimizer_groups", None)
    groups = own(train.weight_decay) if own is not None else None
    if groups is None:
        decay = [p for p in model.parameters() if p.dim() >= 2]
        no_decay = [p for p in model.parameters() if p.dim() < 2]
        groups = [{"params": decay, "weight_decay": train.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    else:  # muP/CompleteP: per-role lr multipliers (set_lr applies them) and Adam eps
        for g in groups:
            g["lr"] = train.lr * g["lr_mult"]
            g["eps"] = ADAM_EPS * g.pop("eps_mult")
    fused = device_type == "cuda"
    if train.optimizer in ("sgd", "gd"):
        for g in groups:
            g.pop("eps", None)
        return torch.optim.SGD(groups, lr=train.lr, momentum=train.momentum)
    if train.optimizer == "adam":
        return torch.optim.Adam(groups, lr=train.lr, betas=tuple(train.betas), fused=fused)
    return torch.optim.AdamW(groups, lr=train.lr, betas=tuple(train.betas), fused=fused)


def set_lr(optimizer: Any, lr: float) -> None:
    """The schedule's rate, times each group's multiplier (muP/CompleteP hidden layers: 1/m_d)."""
    for g in optimizer.param_groups:
        g["lr"] = lr * g.get("lr_mult", 1.0)
