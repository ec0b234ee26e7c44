"""``trackio``: Trackio's local SQLite files under ``FOLDER/trackio/`` (``TRACKIO_DIR=FOLDER/trackio trackio
show``). ``[tracking] mode = "online"`` lets Trackio sync to the Space named by ``TRACKIO_SPACE_ID``.
Needs ``trackio`` (``scalebench[trackers]``).

Trackio keeps one run per process and reads its folder from ``TRACKIO_DIR`` when first imported, so
this tracker sets it before importing (a worker process trains one run).
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from scalebench.errors import ConfigError
from scalebench.tracking import TrackerContext


@contextlib.contextmanager
def _quiet():
    """Trackio prints its progress to stdout; library code never prints."""
    with contextlib.redirect_stdout(io.StringIO()):
        yield


def _import(folder: Path):
    folder = folder.resolve()
    if "trackio" not in sys.modules:
        os.environ["TRACKIO_DIR"] = str(folder)
    import trackio.utils

    if Path(trackio.utils.TRACKIO_DIR).resolve() != folder:
        raise ConfigError(f"trackio was imported in this process with TRACKIO_DIR={trackio.utils.TRACKIO_DIR}; "
                          f"it cannot write to {folder} too (trackio reads its folder once per process)")
    import trackio

    return trackio


class TrackioTracker:
    kind = "trackio"

    def __init__(self, ctx: TrackerContext) -> None:
        self.ctx = ctx
        self._trackio = _import(Path(ctx.folder) / "trackio")

    def start(self, config: Mapping[str, Any]) -> None:
        ctx = self.ctx
        env = {k: os.environ.pop(k) for k in ("TRACKIO_SPACE_ID", "TRACKIO_SERVER_URL")
               if not ctx.online and k in os.environ}  # offline: no sync, whatever the environment says
        try:
            with _quiet():
                self._trackio.init(project=ctx.project, name=ctx.run_id, group=ctx.sweep or None, config=dict(config),
                                   embed=False, auto_log_gpu=False, auto_log_cpu=False)
        finally:
            os.environ.update(env)

    def log(self, step: int, metrics: Mapping[str, float]) -> None:
        self._trackio.log(dict(metrics), step=step)

    def finish(self, status: str) -> None:  # noqa: ARG002 - Trackio keeps no run status; the store does
        with _quiet():
            self._trackio.finish()


def read(folder: str | Path, project: str, run_name: str) -> list[dict[str, Any]]:
    """The logged rows (``step`` and metrics) of a run in ``folder/trackio`` (call in a fresh process, or one
    whose trackio reads that folder)."""
    _import(Path(folder) / "trackio")
    from trackio.sqlite_storage import SQLiteStorage

    return SQLiteStorage.get_logs(project, run_name)
