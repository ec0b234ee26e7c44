"""Reports of workers on other machines, as JSON lines the sweep process copies into the store.

SQLite in WAL mode needs shared memory, so it must not be written from other hosts over a network file
system. A job on a cluster node therefore appends its reports (steps, events, telemetry, status) to
``<run_dir>/outbox.jsonl`` — one writer, append-only, fsynced — and the sweep process, on the machine
that holds the store, applies the complete lines in order. The applied byte offset is kept beside the
file, so a sweep killed mid-way and resumed neither loses nor repeats a report.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from scalebench._util import open_append

OUTBOX = "outbox.jsonl"
_OFFSET = "outbox.offset"


class OutboxSink:
    """The worker side: the ResultStore calls a run makes, written as lines instead."""

    def __init__(self, run_dir: str | Path) -> None:
        self.path = Path(run_dir) / OUTBOX

    def __enter__(self) -> OutboxSink:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def _put(self, op: str, **fields: Any) -> None:
        line = json.dumps({"op": op, **fields}, default=str) + "\n"
        with open_append(self.path, binary=False) as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())

    def add_steps(self, run_id: str, rows: list[dict[str, Any]]) -> None:
        if rows:
            self._put("steps", rows=rows)

    def add_event(self, run_id: str | None, kind: str, message: str) -> None:
        self._put("event", kind=kind, message=message)

    def add_telemetry(self, run_id: str, samples: list[dict[str, Any]]) -> None:
        if samples:
            self._put("telemetry", samples=samples)

    def truncate_steps(self, run_id: str, after_step: int = -1) -> None:
        self._put("truncate", after_step=after_step)

    def set_pid(self, run_id: str, pid: int) -> None:
        self._put("pid", pid=pid)

    def set_status(self, run_id: str, status: str, *, error: str | None = None, record: dict | None = None,
                   expect: str | None = None, **_: Any) -> bool:
        self._put("status", status=status, error=error, record=record, expect=expect)
        return True


def _apply(store, run_id: str, msg: dict) -> None:
    op = msg.pop("op")
    if op == "steps":
        store.add_steps(run_id, msg["rows"])
    elif op == "event":
        store.add_event(run_id, msg["kind"], msg["message"])
    elif op == "telemetry":
        store.add_telemetry(run_id, msg["samples"])
    elif op == "truncate":
        store.truncate_steps(run_id, msg["after_step"])
    elif op == "pid":
        store.set_pid(run_id, msg["pid"])
    elif op == "status":
        store.set_status(run_id, msg["status"], error=msg["error"], record=msg["record"], expect=msg["expect"])


def _save_offset(offset_path: Path, offset: int) -> None:
    tmp = offset_path.with_suffix(".tmp")
    tmp.write_text(str(offset))
    os.replace(tmp, offset_path)


def drain(store, run_id: str, run_dir: str | Path) -> int:
    """Apply the outbox lines of ``run_id`` not applied yet (complete lines only); return how many.

    The applied offset is saved after every line, so a sweep killed while draining re-applies at most
    the one line it was applying. Steps, status, pid and truncation are idempotent; only an event or a
    telemetry batch could then appear twice (the offset cannot share the store's transaction).
    """
    path = Path(run_dir) / OUTBOX
    if not path.is_file():
        return 0
    offset_path = Path(run_dir) / _OFFSET
    try:
        offset = int(offset_path.read_text() or 0) if offset_path.is_file() else 0
    except ValueError:  # torn by a crash mid-write (os.replace makes that unlikely): re-apply from the start
        offset = 0
    with open(path, "rb") as f:
        f.seek(offset)
        data = f.read()
    end = data.rfind(b"\n") + 1  # a line still being written is left for the next drain
    n = 0
    for raw in data[:end].splitlines(keepends=True):
        if raw.strip():
            _apply(store, run_id, json.loads(raw))
            n += 1
        offset += len(raw)
        _save_offset(offset_path, offset)
    return n


def retire(run_dir: str | Path) -> None:
    """Before a new attempt: the fully drained outbox of the last one is set aside (kept for reading)."""
    path = Path(run_dir) / OUTBOX
    if path.is_file():
        n = sum(1 for p in path.parent.glob("outbox.*.jsonl"))
        path.rename(path.with_name(f"outbox.{n + 1}.jsonl"))
    (Path(run_dir) / _OFFSET).unlink(missing_ok=True)
