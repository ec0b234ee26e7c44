"""Grid axes: the points of ``[grid]`` (optimizer, momentum, lr, batch, precision) and each point's TrainSpec.

The planner crosses every family's size ladder and every budget with these points. A point is a dict of
the axes the sweep lists (``family`` is looped by the planner itself); its values go into the run id, the
run's label and ``RunSpec.axes``, which the store turns into result columns.

Rules, each one because crossing blindly would train meaningless or duplicate runs:
* ``momentum`` is crossed with the ``sgd`` and ``gd`` runs only; an Adam run has no momentum setting of
  that kind (its β₁ is ``train.betas``), so it is trained once, its ``momentum`` value empty;
* ``gd`` (full-batch gradient descent) takes the task's whole training split as the batch: the ``batch``
  axis does not apply to it, and a task without a finite full batch (the text task: every window of the
  corpus) refuses it;
* a precision the device cannot train in is refused before anything starts, naming the device: ``fp8``
  needs FP8 tensor cores (compute capability 8.9+; and the trainer has no fp8 recipe yet, so it is refused
  on such a GPU too, saying so), and a precision the trainer would replace by another on this device
  (``bf16``/``fp16`` on a CPU train as fp32) is refused rather than compared with itself.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

from scalebench.config import SweepSpec, TrainSpec
from scalebench.errors import ConfigError

FULL_BATCH_OPTIMIZERS = ("gd",)
MOMENTUM_OPTIMIZERS = ("sgd", "gd")
FP8_MIN_CAPABILITY = (8, 9)  # Ada (8.9), Hopper (9.0), Blackwell (10.x): FP8 tensor cores


def grid_points(spec: SweepSpec) -> list[dict[str, Any]]:
    """Every point of the non-family axes, in the axes' order (one empty point without a grid)."""
    g = spec.grid
    optimizers = g.optimizer or (None,)
    points = []
    for opt in optimizers:
        effective = opt or spec.train.optimizer
        momenta = g.momentum if (g.momentum and effective in MOMENTUM_OPTIMIZERS) else (None,)
        batches = g.batch if (g.batch and effective not in FULL_BATCH_OPTIMIZERS) else (None,)
        for m, lr, b, p in itertools.product(momenta, g.lr or (None,), batches, g.precision or (None,)):
            point = {"optimizer": opt, "momentum": m, "lr": lr, "batch": b, "precision": p}
            points.append({k: v for k, v in point.items() if k in g.axes})
    return points


def point_label(point: dict[str, Any]) -> str:
    """The run-id suffix of a point: ``sgd-m0.9-lr0.1-b256-bf16`` (axes without a value are left out)."""
    from scalebench.sweep.planner import _num_label

    parts = []
    for key, value in point.items():
        if value is None or key == "family":
            continue
        if key == "momentum":
            parts.append(f"m{value:g}")
        elif key == "lr":
            parts.append(f"lr{_num_label(value)}")
        elif key == "batch":
            parts.append(f"b{_num_label(value)}")
        else:
            parts.append(str(value))
    return "-".join(parts)


def train_for_point(spec: SweepSpec, point: dict[str, Any], *, family: str, unit: str,
                    full_batch_rows: int | None, task: str, where: str = "") -> TrainSpec:
    """The TrainSpec of one family at one grid point: [train], then the per-family and per-optimizer
    tables (they never set the same key), then the point's own values."""
    t = spec.train
    optimizer = point.get("optimizer") or t.optimizer
    changes: dict[str, Any] = {"optimizer": optimizer, **spec.grid.per_family.get(family, {}),
                               **spec.grid.per_optimizer.get(optimizer, {})}
    for key in ("momentum", "lr", "precision"):
        if point.get(key) is not None:
            changes[key] = point[key]
    if point.get("batch") is not None:
        changes["batch_samples" if unit == "samples" else "batch_tokens"] = int(point["batch"])
    if optimizer in FULL_BATCH_OPTIMIZERS:
        if unit != "samples" or not full_batch_rows:
            raise ConfigError(
                f"{where}optimizer 'gd' (full-batch gradient descent) needs a task with a finite training set "
                f"to take as the batch; the {task!r} task trains on random windows of a token corpus, whose "
                "full batch would be every window of it: use 'sgd' (momentum = 0 for plain SGD) or 'adamw'")
        cap = t.micro_batch or t.batch_samples or full_batch_rows
        changes["batch_samples"] = full_batch_rows
        changes["micro_batch"] = max(d for d in range(1, min(cap, full_batch_rows) + 1) if full_batch_rows % d == 0)
    try:
        return dataclasses.replace(t, **changes)
    except ConfigError as exc:
        label = point_label(point) or "the sweep"
        raise ConfigError(f"{where}grid point {label}: {exc}") from None


def check_precision(precision: str, device: str, where: str = "") -> None:
    """Refuse a precision the device cannot train in (see the module docstring), naming the device."""
    if precision in ("auto", "fp32"):
        return
    import torch

    if precision == "fp8":
        if device != "cuda":
            raise ConfigError(f"{where}precision 'fp8' needs a GPU with FP8 tensor cores (compute capability "
                              f"8.9+: Ada, Hopper, Blackwell); this sweep runs on {device}")
        cap, name = torch.cuda.get_device_capability(0), torch.cuda.get_device_name(0)
        if cap < FP8_MIN_CAPABILITY:
            raise ConfigError(f"{where}precision 'fp8' needs compute capability 8.9+ (FP8 tensor cores); "
                              f"{name} has {cap[0]}.{cap[1]}")
        # the trainer (scalebench/train/precision.py) has no scaled-matmul recipe yet and refuses fp8 there
        raise ConfigError(f"{where}precision 'fp8': {name} has FP8 tensor cores, but fp8 training is not "
                          "implemented in the trainer yet; use bf16")
    if precision in ("bf16", "fp16") and device != "cuda":
        raise ConfigError(f"{where}precision {precision!r} on {device}: the trainer trains bf16 and fp16 "
                          "(with loss scaling) on CUDA only and would train these runs in fp32, comparing "
                          "fp32 with itself; drop it from grid.precision or run on a GPU")
