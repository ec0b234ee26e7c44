"""Experiment trackers: what the store records, mirrored live to the tools users already watch.

A tracker is called on rank 0 only: ``start`` with the run's resolved config, ``log`` with each step's
metrics (the same rows, names and values the store gets; an evaluation rides on its step's row as
``eval_loss``), ``finish`` with the run's status. Several run at once. A JSON-lines log in the run folder
(``metrics.jsonl``) is always written; TensorBoard, W&B, MLflow and Trackio are chosen by ``[tracking] kinds``
or ``scalebench run --track`` and each imports its library only when enabled (``pip install
'scalebench[trackers]'``). The store stays the source of truth: no fit ever reads a tracker, and a tracker
that fails is recorded as an event of the run, dropped, and the run trains on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from scalebench._lazy_registry import TRACKERS as _KINDS
from scalebench.errors import ConfigError

JSONL_NAME = "metrics.jsonl"  # in the run folder, always


@dataclass(frozen=True, kw_only=True)
class TrackerContext:
    """Where and under which names a run's trackers write (resolved by the sweep, carried in job.json)."""

    run_id: str
    sweep: str  # the group a run belongs to (W&B group, MLflow tag, Trackio group)
    project: str  # W&B project, MLflow experiment, Trackio project
    folder: Path  # the trackers' local files: tensorboard/, wandb/, mlflow.db, trackio/
    run_dir: Path
    online: bool = False  # send to the service the environment configures; else local files only


class Tracker(Protocol):
    kind: str

    def start(self, config: Mapping[str, Any]) -> None: ...
    def log(self, step: int, metrics: Mapping[str, float]) -> None: ...
    def finish(self, status: str) -> None: ...


ENTRY_POINTS = _KINDS.group  # third-party trackers: name = "package.module:Class"
_REGISTRY = _KINDS.targets


def register_tracker(kind: str, target: str) -> None:
    """Register a tracker class (``"package.module:Class"``, built as ``Class(context)``) under ``kind``."""
    _KINDS.register(kind, target)


def list_trackers() -> list[str]:
    return _KINDS.kinds()


def check_kinds(kinds: Sequence[str], where: str = "tracking.kinds") -> None:
    for kind in kinds:
        if kind not in _KINDS:
            raise ConfigError(f"{where}: {kind!r} is not a tracker; one of {', '.join(list_trackers())}")
    if len(set(kinds)) < len(kinds):
        raise ConfigError(f"{where}: a tracker is listed twice: {list(kinds)!r}")


def make_tracker(kind: str, ctx: TrackerContext) -> Tracker:
    check_kinds([kind])
    return _KINDS.load(kind)(ctx)


class Trackers:
    """The run's trackers together: each call goes to all; one that raises is reported once through
    ``on_error(kind, message)`` and dropped, so a tracker never stops training."""

    def __init__(self, ctx: TrackerContext, kinds: Sequence[str], on_error) -> None:
        self.on_error = on_error
        self.active: list[Tracker] = []
        for kind in ["jsonl", *[k for k in kinds if k != "jsonl"]]:
            try:
                self.active.append(make_tracker(kind, ctx))
            except Exception as exc:  # noqa: BLE001 - a missing extra or a bad folder must not stop the run
                self._fail(kind, "could not start", exc)

    def _fail(self, kind: str, what: str, exc: BaseException) -> None:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        hint = "; pip install 'scalebench[trackers]'" if isinstance(exc, ImportError) else ""
        self.on_error(kind, f"tracker {kind!r} {what} ({type(exc).__name__}: {text}){hint}; the run trains on "
                            "without it (the store has every metric)")

    def _each(self, what: str, call) -> None:
        for tracker in list(self.active):
            try:
                call(tracker)
            except Exception as exc:  # noqa: BLE001 - see the class docstring
                self.active.remove(tracker)
                self._fail(tracker.kind, what, exc)

    def start(self, config: Mapping[str, Any]) -> None:
        self._each("failed at start", lambda t: t.start(config))

    def log_rows(self, rows: Sequence[Mapping[str, Any]]) -> None:
        for row in rows:
            metrics = {k: float(v) for k, v in row.items() if k != "step" and v is not None}
            self._each("failed to log", lambda t, s=int(row["step"]), m=metrics: t.log(s, m))

    def finish(self, status: str) -> None:
        self._each("failed to finish", lambda t: t.finish(status))
        self.active = []


class TrackingSink:
    """A run's sink (store or outbox) that mirrors its step rows to the trackers; everything else passes."""

    def __init__(self, sink: Any, trackers: Trackers) -> None:
        self.sink, self.trackers = sink, trackers

    def add_steps(self, run_id: str, rows: list[dict[str, Any]]) -> None:
        self.sink.add_steps(run_id, rows)  # the store first: it is the truth
        self.trackers.log_rows(rows)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sink, name)


def open_for_job(job: Mapping[str, Any], run_id: str, run_dir: Path, on_error) -> Trackers:
    """The trackers a worker's job file asks for (``job["tracking"]``; only the JSON-lines log without it)."""
    t = job.get("tracking") or {}
    ctx = TrackerContext(run_id=run_id, sweep=t.get("sweep", ""), project=t.get("project", "scalebench"),
                         folder=Path(t.get("folder") or run_dir / "tracking"), run_dir=run_dir,
                         online=t.get("mode") == "online")
    return Trackers(ctx, t.get("kinds", ()), on_error)


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"train": {"lr": 1e-3}}`` -> ``{"train.lr": 1e-3}`` (for trackers whose parameters are flat)."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


__all__ = ["JSONL_NAME", "Tracker", "TrackerContext", "Trackers", "TrackingSink", "check_kinds", "flatten",
           "list_trackers", "make_tracker", "open_for_job", "register_tracker"]
