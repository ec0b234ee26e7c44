"""``estimate``: FLOPs, memory per GPU, GPU count, time, cost, energy and loss of one training run — or of
a whole table of scenarios at once.

One code path serves both: the arguments (or a DataFrame's columns, named like the arguments) become
numpy arrays, every formula runs vectorised, and a single row comes back as an :class:`Estimate`, several
as a DataFrame. The formulas live in :mod:`~scalebench.planning.memory` (memory, with sources),
:mod:`~scalebench.planning.timing` (time, energy) and :mod:`~scalebench.planning.presets` (published shapes).

Training FLOPs: ``6·N·D`` (Kaplan et al. 2020, §2.1) when only a parameter count is known; with a shape
(a preset, or a family plus its shape) the PaLM count ``(6·N + 12·L·T·H·Q)·D`` (Chowdhery et al. 2022,
appendix B; H·Q = n_head · head_dim, = d_model unless a preset says otherwise; the family's own formula
for families; the attention term whenever n_layer and d_model are given). For a mixture of experts N is
the active parameter count (FLOPs), while memory counts every parameter. Layouts, time and the default
MFU: :mod:`~scalebench.planning.layout`, :mod:`~scalebench.planning.timing`,
:mod:`~scalebench.planning.evidence`. Shape fields not given are inferred from the ones that are: d_model/n_layer = 128 (GPT-3 175B and
Llama-2 7B have exactly 128, Llama-2 70B 102), N ≈ 12·L·d², head dimension 128, GPT-2's 50,257-token
vocabulary. Given fields are kept; the result says ``shape_inferred`` and lists ``inferred_fields``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from scalebench._util import json_safe
from scalebench.errors import ConfigError, FitError
from scalebench.hardware.catalog import get_gpu
from scalebench.planning import evidence, layout, timing
from scalebench.planning import memory as mem
from scalebench.planning.layout import DEFAULT_GLOBAL_BATCH_TOKENS
from scalebench.planning.presets import get_architecture

__all__ = ["Estimate", "MemoryBreakdown", "estimate", "ARGUMENTS", "MEMORY_KEYS"]

MEMORY_KEYS = ("weights", "gradients", "optimizer", "activations", "overhead", "total")
MEMORY_WARN_FRACTION = 0.95
HFU_SOURCE = "given as hfu"  # mfu_source of a utilisation given as a hardware rate
LONG_RUN_DAYS = 180
INFER_ASPECT_RATIO = 128
INFER_HEAD_DIM = 128
INFER_VOCAB = 50257
DEFAULT_SEQ_LEN = 2048

# argument -> default; these are also the accepted DataFrame columns
ARGUMENTS: dict[str, Any] = dict(
    params=None, tokens=None, model=None, family=None, n_layer=None, d_model=None, n_head=None,
    n_kv_head=None, d_ff=None, vocab_size=None, seq_len=None, gpu=None, num_gpus=None, precision="bf16",
    optimizer="adamw", zero="auto", checkpointing="auto", flash_attention=True, micro_batch=1, global_batch=None,
    mfu=None, price_usd_per_hour=None, grid_gco2_per_kwh=None, power_fraction=None, pue=1.0,
    allocator_overhead=mem.DEFAULT_ALLOCATOR_OVERHEAD, context_bytes=mem.DEFAULT_CONTEXT_BYTES,
    scaling_efficiency=None, law=None, tp=None, pp=None, cp=None, ep=None, params_active=None,
    n_experts=None, top_k=None, expert_params=None, goodput=None, head_dim=None, hfu=None,
)
_STRINGS = ("model", "family", "gpu", "precision", "optimizer", "zero", "checkpointing", "law")
_POSITIVE = ("params", "tokens", "n_layer", "d_model", "n_head", "n_kv_head", "d_ff", "vocab_size", "seq_len",
             "num_gpus", "micro_batch", "global_batch", "mfu", "price_usd_per_hour", "power_fraction", "pue",
             "scaling_efficiency", "tp", "pp", "cp", "ep", "params_active", "n_experts", "top_k", "goodput",
             "head_dim", "hfu")
_NONNEG = ("grid_gco2_per_kwh", "allocator_overhead", "context_bytes", "expert_params")
_INTEGER = ("n_layer", "d_model", "n_head", "n_kv_head", "d_ff", "vocab_size", "seq_len", "num_gpus",
            "micro_batch", "global_batch", "tp", "pp", "cp", "ep", "n_experts", "top_k", "head_dim")
_AT_MOST_ONE = ("mfu", "hfu", "power_fraction", "scaling_efficiency", "goodput")


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
    layout_overheads: Mapping[str, float] | None = None  # fractions of compute time (see planning.layout)
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
            o = self.layout_overheads
            lines.append("  overheads        " + ", ".join(f"{k} {v:.1%}" for k, v in o.items() if v and math.isfinite(v))
                         or "  overheads        none")
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


# ----------------------------------------------------------------------------------------------- inputs

def _is_array(value: Any) -> bool:
    return isinstance(value, (list, tuple, np.ndarray, pd.Series, pd.Index)) and np.ndim(value) >= 1


def _gather(scenarios: pd.DataFrame | None, kwargs: dict[str, Any]) -> tuple[dict[str, Any], int, bool]:
    unknown = set(kwargs) - set(ARGUMENTS)
    if scenarios is not None:
        if not isinstance(scenarios, pd.DataFrame):
            raise ConfigError(f"estimate: the positional argument must be a DataFrame of scenarios, got {type(scenarios).__name__}")
        unknown |= set(scenarios.columns) - set(ARGUMENTS)
        both = set(scenarios.columns) & set(kwargs)
        if both:
            raise ConfigError(f"estimate: {', '.join(sorted(both))} given both as a column and as an argument")
    if unknown:
        raise ConfigError(f"estimate: unknown argument(s) {', '.join(sorted(map(str, unknown)))}; known: {', '.join(ARGUMENTS)}")
    values = {k: v for k, v in ARGUMENTS.items()}
    values.update(kwargs)
    values["_given"] = set(kwargs) | (set(scenarios.columns) if scenarios is not None else set())
    lengths = {k: len(v) for k, v in kwargs.items() if _is_array(v)}
    if scenarios is not None:
        values.update({c: scenarios[c].to_numpy() for c in scenarios.columns})
        lengths.update({c: len(scenarios) for c in scenarios.columns})
        lengths["(rows)"] = len(scenarios)
    sizes = set(lengths.values())
    if len(sizes) > 1:
        raise ConfigError(f"estimate: array arguments differ in length: {lengths}")
    n = sizes.pop() if sizes else 1
    if n == 0:
        raise ConfigError("estimate: no scenarios (zero rows)")
    return values, n, scenarios is not None or bool(lengths)


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _numeric(name: str, value: Any, n: int) -> np.ndarray:
    if _is_array(value):
        arr = np.asarray(value)
        if arr.dtype.kind in "fiu":
            return arr.astype(float)
        try:  # object columns: None/NaN are missing, the rest must be numbers
            return np.array([np.nan if _missing(x) else _number(name, x) for x in arr.ravel()], dtype=float)
        except (TypeError, ValueError):
            raise ConfigError(f"{name} must be numeric, got {value!r}") from None
    if _missing(value):
        return np.full(n, np.nan)
    return np.full(n, _number(name, value))


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or isinstance(value, (str, bytes)) and not value.strip():
        raise ConfigError(f"{name} must be a number, got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number, got {value!r}") from None


def _check(name: str, arr: np.ndarray, *, positive: bool, integer: bool, at_most_one: bool) -> None:
    finite = ~np.isnan(arr)
    bad = finite & (~np.isfinite(arr) | ((arr <= 0) if positive else (arr < 0)))
    if integer:
        bad |= finite & np.isfinite(arr) & (arr != np.round(arr))
    if at_most_one:
        bad |= finite & (arr > 1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        kind = "a positive" if positive else "a non-negative"
        kind += " integer" if integer else " number"
        if at_most_one:
            kind += " no larger than 1"
        where = f" (row {i})" if len(arr) > 1 else ""
        raise ConfigError(f"{name} must be {kind}, got {float(arr[i]):g}{where}")  # a number, not np.float64(...)


_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


def _flag(name: str, value: Any, default: bool) -> bool:
    """A boolean from a bool, 0/1, or "true"/"false" (also yes/no, on/off; any case); missing -> default."""
    if _missing(value):
        return default
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, str):
        key = value.strip().lower()
        if key in _TRUE or key in _FALSE:
            return key in _TRUE
    elif isinstance(value, (int, float, np.integer, np.floating)) and value in (0, 1):
        return bool(value)
    raise ConfigError(f"{name} must be true or false, got {value!r}")


def _flags(name: str, value: Any, n: int, default: bool) -> np.ndarray:
    if _is_array(value):
        arr = np.asarray(value)
        if arr.dtype == bool:
            return arr
        return np.array([_flag(name, x, default) for x in arr.ravel()], dtype=bool)
    return np.full(n, _flag(name, value, default))


def _categorical(value: Any, n: int, parse) -> tuple[np.ndarray, list[Any]]:
    """(codes, parsed uniques); codes -1 where missing."""
    if _is_array(value):
        codes, uniques = pd.factorize(np.asarray(value, dtype=object), use_na_sentinel=True)
        return codes, [parse(u) for u in uniques]
    if _missing(value):
        return np.full(n, -1), []
    return np.zeros(n, dtype=int), [parse(value)]


def _take(codes: np.ndarray, table: list[Any], missing: Any, dtype=float) -> np.ndarray:
    lut = np.array([*table, missing], dtype=dtype)
    return lut[codes]  # code -1 picks the trailing "missing" entry


# ------------------------------------------------------------------------------------------------- core

def _compute(values: dict[str, Any], n: int, strict: bool = True) -> dict[str, Any]:
    """All formulas over n scenarios. ``strict``: raise where a row asks for a dtype its GPU lacks
    (one scenario); otherwise that row gets NaN times and a note (tables of scenarios)."""
    calibrated = hasattr(values["mfu"], "predict_mfu")
    num = {k: _numeric(k, None if (k == "mfu" and calibrated) else values[k], n)
           for k in ARGUMENTS if k not in _STRINGS and k != "flash_attention"}
    for k in _POSITIVE + _NONNEG:
        if k in num:
            _check(k, num[k], positive=k in _POSITIVE, integer=k in _INTEGER, at_most_one=k in _AT_MOST_ONE)
    params, tokens = num["params"], num["tokens"]
    L, d, heads, kv, ff = num["n_layer"], num["d_model"], num["n_head"], num["n_kv_head"], num["d_ff"]
    vocab, seq = num["vocab_size"], num["seq_len"]
    params_total = np.full(n, np.nan)
    flops_per_token = np.full(n, np.nan)
    swiglu = np.zeros(n, dtype=bool)
    active, n_exp, top_k = num["params_active"], num["n_experts"], num["top_k"]
    head_dim, kv_cache = num["head_dim"].copy(), np.full(n, np.nan)
    expert_params = num["expert_params"].copy()

    # published architectures fill what the caller left out
    m_codes, archs = _categorical(values["model"], n, get_architecture)
    for i, arch in enumerate(archs):
        rows = m_codes == i
        given = params[rows]
        clash = ~np.isnan(given) & (np.abs(given / arch.params - 1) > 0.01)
        if clash.any():  # the preset's shape fixes its parameter count; a different one cannot also hold
            raise ConfigError(f"params = {float(given[clash][0]):g} contradicts model {arch.name!r}, which has "
                              f"{arch.params:.4g} parameters; give the preset or params, not both")
        for arr, v in ((params, arch.params), (tokens, arch.tokens), (L, arch.n_layer), (d, arch.d_model),
                       (heads, arch.n_head), (kv, arch.n_kv_head), (ff, arch.mlp_width_active),
                       (vocab, arch.vocab_size), (seq, arch.seq_len), (active, arch.params_active),
                       (n_exp, arch.n_experts or None), (top_k, arch.top_k or None), (head_dim, arch.head_dim),
                       (kv_cache, arch.kv_cache_dim), (expert_params, arch.expert_params or None)):
            if v is not None:
                arr[rows & np.isnan(arr)] = v
        swiglu[rows] = arch.mlp == "swiglu"

    # a model family and its shape: exact counts from the family's own formulas
    f_codes, families = _categorical(values["family"], n, _family)
    shape_only = (f_codes < 0) & (m_codes < 0) & ~np.isnan(L) & np.isnan(params)
    if shape_only.any():  # a bare shape is a GPT shape
        f_codes = np.where(shape_only, len(families), f_codes)
        families = [*families, _family("gpt")]
    for i, fam in enumerate(families):
        rows = np.flatnonzero(f_codes == i)
        _apply_family(fam, rows, L, d, heads, kv, ff, vocab, seq, params, params_total, flops_per_token)

    if np.isnan(params).any():
        raise ConfigError("params is required: give params, a model preset (model=...), or family= with its shape")
    if np.isnan(tokens).any():
        raise ConfigError("tokens is required (training tokens; a model preset supplies its published count)")
    seq = np.where(np.isnan(seq), DEFAULT_SEQ_LEN, seq)
    # infer only the fields not given (N ≈ 12·L·d², d/L = 128, head dimension 128), keeping given ones
    inferred = {"n_layer": np.isnan(L), "d_model": np.isnan(d), "n_head": np.isnan(heads)}
    shape_inferred = inferred["n_layer"] | inferred["d_model"] | inferred["n_head"]
    both = inferred["n_layer"] & inferred["d_model"]
    if both.any():
        L[both] = np.maximum(1.0, np.round((params[both] / (12.0 * INFER_ASPECT_RATIO**2)) ** (1.0 / 3.0)))
    only_d = inferred["d_model"]  # n_layer known now (given or just inferred)
    if only_d.any():  # a multiple of 128; of 1024 from 1024 on, so that 8 heads divide it (tensor parallelism)
        raw = np.sqrt(params[only_d] / (12.0 * L[only_d]))
        step = np.where(raw >= 1024, 8 * INFER_HEAD_DIM, INFER_HEAD_DIM)
        d[only_d] = np.maximum(INFER_HEAD_DIM, step * np.round(raw / step))
    only_l = np.isnan(L)  # d_model given, n_layer not
    if only_l.any():
        L[only_l] = np.maximum(1.0, np.round(params[only_l] / (12.0 * d[only_l] ** 2)))
    if inferred["n_head"].any():
        h = inferred["n_head"]
        heads[h] = np.maximum(1.0, np.round(d[h] / INFER_HEAD_DIM))
    kv = np.where(np.isnan(kv), heads, kv)
    ff = np.where(np.isnan(ff), 4.0 * d, ff)
    vocab = np.where(np.isnan(vocab), INFER_VOCAB, vocab)
    params_total = np.where(np.isnan(params_total), params, params_total)
    active, expert_params, n_exp, top_k = _experts(active, expert_params, n_exp, top_k, params_total)
    head_dim = np.where(np.isnan(head_dim), d / heads, head_dim)
    attn_dim = heads * head_dim
    flops_per_token = np.where(
        np.isnan(flops_per_token),
        6.0 * active + np.where(inferred["n_layer"] | inferred["d_model"], 0.0, 12.0 * L * seq * attn_dim),
        flops_per_token
    )
    flops = flops_per_token * tokens

    # hardware: per (gpu, precision) pair
    g_codes, gpus = _categorical(values["gpu"], n, get_gpu)
    if (g_codes < 0).any():
        from scalebench.hardware.catalog import list_gpus

        raise ConfigError(f"gpu is required (a catalog name); known GPUs: {', '.join(list_gpus())}")
    p_codes, precs = _categorical(values["precision"], n, mem.parse_precision)
    o_codes, opts = _categorical(values["optimizer"], n, mem.parse_optimizer)
    z_codes, zeros = _categorical(values["zero"], n, mem.parse_zero)
    c_codes, ckpts = _categorical(values["checkpointing"], n, mem.parse_checkpointing)
    for name, codes in (("precision", p_codes), ("optimizer", o_codes), ("zero", z_codes), ("checkpointing", c_codes)):
        if (codes < 0).any():
            raise ConfigError(f"{name} must not be empty")
    peak = np.empty(n)
    no_unit: list[tuple[np.ndarray, str]] = []
    for gi, spec in enumerate(gpus):
        for pi, prec in enumerate(precs):
            rows = (g_codes == gi) & (p_codes == pi)
            if rows.any():
                value = spec.peak_for(prec)
                if value is None:
                    have = [k for k, v in spec.peak_flops.items() if v]
                    msg = f"{spec.name} has no {prec} unit (catalog peaks: {', '.join(have)}); choose another precision"
                    if strict:
                        raise ConfigError(msg)
                    no_unit.append((rows, msg))
                peak[rows] = np.nan if value is None else value
    capacity = _take(g_codes, [s.memory_bytes for s in gpus], np.nan)
    tdp = _take(g_codes, [s.tdp_w for s in gpus], np.nan)
    catalog_price = _take(g_codes, [np.nan if s.price_usd_per_hour is None else s.price_usd_per_hour for s in gpus], np.nan)
    price = np.where(np.isnan(num["price_usd_per_hour"]), catalog_price, num["price_usd_per_hour"])
    gpu_name = _take(g_codes, [s.name for s in gpus], None, dtype=object)
    prec_name = _take(p_codes, precs, None, dtype=object)

    w = _take(p_codes, [mem._STATE[p][0] for p in precs], np.nan)
    gb = _take(p_codes, [mem._STATE[p][1] for p in precs], np.nan)
    o = np.empty(n)
    for pi, prec in enumerate(precs):
        for oi, opt in enumerate(opts):
            o[(p_codes == pi) & (o_codes == oi)] = mem._STATE[prec][2][opt]
    zero = _take(z_codes, zeros, -1, dtype=int)
    act_scale = _take(p_codes, [mem.ACTIVATION_SCALE[p] for p in precs], np.nan)
    flash = _flags("flash_attention", values["flash_attention"], n, default=True)
    f_over, ctx = np.where(np.isnan(num["allocator_overhead"]), mem.DEFAULT_ALLOCATOR_OVERHEAD, num["allocator_overhead"]), \
        np.where(np.isnan(num["context_bytes"]), mem.DEFAULT_CONTEXT_BYTES, num["context_bytes"])
    micro = np.where(np.isnan(num["micro_batch"]), 1.0, num["micro_batch"])

    specs = _take(g_codes, gpus, None, dtype=object)
    gbatch = num["global_batch"]
    # default: 4M tokens' worth (Llama 1/2), or one micro-batch per GPU where a given GPU count needs more
    per_gpu = micro * np.where(np.isnan(num["num_gpus"]), 1.0, num["num_gpus"])
    gbatch = np.where(np.isnan(gbatch), np.maximum(np.round(DEFAULT_GLOBAL_BATCH_TOKENS / seq), per_gpu), gbatch)
    mfu_in, mfu_source, extrapolated, calibration = _mfu(values["mfu"], num["mfu"], num["hfu"], active, prec_name,
                                                         specs, n)
    ckpt_req = _take(c_codes, ckpts, None, dtype=object)
    acts = {mode: mem.activation_bytes(n_layer=L, d_model=d, n_head=heads, seq_len=seq, micro_batch=micro,
                                       vocab_size=vocab, checkpointing=mode, n_kv_head=kv, d_ff=ff,
                                       swiglu=swiglu, flash_attention=flash, scale=act_scale)
            for mode in mem.CHECKPOINTING}
    # the default table and a given hfu are hardware rates: full recomputation keeps the rate and spends
    # a quarter of it on the repeated forward pass (Korthikanti et al. 2022, §5); a given mfu is used as is
    rate = (mfu_source == "default") | (mfu_source == HFU_SOURCE)
    mfu_by_mode = {mode: np.where(rate, mfu_in / timing.RECOMPUTE_FACTOR[mode], mfu_in) for mode in mem.CHECKPOINTING}
    zero_arr = zero.astype(float)
    moe_layers = np.where(n_exp > 0, L, 0.0)
    kv_dim = kv * head_dim
    bw_intra = _take(g_codes, [s.intra_node_bandwidth_bytes_per_s or np.inf for s in gpus], np.nan)
    bw_inter = _take(g_codes, [s.inter_node_bandwidth_bytes_per_s or np.inf for s in gpus], np.nan)
    node = _take(g_codes, [s.node_size for s in gpus], np.nan)
    usable = layout.usable_memory_bytes(capacity, ctx)
    fixed = {k: num[k] for k in ("tp", "pp", "cp", "ep")}
    inp = layout.LayoutInputs(
        params_total=params_total, expert_params=expert_params, weight_bpp=w, grad_bpp=gb, optimizer_bpp=o,
        zero=zero_arr, activations=acts, usable_bytes=usable,
        allocator_overhead=f_over, flops_per_step=flops_per_token * gbatch * seq, peak=peak,
        mfu_by_mode=mfu_by_mode, n_layer=L, moe_layers=moe_layers, d_model=d, kv_dim=kv_dim, top_k=top_k,
        seq_len=seq, micro_batch=micro, global_batch=gbatch, n_head=heads, n_experts=n_exp, node_size=node,
        bw_intra=bw_intra, bw_inter=bw_inter, num_gpus=num["num_gpus"], fixed=fixed, modes=ckpt_req)
    grid = layout.candidates(max_tp=int(np.nanmax(np.where(np.isnan(fixed["tp"]), np.minimum(node, heads), fixed["tp"]))),
                             max_pp=int(np.nanmax(L)), max_cp=int(np.nanmax(seq) // layout.MIN_CP_CHUNK) or 1,
                             max_ep=int(np.nanmax(n_exp)) or 1, fixed=fixed)
    best = layout.search(inp, grid)
    num_gpus, chosen, fits = best["num_gpus"], best["mode"], best["fits"]
    zero_arr = np.where(np.isnan(best["zero"]), np.where(zero_arr < 0, 3, zero_arr), best["zero"])
    zero = zero_arr.astype(int)
    no_layout = np.array([m is None for m in chosen])
    chosen = np.where(no_layout, np.where(ckpt_req == "auto", "full", ckpt_req), chosen)
    memory = _breakdown(best, params_total, expert_params, w, gb, o, zero_arr, f_over, num_gpus)

    # time, cost, energy: time = model FLOPs / (GPUs · peak · mfu), mfu the effective (reported) value
    eff = np.where(np.isnan(num["scaling_efficiency"]), 1.0, num["scaling_efficiency"])
    mfu_mode = np.select([chosen == m for m in mem.CHECKPOINTING], [mfu_by_mode[m] for m in mem.CHECKPOINTING])
    factor = np.where(np.isnan(best["factor"]), 1.0, best["factor"])
    mfu = mfu_mode * eff / factor
    goodput = np.where(np.isnan(num["goodput"]), timing.DEFAULT_GOODPUT, num["goodput"])
    wall = timing.wall_clock_s(flops=flops, num_gpus=num_gpus, peak_flops=peak, mfu=mfu, scaling_efficiency=goodput)
    hfu = mfu * np.select([chosen == m for m in mem.CHECKPOINTING], [timing.RECOMPUTE_FACTOR[m] for m in mem.CHECKPOINTING])
    gpu_hours = num_gpus * wall / 3600.0
    cost = gpu_hours * price
    power_fraction = num["power_fraction"]
    if calibration is not None and calibration.power_fraction is not None:
        power_fraction = np.where(np.isnan(power_fraction), calibration.power_fraction, power_fraction)
    power_fraction = np.where(np.isnan(power_fraction), 1.0, power_fraction)
    pue = np.where(np.isnan(num["pue"]), 1.0, num["pue"])
    energy = timing.energy_kwh(num_gpus=num_gpus, power_w=tdp * power_fraction, wall_clock_s=wall, pue=pue)
    co2 = energy * num["grid_gco2_per_kwh"] / 1000.0
    lo_ratio, hi_ratio = _mfu_range(values["mfu"], mfu_source, specs, prec_name, active, calibration, n)

    loss, lo, hi, law_name = _loss(values["law"], params, tokens, n)

    out = {
        "model": _take(m_codes, [a.name for a in archs], None, dtype=object),
        "gpu": gpu_name, "num_gpus": num_gpus, "min_gpus": best["min_gpus"], "fits": fits,
        "params": params, "params_total": params_total, "params_active": active, "expert_params": expert_params,
        "tokens": tokens, "flops": flops,
        "precision": prec_name, "optimizer": _take(o_codes, opts, None, dtype=object), "zero": zero,
        "checkpointing": chosen, "seq_len": seq, "micro_batch": micro, "global_batch": gbatch,
        "n_layer": L, "d_model": d, "n_head": heads, "shape_inferred": shape_inferred,
        "inferred_fields": _inferred_fields(inferred, n),
        **{f"memory_{k}_bytes": memory[k] for k in MEMORY_KEYS},
        "gpu_memory_bytes": capacity, "usable_memory_bytes": usable,
        **{k: best[k] for k in ("tp", "pp", "cp", "ep", "dp")}, "micro_batches": best["m"],
        **{f"{k}_fraction": best[k] for k in ("bubble", "tp_comm", "ep_comm", "pp_comm", "cp_comm", "dp_comm",
                                               "exposed", "loss")},
        "layout_factor": factor,
        "mfu": mfu, "hfu": hfu, "mfu_source": mfu_source, "mfu_low": mfu * lo_ratio, "mfu_high": mfu * hi_ratio,
        "scaling_efficiency": eff, "goodput": goodput, "peak_flops": peak,
        "wall_clock_s": wall, "gpu_hours": gpu_hours, "price_usd_per_hour": price, "cost_usd": cost,
        "energy_kwh": energy, "co2_kg": co2,
        **{f"{k}_low": v / hi_ratio for k, v in (("wall_clock_s", wall), ("gpu_hours", gpu_hours),
                                                  ("cost_usd", cost), ("energy_kwh", energy))},
        **{f"{k}_high": v / lo_ratio for k, v in (("wall_clock_s", wall), ("gpu_hours", gpu_hours),
                                                   ("cost_usd", cost), ("energy_kwh", energy))},
        "price_source": np.where(np.isnan(num["price_usd_per_hour"]),
                                 _take(g_codes, [s.price_source or None for s in gpus], None, dtype=object), "given"),
        "predicted_loss": loss, "predicted_loss_lo": lo, "predicted_loss_hi": hi, "law": law_name,
        "defaults": _defaults(values, num, n),
    }
    notes = _notes(out, extrapolated, calibration, n, no_unit, no_layout, specs, strict, values)
    text, lists = np.full(n, "", dtype=object), np.empty(n, dtype=object)
    lists[:] = [()] * n
    for i, msgs in notes.items():
        text[i], lists[i] = "; ".join(msgs), msgs
    out["notes"] = text  # one string per row, for tables; split nothing back out of it
    out["note_list"] = lists  # the messages themselves, a tuple per row
    return out


def _breakdown(best, P, E, w, g, o, zero, f, num_gpus) -> dict[str, np.ndarray]:
    """Weights, gradients, optimizer, activations and overhead per GPU for the chosen layouts."""
    tp, pp, cp, ep, dp = (best[k] for k in ("tp", "pp", "cp", "ep", "dp"))
    whole = ((P - E) + E / ep) / (tp * pp)
    shard = P / (tp * pp * cp * dp)
    parts = {"weights": w * np.where(zero >= 3, shard, whole), "gradients": g * np.where(zero >= 2, shard, whole),
             "optimizer": o * np.where(zero >= 1, shard, whole)}
    unknown = np.isnan(num_gpus)
    out = {k: np.where(unknown, np.nan, v) for k, v in parts.items()}
    out["activations"] = best["act"]
    out["overhead"] = f * (out["weights"] + out["gradients"] + out["optimizer"] + out["activations"])
    out["total"] = out["weights"] + out["gradients"] + out["optimizer"] + out["activations"] + out["overhead"]
    return out


def _defaults(values: dict[str, Any], num: dict[str, np.ndarray], n: int) -> np.ndarray:
    """Per row, the inputs that took a default (the output says so)."""
    keys = ("num_gpus", "tp", "pp", "cp", "ep", "mfu", "global_batch", "seq_len", "price_usd_per_hour",
            "power_fraction", "pue", "scaling_efficiency", "goodput", "micro_batch")
    missing = {k: (np.isnan(num[k]) if k in num else np.full(n, _missing(values[k])))
               for k in keys if not (k == "mfu" and hasattr(values["mfu"], "predict_mfu"))}
    if "mfu" in missing:  # a given hfu sets the utilisation too
        missing["mfu"] &= np.isnan(num["hfu"])
    for k in ("precision", "zero", "checkpointing", "optimizer", "flash_attention"):
        missing[k] = np.full(n, k not in values.get("_given", ()))
    names = list(missing)
    code = sum(missing[k].astype(np.int64) << i for i, k in enumerate(names))  # one bit per input
    uniq, inv = np.unique(code, return_inverse=True)
    table = [tuple(k for i, k in enumerate(names) if int(c) >> i & 1) for c in uniq]
    out = np.empty(n, dtype=object)
    out[:] = [table[i] for i in inv.ravel()]
    return out


def _mfu_range(raw, source, specs, prec, active, calibration, n) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) multipliers of the MFU: the evidence's spread (default), the calibration's residual
    spread (calibrated), or none (given)."""
    lo, hi = np.ones(n), np.ones(n)
    if calibration is not None:
        a, b = calibration.residual_range()
        return np.full(n, a), np.full(n, b)
    rows = np.flatnonzero(source == "default")
    if rows.size:
        ratios = evidence.loo_ratio_range()
        lo[rows], hi[rows] = ratios
    return lo, hi


def _experts(active, expert_params, n_exp, top_k, params_total):
    """Mixture of experts: active and routed-expert parameters. Dense rows: active = all, no experts.

    Without ``expert_params``, E follows from N_total − N_active = E · (1 − top_k / n_experts)."""
    moe = ~np.isnan(n_exp) & (n_exp > 0)
    if (moe & (np.isnan(top_k) | np.isnan(active))).any():
        raise ConfigError("a mixture of experts (n_experts) needs top_k and params_active")
    if (moe & (top_k > n_exp)).any():
        raise ConfigError("top_k must be at most n_experts")
    if (~np.isnan(active) & (active > params_total)).any():
        raise ConfigError("params_active must be at most params (the total)")
    active = np.where(np.isnan(active), params_total, active)
    with np.errstate(divide="ignore", invalid="ignore"):
        derived = (params_total - active) / (1.0 - top_k / n_exp)
    expert_params = np.where(moe, np.where(np.isnan(expert_params), derived, expert_params), 0.0)
    return active, expert_params, np.where(moe, n_exp, 0.0), np.where(moe, top_k, 0.0)


def _inferred_fields(inferred: dict[str, np.ndarray], n: int) -> np.ndarray:
    """Per row, the tuple of shape fields that were inferred rather than given."""
    names = list(inferred)
    code = sum(inferred[k].astype(int) << i for i, k in enumerate(names))
    table = np.empty(2 ** len(names), dtype=object)
    for c in range(table.size):
        table[c] = tuple(k for i, k in enumerate(names) if c >> i & 1)
    return table[np.broadcast_to(code, (n,))]


def _family(name: Any):
    from scalebench.families import get_family

    return get_family(str(name))


def _apply_family(fam, rows, L, d, heads, kv, ff, vocab, seq, params, params_total, flops_per_token) -> None:
    if rows.size == 0:
        return
    for k, arr in (("n_layer", L), ("d_model", d), ("n_head", heads)):
        if np.isnan(arr[rows]).any():
            raise ConfigError(f"family={fam.name!r} needs {k} (with n_layer, d_model, n_head)")
    cols = {"n_layer": L, "d_model": d, "n_head": heads, "vocab_size": vocab, "seq_len": seq, "d_ff": ff}
    frame = pd.DataFrame({k: v[rows] for k, v in cols.items()})
    for key, group in frame.groupby(list(cols), dropna=False, sort=False).groups.items():
        fields = {k: int(v) for k, v in zip(cols, key, strict=True) if not (isinstance(v, float) and math.isnan(v))}
        shape = fam.make_shape(**fields)
        idx = rows[np.asarray(group)]
        if hasattr(shape, "vocab_size"):
            vocab[idx], seq[idx] = shape.vocab_size, shape.seq_len
        if getattr(shape, "ffn", None):
            ff[idx] = shape.ffn
        keep = idx[np.isnan(params[idx])]
        params[keep] = fam.params(shape)
        params_total[keep] = fam.params_total(shape)
        flops_per_token[keep] = fam.flops_per_token(shape)
    del kv  # families here use full multi-head attention


def _mfu(raw: Any, given: np.ndarray, hfu: np.ndarray, active: np.ndarray, prec: np.ndarray, specs: np.ndarray,
         n: int):
    """(utilisation, source, extrapolated, calibration): a given mfu, a given hfu (a hardware rate, converted
    per recomputation by the caller), calibrated, or the published-runs default (also a hardware rate)."""
    extrapolated = np.zeros(n, dtype=bool)
    has_hfu = ~np.isnan(hfu)
    if (has_hfu & ~np.isnan(given)).any() or (has_hfu.any() and hasattr(raw, "predict_mfu")):
        raise ConfigError("give mfu (model FLOPs utilisation) or hfu (hardware FLOPs utilisation, recomputation "
                          "counted), not both; a calibration is an mfu")
    if has_hfu.any():
        source = np.where(has_hfu, HFU_SOURCE, np.where(np.isnan(given), "default", "given")).astype(object)
        base, _, _, _ = _mfu(raw, given, np.full(n, np.nan), active, prec, specs, n)
        return np.where(has_hfu, hfu, base), source, extrapolated, None
    if hasattr(raw, "predict_mfu"):
        mfu, extrapolated = raw.predict_mfu(active)
        source = np.where(extrapolated, "calibrated (extrapolated, held at the sweep's edge)", "calibrated")
        return np.asarray(mfu, dtype=float), source.astype(object), extrapolated, raw
    source = np.where(np.isnan(given), "default", "given").astype(object)
    default = np.full(n, np.nan)
    rows = np.flatnonzero(np.isnan(given))
    if rows.size:
        default[rows] = evidence.default_mfu_array([specs[i].generation for i in rows], prec[rows], active[rows])
    return np.where(np.isnan(given), default, given), source, extrapolated, None


def _resolve_law(law: Any):
    if law is None:
        return None, None
    if isinstance(law, str):
        from scalebench.laws.presets import get_preset

        return get_preset(law), law
    if not hasattr(law, "predict"):
        raise ConfigError(f"law must be a preset name or a FitResult, got {type(law).__name__}")
    source = str(getattr(law, "source", "") or "")
    return law, source.removeprefix("preset:") or getattr(law, "law", None) or type(law).__name__


def _loss(law_arg: Any, params: np.ndarray, tokens: np.ndarray, n: int):
    nan = np.full(n, np.nan)
    if _is_array(law_arg):
        codes, laws = _categorical(law_arg, n, _resolve_law)
        loss, lo, hi, names = nan.copy(), nan.copy(), nan.copy(), np.full(n, None, dtype=object)
        for i, (law, name) in enumerate(laws):
            rows = codes == i
            loss[rows], lo[rows], hi[rows], _ = _loss(law, params[rows], tokens[rows], int(rows.sum()))
            names[rows] = name
        return loss, lo, hi, names
    law, name = _resolve_law(law_arg)
    if law is None:
        return nan, nan, nan, np.full(n, None, dtype=object)
    loss = np.asarray(law.predict(params=params, tokens=tokens), dtype=float).reshape(n)
    lo, hi = nan.copy(), nan.copy()
    interval = getattr(law, "predict_interval", None)
    if interval is not None:
        try:
            band = interval(params=params, tokens=tokens)
        except FitError:  # a fit without bootstrap has no interval; the point estimate stands
            band = None
        if band is not None:
            lo, hi = _interval_bounds(band, n)
    return loss, lo, hi, np.full(n, name, dtype=object)


def _interval_bounds(band: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(band, pd.DataFrame):
        cols = [c for c in band.columns if c in ("lo", "low", "lower")], [c for c in band.columns if c in ("hi", "high", "upper")]
        if cols[0] and cols[1]:
            return band[cols[0][0]].to_numpy(float), band[cols[1][0]].to_numpy(float)
        return band.iloc[:, 0].to_numpy(float), band.iloc[:, -1].to_numpy(float)
    if isinstance(band, Mapping):
        return np.asarray(band.get("lo", band.get("lower")), float).reshape(n), np.asarray(band.get("hi", band.get("upper")), float).reshape(n)
    lo, hi = band
    return np.asarray(lo, float).reshape(n), np.asarray(hi, float).reshape(n)


def _notes(out: dict[str, Any], extrapolated: np.ndarray, calibration: Any, n: int,
           no_unit: list[tuple[np.ndarray, str]], no_layout: np.ndarray, specs: np.ndarray, strict: bool,
           values: dict[str, Any]) -> dict[int, tuple[str, ...]]:
    """Row -> its messages, for rows with something to say (a message may itself contain "; ")."""
    notes: dict[int, list[str]] = defaultdict(list)  # only rows with something to say
    for rows, msg in no_unit:
        for i in np.flatnonzero(rows):
            notes[i].append(msg)
    gib = 2.0**30
    asked = _numeric("num_gpus", values["num_gpus"], n)  # once: per row it would copy the whole column
    given_n = ~np.isnan(asked)
    never = np.isnan(out["num_gpus"]) & ~given_n
    for i in np.flatnonzero(never):
        fix = "lower micro_batch or seq_len"
        if out["checkpointing"][i] != "full":
            fix += ", or use checkpointing='full'"
        if int(out["zero"][i]) < 3:
            fix += ", or shard more (zero=3)"
        notes[i].append(
            f"does not fit on any number of {out['gpu'][i]} ({out['usable_memory_bytes'][i] / gib:.0f} GiB usable "
            f"each) with any layout the global batch of {int(out['global_batch'][i])} sequences allows "
            f"(tensor parallelism up to {int(specs[i].node_size)} per node, pipeline and context parallelism): "
            f"activations need {out['memory_activations_bytes'][i] / gib:.1f} GiB per GPU; {fix}")
    for i in np.flatnonzero(no_layout & given_n):
        notes[i].append(
            f"no layout uses {int(asked[i])} GPUs: the global batch of "
            f"{int(out['global_batch'][i])} sequences x micro-batch {int(out['micro_batch'][i])} feeds at most "
            f"{int(out['global_batch'][i] // out['micro_batch'][i])} data-parallel ranks, and tp x pp x cp must "
            "divide the GPU count; more GPUs do not help this run (raise global_batch or lower num_gpus)")
    short = np.flatnonzero(~out["fits"] & ~never & ~no_layout)
    need, room, least = (out[k][short].tolist() for k in ("memory_total_bytes", "usable_memory_bytes", "min_gpus"))
    for j, (i, text) in enumerate(zip(short.tolist(), _layout_texts(out, short), strict=True)):
        notes[i].append(
            f"does not fit: {need[j] / gib:.1f} GiB per GPU needed at the best layout {text}, "
            f"{room[j] / gib:.0f} GiB usable; "
            + (f"use at least {int(least[j])} GPUs" if math.isfinite(least[j]) else "no GPU count fits"))
    for i in np.flatnonzero(np.isnan(out["price_usd_per_hour"])):
        notes[i].append(f"no catalog price for {out['gpu'][i]}: pass price_usd_per_hour")
    for i in np.flatnonzero(np.isnan(out["energy_kwh"]) & np.isfinite(out["wall_clock_s"])):
        notes[i].append(f"no published power for {out['gpu'][i]}: energy unknown")
    lossy = np.flatnonzero(out["fits"] & (out["loss_fraction"] > layout.LOSS_ALLOWANCE))
    # the commonest note in tables: columns as Python lists first (numpy scalar indexing per row is slow)
    cols = {k: out[k][lossy].tolist() for k in ("loss_fraction", "bubble_fraction", "tp_comm_fraction",
                                                "ep_comm_fraction", "exposed_fraction", "layout_factor")}
    for j, (i, text) in enumerate(zip(lossy.tolist(), _layout_texts(out, lossy), strict=True)):
        c = {k: v[j] for k, v in cols.items()}
        notes[i].append(
            f"layout {text} loses {c['loss_fraction']:.0%} of compute time to pipeline bubbles and exposed "
            f"communication (bubble {c['bubble_fraction']:.0%}, tensor {c['tp_comm_fraction']:.0%}, expert "
            f"{c['ep_comm_fraction']:.0%}, exposed data/context {c['exposed_fraction']:.0%}), more than the "
            f"{layout.LOSS_ALLOWANCE:.0%} a published MFU already contains: time x {c['layout_factor']:.2f}")
    for i in np.flatnonzero(out["fits"] & (out["memory_total_bytes"] > MEMORY_WARN_FRACTION * out["usable_memory_bytes"])):
        notes[i].append(f"memory at {out['memory_total_bytes'][i] / out['usable_memory_bytes'][i]:.0%} of usable "
                        f"({MEMORY_WARN_FRACTION:.0%} is the safe limit): allocator spikes may run out of memory")
    for i in np.flatnonzero(out["wall_clock_s"] > LONG_RUN_DAYS * 86400.0):
        notes[i].append(f"{out['wall_clock_s'][i] / 86400:,.0f} days on {int(out['num_gpus'][i])} GPUs is past the "
                        f"{LONG_RUN_DAYS} days a run can reasonably last")
    # a given, hfu-given or calibrated utilisation is a throughput: time spent training only
    throughput = out["mfu_source"] != "default"
    for i in np.flatnonzero(throughput & np.isnan(_numeric("goodput", values["goodput"], n))):
        notes[i].append(timing.GOODPUT_NOTE)
    unknown_bw = np.array([s.inter_node_bandwidth_bytes_per_s is None for s in specs])
    for i in np.flatnonzero(unknown_bw & (out["num_gpus"] > np.array([s.node_size for s in specs]))):
        notes[i].append(f"{out['gpu'][i]} has no published inter-node bandwidth: communication across nodes is not costed")
    if calibration is not None:
        for i in np.flatnonzero(extrapolated):
            notes[i].append(f"MFU extrapolated beyond the calibration sweep ({calibration.params_min:.3g}-"
                            f"{calibration.params_max:.3g} params): held at its value {calibration.extrapolation_limit:g}x "
                            "beyond the sweep's edge")
        if calibration.gpu:
            for i in np.flatnonzero(out["gpu"] != calibration.gpu):
                notes[i].append(f"MFU calibrated on {calibration.gpu}, applied to {out['gpu'][i]}")
    return {i: tuple(lines) for i, lines in notes.items()}


def _layout_texts(out: dict[str, Any], rows: np.ndarray) -> list[str]:
    """"tp8 pp2 cp1 ep1 dp64" for each row in ``rows`` (sizes that are not finite left out)."""
    keys = ("tp", "pp", "cp", "ep", "dp")
    columns = [[f"{k}{int(v)}" if math.isfinite(v) else "" for v in out[k][rows].tolist()] for k in keys]
    return [" ".join(p for p in parts if p) or "(none)" for parts in zip(*columns, strict=True)]


# ---------------------------------------------------------------------------------------------- public

def estimate(scenarios: pd.DataFrame | None = None, /, *, mode: str = "training",
             **kwargs: Any) -> Estimate | pd.DataFrame:
    """Estimate the FLOPs, memory, layout, GPUs, time, cost, energy (and loss) of training runs — or, with
    ``mode="inference"``, serving (:func:`~scalebench.planning.inference.estimate_inference`).

    One scenario: keyword arguments, returns an :class:`Estimate`. Many: a DataFrame whose columns are the
    argument names, or array-valued arguments (scalars broadcast), returns a DataFrame with one row each.

    Model: ``params`` and ``tokens``; or ``model=`` a preset (``"llama3-405b"``, ``"deepseek-v3"``, ...); or
    ``family="gpt"`` with ``n_layer``, ``d_model``, ``n_head`` (``vocab_size``, ``seq_len``, ``d_ff``).
    Mixture of experts: ``params`` (all weights: memory), ``params_active`` (FLOPs), ``n_experts``,
    ``top_k`` (``expert_params`` when known; else derived from the three). Hardware: ``gpu`` (catalog
    name, required), ``num_gpus`` (default: the least that fits), ``price_usd_per_hour`` (default:
    catalog). Layout: ``tp``, ``pp``, ``cp``, ``ep`` (each searched when not given; see
    :mod:`~scalebench.planning.layout`), ``zero`` (0-3, "fsdp" = 3, or "auto": searched, the default).
    Training: ``precision`` (fp32, tf32, bf16, fp16, fp8; default bf16), ``optimizer`` (adamw, sgd),
    ``checkpointing`` (none, selective, full, or "auto"), ``flash_attention`` (default True),
    ``seq_len``, ``micro_batch`` (default 1), ``global_batch`` (sequences; default 4M tokens' worth, at least
    one micro-batch per GPU).
    Efficiency: ``mfu`` (PaLM's model FLOPs utilisation, or a
    :class:`~scalebench.planning.calibrate.Calibration`; default from published at-scale runs,
    :mod:`~scalebench.planning.evidence`), or ``hfu`` (hardware FLOPs utilisation, recomputation counted,
    as Megatron-style TFLOP/s figures are: converted to MFU for the recomputation used, 3/4 of it under
    full recomputation; give mfu or hfu, not both), ``scaling_efficiency`` (a multiplier you believe in;
    default 1: the default MFU is already an at-scale figure), ``goodput`` (the share of reserved GPU time
    spent training — restarts, failures and repeated steps excluded; default 1, see
    :mod:`~scalebench.planning.timing`: the default MFU comes from published GPU-hours that already contain
    their downtime, while a given mfu/hfu is a throughput and gets a note asking for it). Energy: ``power_fraction`` (of TDP, default 1 or
    calibrated), ``pue`` (1), ``grid_gco2_per_kwh``. Memory: ``allocator_overhead`` (0.10 of the
    allocations), ``context_bytes`` (the per-GPU reserve, 1 GiB: usable memory = card memory - reserve).
    Loss: ``law`` (a preset name such as ``"chinchilla"`` or a FitResult).

    Every estimate carries ``*_range`` values (the default MFU's evidence spread, or the calibration's
    residual spread), ``hfu`` beside ``mfu``, the ``layout`` and the list of ``defaults`` it used. A single
    estimate also says when its run is longer than 180 days or fills more than 95% of usable memory
    (with the next larger layout that does better) and when twice the GPUs would not be faster.
    """
    if mode == "inference":
        from scalebench.planning.inference import estimate_inference

        if scenarios is not None:
            raise ConfigError("estimate(mode='inference') takes keyword arguments, not a DataFrame")
        return estimate_inference(**kwargs)
    if mode != "training":
        raise ConfigError(f"mode must be 'training' or 'inference', got {mode!r}")
    return _estimate(scenarios, kwargs, advice=True)


def _estimate(scenarios: pd.DataFrame | None, kwargs: dict[str, Any], *, advice: bool) -> Estimate | pd.DataFrame:
    values, n, vectorised = _gather(scenarios, kwargs)
    out = _compute(values, n, strict=not vectorised)
    if vectorised:
        frame = pd.DataFrame({k: pd.Series(v, dtype=object) if v.dtype == object else v for k, v in out.items()})
        if scenarios is not None:
            frame.index = scenarios.index
        return frame
    result = _to_estimate(out)
    return _with_advice(result, kwargs) if advice else result


def _with_advice(e: Estimate, kwargs: dict[str, Any]) -> Estimate:
    """Add the next larger layout to a long or memory-tight run, and say when more GPUs stop helping."""
    if e.num_gpus is None or not e.fits or not math.isfinite(e.wall_clock_s):
        return e
    extra: list[str] = []
    fixed = {k: v for k, v in kwargs.items() if k != "num_gpus"}
    node = get_gpu(e.gpu).node_size
    tight = e.memory_per_gpu.total > MEMORY_WARN_FRACTION * (e.usable_memory_bytes or math.inf)
    long_run = e.wall_clock_s > LONG_RUN_DAYS * 86400.0
    if long_run or tight:
        want = e.num_gpus * max(2.0, e.wall_clock_s / (LONG_RUN_DAYS * 86400.0)) if long_run else 2 * e.num_gpus
        count = node * 2 ** math.ceil(math.log2(max(1.0, want / node)))
        for _ in range(6):  # the batch may not feed that many ranks: step down towards the current count
            bigger = _estimate(None, {**fixed, "num_gpus": int(count)}, advice=False)
            if bigger.fits or count <= e.num_gpus * 2:
                break
            count //= 2
        if bigger.fits and bigger.layout:
            lay = " ".join(f"{k}{v}" for k, v in bigger.layout.items())
            share = bigger.memory_per_gpu.total / bigger.usable_memory_bytes
            extra.append(f"next larger layout: {bigger.num_gpus} GPUs ({lay}) take {_duration(bigger.wall_clock_s)} "
                         f"at {share:.0%} of usable memory")
    if kwargs.get("num_gpus") is not None:
        double = _estimate(None, {**kwargs, "num_gpus": 2 * e.num_gpus}, advice=False)
        if not double.fits or not double.wall_clock_s < 0.95 * e.wall_clock_s:
            why = "no layout of them fits the global batch" if not double.fits else \
                f"the best layout takes {_duration(double.wall_clock_s)}"
            extra.append(f"more GPUs stop helping here: {2 * e.num_gpus} GPUs are not faster ({why}); "
                         "a larger global batch or a shorter pipeline would let them")
    if not extra:
        return e
    return replace(e, notes=(*e.notes, *extra))


def _int_or_none(x: float) -> int | None:
    return None if not math.isfinite(x) else int(x)


def _opt(x: float) -> float | None:
    return None if not math.isfinite(x) else float(x)


def _to_estimate(out: dict[str, Any]) -> Estimate:
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
                                                   "exposed", "loss")},
        usable_memory_bytes=int(r["usable_memory_bytes"]),
        mfu_range=(float(r["mfu_low"]), float(r["mfu_high"])),
        **{f"{k}_range": (float(r[f"{k}_low"]), float(r[f"{k}_high"]))
           for k in ("wall_clock_s", "gpu_hours", "cost_usd", "energy_kwh")},
        defaults=tuple(r["defaults"]), price_source=r["price_source"],
    )
