"""The worker process of one run: ``python -m scalebench.sweep.worker JOB.json``.

It trains the run and writes its outcome to the store itself, so the sweep process only has to notice
a worker that died without writing (killed, segfault) and mark that run failed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sys
import traceback
from pathlib import Path

from scalebench._util import write_text_atomic

EXIT_INTERRUPTED = 130
EXIT_ORPHANED = 3


def _die_with_parent() -> None:
    """Linux: get SIGKILL when the parent dies, so no orphan keeps writing after a kill -9 of the sweep."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _ppid_of(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def parent_gone(environ=None) -> bool:
    """True when whoever started this worker has already died (checked after arming the death signal).

    The executor names itself in SCALEBENCH_PARENT_PID. A rank that torchrun started has torchrun as its
    parent, and torchrun the executor: there the grandparent is checked.
    """
    env = os.environ if environ is None else environ
    expected = env.get("SCALEBENCH_PARENT_PID")
    if not expected or not expected.isdigit():
        return False  # started by hand
    parent = os.getppid()
    if parent == int(expected):
        return False
    if "TORCHELASTIC_RUN_ID" in env or "LOCAL_RANK" in env:
        grandparent = _ppid_of(parent)
        return grandparent is not None and grandparent != int(expected)
    return True


def _raise_interrupt(signum, frame):  # noqa: ARG001
    raise KeyboardInterrupt


def _verify_data(task, corpus, spec, run_dir: Path) -> None:
    """Data altered while the run trained (a corpus cache overwritten in place) fails the run instead of leaving
    it "done"; its checkpoint, trained partly on that data, goes with it."""
    check = getattr(task, "verify", None)
    if check is None:
        return
    try:
        check(corpus, spec)
    except Exception:
        _remove_checkpoints(run_dir)
        raise


def _remove_checkpoints(run_dir: Path) -> None:
    for name in ("checkpoint.pt", "checkpoint.dcp"):
        path = run_dir / name
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def run_job(job: dict) -> int:
    from scalebench.config import RunSpec
    from scalebench.data.tasks import get_task
    from scalebench.families import get_family
    from scalebench.store import ResultStore
    from scalebench.sweep.outbox import OutboxSink
    from scalebench.train import train

    spec = RunSpec.from_dict(job["run"])
    task = get_task(get_family(spec.family).task)
    corpus = task.info_from_dict(job["corpus"])
    run_dir = Path(spec.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun only rank 0 writes
        from scalebench.train.record import NullSink

        try:
            train(spec, corpus=corpus, sink=NullSink(), run_dir=run_dir, remove_checkpoint=False)
        except KeyboardInterrupt:
            return EXIT_INTERRUPTED
        return 0
    # a job on another machine must not write SQLite over a network file system: it reports through
    # its outbox, which the sweep process applies to the store (see sweep/outbox.py)
    with (OutboxSink(run_dir) if job.get("outbox") else ResultStore(job["sweep_dir"])) as store:
        from scalebench.tracking import TrackingSink, open_for_job

        # trackers mirror what the store gets (rank 0 only); one that fails is an event, never a failed run
        trackers = open_for_job(job, spec.run_id, run_dir, lambda kind, msg: store.add_event(spec.run_id, "tracker",
                                                                                              msg))
        trackers.start(spec.to_dict())
        try:
            rec = train(spec, corpus=corpus, sink=TrackingSink(store, trackers), run_dir=run_dir,
                        remove_checkpoint=False)
            _verify_data(task, corpus, spec, run_dir)
        except KeyboardInterrupt:
            trackers.finish("interrupted")
            store.set_status(spec.run_id, "pending", expect="running")
            store.add_event(spec.run_id, "interrupted", "stopped by a signal; it restarts from its checkpoint")
            return EXIT_INTERRUPTED
        except Exception as exc:  # noqa: BLE001 - every failure is recorded, then reported by exit code
            tb = traceback.format_exc()
            with contextlib.suppress(Exception):  # whole, never through a planted link
                write_text_atomic(run_dir / "error.txt", tb, what="error.txt")
            trackers.finish("failed")
            store.set_status(spec.run_id, "failed", error=f"{type(exc).__name__}: {exc}")
            return 1
        trackers.finish(rec.status)
        store.set_status(spec.run_id, rec.status, record=rec.to_dict(), error=rec.error)
    if rec.status == "done":  # only once the record is committed: a kill before this resumes, not restarts
        _remove_checkpoints(run_dir)
        from scalebench.train.checkpoint import release_fork

        release_fork(run_dir, spec.fork_from)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    _die_with_parent()
    if parent_gone():  # the sweep died before the signal was armed: train nothing, write nothing
        return EXIT_ORPHANED
    signal.signal(signal.SIGTERM, _raise_interrupt)
    signal.signal(signal.SIGINT, _raise_interrupt)
    job = json.loads(Path(argv[0]).read_text())
    try:
        return run_job(job)
    finally:  # after the record is written: a teardown fault must not fail a run that reported
        from scalebench.train.context import shutdown

        shutdown()


if __name__ == "__main__":
    sys.exit(main())
