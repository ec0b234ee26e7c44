"""A local Ray instance ends with the sweep process that started it, even when that process is killed (kill -9).

``ray.init()`` ties the processes it starts itself (GCS, raylet, monitors) to the sweep process with the
Linux parent-death signal, but not what the raylet starts: on a killed driver the raylet's agents
(``ray::DashboardAgent``, ``ray::RuntimeEnvAgent``) are orphaned and stay, hung reporting the raylet's death to
a GCS that is gone, and task workers linger for seconds. Ray has no option that ends them, so the sweep starts
a *reaper* before ``ray.init()``: a small process of its own session (a Ctrl-C or a hang-up of the terminal does
not reach it) that adopts every child the sweep starts until told that Ray is up, follows their descendants
(a snapshot every second, each process named by pid and start time, so a reused pid is never touched), and once
the sweep process is gone, or closes the reaper after ``ray.shutdown()``, kills every one still alive.

The reaper runs this file as a script under ``python -I``: standard library only, nothing of the sweep imported.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

# how often the reaper notes the tree (a walk of /proc: milliseconds); the sweep process's death is seen at
# once (its end of the reaper's stdin closes)
_SNAPSHOT_S = 1.0
_CLOSE_WAIT_S = 10.0

Proc = tuple[int, int]  # (pid, start time in clock ticks since boot): one process, never a later one with its pid


def process_table() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, start time) of every living process (zombies excluded)."""
    table = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                fields = Path(f"/proc/{name}/stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if fields[0] not in ("Z", "X"):
                table[int(name)] = (int(fields[1]), int(fields[19]))
    return table


def children_of(pid: int, table: dict[int, tuple[int, int]] | None = None) -> set[Proc]:
    """The living children of process ``pid``."""
    table = process_table() if table is None else table
    return {(p, start) for p, (ppid, start) in table.items() if ppid == pid}


def tree(roots: Iterable[Proc], table: dict[int, tuple[int, int]]) -> set[Proc]:
    """``roots`` still alive and all their living descendants."""
    kids: dict[int, list[int]] = defaultdict(list)
    for pid, (ppid, _) in table.items():
        kids[ppid].append(pid)
    todo = [pid for pid, start in roots if pid in table and table[pid][1] == start]
    found: set[Proc] = set()
    while todo:
        pid = todo.pop()
        if (pid, table[pid][1]) not in found:
            found.add((pid, table[pid][1]))
            todo.extend(kids[pid])
    return found


def _kill(pid: int, start: int) -> None:
    try:  # a pidfd pins the process: checked, then signalled, never a successor that took its pid
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        fd = None
    try:
        if _start_time(pid) != start:
            return
        if fd is not None:
            signal.pidfd_send_signal(fd, signal.SIGKILL)
        else:
            os.kill(pid, signal.SIGKILL)
    except OSError:
        pass
    finally:
        if fd is not None:
            os.close(fd)


def _start_time(pid: int) -> int | None:
    """The start time of ``pid`` if it is alive (not a zombie)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] in ("Z", "X") else int(fields[19])


def end_all(known: set[Proc]) -> None:
    """SIGKILL ``known`` and their descendants; again for what the dying tree started meanwhile."""
    for _ in range(5):
        targets = tree(known, process_table())
        if not targets:
            return
        for pid, start in targets:
            _kill(pid, start)
        known = targets
        time.sleep(0.05)


def watch(driver: int, exclude: set[Proc]) -> None:
    """The reaper's loop: adopt the driver's new children until a line comes on stdin (answered on stdout once
    the last of them is adopted), follow their trees, and end them all once the driver is gone or stdin closes."""
    me = (os.getpid(), _start_time(os.getpid()))
    adopting, known = True, set()
    while True:
        table = process_table()
        if adopting:
            known |= children_of(driver, table) - exclude - {me}
        known = tree(known, table)
        if os.getppid() != driver:  # the driver died: this process was handed to another parent
            break
        ready, _, _ = select.select([0], [], [], _SNAPSHOT_S)
        if not ready:
            continue
        if not os.read(0, 4096):  # the driver closed us or died
            break
        if adopting:  # Ray is up: its processes all exist now; nothing the driver starts later is adopted
            table = process_table()
            known = tree(known | (children_of(driver, table) - exclude - {me}), table)
            adopting = False
            with contextlib.suppress(OSError):
                os.write(1, b"adopted\n")
    end_all(known)


class Reaper:
    """The sweep side: start before ``ray.init()``, ``adopted()`` once it returned, ``close()`` after
    ``ray.shutdown()`` (ends anything Ray left, then the reaper exits)."""

    def __init__(self) -> None:
        exclude = ",".join(f"{p}:{s}" for p, s in children_of(os.getpid()))
        self._proc = subprocess.Popen([sys.executable, "-I", str(Path(__file__).resolve()), str(os.getpid()),
                                       exclude], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=subprocess.DEVNULL, start_new_session=True, cwd="/")
        self.pid = self._proc.pid

    def adopted(self) -> None:
        """What the sweep starts from now on is not Ray's: the reaper stops adopting (call after ``ray.init``;
        returns once the reaper has adopted Ray's processes)."""
        try:
            self._proc.stdin.write(b"\n")
            self._proc.stdin.flush()
            select.select([self._proc.stdout], [], [], _CLOSE_WAIT_S)
        except (OSError, ValueError):
            pass

    def close(self) -> None:
        for pipe in (self._proc.stdin, self._proc.stdout):
            with contextlib.suppress(OSError):
                pipe.close()
        try:
            self._proc.wait(timeout=_CLOSE_WAIT_S)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()


def _main(argv: list[str]) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # ended by its stdin closing, never by the terminal
    exclude = {(int(p), int(s)) for p, _, s in (item.partition(":") for item in argv[1].split(",") if item)}
    watch(int(argv[0]), exclude)


if __name__ == "__main__":
    _main(sys.argv[1:])
