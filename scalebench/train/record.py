"""What a run reports: the sink it streams to as it goes, and the record it ends with."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol


class Sink(Protocol):
    """Where a run reports as it goes (the ResultStore, an outbox, or a collector in tests)."""

    def add_steps(self, run_id: str, rows: list[dict[str, Any]]) -> None: ...
    def add_event(self, run_id: str | None, kind: str, message: str) -> None: ...
    def truncate_steps(self, run_id: str, after_step: int = -1) -> None: ...
    def add_telemetry(self, run_id: str, samples: list[dict[str, Any]]) -> None: ...


class NullSink:
    """The sink of ranks other than 0: only rank 0 writes."""

    def add_telemetry(self, run_id: str, samples: list[dict[str, Any]]) -> None:
        pass

    def truncate_steps(self, run_id: str, after_step: int = -1) -> None:
        pass

    def add_steps(self, run_id: str, rows: list[dict[str, Any]]) -> None:
        pass

    def add_event(self, run_id: str | None, kind: str, message: str) -> None:
        pass


@dataclass(frozen=True, kw_only=True)
class RunRecord:
    """The summary of one run, as stored (``status`` is ``done`` or ``diverged``).

    ``tokens`` counts the family's unit (tokens or samples, see ``unit``); ``tokens_per_s`` is the global
    rate (summed over ranks); ``peak_mem_bytes`` is the largest of the ranks' peaks.
    """

    run_id: str
    status: str
    params: int
    params_total: int
    tokens: int  # units actually trained on
    flops: float  # analytic training FLOPs of the units trained
    flops_per_token: float
    train_loss: float | None
    eval_loss: float | None
    tokens_per_s: float | None
    step_time_s: float | None
    peak_mem_bytes: int | None
    wall_time_s: float
    steps: int
    micro_batch: int
    grad_accum: int
    precision: str
    compiled: bool
    device: str
    epochs: float
    unit: str = "tokens"
    world_size: int = 1
    strategy: str = "single"
    oom_backoffs: int = 0
    error: str | None = None  # the divergence reason
    metrics: Mapping[str, Any] = field(default_factory=dict)  # profiling fields (DESIGN.md names)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        extra = d.pop("metrics")
        return {**d, **extra}
