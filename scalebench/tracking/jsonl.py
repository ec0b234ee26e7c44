"""``jsonl``: one JSON object a line in the run folder's ``metrics.jsonl`` (always on; no dependency).

Lines: ``{"event": "start", "config": {...}}``, ``{"step": 7, "loss": ..., "lr": ..., ...}`` and
``{"event": "finish", "status": "done"}``. A resumed run appends: a step may then appear again (the store
keeps the last one).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from scalebench._util import open_append
from scalebench.tracking import JSONL_NAME, TrackerContext


class JsonlTracker:
    kind = "jsonl"

    def __init__(self, ctx: TrackerContext) -> None:
        self.path = Path(ctx.run_dir) / JSONL_NAME
        # appended, never through a link planted at its name (removed first; one planted meanwhile: ELOOP)
        self._file = open_append(self.path, binary=False)

    def _write(self, obj: Mapping[str, Any]) -> None:
        self._file.write(json.dumps(obj) + "\n")
        self._file.flush()  # a reader (tail -f, a notebook) sees each block as it lands

    def start(self, config: Mapping[str, Any]) -> None:
        self._write({"event": "start", "time_s": time.time(), "config": dict(config)})

    def log(self, step: int, metrics: Mapping[str, float]) -> None:
        self._write({"step": step, **metrics})

    def finish(self, status: str) -> None:
        self._write({"event": "finish", "time_s": time.time(), "status": status})
        self._file.close()


def read(run_dir: str | Path) -> list[dict[str, Any]]:
    """The step lines of a run's ``metrics.jsonl``, a later line for a step replacing an earlier one."""
    rows: dict[int, dict[str, Any]] = {}
    with open(Path(run_dir) / JSONL_NAME, encoding="utf-8") as f:
        for line in f:
            obj = json.loads(line)
            if "step" in obj:
                rows[obj["step"]] = obj
    return [rows[s] for s in sorted(rows)]
