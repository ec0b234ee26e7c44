"""Measure this device's matmul peak (fp32, bf16) and copy bandwidth, and keep the result.

``scalebench env --calibrate`` calls :func:`calibrate` then :func:`save_calibration`; MFU is then also
reported against the measured peak (``mfu_measured_peak``), which is what this card, driver and torch
build can actually reach — a datasheet peak is rarely reachable (the H200 in DESIGN.md reaches 798 of
989 TFLOP/s bf16).

Method: square ``size``×``size`` matmuls (2·n³ FLOPs each) and a ``copy_`` of a ``copy_bytes`` buffer
(read + write = 2·bytes moved), each timed ``repeats`` times after one warm-up call; the *best* repeat is
kept, because a peak is the least-disturbed measurement, not a typical one. On CUDA the device is
synchronised around each timed call; TF32 is disabled for the fp32 figure so it is true fp32. On CPU the
bf16 figure is measured too (it runs, often slowly, without bf16 units) and says what a CPU bf16 run
would reach.

The file (``$SCALEBENCH_HOME/calibration.json``, ``SCALEBENCH_HOME`` defaulting to
``~/.cache/scalebench``) holds one entry per device name, so one home can serve several machines.
"""

from __future__ import annotations

import datetime as _dt
import json
import platform
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from scalebench._util import scalebench_home
from scalebench.errors import ConfigError, DeviceError

__all__ = [
    "Calibration",
    "calibrate",
    "save_calibration",
    "load_calibration",
    "calibration_path",
    "current_device_name",
    "scalebench_home",
]

_FILE = "calibration.json"
_FORMAT = 1


@dataclass(frozen=True, kw_only=True)
class Calibration:
    device_name: str
    device_type: str  # 'cuda' | 'cpu' | ...
    fp32_matmul_flops_per_s: float | None
    bf16_matmul_flops_per_s: float | None
    copy_bandwidth_bytes_per_s: float | None
    matmul_size: int
    copy_bytes: int
    repeats: int
    torch_version: str
    date: str  # ISO 8601, UTC
    threads: int | None = None  # CPU: torch threads during the measurement (runs may use fewer)

    def peak_for(self, dtype: str) -> float | None:
        """Measured matmul FLOP/s for a catalog dtype key: bf16 (and fp16, same units), fp32/tf32."""
        key = dtype.lower().removeprefix("torch.")
        if key in ("bf16", "bfloat16", "fp16", "float16", "half"):
            return self.bf16_matmul_flops_per_s
        if key in ("fp32", "float32", "float"):
            return self.fp32_matmul_flops_per_s
        return None  # tf32 is not measured (fp32 is, with TF32 off): no peak rather than a wrong one

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def calibration_path(path: str | Path | None = None) -> Path:
    return Path(path) if path is not None else scalebench_home() / _FILE


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def current_device_name(device: Any = "auto") -> str:
    """The name calibrations are stored under: the CUDA device name, or ``cpu: <model name>``."""
    dev = _resolve(device)
    if dev.type == "cuda":
        import torch

        return torch.cuda.get_device_name(dev)
    return f"cpu: {_cpu_name()}"


def _resolve(device: Any) -> Any:
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(f"cannot calibrate {device!r}: CUDA is not available here")
    return dev


def _best_time_s(fn: Any, sync: Any, repeats: int) -> float:
    fn()  # warm-up: kernel selection, allocation, page faults
    sync()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - t0)
    return best


def calibrate(
    device: Any = "auto", *, size: int | None = None, copy_bytes: int | None = None, repeats: int = 10
) -> Calibration:
    """Measure matmul FLOP/s (fp32, bf16) and copy bandwidth on ``device`` ("auto": CUDA if present).

    Defaults: ``size`` 8192 on CUDA, 1024 on CPU; ``copy_bytes`` 1 GiB on CUDA, 64 MiB on CPU (large
    enough to leave the caches on CPU, large enough to amortise launch on GPU).
    """
    import torch

    dev = _resolve(device)
    cuda = dev.type == "cuda"
    n = int(size if size is not None else (8192 if cuda else 1024))
    nbytes = int(copy_bytes if copy_bytes is not None else (1 << 30 if cuda else 64 << 20))
    if n < 1 or nbytes < 4 or repeats < 1:
        raise ConfigError(
            f"calibrate: size, copy_bytes and repeats must be positive; got {n}, {nbytes}, {repeats}"
        )

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize(dev)

    def matmul_rate(dtype: Any) -> float | None:
        try:
            a = torch.randn(n, n, device=dev).to(dtype)
            b = torch.randn(n, n, device=dev).to(dtype)
            out = torch.empty(n, n, device=dev, dtype=dtype)
            t = _best_time_s(lambda: torch.mm(a, b, out=out), sync, repeats)
        except (RuntimeError, TypeError) as exc:  # dtype without a kernel on this device
            if isinstance(exc, torch.cuda.OutOfMemoryError):
                raise DeviceError(
                    f"calibrate: {n}x{n} matmul does not fit on {dev}; pass a smaller size"
                ) from exc
            return None
        return 2.0 * n**3 / t if t > 0 else None

    tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False  # a true fp32 figure
    try:
        fp32 = matmul_rate(torch.float32)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = tf32
    bf16 = matmul_rate(torch.bfloat16)

    src = torch.empty(nbytes // 4, dtype=torch.float32, device=dev).fill_(1.0)
    dst = torch.empty_like(src)
    t_copy = _best_time_s(lambda: dst.copy_(src), sync, repeats)
    bandwidth = 2.0 * src.numel() * 4 / t_copy if t_copy > 0 else None

    return Calibration(
        device_name=current_device_name(dev),
        device_type=dev.type,
        fp32_matmul_flops_per_s=fp32,
        bf16_matmul_flops_per_s=bf16,
        copy_bandwidth_bytes_per_s=bandwidth,
        matmul_size=n,
        copy_bytes=src.numel() * 4,
        repeats=repeats,
        torch_version=str(torch.__version__),
        date=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        threads=torch.get_num_threads() if dev.type == "cpu" else None,
    )


def _read(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {"format": _FORMAT, "devices": {}}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(
            f"calibration file {path} is unreadable ({exc}); delete it and run `scalebench env --calibrate`"
        ) from exc
    if not isinstance(data, dict) or not isinstance(data.get("devices"), dict):
        raise ConfigError(
            f"calibration file {path} has no 'devices' table; delete it and run `scalebench env --calibrate`"
        )
    return data


def save_calibration(cal: Calibration, path: str | Path | None = None) -> Path:
    """Store ``cal`` under its device name (replacing an older entry); returns the file written."""
    p = calibration_path(path)
    data = _read(p)
    data["format"] = _FORMAT
    data["devices"][cal.device_name] = cal.as_dict()
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True), encoding="utf-8")
    tmp.replace(p)  # atomic: a reader never sees half a file
    return p


def load_calibration(device_name: str, path: str | Path | None = None) -> Calibration | None:
    """The saved calibration of ``device_name``, or ``None`` when there is none."""
    p = calibration_path(path)
    entry = _read(p)["devices"].get(device_name)
    if entry is None:
        return None
    known = {f.name for f in fields(Calibration)}
    try:
        return Calibration(**{k: v for k, v in entry.items() if k in known})
    except TypeError as exc:
        raise ConfigError(
            f"calibration file {p}: entry {device_name!r} is incomplete ({exc}); recalibrate"
        ) from exc
