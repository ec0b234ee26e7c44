"""An elapsed-time line for long CLI steps that have no count to show a bar against (a report, a check)."""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Iterator
from typing import TextIO


@contextlib.contextmanager
def working(what: str, *, stream: TextIO | None = None, every_s: float = 0.5) -> Iterator[None]:
    """While the block runs, keep ``what … 12 s`` on one terminal line; nothing when not a terminal
    (logs stay clean). The line is cleared when the block ends."""
    stream = stream if stream is not None else sys.stderr
    if not (hasattr(stream, "isatty") and stream.isatty()):
        yield
        return
    stop = threading.Event()
    t0 = time.monotonic()

    def tick() -> None:
        frames = "|/-\\"
        i = 0
        while not stop.wait(every_s if i else 0):
            stream.write(f"\r{frames[i % 4]} {what} … {time.monotonic() - t0:.0f} s ")
            stream.flush()
            i += 1

    thread = threading.Thread(target=tick, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        stream.write("\r" + " " * (len(what) + 16) + "\r")
        stream.flush()
