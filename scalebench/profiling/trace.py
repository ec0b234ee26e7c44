"""The profiler window and the analysis of its Chrome trace.

:class:`ProfilerWindow` runs ``torch.profiler`` over a bounded schedule (``wait`` idle steps, ``warmup``
steps recorded and discarded, ``active`` steps kept; one cycle) and writes each rank's trace into the
run's ``traces/`` folder as ``rank{N}.trace.json.gz``, nothing else beside them, with
``distributedInfo.rank`` set: a standard Chrome trace that opens in Perfetto (ui.perfetto.dev) and, the
folder as a whole, in Holistic Trace Analysis (``TraceAnalysis(trace_dir=RUN/traces)``, which reads every
``.json``/``.gz`` file of one folder as one rank's trace).

:func:`analyze_trace` turns a trace into a :class:`TraceBreakdown`:

* **GPU traces** (kernel events present). Device work = events of category ``kernel``, ``gpu_memcpy``,
  ``gpu_memset``; ``busy`` is the union of their intervals (streams overlap), ``idle`` the rest of the
  window. The window is the span of the ``ProfilerStep#`` ranges on the GPU timeline (or of the device
  events when absent). Each idle gap is *host-wait* when the GPU had nothing queued, i.e. the launch call
  of the next kernel (``cuda_runtime``/``cuda_driver`` event with the same correlation id) ended after
  the previous work finished, or when the gap overlaps a host data wait; otherwise it is a
  *between-kernel gap* (queued work separated by launch latency and dependencies). This follows HTA's
  idle-time split. Without correlation data a gap of ``HOST_WAIT_MIN_GAP_US`` or more counts as
  host-wait.
* **CPU traces** (no kernels) — an approximation so the same breakdown exists on CPU. Device work = the
  *self time* of ATen ops (their duration less that of nested ops), leaving out ops whose self time is
  only dispatch (views, reshapes, wrappers such as ``aten::linear`` or autograd nodes: ``FRAMEWORK_OPS``).
  The window is the span of the ``ProfilerStep#`` ranges; idle is the time the CPU spent outside that
  work (Python, dispatcher, autograd engine): host-wait when it overlaps a data wait, else a gap.

Categories come from names (:func:`categorize`): a CPU op whose own name is not recognised takes the
category of its nearest recognised ancestor (``aten::copy_`` under an optimizer step stays ``memcpy``;
``aten::resolve_conj`` under ``aten::mm`` is ``matmul``). Category times are summed durations, so with
overlapping streams they can add up to more than ``busy_s``; shares are taken of their sum.
"""

from __future__ import annotations

import gzip
import json
import re
import statistics
from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from scalebench.profiling.timing import DATA_WAIT_LABEL

__all__ = [
    "ProfilerWindow",
    "TraceBreakdown",
    "analyze_trace",
    "load_trace",
    "categorize",
    "CATEGORIES",
    "TRACE_FILENAME",
    "SMALL_KERNEL_US",
]

TRACE_FILENAME = "trace.json.gz"
TRACE_DIR = "traces"  # in a run folder: the ranks' traces and nothing else (HTA reads the folder whole)


def rank_trace_name(rank: int) -> str:
    return f"rank{rank}.{TRACE_FILENAME}"


def trace_folder(run_dir: str | Path) -> Path:
    return Path(run_dir) / TRACE_DIR


def _with_rank(trace: Any, rank: int, world_size: int) -> Any:
    """Give a trace the ``distributedInfo`` HTA keys ranks by (torch writes it only inside a process group)."""
    if isinstance(trace, dict) and "rank" not in trace.get("distributedInfo", {}):
        trace["distributedInfo"] = {**trace.get("distributedInfo", {}), "rank": rank, "world_size": world_size}
    return trace


def save_trace(prof: Any, path: Path, rank: int = 0, world_size: int = 1) -> None:
    """Write ``prof``'s Chrome trace to ``path`` (gzipped for ``.gz``) whole, never through a link planted at
    its name: torch writes into a private temporary folder (it would follow a link), and the result is
    renamed over ``path`` (which replaces a link rather than writing through it)."""
    import tempfile

    from scalebench._util import make_folder, write_bytes_atomic

    make_folder(path.parent)
    with tempfile.TemporaryDirectory(prefix="scalebench-trace-") as tmp:
        raw = Path(tmp) / "trace.json"
        prof.export_chrome_trace(str(raw))
        with open(raw, encoding="utf-8") as f:
            trace = _with_rank(json.load(f), rank, world_size)
    data = json.dumps(trace).encode("utf-8")
    write_bytes_atomic(path, gzip.compress(data) if path.suffix == ".gz" else data, what="profiler trace")


CATEGORIES = ("matmul", "attention", "elementwise", "memcpy", "communication", "other")

# Kernels (or CPU ops) shorter than this are "small": launch/dispatch overhead (~5-10 µs on GPU,
# ~1-3 µs per op on CPU) is comparable to their work.
SMALL_KERNEL_US = 20.0

# A gap at least this long counts as host-wait when the trace has no launch correlation to decide.
HOST_WAIT_MIN_GAP_US = 50.0

_DEVICE_CATS = {"kernel", "gpu_memcpy", "gpu_memset"}
_LAUNCH_CATS = {"cuda_runtime", "cuda_driver", "runtime", "driver"}

# Checked in this order; the first category with a matching pattern wins (so "addmm" is matmul, not "add").
_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("communication", re.compile(r"nccl|gloo|all_?reduce|all_?gather|reduce_?scatter|all_?to_?all|c10d")),
    (
        "attention",
        re.compile(r"flash|fmha|sdpa|scaled_dot_product|efficient_attention|attention|cudnn_.*mha"),
    ),
    (
        "matmul",
        re.compile(
            r"gemm|cutlass|xmma|cublas|nvjet|triton_tem|aten::(mm|addmm|bmm|baddbmm|matmul|_addmm_activation)\b|"
            r"(addmm|mm|bmm)backward|conv"
        ),
    ),
    ("memcpy", re.compile(r"memcpy|memset|copy|aten::(fill_|zero_|cat|contiguous|clone)\b|catarraybatched")),
    (
        "elementwise",
        re.compile(
            r"elementwise|vectorized|reduce|norm|softmax|gelu|relu|silu|tanh|sigmoid|dropout|foreach|adam|"
            r"triton_(poi|red|per)|aten::(add|sub|mul|div|lerp|sqrt|rsqrt|addcdiv|addcmul|exp|log|pow|neg|"
            r"where|sum|mean|max|min|clamp|nll_loss|cross_entropy|_log_softmax|index|embedding_dense|"
            r"masked_fill|ne|eq|lt|gt|sgn|abs)"
        ),
    ),
)

# CPU ops whose self time is dispatch or bookkeeping, not work (their children do the work).
FRAMEWORK_OPS = frozenset(
    "aten::" + n
    for n in (
        "view as_strided _unsafe_view reshape transpose t permute expand expand_as slice select narrow split "
        "split_with_sizes unsqueeze squeeze detach detach_ alias resolve_conj resolve_neg empty empty_strided "
        "empty_like linear matmul layer_norm scaled_dot_product_attention cross_entropy_loss log_softmax "
        "nll_loss nll_loss_nd to _to_copy zeros zeros_like ones ones_like full item lift_fresh embedding "
        "numpy_T contiguous dropout flatten unflatten chunk unbind _reshape_alias set_ result_type"
    ).split()
) | frozenset({"detach", "detach_"})
_FRAMEWORK_PREFIXES = ("autograd::engine::evaluate_function", "torch::autograd::")


def categorize(name: str) -> str | None:
    """The category of a kernel or op name, or ``None`` when no pattern matches."""
    low = name.lower()
    for cat, pat in _PATTERNS:
        if pat.search(low):
            return cat
    return None


def _is_framework(name: str) -> bool:
    return (
        name in FRAMEWORK_OPS
        or name.startswith(_FRAMEWORK_PREFIXES)
        or (name.endswith(("Backward0", "Backward1")) and "::" not in name)
    )


@dataclass(frozen=True, kw_only=True)
class TraceBreakdown:
    device: str  # 'cuda' | 'cpu'
    window_s: float
    busy_s: float
    idle_s: float
    idle_host_wait_s: float
    idle_gap_s: float
    time_by_category_s: dict[str, float]
    n_kernels: int  # device events (GPU) or work ops (CPU) in the window
    median_kernel_us: float | None
    n_steps: int  # ProfilerStep ranges in the trace
    data_wait_s: float = 0.0  # host time in data-wait ranges
    small_kernel_share: float = 0.0  # share of device-work time in kernels shorter than SMALL_KERNEL_US

    @property
    def idle_share(self) -> float:
        return self.idle_s / self.window_s if self.window_s > 0 else 0.0

    @property
    def busy_share(self) -> float:
        return self.busy_s / self.window_s if self.window_s > 0 else 0.0

    def share(self, *categories: str) -> float:
        """Share of device-work time in the given categories (0 when there was none)."""
        total = sum(self.time_by_category_s.values())
        return sum(self.time_by_category_s.get(c, 0.0) for c in categories) / total if total > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["idle_share"] = self.idle_share
        d["category_share"] = {c: self.share(c) for c in CATEGORIES}
        return d


# -- interval helpers ---------------------------------------------------------------------------------------
def _merge(intervals: Iterable[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for s, e in sorted(intervals):
        if e <= s:
            continue
        if out and s <= out[-1][1]:
            if e > out[-1][1]:
                out[-1] = (out[-1][0], e)
        else:
            out.append((s, e))
    return out


def _clip(intervals: list[tuple[float, float]], lo: float, hi: float) -> list[tuple[float, float]]:
    return [(max(s, lo), min(e, hi)) for s, e in intervals if e > lo and s < hi]


def _overlap(a: tuple[float, float], merged: list[tuple[float, float]]) -> float:
    return sum(max(0.0, min(a[1], e) - max(a[0], s)) for s, e in merged)


def _gaps(busy: list[tuple[float, float]], lo: float, hi: float) -> list[tuple[float, float, int]]:
    """Idle gaps in [lo, hi] as (start, end, index of the busy interval that follows or len(busy))."""
    gaps = []
    cursor = lo
    for i, (s, e) in enumerate(busy):
        if s > cursor:
            gaps.append((cursor, s, i))
        cursor = max(cursor, e)
    if hi > cursor:
        gaps.append((cursor, hi, len(busy)))
    return gaps


# -- loading -------------------------------------------------------------------------------------------------
def load_trace(path: str | Path) -> list[dict[str, Any]]:
    """The event list of a Chrome trace (``.json`` or ``.json.gz``; a bare list or ``traceEvents``)."""
    p = Path(path)
    opener = gzip.open if p.suffix == ".gz" else open
    with opener(p, "rt", encoding="utf-8") as f:
        data = json.load(f)
    events = data.get("traceEvents", []) if isinstance(data, dict) else data
    return [e for e in events if isinstance(e, dict)]


def _complete(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if e.get("ph") == "X" and "ts" in e and "dur" in e]


def _span(ranges: list[dict[str, Any]]) -> tuple[float, float] | None:
    if not ranges:
        return None
    return min(e["ts"] for e in ranges), max(e["ts"] + e["dur"] for e in ranges)


def analyze_trace(path: str | Path) -> TraceBreakdown:
    """The GPU (or CPU-approximated) busy/idle and category breakdown of one trace file."""
    events = _complete(load_trace(path))
    data_waits = _merge(
        (e["ts"], e["ts"] + e["dur"])
        for e in events
        if e.get("name") == DATA_WAIT_LABEL and e.get("cat") in ("user_annotation", "cpu_op", None)
    )
    device_events = [e for e in events if e.get("cat") in _DEVICE_CATS]
    if device_events:
        return _analyze_gpu(events, device_events, data_waits)
    return _analyze_cpu(events, data_waits)


def _step_ranges(events: list[dict[str, Any]], cat: str) -> list[dict[str, Any]]:
    return [e for e in events if e.get("cat") == cat and str(e.get("name", "")).startswith("ProfilerStep#")]


def _finish(
    *,
    device: str,
    window: tuple[float, float],
    work: list[tuple[float, float, str]],  # (start_us, end_us, category) of device work
    durations_us: list[float],
    host_wait_gap: Any,  # (gap_start, gap_end, next_index, busy) -> bool
    data_waits: list[tuple[float, float]],
    n_steps: int,
) -> TraceBreakdown:
    lo, hi = window
    busy = _clip(_merge((s, e) for s, e, _ in work), lo, hi)
    busy_us = sum(e - s for s, e in busy)
    host_wait_us = gap_us = 0.0
    for gs, ge, nxt in _gaps(busy, lo, hi):
        length = ge - gs
        if host_wait_gap(gs, ge, nxt, busy):
            host_wait_us += length
        else:
            dw = _overlap((gs, ge), data_waits)
            host_wait_us += dw
            gap_us += length - dw
    by_cat = dict.fromkeys(CATEGORIES, 0.0)
    for s, e, cat in work:
        s, e = max(s, lo), min(e, hi)
        if e > s:
            by_cat[cat] += (e - s) / 1e6
    window_us = max(0.0, hi - lo)
    return TraceBreakdown(
        device=device,
        window_s=window_us / 1e6,
        busy_s=busy_us / 1e6,
        idle_s=(window_us - busy_us) / 1e6,
        idle_host_wait_s=host_wait_us / 1e6,
        idle_gap_s=gap_us / 1e6,
        time_by_category_s=by_cat,
        n_kernels=len(durations_us),
        median_kernel_us=statistics.median(durations_us) if durations_us else None,
        n_steps=n_steps,
        data_wait_s=sum(e - s for s, e in _clip(data_waits, lo, hi)) / 1e6,
        small_kernel_share=(
            sum(d for d in durations_us if d < SMALL_KERNEL_US) / total_us
            if (total_us := sum(durations_us)) > 0
            else 0.0
        ),
    )


def _analyze_gpu(
    events: list[dict[str, Any]], device_events: list[dict[str, Any]], data_waits: list[tuple[float, float]]
) -> TraceBreakdown:
    gpu_steps = _step_ranges(events, "gpu_user_annotation")
    window = _span(gpu_steps) or _span(device_events)
    assert window is not None
    lo, hi = window
    in_window = [e for e in device_events if e["ts"] + e["dur"] > lo and e["ts"] < hi]
    work = []
    for e in in_window:
        cat = "memcpy" if e.get("cat") in ("gpu_memcpy", "gpu_memset") else categorize(str(e.get("name", "")))
        work.append((float(e["ts"]), float(e["ts"] + e["dur"]), cat or "other"))
    # launch end time by correlation id, to tell "nothing was queued" from "queued but not yet running"
    launch_end: dict[Any, float] = {}
    for e in events:
        corr = (e.get("args") or {}).get("correlation")
        if corr is not None and e.get("cat") in _LAUNCH_CATS:
            launch_end[corr] = e["ts"] + e["dur"]
    starts = sorted(
        ((float(e["ts"]), (e.get("args") or {}).get("correlation")) for e in in_window), key=lambda x: x[0]
    )
    start_times = [s for s, _ in starts]
    have_corr = bool(launch_end)

    def host_wait_gap(gs: float, ge: float, nxt: int, busy: list[tuple[float, float]]) -> bool:
        if nxt >= len(busy):
            return True  # the window ends with the GPU idle: the host had not issued more work
        if not have_corr:
            return ge - gs >= HOST_WAIT_MIN_GAP_US
        i = bisect_left(start_times, busy[nxt][0])
        corr = starts[i][1] if i < len(starts) else None
        end = launch_end.get(corr)
        if end is None:
            return ge - gs >= HOST_WAIT_MIN_GAP_US
        return end > gs  # the launch finished after the GPU ran dry: the GPU waited for the host

    durations = [float(e["dur"]) for e in in_window if e.get("cat") == "kernel"] or [
        float(e["dur"]) for e in in_window
    ]
    return _finish(
        device="cuda",
        window=window,
        work=work,
        durations_us=durations,
        host_wait_gap=host_wait_gap,
        data_waits=data_waits,
        n_steps=len(gpu_steps) or len(_step_ranges(events, "user_annotation")),
    )


def _analyze_cpu(events: list[dict[str, Any]], data_waits: list[tuple[float, float]]) -> TraceBreakdown:
    steps = _step_ranges(events, "user_annotation")
    ops = [e for e in events if e.get("cat") == "cpu_op"]
    window = _span(steps) or _span(ops)
    if window is None:
        return TraceBreakdown(
            device="cpu",
            window_s=0.0,
            busy_s=0.0,
            idle_s=0.0,
            idle_host_wait_s=0.0,
            idle_gap_s=0.0,
            time_by_category_s=dict.fromkeys(CATEGORIES, 0.0),
            n_kernels=0,
            median_kernel_us=None,
            n_steps=0,
        )
    work: list[tuple[float, float, str]] = []
    self_us: list[float] = []
    by_tid: dict[Any, list[dict[str, Any]]] = {}
    for e in ops:
        by_tid.setdefault((e.get("pid"), e.get("tid")), []).append(e)
    for tid_ops in by_tid.values():
        tid_ops.sort(key=lambda e: (e["ts"], -e["dur"]))
        # children per op by containment (events on one thread nest properly)
        children: list[list[int]] = [[] for _ in tid_ops]
        parent: list[int | None] = [None] * len(tid_ops)
        stack: list[int] = []
        for i, e in enumerate(tid_ops):
            while stack and tid_ops[stack[-1]]["ts"] + tid_ops[stack[-1]]["dur"] <= e["ts"]:
                stack.pop()
            if stack:
                parent[i] = stack[-1]
                children[stack[-1]].append(i)
            stack.append(i)
        cats: list[str | None] = []
        for i, e in enumerate(tid_ops):  # parents precede children in this order
            own = categorize(str(e["name"]))
            p = parent[i]
            cats.append(own if own is not None else (cats[p] if p is not None else None))
        for i, e in enumerate(tid_ops):
            name = str(e["name"])
            if _is_framework(name):
                continue
            start, end = float(e["ts"]), float(e["ts"] + e["dur"])
            cursor, total = start, 0.0
            cat = cats[i] or "other"
            for c in children[i]:
                cs, ce = float(tid_ops[c]["ts"]), float(tid_ops[c]["ts"] + tid_ops[c]["dur"])
                if cs > cursor:
                    work.append((cursor, cs, cat))
                    total += cs - cursor
                cursor = max(cursor, ce)
            if end > cursor:
                work.append((cursor, end, cat))
                total += end - cursor
            if start < window[1] and end > window[0]:
                self_us.append(total)
    return _finish(
        device="cpu",
        window=window,
        work=work,
        durations_us=self_us,
        host_wait_gap=lambda *_: False,  # on CPU only data waits make a gap host-wait
        data_waits=data_waits,
        n_steps=len(steps),
    )


class ProfilerWindow:
    """``torch.profiler`` over ``wait`` + ``warmup`` + ``active`` steps, one cycle, saved gzipped.

    Call :meth:`step` once at the end of every training step. After the context exits, ``trace_path`` is
    the written file, or ``None`` when the run ended before any active step (or ``enabled`` is False).
    Stacks, shapes and memory are not recorded: they multiply the cost of the window several times.
    """

    def __init__(
        self,
        out_dir: str | Path,
        wait: int = 1,
        warmup: int = 1,
        active: int = 3,
        device_type: str = "cpu",
        *,
        enabled: bool = True,
        filename: str = TRACE_FILENAME,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if wait < 0 or warmup < 0 or active < 1:
            raise ValueError(
                f"profiler schedule needs wait >= 0, warmup >= 0, active >= 1; got {wait, warmup, active}"
            )
        self.out_dir = Path(out_dir)
        self.wait, self.warmup, self.active = wait, warmup, active
        self.device_type = device_type
        self.enabled = enabled
        self.filename = filename
        self.rank, self.world_size = rank, world_size
        self.trace_path: Path | None = None
        self._prof: Any = None
        self._steps = 0

    @property
    def total_steps(self) -> int:
        return self.wait + self.warmup + self.active

    def _on_trace_ready(self, prof: Any) -> None:
        path = self.out_dir / self.filename
        save_trace(prof, path, self.rank, self.world_size)
        self.trace_path = path

    def __enter__(self) -> ProfilerWindow:
        if not self.enabled:
            return self
        import torch
        from torch.profiler import ProfilerActivity, profile, schedule

        activities = [ProfilerActivity.CPU]
        if self.device_type == "cuda" and torch.cuda.is_available():
            activities.append(ProfilerActivity.CUDA)
        self._prof = profile(
            activities=activities,
            schedule=schedule(wait=self.wait, warmup=self.warmup, active=self.active, repeat=1),
            on_trace_ready=self._on_trace_ready,
            record_shapes=False,
            profile_memory=False,
            with_stack=False,
        )
        self._prof.__enter__()
        return self

    def step(self) -> None:
        if self._prof is None:
            return
        self._prof.step()
        self._steps += 1
        if self._steps >= self.total_steps:  # the cycle is saved; leave no profiler hook in later steps
            prof, self._prof = self._prof, None
            prof.__exit__(None, None, None)

    def __exit__(self, *exc: object) -> None:
        if self._prof is not None:
            prof, self._prof = self._prof, None
            prof.__exit__(*exc)
