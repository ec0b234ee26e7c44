"""``wandb``: Weights & Biases, offline unless configured: runs land in ``FOLDER/wandb/offline-run-*``
(``wandb sync FOLDER/wandb/offline-run-*`` uploads them later). ``[tracking] mode = "online"`` or the
user's own ``WANDB_MODE`` sends them live. Needs ``wandb`` (``scalebench[trackers]``).
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from scalebench.tracking import TrackerContext

EXIT_CODES = {"done": 0, "diverged": 2, "interrupted": 130}  # anything else (failed) exits 1


class WandbTracker:
    kind = "wandb"

    def __init__(self, ctx: TrackerContext) -> None:
        import wandb

        self._wandb, self.ctx = wandb, ctx
        self.run: Any = None

    def start(self, config: Mapping[str, Any]) -> None:
        ctx, wandb = self.ctx, self._wandb
        folder = Path(ctx.folder)
        folder.mkdir(parents=True, exist_ok=True)
        mode = os.environ.get("WANDB_MODE") or ("online" if ctx.online else "offline")
        settings = wandb.Settings(silent=True, console="off", x_disable_stats=True)
        self.run = wandb.init(project=ctx.project, name=ctx.run_id, group=ctx.sweep or None, dir=str(folder),
                              mode=mode, config=dict(config), settings=settings, reinit="finish_previous")

    def log(self, step: int, metrics: Mapping[str, float]) -> None:
        self.run.log(dict(metrics), step=step)

    def finish(self, status: str) -> None:
        self.run.summary["status"] = status
        self.run.finish(exit_code=EXIT_CODES.get(status, 1))


# --- reading an offline run back (W&B ships no reader for its .wandb files) ------------------------------
# The file: a 7-byte header (":W&B", a 2-byte magic, a version byte), then 32 KiB blocks of records, each
# with a 7-byte header (checksum u32, length u16, type u8: 1 full, 2 first, 3 middle, 4 last) holding
# one serialized protobuf ``Record``; a block's tail shorter than a header is padding.
_BLOCK, _HEADER = 32768, 7


def _records(path: Path):
    data = path.read_bytes()
    if data[:4] != b":W&B":
        raise ValueError(f"{path}: not a W&B run file")
    pos, parts = _HEADER, b""
    while pos + _HEADER <= len(data):
        left = _BLOCK - pos % _BLOCK
        if left < _HEADER:
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + _HEADER])
        if length == 0 and kind == 0:  # zero padding to the block's end
            pos += left
            continue
        chunk = data[pos + _HEADER:pos + _HEADER + length]
        pos += _HEADER + length
        if kind == 1:
            yield chunk
        elif kind == 2:
            parts = chunk
        elif kind == 3:
            parts += chunk
        elif kind == 4:
            yield parts + chunk
            parts = b""


def read(folder: str | Path, run_name: str) -> list[dict[str, Any]]:
    """The history rows (``_step`` and the metrics) of the offline run named ``run_name`` under ``folder``."""
    from wandb.proto import wandb_internal_pb2 as pb

    for path in sorted(Path(folder).glob("wandb/offline-run-*/run-*.wandb")):
        name, rows = None, []
        for chunk in _records(path):
            record = pb.Record()
            record.ParseFromString(chunk)
            which = record.WhichOneof("record_type")
            if which == "run":
                name = record.run.display_name
            elif which == "history":
                rows.append({(i.key or "/".join(i.nested_key)): json.loads(i.value_json) for i in record.history.item})
        if name == run_name:
            return rows
    raise FileNotFoundError(f"no offline W&B run named {run_name!r} under {folder}/wandb")
