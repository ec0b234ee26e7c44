"""Model FLOPs utilisation against the catalog peak and, when calibrated, against the measured peak.

MFU = achieved *model* FLOP/s (analytic forward + backward, no recomputation; see ``flops.py``) over the
device's dense peak for the dtype the matmuls run in. A device the catalog does not know — every CPU
included — gets ``mfu=None`` and a warning, never a guessed peak (DESIGN.md, convention 5). The measured
peak comes from ``scalebench env --calibrate`` (:mod:`scalebench.hardware.calibrate`) and works for CPUs
too.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

__all__ = ["MFUResult", "mfu_for"]


@dataclass(frozen=True, kw_only=True)
class MFUResult:
    mfu: float | None  # against the catalog's dense peak for the dtype
    mfu_measured_peak: float | None  # against this device's calibrated matmul peak
    peak_flops: float | None  # the catalog peak used
    measured_peak_flops: float | None = None
    warning: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _catalog_peak(device_name: str, dtype: str) -> tuple[float | None, str | None]:
    from scalebench.hardware.catalog import match_device_name

    spec = match_device_name(device_name)
    if spec is None:
        return None, f"device {device_name!r} is not in the GPU catalog, so MFU is not reported"
    peak = spec.peak_for(dtype)
    if peak is None:
        return None, f"the catalog has no {dtype} peak for {spec.name}, so MFU is not reported"
    return peak, None


def mfu_for(
    achieved_flops_per_s: float | None,
    device_name: str,
    dtype: str,
    *,
    calibration_path: str | Path | None = None,
    threads: int | None = None,
) -> MFUResult:
    """MFU of ``achieved_flops_per_s`` on ``device_name`` computing in ``dtype`` (bf16, fp32, tf32, ...).

    For fp32 training on a GPU that allows TF32 matmuls, pass ``"tf32"``: that is the peak the matmuls
    run against. On a CPU, ``threads`` is what the run used: a peak measured with more threads is scaled
    down in proportion (large matmuls scale about linearly with cores), so a one-thread worker of a
    two-worker sweep is compared with one core's peak.
    """
    from scalebench.errors import ConfigError
    from scalebench.hardware.calibrate import load_calibration

    peak, warning = _catalog_peak(device_name, dtype)
    try:
        cal = load_calibration(device_name, calibration_path)
    except ConfigError as exc:  # a damaged calibration file must not fail a finished run
        warnings.warn(f"calibration ignored: {exc}", RuntimeWarning, stacklevel=2)
        cal = None
    measured = cal.peak_for(dtype) if cal is not None else None
    if measured and cal.device_type == "cpu" and cal.threads and threads and threads != cal.threads:
        measured *= threads / cal.threads
    if warning is not None:
        hint = (
            " (a measured peak from `scalebench env --calibrate` is used)"
            if measured
            else ("; add the device to the catalog or run `scalebench env --calibrate`")
        )
        warning += hint
        warnings.warn(warning, RuntimeWarning, stacklevel=2)
    ok = achieved_flops_per_s is not None and achieved_flops_per_s >= 0
    if ok and measured and achieved_flops_per_s > 1.05 * measured:
        warnings.warn(
            f"this run reached {achieved_flops_per_s / measured:.2f}x the measured peak of {device_name} "
            f"(calibrated {cal.date}): the calibration understates the device, probably measured under load; "
            "re-run `scalebench env --calibrate` on an idle machine",
            RuntimeWarning,
            stacklevel=2,
        )
    return MFUResult(
        mfu=achieved_flops_per_s / peak if ok and peak else None,
        mfu_measured_peak=achieved_flops_per_s / measured if ok and measured else None,
        peak_flops=peak,
        measured_peak_flops=measured,
        warning=warning,
    )
