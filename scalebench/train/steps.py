"""One optimizer step: micro-batches, gradient accumulation, loss scaling, clipping, and the OOM policy.

Data: a global batch of ``run.batch_rows`` rows is ``accum`` micro-batches of ``micro`` rows; on W ranks,
rank r takes micro-batches r, r + W, r + 2W, … so the union over ranks is the 1-rank batch exactly (same
seed, same rows) whenever the micro-batch is the same. Each rank divides its loss by its own number of
micro-batches and DDP/FSDP average over ranks, which gives the 1-rank gradient.

Out of memory: the micro-batch falls to the largest divisor of the per-rank rows below it (the global
batch stays exact) and the step is retried. On several ranks the decision is all-reduced, so all ranks back
off together; a rank that ran out before the synchronised micro-batch still joins its gradient reduction
with a zero-weighted one-row pass, so the others are not left waiting. (An OOM inside the synchronised
backward itself cannot be joined; the executor's timeout is the backstop there.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from scalebench.errors import DeviceError
from scalebench.train import parallel
from scalebench.train.precision import autocast, make_scaler


def is_oom(exc: BaseException) -> bool:
    import torch

    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


@dataclass
class StepState:
    micro: int  # rows per micro-batch on each rank
    backoffs: int = 0

    def accum(self, rows_per_rank: int) -> int:
        return rows_per_rank // self.micro


class StepRunner:
    def __init__(self, *, run: Any, family: Any, model: Any, step_model: Any, optimizer: Any, data: Any,
                 precision: str, device: Any, ctx: Any, strategy: str, micro: int, sink: Any,
                 instruments: Any = None, fault: Any = None) -> None:
        self.run, self.family, self.model, self.step_model = run, family, model, step_model
        self.opt, self.data, self.precision, self.device = optimizer, data, precision, device
        self.ctx, self.strategy, self.sink, self.instruments, self.fault = ctx, strategy, sink, instruments, fault
        self.rows_per_rank = run.batch_rows // ctx.world_size
        self.state = StepState(micro=micro)
        self.scaler = make_scaler(precision)

    @property
    def micro(self) -> int:
        return self.state.micro

    @property
    def accum(self) -> int:
        """Micro-batches per step summed over ranks (the 1-rank accumulation of the same micro-batch)."""
        return self.state.accum(self.rows_per_rank) * self.ctx.world_size

    def _batch(self, step: int, m: int, rows: int):
        import torch

        if self.instruments is not None:
            with self.instruments.data_wait():
                x, y = self.data.batch(self.run.train.seed, step, m, rows)
        else:
            x, y = self.data.batch(self.run.train.seed, step, m, rows)
        x = torch.as_tensor(x).to(self.device, non_blocking=True)
        y = torch.as_tensor(y).to(self.device, non_blocking=True)
        return x, y

    def _micro_step(self, step: int, m: int, local_accum: int, sync: bool, weight: float = 1.0, rows: int = 0):
        x, y = self._batch(step, m, rows or self.micro)
        with parallel.grad_sync(self.step_model, self.strategy, sync):
            with autocast(self.precision, self.device.type):
                loss = self.family.loss(self.step_model(x), y)
            loss = loss / local_accum
            scaled = loss * weight
            (self.scaler.scale(scaled) if self.scaler else scaled).backward()
        return loss.detach()

    def step(self, step: int):
        """Run one step; returns (loss tensor, grad norm) or None when it backed off and must be retried."""
        import torch

        from scalebench.train import faults

        local_accum = self.state.accum(self.rows_per_rank)
        w, r = self.ctx.world_size, self.ctx.rank
        loss_sum = torch.zeros((), device=self.device)
        oom, joined = False, False
        for j in range(local_accum):
            last = j == local_accum - 1
            try:
                faults.before_micro_step(step, self.micro, r, self.fault)
                loss_sum += self._micro_step(step, j * w + r, local_accum, sync=last)
                joined = joined or last
            except Exception as exc:  # noqa: BLE001 - only OOM is handled; everything else re-raised
                if not is_oom(exc):
                    raise
                del exc
                oom = True
                break
        if oom:
            loss_sum = None
            self._drop_step()
            if w > 1 and not joined:
                self._micro_step(step, r, local_accum, sync=True, weight=0.0, rows=1)
        if self.ctx.any(oom):
            self._drop_step()
            self._back_off(step)
            return None
        return faults.poison(loss_sum, step, r, self.fault), self._apply()

    def _apply(self):
        import torch

        t = self.run.train
        if self.scaler:
            self.scaler.unscale_(self.opt)
        gnorm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), t.grad_clip) if t.grad_clip else None
        if self.scaler:
            self.scaler.step(self.opt)
            self.scaler.update()
        else:
            self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        return gnorm

    def _drop_step(self) -> None:
        import torch

        self.opt.zero_grad(set_to_none=True)
        if self.scaler is not None:  # unscale_ may already have run for this step
            self.scaler = make_scaler(self.precision, self.scaler.get_scale())
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def _back_off(self, step: int) -> None:
        run = self.run
        if self.micro == 1:
            raise DeviceError(
                f"run {run.run_id}: out of memory at micro-batch 1 (step {step}); the model does not fit "
                f"this device at this size: use a smaller size, more ranks (parallel.ranks with strategy "
                f"'fsdp') or a larger GPU")
        # the largest divisor of the per-rank rows below the current micro-batch keeps the global batch exact
        self.state.micro = max(d for d in range(1, self.micro) if self.rows_per_rank % d == 0)
        self.state.backoffs += 1
        self.sink.add_event(run.run_id, "oom-backoff", f"out of memory at step {step}: micro-batch halved to "
                                                       f"{self.micro}, accumulation {self.accum}")
