"""``train(run)``: a short loop over the trainer's parts.

Parts: :class:`~scalebench.train.steps.StepRunner` (micro-batches, accumulation, the OOM policy),
:class:`~scalebench.train.evaluate.Evaluator`, :class:`~scalebench.train.checkpoint.Checkpointer`,
:class:`~scalebench.train.monitor.DivergenceMonitor`, the profiling ``Instruments`` (rank 0), inside a
:class:`~scalebench.train.context.DistributedContext` (a no-op on one process, torch.distributed under
torchrun). The model and its data come from the run's family and task only.

Measurement protocol (DESIGN.md §7): the loss stays on the device and is read in blocks (every
``FLUSH_STEPS`` steps or at an eval), so there is no per-step host-device sync; warm-up steps are excluded
from throughput; step times are medians.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scalebench.config import RunSpec
from scalebench.errors import DeviceError
from scalebench.train import faults
from scalebench.train.checkpoint import Checkpointer, fork_path, release_fork
from scalebench.train.context import DistributedContext
from scalebench.train.evaluate import Evaluator
from scalebench.train.monitor import FLUSH_STEPS, DivergenceMonitor
from scalebench.train.optim import build_optimizer, lr_at, set_lr, warmup_steps
from scalebench.train.parallel import choose_strategy, device_memory_bytes, wrap
from scalebench.train.precision import matmul_dtype, resolve_precision
from scalebench.train.record import NullSink, RunRecord, Sink
from scalebench.train.steps import StepRunner

COMPILE_MIN_STEPS = 500  # compile="auto": compile on GPU when the run is long enough to amortise warm-up
FORK_POLL_S = 0.5  # a wsd branch looks for its trunk's state this often, and at the trunk's status every
FORK_STATUS_S = 5.0  # this many seconds: it waits only while the trunk is running


@dataclass
class _Progress:
    """What a checkpoint carries besides model and optimizer."""

    step: int = 0
    trained_s: float = 0.0
    pending: list = field(default_factory=list)  # (step, loss tensor, lr, step_time_s, grad norm)
    step_times: list = field(default_factory=list)
    last_eval: float | None = None


def train(run_spec: RunSpec, *, corpus=None, sink: Sink | None = None, run_dir: str | Path | None = None,
          remove_checkpoint: bool = True, instruments_out: list | None = None) -> RunRecord:
    """Train one run to its budget and return its record (on every rank; only rank 0's sink is written).

    ``instruments_out``, a list, receives the run's finished ``Instruments`` (``scalebench profile`` reads
    its full result from there).

    Raises ``DeviceError`` when it runs out of memory at micro-batch 1. A non-finite or exploding loss
    returns a record with ``status='diverged'`` and the reason in ``error``.
    """
    import torch

    device_type = "cuda" if run_spec.device == "cuda" else "cpu"
    if device_type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(f"run {run_spec.run_id} asks for cuda but torch sees no CUDA device; set devices.device")
    ctx = DistributedContext(device_type)
    if ctx.world_size != run_spec.parallel.ranks:
        raise DeviceError(f"run {run_spec.run_id} is planned for {run_spec.parallel.ranks} rank(s) but runs on "
                          f"{ctx.world_size}; start it through the sweep (torchrun inside its slot)")
    ctx.start()
    try:
        run = _Run(run_spec, ctx, corpus, sink, run_dir)
        record = run.execute(remove_checkpoint)
    except BaseException:
        ctx.close()
        raise
    if instruments_out is not None and run.instruments is not None:
        instruments_out.append(run.instruments)
    return record  # a group is torn down once the caller has reported (context.shutdown)


class _Run:
    """One run's parts, built once; ``execute`` is the loop."""

    def __init__(self, spec: RunSpec, ctx: DistributedContext, corpus, sink, run_dir) -> None:
        import torch

        from scalebench.data.tasks import get_task
        from scalebench.families import get_family

        self.t0 = time.perf_counter()
        self.spec, self.ctx = spec, ctx
        self.sink = (sink or NullSink()) if ctx.is_main else NullSink()
        self.device = ctx.device()
        torch.set_num_threads(max(1, spec.threads))
        torch.manual_seed(spec.train.seed)
        self.run_path = Path(run_dir or spec.run_dir or ".")
        self.family = get_family(spec.family)
        task = get_task(self.family.task)
        if corpus is None:
            corpus = task.prepare(spec.data, spec.eval.held_out_share)
        elif isinstance(corpus, dict):
            corpus = task.info_from_dict(corpus)
        self.corpus = corpus
        self.data = task.open(corpus, spec)
        self.shape = self.family.make_shape(**spec.shape)
        model = self.family.build(self.shape).to(self.device)
        self.raw_model = model
        self.precision, self.precision_note = resolve_precision(spec, self.device.type)
        self.strategy, self.strategy_note = choose_strategy(
            spec.parallel.strategy, params_total=spec.params_total, world_size=ctx.world_size,
            device_type=self.device.type, memory_bytes=device_memory_bytes(self.device.type, ctx.local_rank),
            ranks_per_memory=ctx.world_size if self.device.type == "cpu" else 1)
        self.model = wrap(model, self.strategy, ctx, self.family)
        self.opt = build_optimizer(self.model, spec.train, self.device.type)
        rows = spec.batch_rows
        if rows % ctx.world_size:
            raise DeviceError(f"run {spec.run_id}: the global batch of {rows} rows does not split over "
                              f"{ctx.world_size} ranks; make it a multiple of parallel.ranks")
        micro = min(spec.train.micro_batch or rows, rows // ctx.world_size)
        self.checkpointer = Checkpointer(self.run_path, spec_hash=spec.spec_hash(), run_id=spec.run_id,
                                         sink=self.sink, ctx=ctx, strategy=self.strategy, steps=spec.steps,
                                         corpus=getattr(corpus, "fingerprint", None))
        self.progress = _Progress()
        self.monitor = DivergenceMonitor(factor=spec.train.divergence_factor,
                                         warmup_steps=warmup_steps(spec.steps, spec.train))
        self.steps = StepRunner(run=spec, family=self.family, model=self.model, step_model=self.model,
                                optimizer=self.opt, data=self.data, precision=self.precision, device=self.device,
                                ctx=ctx, strategy=self.strategy, micro=micro, sink=self.sink,
                                fault=faults.plan_from_env(spec.run_id))
        self._resume()
        t = spec.train
        left = spec.steps - (0 if self.fork is not None else self.progress.step)  # a branch decides as from scratch
        self.compiled = t.compile == "on" or (t.compile == "auto" and self.device.type == "cuda"
                                              and left >= COMPILE_MIN_STEPS)
        self.step_model = torch.compile(self.model) if self.compiled else self.model
        self.steps.step_model = self.step_model
        self.evaluator = Evaluator(run=spec, family=self.family, model=self.step_model, data=self.data,
                                   precision=self.precision, device=self.device, ctx=ctx, strategy=self.strategy)
        self.instruments = self._instruments() if ctx.is_main else None
        self.rank_trace = None if ctx.is_main else self._rank_trace()  # rank 0's is the instruments'
        self.steps.instruments = self.instruments
        for note in (self.precision_note, None if ctx.world_size == 1 else self.strategy_note):
            if note:
                self.sink.add_event(spec.run_id, "note", note)

    # --- parts --------------------------------------------------------------------------------------------
    def _resume(self) -> None:
        loaded = self.checkpointer.load(self.model, self.opt, self.device)
        self.fork = None
        if loaded is None and self.spec.fork_from:
            loaded = self._branch_start()
        if loaded is not None:
            trainer, scaler_state = loaded
            if self.steps.scaler is not None and scaler_state:
                self.steps.scaler.load_state_dict(scaler_state)
            self.progress.step, self.progress.trained_s = trainer["step"], trainer["trained_s"]
            self.steps.state.micro, self.steps.state.backoffs = trainer["micro_batch"], trainer["backoffs"]
            self.monitor.ema, self.monitor.best_ema = trainer["ema"], trainer["best_ema"]
            if self.fork is None:
                self.sink.add_event(self.spec.run_id, "resume", f"resumed from checkpoint at step {trainer['step']}")
        self.sink.truncate_steps(self.spec.run_id, self.progress.step - 1)  # a restart never records a step twice

    def _branch_start(self):
        """A wsd branch: the trunk's state at this run's fork step, once the trunk has saved it. It waits only
        while the sweep's store says the trunk is running: a trunk that stopped, was killed, or waits for a
        retry leaves the branch to train from scratch (the same run, at full cost), never to wait on it."""
        f = self.spec.fork_from
        trunk_dir = self.run_path.parent / f["run_id"]
        path, t_wait, t_status = fork_path(trunk_dir, f["step"]), time.perf_counter(), -math.inf
        while not path.exists():
            if time.perf_counter() - t_status >= FORK_STATUS_S:
                t_status = time.perf_counter()
                if _status(self.run_path.parent.parent, f["run_id"]) != "running" and not path.exists():
                    self.sink.add_event(self.spec.run_id, "fork-missing", f"trunk {f['run_id']} is not running and "
                                        f"left no state at step {f['step']}; training from scratch (the same run, "
                                        "at full cost)")
                    return None
            time.sleep(FORK_POLL_S)
        self.t0 += time.perf_counter() - t_wait  # waiting is not this run's training time
        loaded = self.checkpointer.load_fork(path, f["spec_hash"], self.model, self.opt, self.device)
        if loaded is not None:
            self.fork = path
            loaded[0]["trained_s"] = 0.0  # the trunk's time and back-offs are the trunk's: the record is this run's
            loaded[0]["backoffs"] = 0
            self.sink.add_event(self.spec.run_id, "branch", f"started from {f['run_id']} at step {f['step']} "
                                "(wsd: its stable phase is this run's)")
        return loaded

    def _profiles(self) -> bool:
        prof = self.spec.profiling
        window = prof.profiler_wait + prof.profiler_warmup + prof.profiler_active
        # auto: always on GPU; on CPU only when the window is a small part of the run
        return prof.profiler == "on" or (prof.profiler == "auto" and (self.device.type == "cuda"
                                                                       or self.spec.steps >= 5 * window))

    def _rank_trace(self):
        """A rank other than 0 records the same profiler window into the run's traces folder."""
        prof = self.spec.profiling
        if not (prof.enabled and self._profiles()):
            return None
        from scalebench.profiling.trace import ProfilerWindow, rank_trace_name, trace_folder

        return ProfilerWindow(trace_folder(self.run_path), prof.profiler_wait, prof.profiler_warmup,
                              prof.profiler_active, self.device.type, filename=rank_trace_name(self.ctx.rank),
                              rank=self.ctx.rank, world_size=self.ctx.world_size)

    def _instruments(self):
        prof = self.spec.profiling
        if not prof.enabled:
            return None
        from scalebench.profiling.flops import count_flops_per_unit
        from scalebench.profiling.instruments import Instruments

        profile = self._profiles()
        inst = Instruments(run_dir=self.run_path, device=self.device, warmup_steps=prof.warmup_steps, profile=profile,
                           profiler_schedule=(prof.profiler_wait, prof.profiler_warmup, prof.profiler_active),
                           telemetry=prof.telemetry, telemetry_interval_s=prof.telemetry_interval_s,
                           flops_per_token=self.spec.flops_per_token,
                           dtype=matmul_dtype(self.precision, self.device.type), micro_batch=self.steps.micro,
                           slot_gpus=self.ctx.world_size if self.device.type == "cuda" else 1)
        if prof.count_flops and self.strategy == "single":  # counting a sharded model would count its collectives
            inst.record_counted_flops(count_flops_per_unit(self.family, self.shape, self.raw_model, str(self.device)))
        return inst

    def _excluded(self):
        return self.instruments.excluded() if self.instruments is not None else contextlib.nullcontext()

    def _checkpoint_state(self) -> dict[str, Any]:
        return {"step": self.progress.step, "micro_batch": self.steps.micro, "ema": self.monitor.ema,
                "best_ema": self.monitor.best_ema, "backoffs": self.steps.state.backoffs,
                "trained_s": self.progress.trained_s + time.perf_counter() - self.t0}

    def _flush(self, eval_loss: float | None) -> str | None:
        """Read pending losses (one sync, averaged over ranks), record them, check divergence."""
        import torch

        p = self.progress
        if not p.pending:
            return None
        losses = self.ctx.mean_tensor(torch.stack([x[1] for x in p.pending])).tolist()
        rows, why = [], None
        for (step, _, lr, dt, gnorm), loss in zip(p.pending, losses, strict=True):
            rows.append({"step": step, "tokens": (step + 1) * self.spec.batch_units, "loss": loss, "lr": lr,
                         "step_time_s": dt, "grad_norm": None if gnorm is None else float(gnorm)})
            if why is None:
                why = self.monitor.observe(step, loss)
        if eval_loss is not None:
            rows[-1]["eval_loss"] = eval_loss
        p.pending.clear()
        self.sink.add_steps(self.spec.run_id, rows)
        return why

    # --- the loop -----------------------------------------------------------------------------------------
    def execute(self, remove_checkpoint: bool) -> RunRecord:
        spec, p = self.spec, self.progress
        status, reason = "done", None
        last_ckpt = time.monotonic()
        telemetry_t0 = time.time()  # sample times are relative to the sampler's start; the store keeps Unix time
        self.model.train()
        with contextlib.ExitStack() as stack:
            if self.instruments is not None:
                stack.enter_context(self.instruments)  # an exception stops the sampler and profiler
            if self.rank_trace is not None:
                stack.enter_context(self.rank_trace)
            while p.step < spec.steps:
                lr = lr_at(p.step, spec.steps, spec.train)
                set_lr(self.opt, lr)
                ts = time.perf_counter()
                out = self.steps.step(p.step)
                if out is None:  # backed off after an out-of-memory error: the same step again
                    continue
                dt = time.perf_counter() - ts
                p.step_times.append(dt)
                if self.instruments is not None:
                    self.instruments.on_step(tokens=spec.batch_units, samples=spec.batch_rows)
                if self.rank_trace is not None:
                    self.rank_trace.step()
                p.pending.append((p.step, out[0], lr, dt, out[1]))
                p.step += 1
                do_eval = p.step % spec.eval.interval_steps == 0 or p.step == spec.steps
                fork = p.step in spec.fork_steps  # a wsd trunk: the monitor must have seen every step when saved
                if do_eval or fork or len(p.pending) >= FLUSH_STEPS:
                    with self._excluded():
                        p.last_eval = self.evaluator(self.steps.micro, self.model) if do_eval else None
                    reason = self._flush(p.last_eval)
                    if reason:
                        status = "diverged"
                        break
                    if fork:  # before the periodic checkpoint: a kill between the two must not skip the fork
                        with self._excluded():
                            self.checkpointer.save_fork(self.model, self.opt, self.steps.scaler,
                                                        self._checkpoint_state())
                    due = bool(spec.train.checkpoint_interval_s) and p.step < spec.steps and (
                        time.monotonic() - last_ckpt > spec.train.checkpoint_interval_s)
                    if self.ctx.any(due and self.ctx.is_main):  # rank 0's clock decides for all
                        with self._excluded():
                            self.checkpointer.save(self.model, self.opt, self.steps.scaler, self._checkpoint_state())
                        last_ckpt = time.monotonic()
        return self._record(status, reason, telemetry_t0, remove_checkpoint)

    def _record(self, status: str, reason: str | None, telemetry_t0: float, remove_checkpoint: bool) -> RunRecord:
        import torch

        spec, p = self.spec, self.progress
        wall = time.perf_counter() - self.t0 + p.trained_s
        extra: dict[str, Any] = {}
        if self.instruments is not None:
            extra = dict(self.instruments.finish())  # a copy: the fields below are moved out of it
            self.sink.add_telemetry(spec.run_id, [{**x, "t_s": telemetry_t0 + x["t_s"]}
                                                  for x in self.instruments.telemetry_samples])
        warm = min(len(p.step_times) - 1, max(1, spec.profiling.warmup_steps))
        measured = sorted(p.step_times[warm:]) or p.step_times
        median_step = measured[len(measured) // 2] if measured else None
        final_eval = None
        if status == "done":  # the loop evaluated at its last step
            final_eval = p.last_eval if p.last_eval is not None else self.evaluator(self.steps.micro, self.model)
        peak_mem = int(torch.cuda.max_memory_allocated(self.device)) if self.device.type == "cuda" else None
        if self.ctx.world_size > 1:  # memory is per rank: report the largest
            own = extra.get("peak_mem_bytes") or peak_mem or 0
            peak_mem = int(self.ctx.max([float(own)])[0]) or None
            extra["peak_mem_bytes"] = peak_mem
        units_done = p.step * spec.batch_units
        if remove_checkpoint and status == "done":
            self.checkpointer.remove()
            if self.fork is not None:
                release_fork(self.run_path, spec.fork_from)
        return RunRecord(
            run_id=spec.run_id, status=status, params=spec.params, params_total=spec.params_total,
            tokens=units_done, flops=spec.flops_per_token * units_done, flops_per_token=spec.flops_per_token,
            train_loss=self.monitor.ema, eval_loss=final_eval,
            tokens_per_s=extra.pop("tokens_per_s", None) or (spec.batch_units / median_step if median_step else None),
            step_time_s=extra.pop("step_time_s", None) or median_step,
            peak_mem_bytes=extra.pop("peak_mem_bytes", None) or peak_mem, wall_time_s=wall, steps=p.step,
            micro_batch=self.steps.micro, grad_accum=self.steps.accum, precision=self.precision,
            compiled=self.compiled, device=_device_name(self.device),
            epochs=units_done / max(1, self.corpus.train_units), unit=spec.unit, world_size=self.ctx.world_size,
            strategy=self.strategy, oom_backoffs=self.steps.state.backoffs, error=reason,
            metrics={**extra, **({"precision_note": self.precision_note} if self.precision_note else {}),
                     **({"eval_bpb": bpb} if (bpb := self.evaluator.bits_per_byte(final_eval)) is not None else {}),
                     **({"fork_of": spec.fork_from["run_id"], "fork_step": spec.fork_from["step"]}
                        if self.fork is not None else {})},
        )


def _device_name(device) -> str:
    import torch

    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return "cpu"


def _status(sweep_dir: Path, run_id: str) -> str | None:
    """A run's status in the sweep's store, or None where there is no store (a run trained on its own)."""
    from scalebench.errors import StoreError

    if not (sweep_dir / "scalebench.sqlite").is_file():
        return None
    from scalebench.store import _reading

    try:
        with _reading(sweep_dir) as store:
            rows = store.query("SELECT status FROM runs WHERE run_id = ?", (run_id,))
    except StoreError:
        return None
    return str(rows["status"].iloc[0]) if len(rows) else None
