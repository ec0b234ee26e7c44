"""Run a sweep into its directory: plan, record, launch each run in its own process (or Slurm job), resume.

Resume rules (running the same spec into an existing directory):
* ``done`` and ``diverged`` runs are kept and never repeated (a diverged run would diverge again);
* ``running`` rows left by a killed sweep, ``pending`` and ``failed`` runs are (re)started — from their
  last checkpoint when one exists;
* a finished run whose settings the new spec would change is refused, naming the run and the fix.
One sweep process at a time may write a directory (an advisory lock), while its workers write
concurrently through the store's short transactions.

How a run is started (a local worker process, a Ray task, a Slurm array job) is the executor's business
(``sweep/executors/``); this loop, its retries, timeouts and resume rules are the same for all.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from scalebench.config import SweepSpec, load_sweep
from scalebench.errors import ConfigError, StoreError
from scalebench.store import ResultStore
from scalebench.sweep.executors import Executor, JobHandle, Launch, Slot, make_executor
from scalebench.sweep.outbox import drain, retire
from scalebench.sweep.planner import SweepPlan, plan_runs

_POLL_S = 0.5
_TERM_GRACE_S = 10.0


@dataclass(frozen=True, kw_only=True)
class Progress:
    runs_total: int
    runs_finished: int  # done, failed or diverged in this directory
    runs_running: tuple[str, ...]
    flops_total: float
    flops_finished: float  # including the trained part of running runs
    last_loss: float | None  # of the most recently reporting running run
    last_run: str | None


@dataclass(frozen=True, kw_only=True)
class SweepOutcome:
    sweep_dir: Path
    counts: dict[str, int]
    wall_time_s: float
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return self.counts.get("failed", 0) == 0 and self.counts.get("pending", 0) == 0


def default_sweep_dir(spec: SweepSpec) -> Path:
    return Path("reports") / spec.name


@contextlib.contextmanager
def _sweep_lock(sweep_dir: Path):
    sweep_dir.mkdir(parents=True, exist_ok=True)
    with open(sweep_dir / ".lock", "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StoreError(f"{sweep_dir}: another `scalebench run` is writing this sweep; wait for it or "
                             "stop it first") from None
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """SIGTERM (a scheduler, `kill`) stops the sweep as Ctrl-C does: workers stopped, runs left pending."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):  # noqa: ARG001
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _check_unchanged(store: ResultStore, plan: SweepPlan, source: str) -> None:
    planned = {r.run_id: r.spec_hash() for r in plan.runs}
    for row in store.runs():
        h = planned.get(row["run_id"])
        if h is not None and h != row["spec_hash"] and row["status"] in ("done", "diverged"):
            raise ConfigError(
                f"{source}: run {row['run_id']} already finished in {store.sweep_dir} with other settings; "
                "the changed spec would alter finished runs. Write to a new directory (--out) or give the "
                "sweep a new name")


def _reconcile(store: ResultStore, plan: SweepPlan, executor: Executor) -> list[str]:
    """Reset runs a previous sweep left unfinished; return the run ids to start, in plan order."""
    for run in plan.runs:  # reports a killed sweep had not applied yet (remote workers' outboxes)
        drain(store, run.run_id, run.run_dir)
    rows = {r["run_id"]: r for r in store.runs()}
    todo = []
    for run in plan.runs:
        row = rows[run.run_id]
        if row["status"] in ("done", "diverged"):
            continue
        if row["status"] == "running":
            executor.abandon(Path(run.run_dir))  # e.g. cancel a Slurm job the dead sweep left behind
            store.add_event(run.run_id, "interrupted", "found running from an earlier sweep process; restarting")
        if row["spec_hash"] != run.spec_hash():
            store.update_spec(run.run_id, run.spec_hash(), run.to_dict())
        store.set_status(run.run_id, "pending")
        todo.append(run.run_id)
    return todo


@dataclass
class _Active:
    run_id: str
    job: JobHandle
    slot: Slot
    started: float
    run_dir: str


def _load(spec: SweepSpec | str | Path, backend: str | None) -> tuple[SweepSpec, str]:
    source = str(spec) if isinstance(spec, (str, Path)) else "<spec>"
    if isinstance(spec, (str, Path)):
        spec = load_sweep(spec)
    if backend is not None and backend != spec.executor.kind:  # --backend: recorded as the kind that ran
        from scalebench.sweep.executors import list_executors

        if backend not in list_executors():
            raise ConfigError(f"--backend {backend!r}: one of {', '.join(list_executors())}")
        spec = dataclasses.replace(spec, executor=dataclasses.replace(spec.executor, kind=backend))
    return spec, source


def describe_sweep(spec: SweepSpec | str | Path, out_dir: str | Path | None = None, *,
                   backend: str | None = None, python: str | None = None) -> str:
    """What ``run_sweep`` would start, as text (for ``--dry-run``): the Slurm array's sbatch script, the Ray
    tasks' requests, or the local worker commands. Starts, submits and writes nothing (but the corpus cache)."""
    from scalebench.data.tasks import get_task
    from scalebench.families import get_family

    spec, source = _load(spec, backend)
    sweep_dir = Path(out_dir) if out_dir else default_sweep_dir(spec)
    executor = make_executor(spec.executor, sweep_dir, python)
    corpus = get_task(get_family(spec.family).task).prepare(spec.data, spec.eval.held_out_share)
    plan = plan_runs(spec, corpus=corpus, sweep_dir=sweep_dir, source=source)
    return executor.describe(plan.runs, spec, sweep_dir)


def run_sweep(spec: SweepSpec | str | Path, out_dir: str | Path | None = None, *,
              progress: Callable[[Progress], None] | None = None,
              python: str | None = None, backend: str | None = None) -> SweepOutcome:
    """Run (or resume) a sweep; each run in its own worker process. Returns the final status counts.

    ``backend`` ("local", "ray", "slurm") overrides ``executor.kind`` of the spec.
    """
    from scalebench.data.tasks import get_task
    from scalebench.families import get_family
    from scalebench.hardware.devices import environment

    spec, source = _load(spec, backend)
    sweep_dir = Path(out_dir) if out_dir else default_sweep_dir(spec)
    t0 = time.monotonic()
    executor = make_executor(spec.executor, sweep_dir, python)  # first: a missing ray or submitit fails fast
    corpus = get_task(get_family(spec.family).task).prepare(spec.data, spec.eval.held_out_share)
    plan = plan_runs(spec, corpus=corpus, sweep_dir=sweep_dir, source=source)
    with _sweep_lock(sweep_dir), _sigterm_as_interrupt(), ResultStore(sweep_dir, create=True) as store:
        _check_unchanged(store, plan, source)
        store.set_meta(spec=spec.to_dict(), env=environment(), corpus=corpus.as_dict(), plan_notes=list(plan.notes),
                       sweep_name=spec.name)
        store.add_runs((r.run_id, r.spec_hash(), r.to_dict()) for r in plan.runs)
        todo = _reconcile(store, plan, executor)
        by_id = {r.run_id: r for r in plan.runs}
        try:
            _execute(store, plan, todo, corpus.as_dict(), sweep_dir, progress, executor)
        finally:
            executor.close()
        counts: dict[str, int] = {}
        for row in store.runs():
            if row["run_id"] in by_id:
                counts[row["status"]] = counts.get(row["status"], 0) + 1
    return SweepOutcome(sweep_dir=sweep_dir, counts=counts, wall_time_s=time.monotonic() - t0,
                        notes=plan.notes + executor.notes())


def _launch(executor: Executor, picks: list[tuple], corpus: dict, sweep_dir: Path,
            store: ResultStore) -> list[_Active]:
    """Start the (run, slot) pairs together (one Slurm job array), each from a fresh job file."""
    launches = []
    for run, slot in picks:
        run_dir = Path(run.run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        job = run_dir / "job.json"
        retire(run_dir)  # the last attempt's outbox was applied when it was reaped
        # gpus: the slot's devices (physical ids), for the telemetry sampler; a Ray task or Slurm job
        # rewrites them with what it was given
        job.write_text(json.dumps({"run": run.to_dict(), "corpus": corpus, "sweep_dir": str(sweep_dir),
                                   "outbox": executor.remote, "gpus": slot.gpu_indices()}))
        store.set_status(run.run_id, "running", host=socket.gethostname())  # before the worker can finish
        launches.append(Launch(run=run, slot=slot, job_path=job))
    try:
        handles = executor.start(launches)
    except BaseException:  # sbatch refused it, or Ctrl-C mid-submit: not running, so not left "running"
        for item in launches:
            store.set_status(item.run.run_id, "pending", expect="running")
        raise
    active = []
    for item, handle in zip(launches, handles, strict=True):
        if handle.pid is not None:
            store.set_pid(item.run.run_id, handle.pid)
        active.append(_Active(run_id=item.run.run_id, job=handle, slot=item.slot, started=time.monotonic(),
                              run_dir=item.run.run_dir))
    return active


def _execute(store: ResultStore, plan: SweepPlan, queue: list, corpus: dict, sweep_dir: Path,
             progress: Callable[[Progress], None] | None, executor: Executor) -> None:
    by_id = {r.run_id: r for r in plan.runs}
    free = executor.slots(plan.runs, plan.spec)
    active: dict[str, _Active] = {}
    queue = list(queue)
    max_attempts = plan.spec.executor.max_attempts
    timeout_s = plan.spec.executor.timeout_s
    try:
        while queue or active:
            picks = []
            while queue and free:
                picks.append((by_id[queue.pop(0)], free.pop(0)))
            if picks:
                for a in _launch(executor, picks, corpus, sweep_dir, store):
                    active[a.run_id] = a
            time.sleep(_POLL_S)
            for run_id, a in list(active.items()):
                code = a.job.poll()
                drain(store, run_id, by_id[run_id].run_dir)  # after poll: an ended job's last lines are in
                if code is None and timeout_s and time.monotonic() - a.started > timeout_s:
                    a.job.kill()
                    store.add_event(run_id, "timeout", f"killed after executor.timeout_s={timeout_s:g}")
                    a.started = float("inf")  # killed once; a Slurm job not yet reported ended is reaped later
                    code = a.job.wait(_TERM_GRACE_S)
                if code is None:
                    continue
                a.job.close()
                del active[run_id]
                free.append(a.slot)
                row = next(r for r in store.runs() if r["run_id"] == run_id)
                if row["status"] in ("running", "pending"):
                    # died without writing (killed, segfault, timeout, scancel, node failure), or stopped by a
                    # signal from outside the sweep (it wrote 'pending'): a failed attempt either way, retried below
                    store.set_status(run_id, "failed", error=f"worker {a.job.describe(code)}\n{a.job.log_tail()}")
                    row["status"] = "failed"
                if row["status"] == "failed" and row["attempts"] < max_attempts:
                    store.add_event(run_id, "retry", f"attempt {row['attempts'] + 1} of {max_attempts}")
                    store.set_status(run_id, "pending")
                    queue.append(run_id)
            if progress is not None:
                progress(_progress(store, plan, active))
    except BaseException:
        _stop_all(store, active)
        raise
    if progress is not None:
        progress(_progress(store, plan, active))


def _stop_all(store: ResultStore, active: dict[str, _Active]) -> None:
    """Ctrl-C or an error in the sweep: stop workers (cancel jobs), leave their runs pending for a resume."""
    for a in active.values():
        a.job.terminate()
    deadline = time.monotonic() + _TERM_GRACE_S
    for run_id, a in active.items():
        if a.job.wait(max(0.1, deadline - time.monotonic())) is None:
            a.job.kill()
            a.job.wait(_TERM_GRACE_S)
        a.job.close()
        drain(store, run_id, a.run_dir)
        store.set_status(run_id, "pending", expect="running")


def _progress(store: ResultStore, plan: SweepPlan, active: dict[str, _Active]) -> Progress:
    planned = {r.run_id: r for r in plan.runs}
    finished, flops_done, ended = 0, 0.0, set()
    for row in store.runs():
        r = planned.get(row["run_id"])
        if r is not None and row["status"] in ("done", "failed", "diverged"):
            finished += 1
            flops_done += r.flops
            ended.add(r.run_id)
    last_loss, last_run = None, None
    if active:
        ids = tuple(active)
        q = store.query(
            f"SELECT run_id, MAX(step) AS step, loss FROM steps WHERE run_id IN ({','.join('?' * len(ids))}) "
            "GROUP BY run_id", ids)
        for row in q.itertuples():
            if row.run_id in ended:  # written its record but not yet reaped: counted above
                continue
            flops_done += (row.step + 1) * planned[row.run_id].train.batch_tokens * planned[row.run_id].flops_per_token
            last_loss, last_run = row.loss, row.run_id
    return Progress(runs_total=len(plan.runs), runs_finished=finished, runs_running=tuple(active),
                    flops_total=plan.total_flops, flops_finished=min(flops_done, plan.total_flops),
                    last_loss=last_loss, last_run=last_run)
