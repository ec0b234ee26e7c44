"""Measure this device's matmul peak (fp32, bf16) and copy bandwidth, and keep the result.

``scalebench env --calibrate`` calls :func:`calibrate` then :func:`save_calibration`; MFU is then also
reported against the measured peak (``mfu_measured_peak``), which is what this card, driver and torch
build can actually reach — a datasheet peak is rarely reachable (the H200 in DESIGN.md reaches 798 of
989 TFLOP/s bf16).

Method: square ``size``×``size`` matmuls (2·n³ FLOPs each) and a ``copy_`` of a ``copy_bytes`` buffer
(read + write = 2·bytes moved), each timed ``repeats`` times after one warm-up call, in ``rounds`` rounds
spaced ``pause_s`` apart (other processes come and go between rounds). A peak is the least-disturbed
measurement, not a typical one, so the kept figure is a *robust maximum*: the 90th percentile of all
timings' rates (the single fastest can be a timer artefact; a median is what contention leaves). The
spread is kept beside it (``*_spread``: (p90 − p10) / p90; ``*_median``), so a calibration taken on a busy
machine says so: two single-shot calibrations on a shared 2-core machine once gave 197.5 and 67.6 GFLOP/s. On CUDA the device is
synchronised around each timed call; TF32 is disabled for the fp32 figure so it is true fp32. On CPU the
bf16 figure is measured too (it runs, often slowly, without bf16 units) and says what a CPU bf16 run
would reach.

``grid=True`` (what ``scalebench env --calibrate`` runs) adds a matmul-efficiency grid: GEMMs of the shapes a
training layer produces (tokens × width by width × width', ``GRID_GPU`` or the smaller ``GRID_CPU``) in fp32
and bf16, each timed ``GRID_REPEATS`` times after a warm-up, kept as ``matmul_grid`` rows {dtype, m, n, k,
flops_per_s}. ``scalebench estimate --calibrate`` (no sweep folder) then takes the GEMM efficiency of the
estimate's GPU from the profile saved for that card (:func:`gemm_efficiency`). An all-reduce bandwidth is
not measured yet (it needs one process per GPU); the catalog's link rates stand.

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
    "gemm_efficiency",
    "load_profiles",
]

GRID_GPU = tuple((m, n, k) for m in (512, 2048, 8192) for n, k in ((4096, 4096), (11008, 4096), (4096, 11008)))
GRID_CPU = tuple((m, n, k) for m in (64, 256) for n, k in ((256, 256), (512, 256)))
GRID_REPEATS = 3

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
    rounds: int = 1
    fp32_matmul_median: float | None = None  # the median rate of all timings, beside the robust maximum
    bf16_matmul_median: float | None = None
    copy_bandwidth_median: float | None = None
    fp32_matmul_spread: float | None = None  # (p90 - p10) / p90 of the rates: 0 on a quiet machine
    bf16_matmul_spread: float | None = None
    copy_bandwidth_spread: float | None = None
    matmul_grid: tuple = ()  # {dtype, m, n, k, flops_per_s} per measured GEMM shape (grid=True)

    SPREAD_WARN = 0.25  # a spread above this: the machine was busy, the peak is likely understated

    def noisy(self) -> list[str]:
        """The measurements whose spread says the machine was busy while calibrating."""
        return [k for k in ("fp32_matmul", "bf16_matmul", "copy_bandwidth")
                if (getattr(self, f"{k}_spread") or 0) > self.SPREAD_WARN]

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


def _times_s(fn: Any, sync: Any, repeats: int, rounds: int, pause_s: float) -> list[float]:
    """Every timed call's seconds, over ``rounds`` rounds of ``repeats`` calls (one warm-up first)."""
    fn()  # warm-up: kernel selection, allocation, page faults
    sync()
    times = []
    for r in range(rounds):
        if r and pause_s:
            time.sleep(pause_s)
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            sync()
            times.append(time.perf_counter() - t0)
    return times


def _summary(work: float, times: list[float]) -> tuple[float | None, float | None, float | None]:
    """(robust maximum, median, spread) of the rates ``work / t``; see the module docstring."""
    import numpy as np

    rates = np.array([work / t for t in times if t > 0])
    if rates.size == 0:
        return None, None, None
    p10, p50, p90 = (float(np.percentile(rates, q)) for q in (10, 50, 90))
    return p90, p50, (p90 - p10) / p90 if p90 > 0 else None


def calibrate(
    device: Any = "auto", *, size: int | None = None, copy_bytes: int | None = None, repeats: int = 10,
    rounds: int = 5, pause_s: float = 0.2, grid: bool = False,
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
    if n < 1 or nbytes < 4 or repeats < 1 or rounds < 1 or not 0 <= pause_s <= 60:
        raise ConfigError(f"calibrate: size, copy_bytes, repeats and rounds must be positive and pause_s within "
                          f"[0, 60]; got {n}, {nbytes}, {repeats}, {rounds}, {pause_s}")

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize(dev)

    none = (None, None, None)

    def matmul_rate(dtype: Any) -> tuple[float | None, float | None, float | None]:
        try:
            a = torch.randn(n, n, device=dev).to(dtype)
            b = torch.randn(n, n, device=dev).to(dtype)
            out = torch.empty(n, n, device=dev, dtype=dtype)
            times = _times_s(lambda: torch.mm(a, b, out=out), sync, repeats, rounds, pause_s)
        except (RuntimeError, TypeError) as exc:  # dtype without a kernel on this device
            if isinstance(exc, torch.cuda.OutOfMemoryError):
                raise DeviceError(
                    f"calibrate: {n}x{n} matmul does not fit on {dev}; pass a smaller size"
                ) from exc
            return none
        return _summary(2.0 * n**3, times)

    tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False  # a true fp32 figure
    try:
        fp32 = matmul_rate(torch.float32)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = tf32
    bf16 = matmul_rate(torch.bfloat16)

    rows = _grid(torch, dev, sync, GRID_GPU if cuda else GRID_CPU) if grid else ()

    src = torch.empty(nbytes // 4, dtype=torch.float32, device=dev).fill_(1.0)
    dst = torch.empty_like(src)
    copy = _summary(2.0 * src.numel() * 4, _times_s(lambda: dst.copy_(src), sync, repeats, rounds, pause_s))

    return Calibration(
        device_name=current_device_name(dev),
        device_type=dev.type,
        fp32_matmul_flops_per_s=fp32[0],
        bf16_matmul_flops_per_s=bf16[0],
        copy_bandwidth_bytes_per_s=copy[0],
        fp32_matmul_median=fp32[1], bf16_matmul_median=bf16[1], copy_bandwidth_median=copy[1],
        fp32_matmul_spread=fp32[2], bf16_matmul_spread=bf16[2], copy_bandwidth_spread=copy[2],
        rounds=rounds,
        matmul_size=n,
        copy_bytes=src.numel() * 4,
        repeats=repeats,
        torch_version=str(torch.__version__),
        date=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        threads=torch.get_num_threads() if dev.type == "cpu" else None,
        matmul_grid=rows,
    )


def _grid(torch: Any, dev: Any, sync: Any, shapes: tuple) -> tuple:
    """The matmul-efficiency grid: the median rate of GRID_REPEATS timings per (dtype, shape)."""
    import numpy as np

    rows = []
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        for m, n, k in shapes:
            try:
                a = torch.randn(m, k, device=dev).to(dtype)
                b = torch.randn(k, n, device=dev).to(dtype)
                times = _times_s(lambda: torch.mm(a, b), sync, GRID_REPEATS, 1, 0.0)  # noqa: B023
            except (RuntimeError, TypeError):  # no kernel for this dtype here
                continue
            rows.append({"dtype": name, "m": m, "n": n, "k": k,
                         "flops_per_s": 2.0 * m * n * k / float(np.median(times))})
    return tuple(rows)


def gemm_efficiency(cal: Calibration, dtype: str, peak_flops: float) -> float | None:
    """The best measured GEMM rate of ``dtype`` (bf16 stands for fp16 and fp8 too) over ``peak_flops``;
    None without a grid row of that dtype."""
    key = "fp32" if dtype in ("fp32", "tf32") else "bf16"
    rates = [r["flops_per_s"] for r in cal.matmul_grid if r.get("dtype") == key]
    if not rates or not peak_flops:
        return None
    return min(1.0, max(rates) / peak_flops)


def load_profiles(path: str | Path | None = None) -> list[Calibration]:
    """Every saved calibration in the file (one per device name)."""
    return [c for name in _read(calibration_path(path))["devices"] if (c := load_calibration(name, path))]


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
    from scalebench._util import write_text_atomic

    # atomic: a reader never sees half a file
    write_text_atomic(p, json.dumps(data, indent=2, sort_keys=True), what="calibration", make_parents=True)
    return p


def load_calibration(device_name: str, path: str | Path | None = None) -> Calibration | None:
    """The saved calibration of ``device_name``, or ``None`` when there is none."""
    p = calibration_path(path)
    entry = _read(p)["devices"].get(device_name)
    if entry is None:
        return None
    known = {f.name for f in fields(Calibration)}
    try:
        values = {k: v for k, v in entry.items() if k in known}
        values["matmul_grid"] = tuple(values.get("matmul_grid") or ())  # JSON gives a list
        return Calibration(**values)
    except TypeError as exc:
        raise ConfigError(
            f"calibration file {p}: entry {device_name!r} is incomplete ({exc}); recalibrate"
        ) from exc
