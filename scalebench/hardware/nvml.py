"""A thin wrapper over NVML (the ``nvidia-ml-py`` distribution, imported as ``pynvml``).

Every NVML failure surfaces as :class:`~scalebench.errors.DeviceError` naming the NVML call. A reading the
device does not support (``NVML_ERROR_NOT_SUPPORTED``, e.g. the energy counter on older boards, power on
some MIG slices) is ``None`` for that field rather than an error. Without the package or a driver,
:func:`nvml_available` says why and nothing raises, so callers can record "telemetry unavailable".

``pynvml`` is imported at module level (inside ``try``) so tests can replace
``scalebench.hardware.nvml.pynvml`` with a fake module.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from scalebench.errors import DeviceError

try:  # nvidia-ml-py; the deprecated ``pynvml`` distribution provides the same module name
    import pynvml
except ImportError:  # pragma: no cover - depends on the environment
    pynvml = None  # type: ignore[assignment]

__all__ = [
    "NVMLReading",
    "nvml_available",
    "init",
    "shutdown",
    "device_count",
    "handle_by_index",
    "handle_for_cuda_device",
    "device_name",
    "read",
    "energy_mj",
    "THROTTLE_MASK",
]

T = TypeVar("T")

# Clock-event reasons that mean "slowed down" (power cap, thermal, hardware slowdown, power brake).
# Idle (0x1), application clocks (0x2), sync boost (0x10) and display clock (0x100) are not throttling.
THROTTLE_MASK = 0x4 | 0x8 | 0x20 | 0x40 | 0x80

_lock = threading.Lock()
_init_count = 0


@dataclass(frozen=True, kw_only=True)
class NVMLReading:
    """One sample of a device; a field is ``None`` where the device does not support the reading."""

    gpu_util: float | None  # percent, 0-100, over the driver's last sample period
    mem_used_bytes: int | None
    power_w: float | None
    sm_clock_mhz: int | None
    temp_c: int | None
    throttle_reasons: int | None  # bit mask of nvmlClocksEventReason*


def _error_code(exc: BaseException) -> int | None:
    return getattr(exc, "value", None)


def _is_nvml_error(exc: BaseException) -> bool:
    return pynvml is not None and isinstance(exc, pynvml.NVMLError)


def _call(name: str, fn: Callable[..., T], *args: Any, optional: bool = False) -> T | None:
    """Call ``fn``; map NVMLError to DeviceError naming ``name``; NOT_SUPPORTED -> None when optional."""
    try:
        return fn(*args)
    except Exception as exc:
        if not _is_nvml_error(exc):
            raise
        if optional and _error_code(exc) == pynvml.NVML_ERROR_NOT_SUPPORTED:
            return None
        raise DeviceError(f"NVML call {name} failed: {exc}") from exc


def nvml_available() -> tuple[bool, str]:
    """Whether NVML can be initialised here, and the reason when it cannot. Never raises."""
    if pynvml is None:
        return False, "nvidia-ml-py (pynvml) is not installed"
    try:
        init()
    except DeviceError as exc:
        return False, str(exc)
    try:
        n = device_count()
    except DeviceError as exc:
        return False, str(exc)
    finally:
        shutdown()
    if n == 0:
        return False, "NVML found no GPU"
    return True, ""


def init() -> None:
    """Initialise NVML (reference counted: pair every call with :func:`shutdown`)."""
    global _init_count
    if pynvml is None:
        raise DeviceError("NVML is not available: nvidia-ml-py (pynvml) is not installed")
    with _lock:
        _call("nvmlInit", pynvml.nvmlInit)
        _init_count += 1


def shutdown() -> None:
    global _init_count
    if pynvml is None:
        return
    with _lock:
        if _init_count > 0:
            _init_count -= 1
            _call("nvmlShutdown", pynvml.nvmlShutdown)


def device_count() -> int:
    return int(_call("nvmlDeviceGetCount", pynvml.nvmlDeviceGetCount))  # type: ignore[arg-type]


def handle_by_index(index: int) -> Any:
    """The NVML handle of the device with NVML index ``index`` (not necessarily the CUDA index)."""
    return _call("nvmlDeviceGetHandleByIndex", pynvml.nvmlDeviceGetHandleByIndex, index)


def handle_for_cuda_device(cuda_index: int) -> Any:
    """The NVML handle of CUDA device ``cuda_index``, honouring ``CUDA_VISIBLE_DEVICES``.

    NVML enumerates every GPU on the machine, CUDA only the visible ones; with integer entries the CUDA
    index maps through the list, with UUID entries (``GPU-…``, ``MIG-…``) through the UUID.
    """
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if not visible:
        return handle_by_index(cuda_index)
    entries = [v.strip() for v in visible.split(",") if v.strip()]
    if cuda_index >= len(entries):
        raise DeviceError(
            f"CUDA device {cuda_index} is not visible: CUDA_VISIBLE_DEVICES={visible!r} lists {len(entries)}"
        )
    entry = entries[cuda_index]
    if entry.isdigit():
        return handle_by_index(int(entry))
    return _call("nvmlDeviceGetHandleByUUID", pynvml.nvmlDeviceGetHandleByUUID, entry)


def device_name(handle: Any) -> str:
    name = _call("nvmlDeviceGetName", pynvml.nvmlDeviceGetName, handle)
    return name.decode() if isinstance(name, bytes) else str(name)


def _throttle_reasons(handle: Any) -> int | None:
    # nvmlDeviceGetCurrentClocksEventReasons replaces the deprecated ...ThrottleReasons (driver >= 535).
    fn = getattr(pynvml, "nvmlDeviceGetCurrentClocksEventReasons", None)
    if fn is not None:
        try:
            return _call("nvmlDeviceGetCurrentClocksEventReasons", fn, handle, optional=True)
        except DeviceError as exc:
            if _error_code(exc.__cause__) != getattr(pynvml, "NVML_ERROR_FUNCTION_NOT_FOUND", 13):
                raise
    return _call(
        "nvmlDeviceGetCurrentClocksThrottleReasons",
        pynvml.nvmlDeviceGetCurrentClocksThrottleReasons,
        handle,
        optional=True,
    )


def read(handle: Any) -> NVMLReading:
    """One reading of utilisation, memory, power, SM clock, temperature and throttle reasons."""
    util = _call("nvmlDeviceGetUtilizationRates", pynvml.nvmlDeviceGetUtilizationRates, handle, optional=True)
    mem = _call("nvmlDeviceGetMemoryInfo", pynvml.nvmlDeviceGetMemoryInfo, handle, optional=True)
    power_mw = _call("nvmlDeviceGetPowerUsage", pynvml.nvmlDeviceGetPowerUsage, handle, optional=True)
    clock = _call(
        "nvmlDeviceGetClockInfo", pynvml.nvmlDeviceGetClockInfo, handle, pynvml.NVML_CLOCK_SM, optional=True
    )
    temp = _call(
        "nvmlDeviceGetTemperature",
        pynvml.nvmlDeviceGetTemperature,
        handle,
        pynvml.NVML_TEMPERATURE_GPU,
        optional=True,
    )
    return NVMLReading(
        gpu_util=None if util is None else float(util.gpu),
        mem_used_bytes=None if mem is None else int(mem.used),
        power_w=None if power_mw is None else power_mw / 1000.0,
        sm_clock_mhz=None if clock is None else int(clock),
        temp_c=None if temp is None else int(temp),
        throttle_reasons=_throttle_reasons(handle),
    )


def energy_mj(handle: Any) -> int | None:
    """Total energy since the driver loaded, in millijoules; ``None`` where the counter is absent (pre-Volta)."""
    value = _call(
        "nvmlDeviceGetTotalEnergyConsumption",
        pynvml.nvmlDeviceGetTotalEnergyConsumption,
        handle,
        optional=True,
    )
    return None if value is None else int(value)
