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
import os
import shutil
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from scalebench._util import file_error, make_folder, open_nofollow, write_text_atomic
from scalebench.config import SweepSpec, load_sweep
from scalebench.errors import ConfigError, StoreError
from scalebench.store import ResultStore, store_path
from scalebench.sweep.executors import Executor, JobHandle, Launch, Slot, make_executor
from scalebench.sweep.outbox import drain, retire
from scalebench.sweep.planner import SweepPlan, plan_runs, prepare_sweep_corpus

_POLL_S = 0.5
_TERM_GRACE_S = 10.0


@dataclass(frozen=True, kw_only=True)
class FinishedRun:
    """A run this sweep process started that has ended (done, failed or diverged)."""

    run_id: str
    status: str
    eval_loss: float | None
    wall_time_s: float | None
    error: str | None  # its first line


@dataclass(frozen=True, kw_only=True)
class Progress:
    runs_total: int
    runs_finished: int  # done, failed or diverged in this directory
    runs_running: tuple[str, ...]
    flops_total: float
    flops_finished: float  # including the trained part of running runs
    last_loss: float | None  # of the most recently reporting running run
    last_run: str | None
    finished: tuple[FinishedRun, ...] = ()  # runs started by this sweep process that ended, in finishing order
    runs_to_do: int = 0  # runs this sweep process set out to train (the rest were finished before)


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


def _check_folder(sweep_dir: Path, spec: SweepSpec, source: str) -> None:
    """Before anything starts: the folder can take this sweep (a writable folder, not another sweep's)."""
    if sweep_dir.exists() and not sweep_dir.is_dir():
        raise ConfigError(f"--out {sweep_dir}: this is a file, not a folder; give a folder (made if missing)")
    _check_writable(sweep_dir)  # made later, under the lock: a sweep refused before it starts leaves no folder
    path = store_path(sweep_dir)
    if path.is_file() and path.stat().st_size > 0:  # 0 bytes: being created by a sweep that holds the lock,
        with ResultStore(sweep_dir, readonly=True) as store:  # or truly empty: both are reported under the lock
            _check_same_sweep(store.meta(), spec, sweep_dir, source)  # the setup: once the store is checked


def _check_writable(sweep_dir: Path) -> None:
    """The folder, or the nearest existing folder above it, can be written (else: why not, exit 2)."""
    import errno

    here = sweep_dir
    while not here.exists() and here != here.parent:
        here = here.parent
    code = None
    if not here.is_dir():
        code = errno.ENOTDIR
    elif os.statvfs(here).f_flag & os.ST_RDONLY:
        code = errno.EROFS
    elif not os.access(here, os.W_OK | os.X_OK):
        code = errno.EACCES
    if code is not None:
        raise file_error(OSError(code, os.strerror(code), str(here)), sweep_dir, "--out (the sweep folder)")


def _check_same_sweep(meta: dict, spec: SweepSpec, sweep_dir: Path, source: str, *, corpus: dict | None = None,
                      runs: list[dict] | None = None) -> None:
    """One folder, one sweep: another sweep's runs would merge with these and be fitted as one ladder.
    The same sweep extended (more sizes, budgets or grid values, same name) is a resume and allowed; another
    training setup or another corpus under the same name is refused, naming what differs."""
    name = meta.get("sweep_name") or (meta.get("spec") or {}).get("name")
    if name is not None and name != spec.name:
        raise ConfigError(
            f"{source}: {sweep_dir} holds sweep {name!r}, and this spec is sweep {spec.name!r}; one folder holds "
            f"one sweep. Give another folder (--out), or name this spec {name!r} to extend that sweep")
    fix = "Give another folder (--out) for the new setup, or restore the sweep's own"
    if runs is not None and isinstance(meta.get("spec"), dict):
        diffs = setup_differences(meta["spec"], spec.to_dict(), runs or [])
        if diffs:
            raise ConfigError(f"{source}: {sweep_dir} holds sweep {spec.name!r} trained with another setup: "
                              f"{'; '.join(diffs[:4])}{'; ...' if len(diffs) > 4 else ''}. An extension may add "
                              f"sizes, budgets or grid values only (one folder, one setup). {fix}")
    before = (meta.get("corpus") or {}).get("fingerprint") if isinstance(meta.get("corpus"), dict) else None
    if corpus is not None and before is not None and corpus.get("fingerprint") != before:
        raise ConfigError(
            f"{source}: data.source: the corpus changed since {sweep_dir} was trained on it (fingerprint "
            f"{before}, now {corpus.get('fingerprint')}: its files were edited, added or removed, or another Python "
            f"installation gives another default corpus); runs on two corpora would be fitted as one ladder. "
            f"{fix} corpus")


# What an extension may change: the ladder, the budgets and the grid's values (not which of them are given);
# where and how the runs go and what they measure besides their loss never changes a result.
_EXTENSIBLE = {"model.sizes", "model.shapes", "model.params", "budget.tokens", "budget.tokens_per_param",
               "budget.flops", *(f"grid.{axis}" for axis in ("family", "optimizer", "momentum", "lr", "batch",
                                                             "precision"))}
_NOT_SETUP = ("name", "notes", "devices", "executor", "profiling")


def setup_differences(before: dict, after: dict, runs: list[dict] = ()) -> list[str]:
    """The training-setup keys on which two resolved sweep specs differ (``key: old -> new``), ignoring what
    an extension may change. ``runs``: the stored runs (a wsd extension pins the warm-up they share)."""
    before, after = _normalised(before), _normalised(after)
    old, new = _flat(before), _flat(after)
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if key.split(".")[0] in _NOT_SETUP or a == b:
            continue
        if key in _EXTENSIBLE:
            if bool(a) == bool(b):
                continue
            out.append(f"{key} {'given' if b else 'not given'} (was {'given' if a else 'not given'})")
            continue
        if key == "train.warmup_steps" and a is None and runs:  # wsd: the warm-up its runs trained with
            if {(r["spec"].get("train") or {}).get("warmup_steps") for r in runs} == {b}:
                continue
        out.append(f"{key} = {b!r} (was {a!r})")
    return out


def _normalised(spec: dict) -> dict:
    """A stored spec with today's defaults filled in (an older scalebench wrote fewer keys)."""
    try:
        return SweepSpec.from_dict(spec, "<stored spec>").to_dict()
    except (ConfigError, TypeError, ValueError):
        return spec


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v and key not in ("grid.per_optimizer", "grid.per_family"):
            out.update(_flat(v, key + "."))
        else:
            out[key] = v
    return out


def sweep_running(sweep_dir: str | Path) -> bool:
    """Whether a `scalebench run` holds the folder's lock now (read-only: the lock file is never made)."""
    try:
        fd = os.open(Path(sweep_dir) / ".lock", os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)  # closing releases a lock taken here
    return False


@contextlib.contextmanager
def _sweep_lock(sweep_dir: Path):
    try:  # no-follow: a symlink planted as .lock must not make the sweep truncate or create a file elsewhere
        make_folder(sweep_dir)
        fd = open_nofollow(sweep_dir / ".lock")
    except OSError as exc:
        raise file_error(exc, sweep_dir / ".lock", "sweep lock") from None
    with os.fdopen(fd, "w") as f:
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
            _end_old_worker(row, Path(run.run_dir))
            store.add_event(run.run_id, "interrupted", "found running from an earlier sweep process; restarting")
        if row["spec_hash"] != run.spec_hash():
            store.update_spec(run.run_id, run.spec_hash(), run.to_dict())
        store.set_status(run.run_id, "pending")
        todo.append(run.run_id)
    return todo


_OLD_WORKER_WAIT_S = 20.0


def _end_old_worker(row: dict, run_dir: Path) -> None:
    """A worker of a killed sweep still alive on this machine (a Ray task outlives its driver by seconds) is
    waited for, then stopped, before its run is started again: never two processes training one run and
    writing one outbox. Only a process whose command line names this run's job file is touched."""
    from scalebench.sweep.executors.base import pid_alive

    pid = row.get("pid")
    if not pid or row.get("host") != socket.gethostname():
        return
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
        cwd = Path(os.readlink(f"/proc/{pid}/cwd"))
    except OSError:
        return
    job = (run_dir / "job.json").resolve()
    if not any(arg.endswith("job.json") and (cwd / arg).resolve() == job for arg in cmd):
        return
    deadline = time.monotonic() + _OLD_WORKER_WAIT_S
    for sig in (None, signal.SIGTERM, signal.SIGKILL):
        if sig is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
            deadline = time.monotonic() + _TERM_GRACE_S
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if not pid_alive(pid):
            return


@dataclass
class _Active:
    run_id: str
    job: JobHandle
    slot: Slot
    started: float
    run_dir: str


def _load(spec: SweepSpec | str | Path, backend: str | None, track: tuple[str, ...] | None = None
          ) -> tuple[SweepSpec, str]:
    source = str(spec) if isinstance(spec, (str, Path)) else "<spec>"
    if isinstance(spec, (str, Path)):
        spec = load_sweep(spec)
    if track is not None:  # --track: these trackers instead of tracking.kinds
        from scalebench.tracking import check_kinds

        check_kinds(track, "--track")
        spec = dataclasses.replace(spec, tracking=dataclasses.replace(spec.tracking, kinds=tuple(track)))
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
    spec, source = _load(spec, backend)
    sweep_dir = Path(out_dir) if out_dir else default_sweep_dir(spec)
    executor = make_executor(spec.executor, sweep_dir, python)
    corpus = prepare_sweep_corpus(spec, source)
    plan = plan_runs(spec, corpus=corpus, sweep_dir=sweep_dir, source=source, python=python)
    return executor.describe(plan.runs, spec, sweep_dir)


def run_sweep(spec: SweepSpec | str | Path, out_dir: str | Path | None = None, *,
              progress: Callable[[Progress], None] | None = None,
              python: str | None = None, backend: str | None = None,
              track: tuple[str, ...] | None = None) -> SweepOutcome:
    """Run (or resume) a sweep; each run in its own worker process. Returns the final status counts.

    ``backend`` ("local", "ray", "slurm") overrides ``executor.kind`` of the spec; ``track`` (tracker kinds)
    overrides ``tracking.kinds``.
    """
    from scalebench.hardware.devices import environment

    spec, source = _load(spec, backend, track)
    sweep_dir = Path(out_dir) if out_dir else default_sweep_dir(spec)
    t0 = time.monotonic()
    executor = make_executor(spec.executor, sweep_dir, python)  # first: a missing ray or submitit fails fast
    _check_folder(sweep_dir, spec, source)
    corpus = prepare_sweep_corpus(spec, source)
    plan = plan_runs(spec, corpus=corpus, sweep_dir=sweep_dir, source=source, python=python)
    with _sweep_lock(sweep_dir), _sigterm_as_interrupt(), ResultStore(sweep_dir, create=True, check=True) as store:
        _check_same_sweep(store.meta(), spec, sweep_dir, source, corpus=corpus.as_dict(),  # again, under the lock
                          runs=store.runs())
        _check_unchanged(store, plan, source)
        floor = getattr(corpus, "irreducible_loss", None)  # a task that knows its Bayes loss (teacher)
        store.set_meta(spec=spec.to_dict(), env=environment(), corpus=corpus.as_dict(), plan_notes=list(plan.notes),
                       sweep_name=spec.name, **({"irreducible_loss": floor} if floor is not None else {}))
        store.add_runs((r.run_id, r.spec_hash(), r.to_dict()) for r in plan.runs)
        if getattr(corpus, "tokenizer_path", ""):  # the sweep keeps the tokenizer it trained with
            from scalebench.data.tokenizer import save_with_sweep

            save_with_sweep(corpus, sweep_dir)
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
        if not counts.get("pending") and not counts.get("running"):
            _remove_forks(sweep_dir, plan)
    return SweepOutcome(sweep_dir=sweep_dir, counts=counts, wall_time_s=time.monotonic() - t0,
                        notes=plan.notes + executor.notes())


def _remove_forks(sweep_dir: Path, plan) -> None:
    """Nothing left to run: the wsd trunks' saved states serve no branch any more (a branch that diverged,
    or trained from scratch, leaves its fork behind)."""
    for run in plan.runs:
        if run.fork_steps:
            shutil.rmtree(sweep_dir / "runs" / run.run_id / "forks", ignore_errors=True)


def _launch(executor: Executor, picks: list[tuple], corpus: dict, sweep_dir: Path,
            store: ResultStore, tracking: dict | None = None) -> list[_Active]:
    """Start the (run, slot) pairs together (one Slurm job array), each from a fresh job file."""
    launches = []
    for run, slot in picks:
        run_dir = Path(run.run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        job = run_dir / "job.json"
        retire(run_dir)  # the last attempt's outbox was applied when it was reaped
        # gpus: the slot's devices (physical ids), for the telemetry sampler; a Ray task or Slurm job
        # rewrites them with what it was given
        write_text_atomic(job, json.dumps({"run": run.to_dict(), "corpus": corpus, "sweep_dir": str(sweep_dir),
                                           "outbox": executor.remote, "gpus": slot.gpu_indices(),
                                           "tracking": tracking}), what="job file")
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
    mine = frozenset(queue)
    tracking = plan.spec.tracking.for_job(sweep_dir, plan.spec.name)
    try:
        while queue or active:
            picks = []
            while queue and free:
                picks.append((by_id[queue.pop(0)], free.pop(0)))
            if picks:
                for a in _launch(executor, picks, corpus, sweep_dir, store, tracking):
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
                if _settle(store, run_id, a.job, code, max_attempts):
                    queue.append(run_id)
            if progress is not None:
                progress(_progress(store, plan, active, mine))
    except BaseException:
        _stop_all(store, active)
        raise
    if progress is not None:
        progress(_progress(store, plan, active, mine))


_MAX_INTERRUPTIONS = 20  # a run stopped from outside this often is failed: something keeps stopping it


def _settle(store: ResultStore, run_id: str, job: JobHandle, code: int, max_attempts: int) -> bool:
    """Record how an ended job left its run; True if it is to be started again.

    Only crashes count against ``executor.max_attempts``: a worker that died without writing (killed,
    segfault, timeout, scancel, node failure) or wrote ``failed``. One stopped by a signal from outside
    the sweep (it wrote ``pending``, and resumes from its checkpoint) is an interruption and is restarted
    without using up a retry. Every retry's event says why it was needed.
    """
    row = next(r for r in store.runs() if r["run_id"] == run_id)
    if row["status"] == "pending":
        n = store.count_events(run_id, "interrupted")
        if n < _MAX_INTERRUPTIONS:
            store.add_event(run_id, "retry", f"interrupted ({job.describe(code)}); restarting from its checkpoint, "
                                             f"not counted as a crash ({n} interruptions so far)")
            return True
        store.set_status(run_id, "failed", error=f"stopped from outside {n} times; not restarted again")
        return False
    if row["status"] == "running":
        error = f"worker {job.describe(code)}\n{job.log_tail()}"
        store.set_status(run_id, "failed", error=error)
        row.update(status="failed", error=error)
    if row["status"] != "failed":
        return False
    reason = (row["error"] or "no error recorded").strip()
    store.add_event(run_id, "crash", reason)
    crashes = store.count_events(run_id, "crash")
    if crashes >= max_attempts:
        return False
    store.add_event(run_id, "retry", f"after crash {crashes} of {max_attempts} allowed (executor.max_attempts): "
                                     f"{' | '.join(reason.splitlines()[:6])}")
    store.set_status(run_id, "pending")
    return True


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


def _progress(store: ResultStore, plan: SweepPlan, active: dict[str, _Active], mine: frozenset = frozenset()
              ) -> Progress:
    planned = {r.run_id: r for r in plan.runs}
    finished, flops_done, ended = 0, 0.0, set()
    mine_ended = []
    for row in store.runs():
        r = planned.get(row["run_id"])
        if r is not None and row["status"] in ("done", "failed", "diverged"):
            finished += 1
            flops_done += r.flops
            ended.add(r.run_id)
            if r.run_id in mine and r.run_id not in active:  # reaped: its retries are decided
                rec = row["record"] or {}
                wall = rec.get("wall_time_s")
                if wall is None and row["finished_at"] and row["started_at"]:
                    wall = row["finished_at"] - row["started_at"]
                mine_ended.append((row["finished_at"] or 0.0, FinishedRun(
                    run_id=r.run_id, status=row["status"], eval_loss=rec.get("eval_loss"), wall_time_s=wall,
                    error=(row["error"] or "").strip().splitlines()[0] if row["error"] else None)))
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
                    last_loss=last_loss, last_run=last_run,
                    finished=tuple(f for _, f in sorted(mine_ended, key=lambda t: t[0])), runs_to_do=len(mine))
