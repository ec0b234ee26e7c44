"""Coordinate check: train a few steps at several widths and follow each layer's activation scale.

Under a parametrisation that transfers hyperparameters across width (muP, CompleteP) the typical size of a
coordinate of every layer's output stays flat as the width grows; under the standard parametrisation with
one Adam learning rate the updates grow with width and so do the activations, above all the logits (Yang et
al. 2022, "Tensor Programs V", §7 and fig. 5). The check trains each width from the same base learning rate
on one fixed batch (the updates then agree from step to step, the case that shows blow-up fastest), records
mean |x| of each followed module's output before every step, and fits the slope of log mean|x| against
log width at the last step: a slope near 0 is flat, a slope near 0.5 or 1 is the drift to look for.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from scalebench.errors import ConfigError

FLAT_SLOPE = 0.25  # |slope| of log mean|x| vs log width below this is flat across the widths checked


@dataclass(frozen=True, kw_only=True)
class CoordCheck:
    """``scales``: one row per (parametrization, width, step, layer) with ``mean_abs``; ``slopes``: per
    (parametrization, layer), the slope of log mean|x| against log width at the last step."""

    scales: pd.DataFrame
    slopes: pd.DataFrame
    settings: dict = field(default_factory=dict)

    def max_slope(self, parametrization: str) -> float:
        s = self.slopes[self.slopes["parametrization"] == parametrization]["slope"]
        return float(s.abs().max())

    def verdict(self, parametrization: str) -> str:
        return "flat" if self.max_slope(parametrization) < FLAT_SLOPE else "drifts"

    def summary(self) -> dict:
        last = self.scales[self.scales["step"] == self.scales["step"].max()]
        table = last.pivot_table(index=["parametrization", "layer"], columns="width", values="mean_abs")
        return {"settings": self.settings, "flat_slope": FLAT_SLOPE,
                "last_step": {f"{p}/{layer}": {str(w): float(v) for w, v in row.items()}
                              for (p, layer), row in table.iterrows()},
                "slopes": self.slopes.to_dict(orient="records"),
                "verdict": {p: self.verdict(p) for p in self.slopes["parametrization"].unique()}}

    def report(self) -> str:
        last = self.scales[self.scales["step"] == self.scales["step"].max()]
        table = last.pivot_table(index=["parametrization", "layer"], columns="width", values="mean_abs",
                                 sort=False)
        slopes = self.slopes.set_index(["parametrization", "layer"])["slope"]
        table["slope"] = slopes.reindex(table.index)
        lines = [f"coordinate check: mean |x| per layer output after {self.settings.get('steps')} Adam steps at "
                 f"lr {self.settings.get('lr'):g} (base width {self.settings.get('base_d_model')}); slope of "
                 "log mean|x| vs log width",
                 table.to_string(float_format=lambda x: f"{x:.3g}")]
        for p in self.slopes["parametrization"].unique():
            lines.append(f"{p}: largest |slope| {self.max_slope(p):.2f} -> {self.verdict(p)} "
                         f"(flat below {FLAT_SLOPE})")
        return "\n".join(lines)


def coord_check(*, parametrizations=("standard", "mup"), widths=(32, 64, 128, 256), n_layer: int = 2,
                head_dim: int = 16, base_d_model: int | None = None, base_n_layer: int | None = None,
                steps: int = 6, lr: float = 3e-3, rows: int = 8, seq_len: int = 32, vocab_size: int = 256,
                seed: int = 0, family: str = "gpt") -> CoordCheck:
    """Train each (parametrisation, width) ``steps`` AdamW steps on one fixed batch; see the module doc."""
    import torch

    from scalebench.config import TrainSpec
    from scalebench.families import get_family
    from scalebench.train.optim import build_optimizer, set_lr

    widths = sorted(int(w) for w in widths)
    if len(widths) < 3 or any(w % head_dim for w in widths):
        raise ConfigError(f"coordinate check: give at least 3 widths, each a multiple of head_dim {head_dim}; "
                          f"got {widths}")
    if steps < 1 or lr <= 0:
        raise ConfigError(f"coordinate check: steps must be >= 1 and lr > 0, got {steps}, {lr}")
    fam = get_family(family)
    base_d = base_d_model or widths[0]
    base_l = base_n_layer or n_layer
    g = torch.Generator().manual_seed(seed)
    batch = torch.randint(0, vocab_size, (rows, seq_len + 1), generator=g)
    inputs, targets = batch[:, :-1], batch[:, 1:]
    train = TrainSpec(lr=lr, weight_decay=0.0, grad_clip=0.0, seq_len=seq_len, batch_tokens=rows * seq_len)
    records = []
    for kind in parametrizations:
        for width in widths:
            torch.manual_seed(seed)
            shape = fam.make_shape(n_layer=n_layer, d_model=width, n_head=width // head_dim, vocab_size=vocab_size,
                                   seq_len=seq_len, parametrization=kind, base_d_model=base_d, base_n_layer=base_l)
            model = fam.build(shape)
            if not hasattr(model, "coord_modules"):
                raise ConfigError(f"coordinate check: the {family} family's model names no layers to follow")
            seen: dict[str, float] = {}
            hooks = [m.register_forward_hook(lambda _m, _i, out, name=name, seen=seen: seen.__setitem__(
                name, float(out.detach().abs().mean()))) for name, m in model.coord_modules().items()]
            opt = build_optimizer(model, train, "cpu")
            set_lr(opt, lr)
            for step in range(steps + 1):
                logits = model(inputs)
                records += [{"parametrization": kind, "width": width, "step": step, "layer": k, "mean_abs": v}
                            for k, v in {**seen, "logits": float(logits.detach().abs().mean())}.items()]
                if step == steps:
                    break
                opt.zero_grad(set_to_none=True)
                fam.loss(logits, targets).backward()
                opt.step()
            for h in hooks:
                h.remove()
    scales = pd.DataFrame(records)
    settings = {"family": family, "widths": widths, "n_layer": n_layer, "head_dim": head_dim, "steps": steps,
                "lr": lr, "rows": rows, "seq_len": seq_len, "base_d_model": base_d, "base_n_layer": base_l}
    return CoordCheck(scales=scales, slopes=_slopes(scales, steps), settings=settings)


def _slopes(scales: pd.DataFrame, step: int) -> pd.DataFrame:
    last = scales[scales["step"] == step]
    rows = []
    for (kind, layer), g in last.groupby(["parametrization", "layer"], sort=False):
        slope = np.polyfit(np.log(g["width"].to_numpy(float)), np.log(g["mean_abs"].to_numpy(float)), 1)[0]
        rows.append({"parametrization": kind, "layer": layer, "slope": float(slope)})
    return pd.DataFrame(rows)
