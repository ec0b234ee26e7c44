"""Run a sweep into its directory: plan, record, launch each run in its own process, resume.

Resume rules (running the same spec into an existing directory):
* ``done`` and ``diverged`` runs are kept and never repeated (a diverged run would diverge again);
* ``running`` rows left by a killed sweep, ``pending`` and ``failed`` runs are (re)started — from their
  last checkpoint when one exists;
* a finished run whose settings the new spec would change is refused, naming the run and the fix.
One sweep process at a time may write a directory (an advisory lock), while its workers write
concurrently through the store's short transactions.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from scalebench.config import SweepSpec, load_sweep
from scalebench.errors import ConfigError, DeviceError, StoreError
from scalebench.store import ResultStore
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


def _reconcile(store: ResultStore, plan: SweepPlan) -> list[str]:
    """Reset runs a previous sweep left unfinished; return the run ids to start, in plan order."""
    rows = {r["run_id"]: r for r in store.runs()}
    todo = []
    for run in plan.runs:
        row = rows[run.run_id]
        if row["status"] in ("done", "diverged"):
            continue
        if row["status"] == "running":
            store.add_event(run.run_id, "interrupted", "found running from an earlier sweep process; restarting")
        if row["spec_hash"] != run.spec_hash():
            store.update_spec(run.run_id, run.spec_hash(), run.to_dict())
        store.set_status(run.run_id, "pending")
        todo.append(run.run_id)
    return todo


@dataclass
class _Active:
    run_id: str
    proc: subprocess.Popen
    slot: str
    started: float
    log: object


def run_sweep(spec: SweepSpec | str | Path, out_dir: str | Path | None = None, *,
              progress: Callable[[Progress], None] | None = None,
              python: str | None = None) -> SweepOutcome:
    """Run (or resume) a sweep; each run in its own worker process. Returns the final status counts."""
    from scalebench.data import prepare_corpus
    from scalebench.hardware.devices import environment

    source = str(spec) if isinstance(spec, (str, Path)) else "<spec>"
    if isinstance(spec, (str, Path)):
        spec = load_sweep(spec)
    sweep_dir = Path(out_dir) if out_dir else default_sweep_dir(spec)
    t0 = time.monotonic()
    corpus = prepare_corpus(spec.data, spec.eval.held_out_share)
    plan = plan_runs(spec, corpus=corpus, sweep_dir=sweep_dir, source=source)
    with _sweep_lock(sweep_dir), _sigterm_as_interrupt(), ResultStore(sweep_dir, create=True) as store:
        _check_unchanged(store, plan, source)
        store.set_meta(spec=spec.to_dict(), env=environment(), corpus=corpus.as_dict(), plan_notes=list(plan.notes),
                       sweep_name=spec.name)
        store.add_runs((r.run_id, r.spec_hash(), r.to_dict()) for r in plan.runs)
        todo = _reconcile(store, plan)
        by_id = {r.run_id: r for r in plan.runs}
        _execute(store, plan, todo, corpus.as_dict(), sweep_dir, progress, python)
        counts: dict[str, int] = {}
        for row in store.runs():
            if row["run_id"] in by_id:
                counts[row["status"]] = counts.get(row["status"], 0) + 1
    return SweepOutcome(sweep_dir=sweep_dir, counts=counts, wall_time_s=time.monotonic() - t0, notes=plan.notes)


def _slots(plan: SweepPlan) -> list[str]:
    spec = plan.spec
    if plan.runs and plan.runs[0].device == "cuda":
        import torch

        count = torch.cuda.device_count()
        gpus = list(spec.devices.gpus) or list(range(count))
        bad = [g for g in gpus if g >= count]
        if bad:
            raise DeviceError(f"devices.gpus = {list(spec.devices.gpus)}: index {bad[0]} is not among the {count} "
                              "CUDA devices this process sees (indices count visible devices, from 0)")
        if not gpus:
            raise DeviceError("devices.device = 'cuda' but torch sees no CUDA device (CPU build of torch, or "
                              "CUDA_VISIBLE_DEVICES hides them); set devices.device = 'auto' or 'cpu'")
        return [f"cuda:{g}" for g in gpus]
    return [f"cpu:{i}" for i in range(spec.devices.cpu_workers)]


def _launch(run, slot: str, corpus: dict, sweep_dir: Path, store: ResultStore, python: str | None) -> _Active:
    run_dir = Path(run.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    job = run_dir / "job.json"
    job.write_text(json.dumps({"run": run.to_dict(), "corpus": corpus, "sweep_dir": str(sweep_dir)}))
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = str(run.threads)
    if slot.startswith("cuda:"):
        # slots index the devices this process sees; translate through an inherited CUDA_VISIBLE_DEVICES
        # (e.g. Slurm's "2,3") so a worker lands on the GPU it was given, not physical GPU 0
        visible = [v for v in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
        index = int(slot.split(":")[1])
        env["CUDA_VISIBLE_DEVICES"] = visible[index] if index < len(visible) else str(index)
    store.set_status(run.run_id, "running", host=socket.gethostname())  # before the worker can finish
    log = open(run_dir / "worker.log", "ab")  # noqa: SIM115 - closed when the worker is reaped
    proc = subprocess.Popen([python or sys.executable, "-m", "scalebench.sweep.worker", str(job)],
                            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    store.set_pid(run.run_id, proc.pid)
    return _Active(run_id=run.run_id, proc=proc, slot=slot, started=time.monotonic(), log=log)


def _log_tail(run_dir: Path, lines: int = 8) -> str:
    try:
        text = (run_dir / "worker.log").read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return "\n".join(text[-lines:])


def _execute(store: ResultStore, plan: SweepPlan, queue: list, corpus: dict, sweep_dir: Path,
             progress: Callable[[Progress], None] | None, python: str | None) -> None:
    by_id = {r.run_id: r for r in plan.runs}
    free = _slots(plan)
    active: dict[str, _Active] = {}
    queue = list(queue)
    max_attempts = plan.spec.executor.max_attempts
    timeout_s = plan.spec.executor.timeout_s
    try:
        while queue or active:
            while queue and free:
                run = by_id[queue.pop(0)]
                active[run.run_id] = _launch(run, free.pop(0), corpus, sweep_dir, store, python)
            time.sleep(_POLL_S)
            for run_id, a in list(active.items()):
                code = a.proc.poll()
                if code is None and timeout_s and time.monotonic() - a.started > timeout_s:
                    a.proc.kill()
                    code = a.proc.wait()
                    store.add_event(run_id, "timeout", f"killed after executor.timeout_s={timeout_s:g}")
                if code is None:
                    continue
                a.log.close()
                del active[run_id]
                free.append(a.slot)
                row = next(r for r in store.runs() if r["run_id"] == run_id)
                if row["status"] in ("running", "pending"):
                    # died without writing (killed, segfault, timeout), or stopped by a signal from outside
                    # the sweep (it wrote 'pending'): a failed attempt either way, retried below
                    how = f"killed by signal {-code}" if code < 0 else f"exited with code {code}"
                    store.set_status(run_id, "failed", error=f"worker {how}\n{_log_tail(Path(by_id[run_id].run_dir))}")
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
    """Ctrl-C or an error in the sweep: stop workers, leave their runs pending (they restart on resume)."""
    for a in active.values():
        with contextlib.suppress(ProcessLookupError):
            a.proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + _TERM_GRACE_S
    for run_id, a in active.items():
        try:
            a.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            a.proc.kill()
            a.proc.wait()
        a.log.close()
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
