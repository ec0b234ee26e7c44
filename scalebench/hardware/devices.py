"""Device discovery and the environment recorded with every sweep (versions, devices, NVML)."""

from __future__ import annotations

import os
import platform
import socket
import sys
from typing import Any


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
