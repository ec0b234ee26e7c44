"""``tensorboard``: event files under ``FOLDER/tensorboard/<run_id>/`` (``tensorboard --logdir FOLDER/tensorboard``).

Written with torch's ``SummaryWriter`` (needs the ``tensorboard`` package: ``scalebench[trackers]``); the
config goes in as a text summary, metrics as scalars under their store names.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from scalebench.tracking import TrackerContext


class TensorBoardTracker:
    kind = "tensorboard"

    def __init__(self, ctx: TrackerContext) -> None:
        from torch.utils.tensorboard import (
            SummaryWriter,  # raises ImportError without the tensorboard package
        )

        self.logdir = Path(ctx.folder) / "tensorboard" / ctx.run_id
        self.writer = SummaryWriter(log_dir=str(self.logdir))

    def start(self, config: Mapping[str, Any]) -> None:
        self.writer.add_text("config", "```\n" + json.dumps(dict(config), indent=1) + "\n```", 0)

    def log(self, step: int, metrics: Mapping[str, float]) -> None:
        for key, value in metrics.items():
            self.writer.add_scalar(key, value, step)

    def finish(self, status: str) -> None:
        self.writer.add_text("status", status)
        self.writer.close()


def read(logdir: str | Path) -> dict[str, list[tuple[int, float]]]:
    """Each scalar's (step, value) pairs from a run's event files."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(logdir), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}
