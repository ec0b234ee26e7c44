"""One run: the training loop, evaluation, checkpoints, OOM back-off and divergence detection.

``train(run_spec)`` is callable in-process (notebooks, tests, ``scalebench profile``); the sweep runs it in
a worker subprocess (``scalebench.sweep.worker``) so a crash cannot take the sweep down.

Measurement protocol (DESIGN.md §7): the loss is kept on the device and read in blocks (every
``_FLUSH_STEPS`` steps or at an eval), so there is no per-step host-device sync; warm-up steps are
excluded from throughput; step times are medians.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from scalebench.config import RunSpec
from scalebench.errors import DeviceError

_FLUSH_STEPS = 10  # steps between host reads of the loss (and divergence checks)
_EMA = 0.9  # smoothing of the train loss
COMPILE_MIN_STEPS = 500  # compile="auto": compile on GPU when the run is long enough to amortise warm-up


class Sink(Protocol):
    """Where a run reports as it goes (the ResultStore, or a collector in tests)."""

    def add_steps(self, run_id: str, rows: list[dict[str, Any]]) -> None: ...
    def add_event(self, run_id: str | None, kind: str, message: str) -> None: ...
    def truncate_steps(self, run_id: str, after_step: int = -1) -> None: ...
    def add_telemetry(self, run_id: str, samples: list[dict[str, Any]]) -> None: ...


class _NullSink:
    def add_telemetry(self, run_id: str, samples: list[dict[str, Any]]) -> None:
        pass

    def truncate_steps(self, run_id: str, after_step: int = -1) -> None:
        pass

    def add_steps(self, run_id: str, rows: list[dict[str, Any]]) -> None:
        pass

    def add_event(self, run_id: str | None, kind: str, message: str) -> None:
        pass


@dataclass(frozen=True, kw_only=True)
class RunRecord:
    """The summary of one run, as stored (``status`` is ``done`` or ``diverged``)."""

    run_id: str
    status: str
    params: int
    params_total: int
    tokens: int  # tokens actually trained on
    flops: float  # analytic training FLOPs of the tokens trained
    flops_per_token: float
    train_loss: float | None
    eval_loss: float | None
    tokens_per_s: float | None
    step_time_s: float | None
    peak_mem_bytes: int | None
    wall_time_s: float
    steps: int
    micro_batch: int
    grad_accum: int
    precision: str
    compiled: bool
    device: str
    epochs: float
    oom_backoffs: int = 0
    error: str | None = None  # the divergence reason
    metrics: Mapping[str, Any] = field(default_factory=dict)  # profiling fields (issue 3 names)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        extra = d.pop("metrics")
        return {**d, **extra}


def _is_oom(exc: BaseException) -> bool:
    import torch

    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def _lr_at(step: int, steps: int, spec: RunSpec) -> float:
    t = spec.train
    warmup = int(t.warmup_share * steps)
    if step < warmup:
        return t.lr * (step + 1) / warmup
    if t.schedule == "constant":
        return t.lr
    progress = (step - warmup) / max(1, steps - warmup)
    return t.lr * (t.min_lr_ratio + (1 - t.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def _optimizer(model, spec: RunSpec, device_type: str):
    import torch

    t = spec.train
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": t.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if t.optimizer in ("sgd", "gd"):  # gd: the task makes the batch the whole training set
        return torch.optim.SGD(groups, lr=t.lr, momentum=t.momentum)
    if t.optimizer == "adam":  # L2 weight decay inside the gradient (Kingma & Ba), not decoupled
        return torch.optim.Adam(groups, lr=t.lr, betas=tuple(t.betas), fused=device_type == "cuda")
    return torch.optim.AdamW(groups, lr=t.lr, betas=tuple(t.betas), fused=device_type == "cuda")


def resolve_precision(spec: RunSpec, device_type: str) -> str:
    import torch

    p = spec.train.precision
    if p == "fp8":
        raise DeviceError(f"run {spec.run_id}: precision 'fp8' is not supported by this trainer yet; "
                          "use bf16 or fp16")
    if p == "auto":
        if device_type == "cuda" and torch.cuda.is_bf16_supported(including_emulation=False):
            return "bf16"
        return "fp32"
    if p in ("bf16", "fp16") and device_type != "cuda":
        return "fp32"  # autocast on CPU is slower than fp32 for these sizes and changes the numbers
    return p


def _autocast(precision: str, device_type: str):
    import torch

    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device_type, dtype=dtype)


# A test hook: called before each micro-batch forward with (step, micro_batch); tests raise an injected
# OOM from it. None in normal use.
fault_hook: Callable[[int, int], None] | None = None


def _matmul_dtype(precision: str, device_type: str) -> str:
    """The dtype whose peak MFU is measured against."""
    import torch

    if precision in ("bf16", "fp16"):
        return precision
    if device_type == "cuda" and torch.backends.cuda.matmul.allow_tf32:
        return "tf32"
    return "fp32"


def _instruments(spec: RunSpec, model, device, precision: str, micro: int, run_path: Path):
    """The profiling bundle of issue 3 (timer, NVML sampler, profiler window, memory), or None."""
    prof = spec.profiling
    if not prof.enabled:
        return None
    from scalebench.profiling.flops import count_gpt_flops_per_token
    from scalebench.profiling.instruments import Instruments

    window = prof.profiler_wait + prof.profiler_warmup + prof.profiler_active
    # auto: always on GPU; on CPU only when the window is a small part of the run
    profile = prof.profiler == "on" or (prof.profiler == "auto" and (device.type == "cuda" or spec.steps >= 5 * window))
    inst = Instruments(run_dir=run_path, device=device, warmup_steps=prof.warmup_steps, profile=profile,
                       profiler_schedule=(prof.profiler_wait, prof.profiler_warmup, prof.profiler_active),
                       telemetry=True, telemetry_interval_s=prof.telemetry_interval_s,
                       flops_per_token=spec.flops_per_token, dtype=_matmul_dtype(precision, device.type),
                       micro_batch=micro)
    if prof.count_flops:
        inst.record_counted_flops(count_gpt_flops_per_token(model, 1, spec.train.seq_len, str(device)))
    return inst


def _load_checkpoint(path: Path, device, spec_hash: str, run_id: str, sink: Sink) -> dict | None:
    """The checkpoint to resume from, or None; one from other settings or unreadable is set aside."""
    import torch

    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - a torn or foreign file must not make every retry fail
        sink.add_event(run_id, "checkpoint-unreadable", f"{path.name}: {exc}; starting from scratch")
        path.unlink(missing_ok=True)
        return None
    if state.get("spec_hash") != spec_hash:
        sink.add_event(run_id, "checkpoint-stale", "checkpoint written under other settings; starting from scratch")
        path.unlink(missing_ok=True)
        return None
    return state


def train(run_spec: RunSpec, *, corpus=None, sink: Sink | None = None, run_dir: str | Path | None = None,
          remove_checkpoint: bool = True) -> RunRecord:
    """Train one run to its token budget and return its record.

    Raises ``DeviceError`` when it runs out of memory at micro-batch 1. A non-finite or exploding loss
    returns a record with ``status='diverged'`` and the reason in ``error``.
    """
    import torch

    from scalebench.data import TokenData, prepare_corpus
    from scalebench.families import get_family

    t0 = time.perf_counter()
    spec = run_spec
    sink = sink or _NullSink()
    device_type = "cuda" if spec.device == "cuda" else "cpu"
    if device_type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(f"run {spec.run_id} asks for cuda but torch sees no CUDA device; set devices.device")
    device = torch.device(device_type)
    torch.set_num_threads(max(1, spec.threads))
    torch.manual_seed(spec.train.seed)
    run_path = Path(run_dir or spec.run_dir or ".")
    ckpt_path = run_path / "checkpoint.pt"

    corpus = corpus or prepare_corpus(spec.data, spec.eval.held_out_share)
    data = TokenData(corpus, spec.data)
    family = get_family(spec.family)
    shape = family.make_shape(**spec.shape)
    model = family.build(shape).to(device)
    precision = resolve_precision(spec, device_type)
    t = spec.train
    micro = t.micro_batch or t.batch_seqs
    accum = t.batch_seqs // micro
    opt = _optimizer(model, spec, device_type)
    scaler = torch.amp.GradScaler("cuda") if precision == "fp16" else None

    start_step, ema, best_ema, backoffs, trained_s = 0, None, math.inf, 0, 0.0
    spec_hash = spec.spec_hash()
    state = _load_checkpoint(ckpt_path, device, spec_hash, spec.run_id, sink)
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        start_step, micro, accum = int(state["step"]), int(state["micro_batch"]), int(state["grad_accum"])
        ema, best_ema = state["ema"], state["best_ema"]
        backoffs, trained_s = int(state["backoffs"]), float(state["trained_s"])
        sink.add_event(spec.run_id, "resume", f"resumed from checkpoint at step {start_step}")
    sink.truncate_steps(spec.run_id, start_step - 1)  # a restart never records a step twice

    compiled = t.compile == "on" or (t.compile == "auto" and device_type == "cuda"
                                     and spec.steps - start_step >= COMPILE_MIN_STEPS)
    step_model = torch.compile(model) if compiled else model

    instruments = _instruments(spec, model, device, precision, micro, run_path)
    excluded = instruments.excluded if instruments is not None else contextlib.nullcontext

    def evaluate() -> float:
        with excluded():
            return _evaluate()

    def _evaluate() -> float:
        model.eval()
        total, n = 0.0, 0
        with torch.no_grad(), _autocast(precision, device_type):
            for x, y in data.eval_batches(spec.eval.eval_tokens, t.seq_len, micro):
                xb, yb = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)
                _, loss = step_model(xb, yb)
                total += float(loss) * xb.numel()
                n += xb.numel()
        model.train()
        return total / n

    def save_checkpoint(step: int) -> None:
        tmp = ckpt_path.with_suffix(".tmp")
        run_path.mkdir(parents=True, exist_ok=True)
        torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step,
                    "micro_batch": micro, "grad_accum": accum, "ema": ema, "best_ema": best_ema,
                    "backoffs": backoffs, "trained_s": trained_s + time.perf_counter() - t0,
                    "spec_hash": spec_hash, "scaler": scaler.state_dict() if scaler else {}}, tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, ckpt_path)  # atomic: a kill mid-save leaves the previous checkpoint

    pending: list[tuple[int, Any, float, float, Any]] = []  # (step, loss tensor, lr, step_time_s, grad norm)
    last_eval: float | None = None
    step_times: list[float] = []
    last_ckpt = time.monotonic()
    status, reason = "done", None
    warmup_steps = int(t.warmup_share * spec.steps)

    def flush(eval_loss: float | None = None) -> str | None:
        """Read pending losses (one sync), record them, check divergence; returns a reason or None."""
        nonlocal ema, best_ema
        rows = []
        why = None
        for step, loss_t, lr, dt, gnorm in pending:
            loss = float(loss_t)
            rows.append({"step": step, "tokens": (step + 1) * t.batch_tokens, "loss": loss, "lr": lr,
                         "step_time_s": dt, "grad_norm": None if gnorm is None else float(gnorm)})
            if why is None and not math.isfinite(loss):
                why = f"loss became {loss} at step {step}"
            elif why is None:
                ema = loss if ema is None else _EMA * ema + (1 - _EMA) * loss
                if step > warmup_steps + _FLUSH_STEPS and ema > t.divergence_factor * best_ema:
                    why = (f"smoothed loss {ema:.3g} at step {step} exceeds {t.divergence_factor:g}x the best "
                           f"smoothed loss {best_ema:.3g}")
                best_ema = min(best_ema, ema)
        if rows and eval_loss is not None:
            rows[-1]["eval_loss"] = eval_loss
        pending.clear()
        sink.add_steps(spec.run_id, rows)
        return why

    model.train()
    step = start_step
    telemetry_t0 = time.time()  # sample times are relative to the sampler's start; the store keeps Unix time
    with contextlib.ExitStack() as stack:
        if instruments is not None:
            stack.enter_context(instruments)  # an exception stops the sampler and profiler, records nothing
        while step < spec.steps:
            lr = _lr_at(step, spec.steps, spec)
            for g in opt.param_groups:
                g["lr"] = lr
            ts = time.perf_counter()
            try:
                loss_sum = torch.zeros((), device=device)
                for m in range(accum):
                    if fault_hook is not None:
                        fault_hook(step, micro)
                    if instruments is not None:
                        with instruments.data_wait():
                            x, y = data.batch(t.seed, step, m, micro, t.seq_len)
                    else:
                        x, y = data.batch(t.seed, step, m, micro, t.seq_len)
                    xb = torch.from_numpy(x).to(device, non_blocking=True)
                    yb = torch.from_numpy(y).to(device, non_blocking=True)
                    with _autocast(precision, device_type):
                        _, loss = step_model(xb, yb)
                    loss = loss / accum
                    (scaler.scale(loss) if scaler else loss).backward()
                    loss_sum += loss.detach()
                if scaler:
                    scaler.unscale_(opt)
                gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip) if t.grad_clip else None
                if scaler:
                    scaler.step(opt)
                    scaler.update()
                else:
                    opt.step()
                opt.zero_grad(set_to_none=True)
            except Exception as exc:  # noqa: BLE001 - only OOM is handled; everything else re-raised
                if not _is_oom(exc):
                    raise
                opt.zero_grad(set_to_none=True)
                # drop the failed attempt's graph and activations before retrying smaller
                del exc
                loss = loss_sum = xb = yb = None
                if scaler is not None:  # unscale_ may already have run for this step
                    scaler = torch.amp.GradScaler("cuda", init_scale=scaler.get_scale())
                if device_type == "cuda":
                    torch.cuda.empty_cache()
                if micro == 1:
                    raise DeviceError(
                        f"run {spec.run_id}: out of memory at micro-batch 1 (step {step}); the model does not fit "
                        f"this device at seq_len {t.seq_len}: use a smaller size or a larger GPU") from None
                # the largest divisor of the batch below the current micro-batch keeps the global batch exact
                micro = max(d for d in range(1, micro) if t.batch_seqs % d == 0)
                accum, backoffs = t.batch_seqs // micro, backoffs + 1
                sink.add_event(spec.run_id, "oom-backoff",
                               f"out of memory at step {step}: micro-batch halved to {micro}, accumulation {accum}")
                continue
            dt = time.perf_counter() - ts
            step_times.append(dt)
            if instruments is not None:
                instruments.on_step(tokens=t.batch_tokens, samples=t.batch_seqs)
            pending.append((step, loss_sum, lr, dt, gnorm))
            step += 1
            do_eval = step % spec.eval.interval_steps == 0 or step == spec.steps
            if do_eval or len(pending) >= _FLUSH_STEPS:
                last_eval = evaluate() if do_eval else None
                reason = flush(last_eval)
                if reason:
                    status = "diverged"
                    break
                if t.checkpoint_interval_s and time.monotonic() - last_ckpt > t.checkpoint_interval_s and step < spec.steps:
                    with excluded():
                        save_checkpoint(step)
                    last_ckpt = time.monotonic()


    wall = time.perf_counter() - t0 + trained_s
    extra: dict[str, Any] = {}
    if instruments is not None:
        extra = instruments.finish()
        sink.add_telemetry(spec.run_id, [{**x, "t_s": telemetry_t0 + x["t_s"]} for x in instruments.telemetry_samples])
    measured = sorted(step_times[min(len(step_times) - 1, max(1, spec.profiling.warmup_steps)):]) or step_times
    median_step = measured[len(measured) // 2] if measured else None
    final_eval = None
    if status == "done":  # the loop evaluated at its last step
        final_eval = last_eval if last_eval is not None else evaluate()
    peak_mem = None
    if device_type == "cuda":
        peak_mem = int(torch.cuda.max_memory_allocated())
    tokens_done = step * t.batch_tokens
    if remove_checkpoint and status == "done":
        ckpt_path.unlink(missing_ok=True)
    rec = RunRecord(
        run_id=spec.run_id, status=status, params=spec.params, params_total=spec.params_total,
        tokens=tokens_done, flops=spec.flops_per_token * tokens_done, flops_per_token=spec.flops_per_token,
        train_loss=ema, eval_loss=final_eval,
        tokens_per_s=extra.pop("tokens_per_s", None) or (t.batch_tokens / median_step if median_step else None),
        step_time_s=extra.pop("step_time_s", None) or median_step,
        peak_mem_bytes=extra.pop("peak_mem_bytes", None) or peak_mem, wall_time_s=wall, steps=step,
        micro_batch=micro, grad_accum=accum, precision=precision, compiled=compiled, device=_device_name(device),
        epochs=tokens_done / max(1, corpus.train_tokens), oom_backoffs=backoffs, error=reason, metrics=extra,
    )
    return rec


def _device_name(device) -> str:
    import torch

    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return "cpu"
