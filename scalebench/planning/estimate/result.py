"""What one estimate returns: :class:`Estimate` and :class:`MemoryBreakdown`, their JSON and their text."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from scalebench._util import json_safe

__all__ = ["Estimate", "MemoryBreakdown", "MEMORY_KEYS", "to_estimate"]

MEMORY_KEYS = ("weights", "gradients", "optimizer", "activations", "overhead", "total")


@dataclass(frozen=True, kw_only=True)
class MemoryBreakdown:
    """Bytes per GPU (GiB = 2**30 bytes where shown)."""

    weights: float
    gradients: float
    optimizer: float
    activations: float
    overhead: float
    total: float

    def to_dict(self) -> dict[str, int | None]:
        """Whole bytes; None (JSON null) where a value is unknown, e.g. when no GPU count fits."""
        return {k: _round_or_none(getattr(self, k)) for k in MEMORY_KEYS}


def _pair(band: tuple[float, float] | None) -> list[float] | None:
    return None if band is None else [band[0], band[1]]


def _round_or_none(x: float) -> int | None:
    return int(round(x)) if math.isfinite(x) else None


@dataclass(frozen=True, kw_only=True)
class Estimate:
    """What one training run costs. Times in seconds, memory in bytes, energy in kWh, money in USD."""

    model: str | None
    gpu: str
    precision: str
    optimizer: str
    zero: int
    checkpointing: str
    params: float
    params_total: float
    tokens: float
    seq_len: int
    micro_batch: int
    global_batch: int | None
    n_layer: int
    d_model: int
    n_head: int
    shape_inferred: bool  # True when any of n_layer, d_model, n_head was inferred (see inferred_fields)
    flops: float
    memory_per_gpu: MemoryBreakdown
    gpu_memory_bytes: int
    fits: bool
    min_gpus: int | None
    num_gpus: int | None
    mfu: float
    mfu_source: str
    scaling_efficiency: float
    goodput: float  # share of the reserved GPU time spent training (time = useful time / goodput)
    wall_clock_s: float
    gpu_hours: float
    price_usd_per_hour: float | None
    cost_usd: float
    energy_kwh: float
    co2_kg: float | None
    predicted_loss: float | None
    predicted_loss_interval: tuple[float, float] | None = None
    law: str | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)
    inferred_fields: tuple[str, ...] = ()  # which of n_layer, d_model, n_head were inferred, not given
    params_active: float | None = None  # parameters one token passes through (FLOPs); params_total: memory
    expert_params: float = 0.0
    hfu: float | None = None  # hardware FLOPs utilisation: mfu x (hardware / model FLOPs), 4/3 under full recompute
    layout: Mapping[str, int] | None = None  # {"tp", "pp", "cp", "ep", "dp"}
    layout_overheads: Mapping[str, float] | None = None  # shares of one step's compute time (OVERHEAD_MEANING)
    usable_memory_bytes: int | None = None
    mfu_range: tuple[float, float] | None = None
    wall_clock_s_range: tuple[float, float] | None = None
    gpu_hours_range: tuple[float, float] | None = None
    cost_usd_range: tuple[float, float] | None = None
    energy_kwh_range: tuple[float, float] | None = None
    defaults: tuple[str, ...] = ()  # the inputs that took a default value
    price_source: str | None = None

    def __post_init__(self) -> None:
        for name in ("wall_clock_s", "gpu_hours", "cost_usd", "energy_kwh", "mfu"):
            band = getattr(self, f"{name}_range")
            value = getattr(self, name)
            if band is not None and math.isfinite(value) and not (band[0] <= value * (1 + 1e-9) and value <= band[1] * (1 + 1e-9)):
                raise ValueError(f"Estimate.{name}_range {band} does not contain {name} = {value}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe: NaN becomes None. The first keys are the stable interface."""
        out: dict[str, Any] = {
            "flops": self.flops,
            "memory_per_gpu": self.memory_per_gpu.to_dict(),
            "min_gpus": self.min_gpus,
            "num_gpus": self.num_gpus,
            "wall_clock_s": self.wall_clock_s,
            "gpu_hours": self.gpu_hours,
            "cost_usd": self.cost_usd,
            "energy_kwh": self.energy_kwh,
            "predicted_loss": self.predicted_loss,
            "predicted_loss_interval": list(self.predicted_loss_interval) if self.predicted_loss_interval else None,
            "co2_kg": self.co2_kg,
            "fits": self.fits,
            "mfu": self.mfu,
            "mfu_source": self.mfu_source,
            "scaling_efficiency": self.scaling_efficiency,
            "goodput": self.goodput,
            "gpu_memory_bytes": self.gpu_memory_bytes,
            "usable_memory_bytes": self.usable_memory_bytes,
            "layout": dict(self.layout) if self.layout else None,
            "layout_overheads": dict(self.layout_overheads) if self.layout_overheads else None,
            "hfu": self.hfu,
            "mfu_range": _pair(self.mfu_range),
            "wall_clock_s_range": _pair(self.wall_clock_s_range),
            "gpu_hours_range": _pair(self.gpu_hours_range),
            "cost_usd_range": _pair(self.cost_usd_range),
            "energy_kwh_range": _pair(self.energy_kwh_range),
            "price_source": self.price_source,
            "defaults": list(self.defaults),
            "inputs": {
                "model": self.model, "gpu": self.gpu, "params": self.params, "params_total": self.params_total,
                "params_active": self.params_active, "expert_params": self.expert_params,
                "tokens": self.tokens, "precision": self.precision, "optimizer": self.optimizer,
                "zero": self.zero, "checkpointing": self.checkpointing, "seq_len": self.seq_len,
                "micro_batch": self.micro_batch, "global_batch": self.global_batch, "n_layer": self.n_layer,
                "d_model": self.d_model, "n_head": self.n_head, "shape_inferred": self.shape_inferred,
                "inferred_fields": list(self.inferred_fields),
                "price_usd_per_hour": self.price_usd_per_hour, "law": self.law,
            },
            "notes": list(self.notes),
        }
        return json_safe(out)

    def report(self) -> str:
        """A readable multi-line summary."""
        m = self.memory_per_gpu
        gib = 2.0**30
        what = self.model or f"{_si(self.params)} params"
        shape = f"L{self.n_layer} d{self.d_model} h{self.n_head}"
        if self.inferred_fields:
            shape += " (inferred)" if len(self.inferred_fields) == 3 else f" ({', '.join(self.inferred_fields)} inferred)"
        if self.num_gpus is None:  # no GPU count fits: nothing per GPU, in time or in money to report
            memory = (f"does not fit on any number of {self.gpu} ({self.gpu_memory_bytes / gib:.0f} GiB each; "
                      f"activations {m.activations / gib:.1f} GiB per GPU; see the note)")
        else:
            memory = (f"{m.total / gib:.1f} GiB of {self.gpu_memory_bytes / gib:.0f} GiB "
                      f"(weights {m.weights / gib:.1f}, gradients {m.gradients / gib:.1f}, "
                      f"optimizer {m.optimizer / gib:.1f}, activations {m.activations / gib:.1f}, "
                      f"overhead {m.overhead / gib:.1f})" + ("" if self.fits else "  DOES NOT FIT"))
        gib_text = ""
        if not math.isfinite(self.cost_usd):
            cost = "n/a (no GPU count fits)" if self.num_gpus is None else "n/a"
        elif self.price_usd_per_hour:
            cost = f"${self.cost_usd:,.0f}{_band(self.cost_usd_range, '${:,.0f}')} at ${self.price_usd_per_hour:.2f}/GPU-hour"
            if self.price_source:
                cost += f" ({self.price_source})"
        else:
            cost = "unknown (no price: pass price_usd_per_hour)"
        energy = (f"{self.energy_kwh:,.0f}{_band(self.energy_kwh_range, '{:,.0f}')} kWh"
                  if math.isfinite(self.energy_kwh) else "n/a")
        if self.co2_kg is not None:
            energy += f", {self.co2_kg:,.0f} kg CO2e"
        hours = (f"{self.gpu_hours:,.0f}{_band(self.gpu_hours_range, '{:,.0f}')} GPU-hours"
                 if math.isfinite(self.gpu_hours) else "GPU-hours n/a")
        efficiency = f"{self.scaling_efficiency:.3f}" if math.isfinite(self.scaling_efficiency) else "n/a"
        wall = _duration(self.wall_clock_s)
        if self.wall_clock_s_range and math.isfinite(self.wall_clock_s) and \
                self.wall_clock_s_range[0] != self.wall_clock_s_range[1]:
            wall += f" [{_duration(self.wall_clock_s_range[0])} - {_duration(self.wall_clock_s_range[1])}]"
        lay = " ".join(f"{k}={v}" for k, v in (self.layout or {}).items()) or "none fits"
        if self.usable_memory_bytes:
            gib_text = f" ({self.usable_memory_bytes / gib:.0f} GiB usable)"
        mfu = f"{self.mfu:.3f}"
        if self.mfu_range and self.mfu_range[0] != self.mfu_range[1]:
            mfu += f" [{self.mfu_range[0]:.3f}-{self.mfu_range[1]:.3f}]"
        lines = [
            f"{what} on {_si(self.tokens)} tokens, {self.gpu} x {self.num_gpus if self.num_gpus else '?'}, "
            f"{self.precision}, {self.optimizer}, ZeRO-{self.zero}, checkpointing {self.checkpointing}",
            f"  shape            {shape}, seq {self.seq_len}, micro-batch {self.micro_batch}, "
            f"global batch {self.global_batch}",
        ]
        if self.params_active is not None and self.params_active < self.params_total:
            lines.append(f"  experts          {_si(self.params_total)} total, {_si(self.params_active)} active per "
                         f"token ({_si(self.expert_params)} in routed experts)")
        lines += [
            f"  training FLOPs   {self.flops:.3g}",
            f"  layout           {lay}" + ("" if self.fits else "  DOES NOT FIT"),
            f"  memory per GPU   {memory}{gib_text}",
            f"  least GPUs       {self.min_gpus if self.min_gpus is not None else 'none fits'}",
            f"  MFU              {mfu} ({self.mfu_source}), HFU {'n/a' if self.hfu is None else f'{self.hfu:.3f}'}, "
            f"scaling efficiency {efficiency}, goodput {self.goodput:.3g}",
            f"  wall clock       {wall}  ({hours})",
            f"  cost             {cost}",
            f"  energy           {energy}",
        ]
        if self.layout_overheads:
            lines.append("  overheads        " + overhead_text(self.layout_overheads))
        if self.predicted_loss is not None:
            band = ""
            if self.predicted_loss_interval:
                band = f" [{self.predicted_loss_interval[0]:.3f}, {self.predicted_loss_interval[1]:.3f}]"
            lines.append(f"  predicted loss   {self.predicted_loss:.3f}{band} ({self.law})")
        if self.defaults:
            lines.append(f"  defaults         {', '.join(self.defaults)}")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)

    __str__ = report


# what each layout_overheads entry is: every one a share of the step's compute time (all micro-batches'
# forward, backward and recomputation on one rank), so 0.5 means half as long again as the compute
OVERHEAD_MEANING = {
    "bubble": "pipeline bubble (idle stages, 1F1B)",
    "tp_comm": "tensor-parallel all-gathers and reduce-scatters (not overlapped)",
    "ep_comm": "expert all-to-alls (not overlapped)",
    "pp_comm": "pipeline sends between stages (not overlapped)",
    "cp_comm": "context-parallel ring exchange (overlapped with attention)",
    "dp_comm": "data-parallel gradient reduction and weight gathers (overlapped where compute allows)",
    "exposed": "the part of the data/context traffic compute does not hide",
    "optimizer": "the optimizer's pass over its states",
    "loss": "all of the above that adds to the step: step time = compute x (1 + loss)",
}


def overhead_text(o: Mapping[str, float]) -> str:
    """One line: each overhead with what it is, as a share of the step's compute time."""
    parts = []
    for key in ("bubble", "tp_comm", "ep_comm", "pp_comm", "cp_comm", "dp_comm", "optimizer"):
        v = o.get(key)
        if v and math.isfinite(v) and v >= 0.0005:
            label = OVERHEAD_MEANING[key].split(" (")[0]
            if key in ("dp_comm", "cp_comm"):
                label += f" (overlapped; {o.get('exposed', 0.0):.1%} exposed)" if key == "dp_comm" else " (overlapped)"
            parts.append(f"{label} {v:.1%}")
    total = o.get("loss", 0.0)
    head = f"{total:.1%} on top of compute" if math.isfinite(total) else "n/a"
    return f"{head} (shares of the step's compute time): " + (", ".join(parts) or "none")


def _band(band: tuple[float, float] | None, fmt: str) -> str:
    if band is None or not all(map(math.isfinite, band)) or band[0] == band[1]:
        return ""
    return f" [{fmt.format(band[0])} - {fmt.format(band[1])}]"


def _si(x: float) -> str:
    for div, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            return f"{x / div:.3g}{suffix}"
    return f"{x:.3g}"


def _duration(s: float) -> str:
    if not math.isfinite(s):
        return "n/a"
    if s >= 86400:
        return f"{s / 86400:,.1f} days"
    if s >= 3600:
        return f"{s / 3600:.1f} hours"
    return f"{s:,.0f} s"


def _int_or_none(x: float) -> int | None:
    return None if not math.isfinite(x) else int(x)


def _opt(x: float) -> float | None:
    return None if not math.isfinite(x) else float(x)


def to_estimate(out: dict[str, Any]) -> Estimate:
    r = {k: v[0] for k, v in out.items()}
    interval = None
    if math.isfinite(r["predicted_loss_lo"]) and math.isfinite(r["predicted_loss_hi"]):
        interval = (float(r["predicted_loss_lo"]), float(r["predicted_loss_hi"]))
    return Estimate(
        model=r["model"], gpu=r["gpu"], precision=r["precision"], optimizer=r["optimizer"], zero=int(r["zero"]),
        checkpointing=str(r["checkpointing"]), params=float(r["params"]), params_total=float(r["params_total"]),
        tokens=float(r["tokens"]), seq_len=int(r["seq_len"]), micro_batch=int(r["micro_batch"]),
        global_batch=_int_or_none(r["global_batch"]), n_layer=int(r["n_layer"]), d_model=int(r["d_model"]),
        n_head=int(r["n_head"]), shape_inferred=bool(r["shape_inferred"]), flops=float(r["flops"]),
        memory_per_gpu=MemoryBreakdown(**{k: float(r[f"memory_{k}_bytes"]) for k in MEMORY_KEYS}),
        gpu_memory_bytes=int(r["gpu_memory_bytes"]), fits=bool(r["fits"]), min_gpus=_int_or_none(r["min_gpus"]),
        num_gpus=_int_or_none(r["num_gpus"]), mfu=float(r["mfu"]), mfu_source=str(r["mfu_source"]),
        scaling_efficiency=float(r["scaling_efficiency"]), goodput=float(r["goodput"]),
        wall_clock_s=float(r["wall_clock_s"]),
        gpu_hours=float(r["gpu_hours"]), price_usd_per_hour=_opt(r["price_usd_per_hour"]),
        cost_usd=float(r["cost_usd"]), energy_kwh=float(r["energy_kwh"]), co2_kg=_opt(r["co2_kg"]),
        predicted_loss=_opt(r["predicted_loss"]), predicted_loss_interval=interval, law=r["law"],
        notes=tuple(r["note_list"]), inferred_fields=tuple(r["inferred_fields"]),
        params_active=float(r["params_active"]), expert_params=float(r["expert_params"]),
        hfu=_opt(r["hfu"]),
        layout=None if not math.isfinite(r["dp"]) else {k: int(r[k]) for k in ("tp", "pp", "cp", "ep", "dp")},
        layout_overheads=None if not math.isfinite(r["loss_fraction"]) else {
            k: float(r[f"{k}_fraction"]) for k in ("bubble", "tp_comm", "ep_comm", "pp_comm", "cp_comm", "dp_comm",
                                                   "exposed", "optimizer", "loss")},
        usable_memory_bytes=int(r["usable_memory_bytes"]),
        mfu_range=(float(r["mfu_low"]), float(r["mfu_high"])),
        **{f"{k}_range": (float(r[f"{k}_low"]), float(r[f"{k}_high"]))
           for k in ("wall_clock_s", "gpu_hours", "cost_usd", "energy_kwh")},
        defaults=tuple(r["defaults"]), price_source=r["price_source"],
    )

