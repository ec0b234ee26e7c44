"""Parametrisations: how initialisation, per-layer learning rates and output scale follow width and depth.

``[model] parametrization`` picks one; a family's model asks :class:`Scaling` for each number, so the rules
live here once. m_d = d_model / base_d_model, m_L = n_layer / base_n_layer; sigma = the family's base init
std (0.02 for GPT); lr = train.lr, the base model's learning rate. Roles: ``embedding`` (token and position
tables), ``hidden`` (matrices taking d_model-sized inputs: qkv, fc), ``residual`` (matrices writing into the
residual stream: attention and MLP output projections), ``vector`` (norm gains and biases), ``head`` (an
untied output matrix).

==============  =========================  ==============================  ===============================
                standard                   mup (Adam)                      completep (alpha = 1)
==============  =========================  ==============================  ===============================
hidden init     sigma                      sigma / sqrt(m_d)               sigma / sqrt(m_d)
residual init   sigma / sqrt(2L)           sigma / sqrt(2L·m_d)            sigma / sqrt(m_d)
hidden lr       lr                         lr / m_d                        lr / m_d
embedding lr    lr                         lr                              lr
logits          x·W                        x·W / m_d                       x·W / m_d
attention       q·k / sqrt(d_head)         q·k / d_head                    q·k / d_head
residual branch x + f(x)                   x + f(x)                        x + f(x) / m_L
Adam eps        eps                        eps                             eps / (m_d·m_L)
weight decay    wd                         wd·m_d on hidden (lr·wd fixed)  wd·m_d on hidden (lr·wd fixed)
==============  =========================  ==============================  ===============================

Sources: Yang et al. 2022, "Tensor Programs V" (muP; Table 3 for Adam, the 1/d attention scale §4); the
output multiplier form of Table 8 (hidden lr 1/width, logits / width) as in Cerebras' practitioner's guide
to muP (Dey et al. 2024); CompleteP: Dey et al. 2025, "Don't be lazy: CompleteP enables compute-efficient
deep transformers" (arXiv 2505.01618, Table 1 with alpha = 1: residual branches scaled by 1/m_L, hidden lr
m_d^-1·m_L^0, Adam eps m_d^-1·m_L^-1, decoupled weight decay kept proportional to 1/lr). At the base shape
every parametrisation but the attention scale equals the standard one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from scalebench.errors import ConfigError

PARAMETRIZATIONS = ("standard", "mup", "completep")
ROLES = ("embedding", "hidden", "residual", "vector", "head")


@dataclass(frozen=True, kw_only=True)
class Scaling:
    kind: Literal["standard", "mup", "completep"] = "standard"
    d_model: int
    n_layer: int
    base_d_model: int | None = None
    base_n_layer: int | None = None
    sigma: float = 0.02

    def __post_init__(self) -> None:
        if self.kind not in PARAMETRIZATIONS:
            raise ConfigError(f"parametrization must be one of {', '.join(PARAMETRIZATIONS)}, got {self.kind!r}")
        if self.kind != "standard" and not self.base_d_model:
            raise ConfigError(f"parametrization {self.kind!r} needs base_d_model")
        if self.kind == "completep" and not self.base_n_layer:
            raise ConfigError("parametrization 'completep' needs base_n_layer")

    @property
    def width_mult(self) -> float:
        return self.d_model / self.base_d_model if self.kind != "standard" else 1.0

    @property
    def depth_mult(self) -> float:
        return self.n_layer / self.base_n_layer if self.kind == "completep" else 1.0

    def init_std(self, role: str) -> float:
        if role == "residual":
            if self.kind == "completep":  # the branch multiplier, not the init, carries depth
                return self.sigma / math.sqrt(self.width_mult)
            return self.sigma / math.sqrt(2 * self.n_layer * self.width_mult)
        return self.sigma / math.sqrt(self.width_mult) if role == "hidden" else self.sigma

    def lr_mult(self, role: str) -> float:
        return 1.0 / self.width_mult if role in ("hidden", "residual") else 1.0

    def wd_mult(self, role: str) -> float:
        return self.width_mult if role in ("hidden", "residual") else 1.0

    @property
    def output_mult(self) -> float:
        return 1.0 / self.width_mult

    @property
    def branch_mult(self) -> float:
        return 1.0 / self.depth_mult

    @property
    def eps_mult(self) -> float:
        return 1.0 / (self.width_mult * self.depth_mult) if self.kind == "completep" else 1.0

    def attention_scale(self, head_dim: int) -> float:
        return 1.0 / math.sqrt(head_dim) if self.kind == "standard" else 1.0 / head_dim


def optimizer_groups(named_params, role_of, scaling: Scaling, weight_decay: float) -> list[dict]:
    """AdamW parameter groups by role: each carries ``lr_mult`` (applied by ``train.optim.set_lr``), its
    weight decay and Adam eps multiplier. Matrices decay, vectors do not (as in GPT-2 and nanoGPT)."""
    groups: dict[str, dict] = {}
    for name, p in named_params:
        role = role_of(name, p)
        if role not in ROLES:
            raise ValueError(f"parameter {name}: role {role!r} is not one of {ROLES}")
        g = groups.setdefault(role, {"params": [], "role": role, "lr_mult": scaling.lr_mult(role),
                                     "weight_decay": 0.0 if role == "vector" else weight_decay * scaling.wd_mult(role),
                                     "eps_mult": scaling.eps_mult})
        g["params"].append(p)
    return list(groups.values())
