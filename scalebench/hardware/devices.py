"""Device discovery and the environment recorded with every sweep (versions, devices, NVML)."""

from __future__ import annotations

import os
import platform
import socket
import sys
from typing import Any

# Where a GPU driver shows itself: NVIDIA's device nodes and proc entry, WSL's GPU paravirtualisation, ROCm's
# kernel driver. Without any of them torch cannot see a GPU, so "is there CUDA?" needs no torch import (~1 s).
GPU_DRIVER_PATHS = ("/dev/nvidiactl", "/dev/nvidia0", "/proc/driver/nvidia", "/dev/dxg", "/dev/kfd")


def gpu_driver_visible() -> bool:
    """Whether any GPU driver is visible here (see ``GPU_DRIVER_PATHS``); False means no CUDA for certain."""
    return any(os.path.exists(p) for p in GPU_DRIVER_PATHS)


def cuda_devices() -> list[dict[str, Any]]:
    """Visible CUDA devices (index, name, memory); empty without CUDA."""
    import torch

    if not torch.cuda.is_available():
        return []
    out = []
    for i in range(torch.cuda.device_count()):
        p = torch.cuda.get_device_properties(i)
        out.append({"index": i, "name": p.name, "memory_bytes": int(p.total_memory),
                    "capability": f"{p.major}.{p.minor}", "multiprocessors": p.multi_processor_count})
    return out


def nvml_status() -> tuple[bool, str]:
    try:
        from scalebench.hardware.nvml import nvml_available
    except ImportError:  # pragma: no cover - the wrapper ships with the package
        return False, "NVML wrapper not installed"
    return nvml_available()


def environment() -> dict[str, Any]:
    """What a result depends on besides the spec: versions, devices, NVML, host."""
    import torch

    from scalebench import __version__

    ok, reason = nvml_status()
    return {
        "scalebench": __version__, "torch": torch.__version__, "python": sys.version.split()[0],
        "platform": platform.platform(), "host": socket.gethostname(), "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(), "cuda_available": torch.cuda.is_available(),
        "cuda_version": torch.version.cuda, "devices": cuda_devices(), "nvml": ok, "nvml_reason": reason,
    }
