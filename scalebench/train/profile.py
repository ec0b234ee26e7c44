"""Profile one configuration without a sweep: ``scalebench profile --family gpt --size 124m ...``.

:func:`profile_config` builds the model, runs ``steps`` real AdamW steps on random tokens under
:class:`~scalebench.profiling.instruments.Instruments` (the same instruments a sweep run uses) and returns
a :class:`ProfileReport`: throughput, memory, telemetry, the profiler-window breakdown, MFU, the
FlopCounterMode cross-check and the bottleneck verdict. Random tokens cost the same FLOPs as text and
keep the profile independent of any corpus.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scalebench.errors import ConfigError, DeviceError
from scalebench.profiling.instruments import InstrumentsResult

__all__ = ["ProfileReport", "profile_config", "PRECISIONS"]

PRECISIONS = ("auto", "fp32", "tf32", "bf16")
_NUMBER = re.compile(r"^\s*\d+(\.\d+)?([eE][+-]?\d+)?\s*$")


@dataclass(frozen=True, kw_only=True)
class ProfileReport:
    config: dict[str, Any]  # family, size, shape, batch, seq_len, steps, device, precision, compile
    result: InstrumentsResult
    metrics: dict[str, Any] = field(repr=False)

    def as_dict(self) -> dict[str, Any]:
        r = self.result
        return {
            "config": self.config,
            "metrics": self.metrics,
            "throughput": r.throughput.as_dict(),
            "memory": r.memory.as_dict(),
            "telemetry": r.telemetry.as_dict(),
            "breakdown": r.breakdown.as_dict() if r.breakdown else None,
            "mfu": r.mfu.as_dict() if r.mfu else None,
            "flops_per_token": r.flops_per_token,
            "flops_counted_per_token": r.flops_counted_per_token,
            "verdict": r.verdict.as_dict(),
        }

    def report(self) -> str:
        """A plain-text summary (the CLI prints it)."""
        c, r, m = self.config, self.result, self.metrics
        lines = [
            f"profile: {c['family']} {c['size']} ({c['shape_label']}, {c['params']:,} params), "
            f"batch {c['batch']} x seq {c['seq_len']}, {c['steps']} steps on {c['device_name']} "
            f"[{c['precision']}{', compiled' if c['compile'] else ''}]",
            "",
            "throughput",
            f"  step time     median {_fmt_s(m['step_time_s'])}   p90 {_fmt_s(m['step_time_p90_s'])}"
            f"   ({r.throughput.n_steps} measured steps)",
            f"  tokens/s      {_fmt(m['tokens_per_s'], '{:,.0f}')}   samples/s {_fmt(m['samples_per_s'], '{:,.1f}')}",
            f"  data wait     {_pct(m['data_wait_share'])} of step time",
            "flops",
            f"  analytic      {_fmt(r.flops_per_token, '{:.4g}')} FLOPs/token   counted/analytic "
            f"{_fmt(m['flops_counted_ratio'], '{:.3f}')}",
            f"  MFU           {_pct(m['mfu'])} of catalog peak   {_pct(m['mfu_measured_peak'])} of measured peak",
            "memory",
            f"  peak alloc    {_gib(m['peak_mem_bytes'])}   reserved {_gib(m['peak_reserved_bytes'])}   "
            f"retries {_fmt(m['alloc_retries'], '{}')}   OOMs {_fmt(m['oom_count'], '{}')}   "
            f"peak RSS {_gib(m['peak_rss_bytes'])}",
            "telemetry",
        ]
        t = r.telemetry
        if t.available:
            lines.append(
                f"  energy {_fmt(t.energy_j, '{:.1f}')} J ({t.energy_source})   power {_fmt(t.avg_power_w, '{:.0f}')} W"
                f"   util {_fmt(t.gpu_util_mean, '{:.0f}')} %   SM clock {_fmt(t.sm_clock_mean_mhz, '{:.0f}')} MHz"
                f"   max temp {_fmt(t.temp_max_c, '{}')} C   throttled {_pct(t.throttled_share)}"
            )
        else:
            lines.append(f"  unavailable: {t.reason}")
        b = r.breakdown
        lines.append("profiler window" + (f" ({r.trace_path})" if r.trace_path else ""))
        if b is None:
            lines.append("  no trace")
        else:
            approx = " (CPU: op self time as device work)" if b.device == "cpu" else ""
            lines += [
                f"  window {b.window_s * 1e3:.2f} ms over {b.n_steps} steps{approx}",
                f"  busy   {b.busy_s * 1e3:.2f} ms ({_pct(b.busy_share)})   idle {b.idle_s * 1e3:.2f} ms: "
                f"host-wait {b.idle_host_wait_s * 1e3:.2f} ms, between-kernel gaps {b.idle_gap_s * 1e3:.2f} ms",
                f"  kernels {b.n_kernels}, median {_fmt(b.median_kernel_us, '{:.1f}')} µs",
            ]
            for cat, sec in sorted(b.time_by_category_s.items(), key=lambda kv: -kv[1]):
                lines.append(f"    {cat:<14}{sec * 1e3:10.2f} ms  {_pct(b.share(cat)):>6}")
        v = r.verdict
        lines += [
            "verdict",
            f"  bottleneck    {v.bottleneck or 'undetermined'}   ({v.rule})"
            + (f"; also: {', '.join(v.also)}" if v.also else ""),
            f"  recommendation {v.recommendation}",
        ]
        return "\n".join(lines)


def _fmt(x: Any, spec: str) -> str:
    return "n/a" if x is None else spec.format(x)


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.1%}"


def _fmt_s(x: float | None) -> str:
    return "n/a" if x is None else f"{x * 1e3:.2f} ms"


def _gib(x: int | None) -> str:
    return "n/a" if x is None else f"{x / 2**30:.2f} GiB"


def _shape(fam: Any, size: str, seq_len: int | None) -> Any:  # the family's own defaults
    ctx = {} if seq_len is None else {"seq_len": int(seq_len)}
    if _NUMBER.match(str(size)):
        return fam.shape_for_params(float(size), **ctx)
    return fam.shape_from_flavour(str(size), **ctx)


def _resolve_device(device: str) -> Any:
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise ConfigError(f"profile: unknown device {device!r}; use auto, cpu, cuda or cuda:N") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(f"profile: device {device!r} requested but CUDA is not available")
    return dev


def _resolve_precision(precision: str, dev: Any) -> str:
    import torch

    if precision not in PRECISIONS:
        raise ConfigError(f"profile: precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "auto":
        if dev.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported(including_emulation=False) else "tf32"
        return "fp32"
    if precision == "tf32" and dev.type != "cuda":
        raise ConfigError("profile: precision tf32 needs a CUDA device; use fp32 or bf16")
    return precision


def profile_config(
    family: str = "gpt",
    size: str = "124m",
    batch: int = 32,
    seq_len: int | None = None,
    steps: int = 20,
    device: str = "auto",
    precision: str = "auto",
    compile: bool = False,
    profiler: tuple[int, int, int] = (1, 1, 3),
    *,
    out_dir: str | Path | None = None,
    warmup_steps: int = 2,
    lr: float = 3e-4,
    seed: int = 0,
    telemetry: bool = True,
    count_flops: bool = True,
) -> ProfileReport:
    """Run ``steps`` training steps of one configuration through the trainer and report.

    ``size`` is a flavour name (``124m``, ``debug``) or a parameter count (``3e6``); ``batch`` is rows
    (sequences or samples) per step; ``seq_len`` defaults to the family's. The trace goes to ``out_dir``
    (default ``reports/profile/<family>-<size>-b<batch>``).
    """
    import torch

    from scalebench.families import get_family
    from scalebench.train import train

    if steps < 2:
        raise ConfigError(f"profile: steps must be at least 2, got {steps}")
    if batch < 1:
        raise ConfigError(f"profile: batch must be positive, got {batch}")
    if len(profiler) != 3:
        raise ConfigError(f"profile: profiler schedule is (wait, warmup, active), got {profiler!r}")
    fam = get_family(family)
    dev = _resolve_device(device)
    prec = _resolve_precision(precision, dev)
    run_dir = (
        Path(out_dir) if out_dir is not None else Path("reports") / "profile" / f"{family}-{size}-b{batch}"
    )
    run = _run_spec(fam, str(size), batch=batch, seq_len=seq_len, steps=steps, dev=dev, prec=prec,
                    compile=compile, profiler=tuple(profiler), warmup_steps=min(warmup_steps, steps - 1), lr=lr,
                    seed=seed, telemetry=telemetry, count_flops=count_flops, run_dir=run_dir)
    old_tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = prec == "tf32" or (old_tf32 and prec != "fp32")
    got: list = []
    try:
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        rec = train(run, run_dir=run_dir, instruments_out=got)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = old_tf32
    inst = got[0]
    shape = fam.make_shape(**run.shape)
    config = {
        "family": fam.name, "size": str(size), "shape": run.shape, "shape_label": fam.label(shape),
        "params": fam.params(shape), "batch": batch, "seq_len": getattr(shape, "seq_len", None), "steps": steps,
        "device": str(dev), "device_name": inst.device_name, "precision": prec, "compile": compile,
        "profiler": list(profiler), "warmup_steps": run.profiling.warmup_steps, "unit": fam.unit,
        "eval_loss": rec.eval_loss,
    }
    return ProfileReport(config=config, result=inst.result, metrics=dict(inst.result.metrics))


def _run_spec(fam: Any, size: str, *, batch: int, seq_len: int | None, steps: int, dev: Any, prec: str,
              compile: bool, profiler: tuple[int, int, int], warmup_steps: int, lr: float, seed: int,
              telemetry: bool, count_flops: bool, run_dir: Path):
    """The RunSpec a sweep would plan for this configuration (constant lr, no checkpoints, one eval)."""
    import torch

    from scalebench.config import DataSpec, EvalSpec, ProfilingSpec, RunSpec, TrainSpec
    from scalebench.data.tasks import get_task

    data = DataSpec()
    info = get_task(fam.task).prepare(data, 0.05)
    train_kw: dict[str, Any] = dict(optimizer="adamw", lr=lr, warmup_share=0.0, schedule="constant",
                                    precision="fp32" if prec == "tf32" else prec, compile="on" if compile else "off",
                                    seed=seed, checkpoint_interval_s=0.0)
    if fam.unit == "tokens":
        seq = int(seq_len) if seq_len is not None else _shape(fam, size, None).seq_len
        train_kw.update(seq_len=seq, batch_tokens=batch * seq)
    else:
        train_kw.update(batch_samples=batch)
    t = TrainSpec(**train_kw)

    class _Model:  # the model table's one sweep-wide field the families read
        tie_embeddings = True

    shape = _shape_in_context(fam, size, fam.shape_context(info, t, _Model))
    units_per_step = batch * (t.seq_len if fam.unit == "tokens" else 1)
    prof = ProfilingSpec(profiler="on", profiler_wait=profiler[0], profiler_warmup=profiler[1],
                         profiler_active=profiler[2], warmup_steps=warmup_steps, telemetry=telemetry,
                         count_flops=count_flops)
    return RunSpec(
        run_id=f"profile-{fam.name}-{size}", sweep="profile", family=fam.name, size=size, shape=shape.as_dict(),
        params=fam.params(shape), params_total=fam.params_total(shape), flops_per_token=fam.flops_per_token(shape),
        tokens=steps * units_per_step, flops=fam.flops_per_token(shape) * steps * units_per_step, steps=steps,
        budget_label=f"steps{steps}", train=t, eval=EvalSpec(interval_steps=steps + 1, eval_tokens=units_per_step),
        data=data, profiling=prof, device=dev.type, threads=torch.get_num_threads(), run_dir=str(run_dir),
        unit=fam.unit,
    )


def _shape_in_context(fam: Any, size: str, context: dict[str, Any]) -> Any:
    if _NUMBER.match(size):
        return fam.shape_for_params(float(size), **context)
    return fam.shape_from_flavour(size, **context)
