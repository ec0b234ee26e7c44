"""What the advisor may propose and what it costs: the sweep's context, candidate cells, a cost model.

A *cell* is one run a sweep spec can express: a size (a target parameter count, turned into a shape by the
family's own rule, ``Family.shape_for_params``) crossed with one data budget of one of the three kinds a
sweep knows (``tokens``, ``tokens_per_param``, ``flops``). Its token count is rounded to whole batches as
the planner does (``sweep/planner.py``). A cell is admissible when it trains for at least ``min_steps``
batches, repeats the corpus at most ``max_epochs`` times, keeps its tokens per parameter within
``tokens_per_param_range`` (where the law is trusted: a fitted form says nothing reliable about runs far
more or less trained than any it was fitted on, and a design criterion would otherwise exploit exactly
those), and its training memory at micro-batch 1 (the
OOM policy's floor) fits the device: the family's own ``memory_model`` when it has one, else model states and
activations from ``scalebench.memory`` (ZeRO table, Korthikanti et al. 2022) for shapes with transformer
fields, model states alone otherwise.

Costs. From a sweep folder the cost of a run is its FLOPs over the FLOP/s the sweep *measured*: a power law
log(FLOP/s) = a + b·log N fitted to the done runs' ``tokens_per_s · flops_per_token``, held at the measured
edge outside the measured sizes (no extrapolated speed-up: a larger model is never assumed cheaper per FLOP
than the largest one measured). Hours are named for the device the runs measured: GPU-hours multiply the
wall time by the GPUs of a run (``world_size``, 1 when absent); CPU-hours (core-hours) by the threads of a
run (``devices.threads_per_worker`` times its ranks). Dollars multiply hours by the price per device-hour (the
catalog's for the sweep's GPU, or given). Without a sweep (a CSV or DataFrame) the cost is the FLOPs
themselves, or FLOPs over (peak · MFU) of a named GPU for GPU-hours and dollars.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from scalebench.errors import ConfigError

BUDGET_KINDS = ("tokens", "tokens_per_param", "flops")
COST_KINDS = {"flops": "FLOPs", "hours": "device-hours", "usd": "USD"}
GRID_POINTS = 14  # candidate values per axis


def sig3(x: float) -> float:
    """``x`` to 3 significant digits: the planner labels runs with 3 digits, so values written to a spec
    are rounded first and the label, the shape and the budget all come from the same number."""
    return float(f"{x:.3g}")


@dataclass(frozen=True, kw_only=True)
class CostModel:
    """Cost of a run from its size and FLOPs, in ``unit`` (FLOPs, GPU-hours, CPU-hours or USD)."""

    kind: str  # flops | hours | usd
    device: str = "GPU"  # what the hours are hours of: GPU, or CPU (core-hours)
    log_speed: tuple[float, float] | None = None  # (a, b): log FLOP/s = a + b·log N, within the range below
    log_params_range: tuple[float, float] = (-math.inf, math.inf)
    devices_per_run: int = 1  # GPUs of a run, or its CPU threads
    price_usd_per_hour: float | None = None
    source: str = "FLOPs"

    def __post_init__(self) -> None:
        if self.device not in ("GPU", "CPU"):
            raise ConfigError(f"cost device must be GPU or CPU, not {self.device!r}")
        if self.kind not in COST_KINDS:
            raise ConfigError(f"cost kind must be one of {', '.join(COST_KINDS)}, not {self.kind!r}")
        if self.kind != "flops" and self.log_speed is None:
            raise ConfigError("costs in hours or dollars need a throughput (a sweep folder, or gpu= and mfu=)")
        if self.kind == "usd" and not (self.price_usd_per_hour and self.price_usd_per_hour > 0):
            raise ConfigError(f"costs in USD need a price per {self.device}-hour: price_usd_per_hour=... (--price-usd-per-hour;"
                              " the catalog prices GPUs only, and this one is not in it or has no price)")

    @property
    def unit(self) -> str:
        return f"{self.device}-hours" if self.kind == "hours" else COST_KINDS[self.kind]

    def flops_per_s(self, params: np.ndarray) -> np.ndarray:
        a, b = self.log_speed
        lo, hi = self.log_params_range
        return np.exp(a + b * np.clip(np.log(np.asarray(params, dtype=float)), lo, hi))

    def cost(self, params: np.ndarray, flops: np.ndarray) -> np.ndarray:
        flops = np.asarray(flops, dtype=float)
        if self.kind == "flops":
            return flops
        hours = flops / self.flops_per_s(params) / 3600.0 * self.devices_per_run
        return hours if self.kind == "hours" else hours * self.price_usd_per_hour


def measured_cost_model(done: pd.DataFrame, kind: str, *, device: str = "GPU", devices_per_run: int = 1,
                        price_usd_per_hour: float | None = None) -> CostModel:
    """Cost model from a sweep's done runs (their measured tokens/s); a FLOP budget costs FLOPs. ``device``
    and ``devices_per_run``: what the runs ran on (``sweep_devices``)."""
    if kind == "flops":
        return CostModel(kind="flops")
    speed = pd.to_numeric(done.get("tokens_per_s"), errors="coerce") * pd.to_numeric(
        done.get("flops_per_token"), errors="coerce")
    ok = np.isfinite(speed.to_numpy(dtype=float)) & (speed.to_numpy(dtype=float) > 0)
    if not ok.any():
        raise ConfigError("the sweep has no measured throughput (tokens_per_s) in its done runs; "
                          "give the budget in FLOPs (budget_flops=...)")
    log_n = np.log(done["params"].to_numpy(dtype=float)[ok])
    log_s = np.log(speed.to_numpy(dtype=float)[ok])
    if np.ptp(log_n) > 0:
        b, a = np.polyfit(log_n, log_s, 1)
    else:
        a, b = float(np.median(log_s)), 0.0
    per_run = f"{devices_per_run} {'GPU' if device == 'GPU' else 'thread'}{'s' if devices_per_run > 1 else ''} a run"
    return CostModel(kind=kind, device=device, log_speed=(float(a), float(b)),
                     log_params_range=(float(log_n.min()), float(log_n.max())), devices_per_run=devices_per_run,
                     price_usd_per_hour=price_usd_per_hour,
                     source=f"measured throughput of {int(ok.sum())} done runs on {device}, {per_run}")


def sweep_devices(done: pd.DataFrame, spec: Mapping[str, Any], env: Mapping[str, Any]) -> tuple[str, int, float | None]:
    """(GPU or CPU, devices per run, catalog price per device-hour or None) of a sweep's done runs."""
    on_gpu = "device" in done and (done["device"].dropna().astype(str) != "cpu").any()
    ranks = max(1, int((spec.get("parallel") or {}).get("ranks", 1)))
    if not on_gpu:
        threads = max(1, int((spec.get("devices") or {}).get("threads_per_worker", 1)))
        return "CPU", threads * ranks, None
    gpus = pd.to_numeric(done.get("world_size", pd.Series(dtype=float)), errors="coerce").dropna()
    return "GPU", int(gpus.max()) if len(gpus) else ranks, _catalog_price(env)


def _catalog_price(env: Mapping[str, Any]) -> float | None:
    from scalebench.hardware.catalog import match_device_name

    for dev in env.get("devices") or []:
        spec = match_device_name(str(dev.get("name", "")))
        if spec is not None and spec.price_usd_per_hour:
            return float(spec.price_usd_per_hour)
    return None


def flops_cost_model(kind: str, *, gpu: str | None, mfu: float | None,
                     price_usd_per_hour: float | None) -> CostModel:
    """Cost model without measurements: FLOPs, or FLOPs over (peak bf16 · MFU) of a catalog GPU."""
    if kind == "flops":
        return CostModel(kind="flops")
    if gpu is None or mfu is None:
        raise ConfigError(f"a budget in {'GPU-hours' if kind == 'hours' else 'USD'} from a file of runs (no measured throughput) needs "
                          "gpu='H100-SXM' (a catalog name) and mfu=0.4 (the utilisation you expect)")
    if not (isinstance(mfu, (int, float)) and 0 < mfu <= 1):
        raise ConfigError(f"mfu must be a fraction in (0, 1], not {mfu!r}")
    from scalebench.hardware.catalog import get_gpu

    spec = get_gpu(gpu)
    peak = spec.peak_for("bf16")
    if not peak:
        raise ConfigError(f"GPU {spec.name} has no bf16 peak in the catalog; add one (SCALEBENCH_GPU_CATALOG)")
    price = price_usd_per_hour if price_usd_per_hour is not None else spec.price_usd_per_hour
    return CostModel(kind=kind, log_speed=(math.log(peak * mfu), 0.0), price_usd_per_hour=price,
                     source=f"{spec.name} bf16 peak x MFU {mfu:g}")


@dataclass(frozen=True, kw_only=True)
class Space:
    """What a proposal must respect, and how to turn a size into a shape."""

    family: str | None = "gpt"  # None: sizes are exact parameter counts and a run costs 6·N·D FLOPs
    shape_context: dict[str, Any] = field(default_factory=dict)  # vocab_size, seq_len, tie_embeddings
    batch_tokens: int = 1
    min_steps: int = 1
    max_epochs: float = math.inf
    corpus_tokens: float | None = None  # training tokens of the corpus; None: no epochs cap
    memory_bytes: float | None = None  # per run; None: no memory cap
    precision: str = "fp32"
    optimizer: str = "adamw"
    tokens_per_param_range: tuple[float, float] = (0.0, math.inf)  # where the law is trusted (see advise)
    ladder_kind: str | None = None  # how the sweep names its sizes: sizes | shapes | params (None: a file)
    ladder_entries: tuple[Any, ...] = ()  # the sweep's model.<ladder_kind> list
    ladder_shapes: tuple[Any, ...] = ()  # the done runs' shapes (family shapes), for the ladder's order
    spec_changes: dict[str, Any] = field(default_factory=dict)  # settings an extension must carry (wsd warm-up)
    copies: int = 1  # runs per cell: the sweep's grid-axis combinations, each trains every (size, budget)
    spec: dict[str, Any] | None = None  # the sweep's resolved spec (to write an extension); None for files
    sweep_dir: str | None = None  # the sweep folder an extension extends; None for files
    notes: tuple[str, ...] = ()

    def shape(self, target: float):
        from scalebench.families import get_family

        return get_family(self.family).shape_for_params(target, **self.shape_context)

    def memory(self, shape) -> float:
        """Training bytes of one run at micro-batch 1 (the floor the OOM policy reaches)."""
        from scalebench.families import get_family
        from scalebench.memory import (
            DEFAULT_CONTEXT_BYTES,
            activation_bytes,
            memory_per_gpu,
            parse_optimizer,
        )

        fam = get_family(self.family)
        if getattr(fam, "memory_model", None) is not None:  # the family knows its own memory best
            return float(fam.memory_model(shape, 1, self.precision))
        fields = shape.as_dict()
        acts = 0.0
        if all(k in fields for k in ("n_layer", "d_model", "n_head", "seq_len", "vocab_size")):
            acts = activation_bytes(n_layer=fields["n_layer"], d_model=fields["d_model"], n_head=fields["n_head"],
                                    seq_len=fields["seq_len"], micro_batch=1, vocab_size=fields["vocab_size"],
                                    checkpointing="none", d_ff=fields.get("d_ff"))
        try:
            optimizer = parse_optimizer(self.optimizer)
        except ConfigError:  # an optimizer the memory table does not know: AdamW's state is the largest
            optimizer = "adamw"
        cuda = self.precision in ("bf16", "fp16")
        mem = memory_per_gpu(params_total=fam.params_total(shape), num_gpus=1, precision=self.precision,
                             optimizer=optimizer, zero=0, activations=acts,
                             context_bytes=DEFAULT_CONTEXT_BYTES if cuda else 0.0)
        return float(mem["total"])


def sweep_space(path: Path, done: pd.DataFrame, *, memory_bytes: float | None) -> Space:
    """The space of a sweep folder: its family, shape context, batch, corpus, device memory and spec."""
    from scalebench.families import get_family
    from scalebench.store import load_meta

    meta = load_meta(path)
    spec, corpus, env = meta.get("spec") or {}, meta.get("corpus") or {}, meta.get("env") or {}
    if not spec:
        raise ConfigError(f"{path}: the sweep's store has no resolved spec; re-run it with `scalebench run`")
    pinned = _pin_wsd_warmup(path, spec)
    changes = {} if pinned is spec else {"train": {"warmup_steps": pinned["train"]["warmup_steps"]}}
    spec = pinned
    from scalebench.config import BudgetSpec, TrainSpec

    train, budget = spec.get("train") or {}, spec.get("budget") or {}
    family = get_family(spec.get("family", "gpt"))
    context = _shape_context(family, spec, corpus)
    batch = train.get("batch_tokens", TrainSpec.batch_tokens) if family.unit == "tokens" else train.get("batch_samples")
    if not batch:
        raise ConfigError(f"{path}: the sweep's spec has no train.batch_samples for the {family.name} family")
    precision = "fp32"
    if "precision" in done and done["precision"].notna().any():
        precision = str(done["precision"].dropna().iloc[0])
    notes = []
    copies = grid_copies(spec)
    if copies > 1:
        notes.append(f"the sweep crosses every run with {copies} grid-axis combinations: each proposed (size, "
                     "budget) costs that many runs, and the law is fitted to all of them together")
    if memory_bytes is None:
        memory_bytes, where = _device_memory(env, done, spec)
        notes.append(f"memory cap {memory_bytes / 2**30:.1f} GiB per run ({where})")
    units = corpus.get("train_units", corpus.get("train_tokens"))
    kind, entries, shapes = _ladder(family, spec.get("model") or {}, context)
    return Space(family=family.name, shape_context=context, batch_tokens=int(batch),
                 ladder_kind=kind, ladder_entries=entries, ladder_shapes=shapes, spec_changes=changes,
                 sweep_dir=str(path),
                 min_steps=int(budget.get("min_steps", BudgetSpec.min_steps)),
                 max_epochs=float(budget.get("max_epochs", BudgetSpec.max_epochs)),
                 corpus_tokens=float(units) if units else None,
                 memory_bytes=memory_bytes, precision=precision if precision in ("fp32", "bf16", "fp16") else "fp32",
                 optimizer=str(train.get("optimizer", "adamw")), spec=spec, notes=tuple(notes), copies=copies)


def _ladder(family, model: Mapping[str, Any], context: Mapping[str, Any]) -> tuple[str | None, tuple, tuple]:
    """(ladder kind, its entries, their shapes) of a sweep's ``[model]`` table."""
    for kind, make in (("sizes", lambda e: family.shape_from_flavour(e, **context)),
                       ("shapes", lambda e: family.make_shape(**{**context, **e})),
                       ("params", lambda e: family.shape_for_params(e, **context))):
        entries = tuple(model.get(kind) or ())
        if entries:
            return kind, entries, tuple(make(e) for e in entries)
    return None, (), ()


def _pin_wsd_warmup(path: Path, spec: dict[str, Any]) -> dict[str, Any]:
    """Under wsd the planner sets each size's warm-up from its shortest run; an extension with other budgets
    would get another one, so it carries the sweep's own (as ``warmup_steps``) when all its runs share it."""
    train = spec.get("train") or {}
    if train.get("schedule") != "wsd" or train.get("warmup_steps") is not None:
        return spec
    from scalebench.store import _reading

    with _reading(path) as store:
        steps = {(r["spec"].get("train") or {}).get("warmup_steps") for r in store.runs()} - {None}
    return {**spec, "train": {**train, "warmup_steps": steps.pop()}} if len(steps) == 1 else spec


def grid_copies(spec: Mapping[str, Any]) -> int:
    """How many runs a sweep trains per (size, budget): the product of its ``[grid]`` axes' lengths."""
    grid = spec.get("grid")
    if not isinstance(grid, Mapping):
        return 1
    out = 1
    for values in grid.values():
        if isinstance(values, (list, tuple)) and values:
            out *= len(values)
    return out


def _shape_context(family, spec: Mapping[str, Any], corpus: Mapping[str, Any]) -> dict[str, Any]:
    """The fields the family fixes for the whole sweep (its own ``shape_context``, as the planner calls it)."""
    from types import SimpleNamespace

    from scalebench.config import SweepSpec

    try:
        resolved = SweepSpec.from_dict(dict(spec), "the sweep's stored spec")
    except ConfigError:  # a spec written by an older version: the GPT fields, read directly
        train, model = spec.get("train") or {}, spec.get("model") or {}
        context = {"seq_len": int(train.get("seq_len", 128)), "tie_embeddings": bool(model.get("tie_embeddings", True))}
        if corpus.get("vocab_size"):
            context["vocab_size"] = int(corpus["vocab_size"])
        return context
    return dict(family.shape_context(SimpleNamespace(**corpus), resolved.train, resolved.model))


def _device_memory(env: Mapping[str, Any], done: pd.DataFrame, spec: Mapping[str, Any]) -> tuple[float, str]:
    devices = env.get("devices") or []
    on_gpu = "device" in done and (done["device"].dropna().astype(str) != "cpu").any()
    if on_gpu and devices:
        mem = min(float(d["memory_bytes"]) for d in devices if d.get("memory_bytes"))
        return mem, f"the sweep's GPU, {devices[0].get('name', 'cuda')}"
    try:
        ram = float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        ram = 16 * 2.0**30
    workers = max(1, int((spec.get("devices") or {}).get("cpu_workers", 1)))
    return ram / workers, f"this machine's RAM shared by devices.cpu_workers={workers}"


# --- candidate cells --------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class Cells:
    """The candidate grid of one budget kind: sizes × budget values, with each cell's run and cost."""

    kind: str
    size_entries: tuple[Any, ...]  # (I,) each size as the extension writes it under model.<ladder kind>
    size_labels: tuple[str, ...]  # (I,) the planner's name for it in run ids
    shapes: tuple[Any, ...]  # (I,)
    budget_values: np.ndarray  # (J,)
    params: np.ndarray  # (I,) the family's exact count
    tokens: np.ndarray  # (I, J) whole batches
    flops: np.ndarray  # (I, J)
    cost: np.ndarray  # (I, J)
    valid: np.ndarray  # (I, J) admissible
    dropped: np.ndarray  # (I, J) flops kind only: too few steps, the planner drops it (no run, no cost)
    memory_bytes: np.ndarray  # (I,)
    epochs: np.ndarray  # (I, J)


def num_label(x: float) -> str:
    """A number as the planner writes it in run ids."""
    from scalebench.sweep.planner import _num_label

    return _num_label(x)


def run_id(family: str | None, size_label: str, kind: str, value: float) -> str:
    """The run id the planner gives a size at one budget value (``sweep.planner``'s naming)."""
    from scalebench.sweep.planner import _slug

    prefix = {"tokens": "t", "tokens_per_param": "tpp", "flops": "C"}[kind]
    return _slug(f"{family or 'runs'}-{size_label}-{prefix}{num_label(value)}")


def size_axis(space: Space, targets: np.ndarray) -> tuple[tuple, tuple, tuple, np.ndarray, np.ndarray, np.ndarray]:
    """Distinct sizes for the targets, in the ladder's own terms: (entries, labels, shapes, params,
    flops_per_token, memory), by size. See ``ladder_sizes``."""
    if space.family is None:  # no family: the size is the count, C = 6·N·D, memory = model states only
        t = np.array(sorted({sig3(t) for t in targets if t > 0}))
        if not t.size:
            raise ConfigError("no candidate sizes: give positive parameter counts")
        return tuple(t), tuple(f"p{num_label(x)}" for x in t), (None,) * t.size, t, 6.0 * t, _states_bytes(space, t)
    from scalebench.families import get_family

    fam = get_family(space.family)
    rows = ladder_sizes(space, fam, targets)
    if not rows:
        raise ConfigError(f"no candidate sizes: the {space.family} family's shapes in the range asked for do not "
                          "follow the ladder (see scalebench.advisor.space.ladder_sizes)")
    rows = [(e, lab, s, float(fam.params(s)), float(fam.flops_per_token(s)), space.memory(s)) for e, lab, s in rows]
    e, lab, s, n, f, m = zip(*sorted(rows, key=lambda r: r[3]), strict=True)
    return e, lab, s, np.array(n), np.array(f), np.array(m)


def ladder_sizes(space: Space, fam, targets: np.ndarray) -> list[tuple[Any, str, Any]]:
    """(entry, label, shape) of each candidate size, following the ladder's own rule.

    A ladder of target counts (``model.params``) gets the family's target rule, each shape written as the
    target nearest its *real* parameter count among those the rule maps to it (the count itself, 3 digits,
    whenever the rule allows), so a run id ``p…`` names the run's own size as closely as the rule can. A ladder of flavours (``model.sizes``) gets the family's flavours; a
    ladder of shapes (``model.shapes``) its own shapes and the family's flavour shapes. Candidates span the
    targets' range, never below the ladder's smallest size, and keep every shape field that grows with size
    along the ladder (depth, width) in the ladder's order: no one-layer model above a two-layer one."""
    lo, hi = min(targets), max(targets)
    out: dict[int, tuple[Any, str, Any]] = {}
    if space.ladder_kind in ("sizes", "shapes"):
        named = [(k, fam.shape_from_flavour(k, **space.shape_context)) for k in fam.flavours]
        if space.ladder_kind == "sizes":
            found = [(k, k, s) for k, s in named]
        else:
            own = [fam.make_shape(**{**space.shape_context, **e}) for e in space.ladder_entries]
            found = [(_entry(s, space), fam.label(s), s) for s in own + [s for _, s in named]]
        for e, lab, s in found:
            out.setdefault(fam.params(s), (e, lab, s))
    else:  # per shape, the target nearest its real count among those the rule maps to it: the id p<t> names it
        fine = {sig3(t) for t in np.geomspace(lo, hi, 40 * len(targets))} | {sig3(t) for t in targets if t > 0}
        best: dict[int, tuple[float, float, Any]] = {}
        for t in sorted(fine):
            shape = space.shape(t)
            n = fam.params(shape)
            for w in (t, sig3(n)):
                if (w == t or space.shape(w) == shape) and abs(math.log(w / n)) < best.get(n, (math.inf,))[0]:
                    best[n] = (abs(math.log(w / n)), w, shape)
        out = {n: (w, f"p{num_label(w)}", shape) for n, (_, w, shape) in best.items()}
    ladder = [fam.params(s) for s in space.ladder_shapes]
    floor = min(ladder) if ladder else 0
    keep = [r for n, r in sorted(out.items()) if (lo <= n <= hi or n in ladder) and n >= floor]
    return [r for r in keep if _follows(fam, r[2], space.ladder_shapes)]


def _entry(shape, space: Space) -> dict[str, Any]:
    """A shape as a ``model.shapes`` table: its fields less those the sweep fixes (its shape context)."""
    return {k: v for k, v in shape.as_dict().items() if k not in space.shape_context and v is not None}


def _follows(fam, shape, ladder: tuple) -> bool:
    """Whether ``shape`` keeps the ladder's order in every numeric field that never shrinks along it."""
    if not ladder:
        return True
    rows = sorted(((fam.params(s), s.as_dict()) for s in ladder), key=lambda r: r[0])
    n, fields = fam.params(shape), shape.as_dict()
    for key, value in fields.items():
        seq = [r[1].get(key) for r in rows]
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in [value, *seq]):
            continue
        if any(b < a for a, b in zip(seq, seq[1:], strict=False)):
            continue  # not a field that grows with size along this ladder
        below = [f[key] for m, f in rows if m <= n]
        above = [f[key] for m, f in rows if m >= n]
        if (below and value < max(below)) or (above and value > min(above)):
            return False
    return True


def _states_bytes(space: Space, params: np.ndarray) -> np.ndarray:
    from scalebench.memory import memory_per_gpu

    return np.asarray(memory_per_gpu(params_total=params, num_gpus=1, precision=space.precision,
                                     optimizer="adamw", zero=0, context_bytes=0.0)["total"], dtype=float)


def build_cells(space: Space, kind: str, size_targets: np.ndarray, budget_values: np.ndarray,
                cost_model: CostModel, done: pd.DataFrame | None = None) -> Cells:
    """The grid of one budget kind. A cell equal to a run in ``done`` (same params and tokens) is not
    admissible: the sweep would keep the finished run rather than train it again."""
    entries, labels, shapes, params, fpt, mem = size_axis(space, size_targets)
    values = np.array(sorted({sig3(v) for v in budget_values if v > 0}))
    if kind == "tokens":
        raw = np.broadcast_to(values[None, :], (params.size, values.size))
    elif kind == "tokens_per_param":
        raw = params[:, None] * values[None, :]
    else:
        raw = values[None, :] / fpt[:, None]
    steps = np.round(raw / space.batch_tokens)
    tokens = steps * space.batch_tokens
    flops = fpt[:, None] * tokens
    epochs = tokens / space.corpus_tokens if space.corpus_tokens else np.zeros_like(tokens)
    short = steps < space.min_steps
    fits = np.ones_like(params, dtype=bool) if space.memory_bytes is None else mem <= space.memory_bytes
    lo, hi = space.tokens_per_param_range
    ratio = tokens / params[:, None]
    valid = ~short & (epochs <= space.max_epochs) & fits[:, None] & (ratio >= lo) & (ratio <= hi)
    if done is not None and len(done):
        have = set(zip(done["params"].round().astype(np.int64), done["tokens"].round().astype(np.int64),
                       strict=True))
        repeat = np.array([[(int(round(n)), int(round(t))) in have for t in row]
                           for n, row in zip(params, tokens, strict=True)])
        valid &= ~repeat
    dropped = short if kind == "flops" else np.zeros_like(short)
    cost = np.where(valid, space.copies * cost_model.cost(np.broadcast_to(params[:, None], tokens.shape), flops),
                    np.inf)
    return Cells(kind=kind, size_entries=entries, size_labels=labels, shapes=shapes, budget_values=values, params=params,
                 tokens=tokens, flops=flops, cost=cost, valid=valid, dropped=dropped, memory_bytes=mem, epochs=epochs)


def default_axes(kind: str, done: pd.DataFrame, n_opt: float, d_opt: float, target_flops: float,
                 budget_flops_hint: float, space: Space) -> tuple[np.ndarray, np.ndarray]:
    """Candidate sizes and budget values: geometric grids from below the smallest run to the target's
    compute-optimal point (runs there are usually unaffordable; the cost filter decides)."""
    n_lo = float(done["params"].min())  # never below the ladder: a person extends it or fills it in
    n_hi = max(float(done["params"].max()) * 4.0, min(n_opt, float(done["params"].max()) * 256.0))
    sizes = np.geomspace(n_lo, max(n_hi, 2 * n_lo), GRID_POINTS)
    d_lo = max(float(done["tokens"].min()) / 4.0, space.min_steps * space.batch_tokens)
    d_cap = space.max_epochs * space.corpus_tokens if space.corpus_tokens else math.inf
    d_hi = min(max(float(done["tokens"].max()) * 16.0, min(d_opt, float(done["tokens"].max()) * 256.0)), d_cap)
    if kind == "tokens":
        values = np.geomspace(d_lo, max(d_hi, 2 * d_lo), GRID_POINTS)
    elif kind == "tokens_per_param":
        lo, hi = space.tokens_per_param_range
        ratios = done["tokens"].to_numpy(dtype=float) / done["params"].to_numpy(dtype=float)
        lo, hi = max(lo, ratios.min() / 4.0), min(hi, ratios.max() * 4.0)
        values = np.geomspace(lo, max(hi, 2 * lo), GRID_POINTS)
    else:
        c_lo = float(done["flops"].min()) / 2.0
        c_hi = min(target_flops, max(budget_flops_hint, 2 * c_lo))
        values = np.geomspace(c_lo, max(c_hi, 2 * c_lo), GRID_POINTS)
    return sizes, values


# --- writing a sweep extension ------------------------------------------------------------------------
def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # a TOML basic string: JSON's escapes are TOML's
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, Mapping):
        return "{" + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items() if x is not None) + "}"
    raise ConfigError(f"cannot write {v!r} ({type(v).__name__}) to TOML")


def to_toml(table: Mapping[str, Any], header: str = "") -> str:
    """A TOML document for a sweep spec dict: scalars first, then one [table] per sub-dict. None is left
    out (every optional key of a sweep defaults to None)."""
    lines = [f"# {line}" for line in header.splitlines()]
    tables = []
    for key, value in table.items():
        if value is None:
            continue
        if isinstance(value, Mapping):
            tables.append((key, value))
        else:
            lines.append(f"{key} = {_toml_value(value)}")
    for key, sub in tables:
        lines.append("")
        lines.append(f"[{key}]")
        for k, v in sub.items():
            if v is None or (isinstance(v, (list, tuple)) and not v and k in ("sizes", "shapes", "params", "tokens",
                                                                               "tokens_per_param", "flops")):
                continue
            lines.append(f"{k} = {_toml_value(v)}")
    return "\n".join(lines) + "\n"
