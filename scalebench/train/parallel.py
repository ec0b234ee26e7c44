"""How one run's model is spread over its ranks: nothing (one rank), DDP, or FSDP2.

``strategy = "auto"`` takes DDP when the replicated model states fit the device, else FSDP2. The states
are counted as mixed-precision Adam needs them: 16 bytes per parameter (fp32 master weights 4, gradients
4, two Adam moments 8; Rajbhandari et al. 2020, ZeRO, section 3.1, with fp32 gradients as torch keeps
them); activations are left to the OOM back-off. They must fit in ``DDP_MEMORY_SHARE`` of the device.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

BYTES_PER_PARAM_STATES = 16
DDP_MEMORY_SHARE = 0.6  # the rest for activations, the allocator and the CUDA context


def device_memory_bytes(device_type: str, local_rank: int = 0) -> int | None:
    if device_type == "cuda":
        import torch

        return int(torch.cuda.get_device_properties(local_rank).total_memory)
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return None


def choose_strategy(requested: str, *, params_total: int, world_size: int, device_type: str,
                    memory_bytes: int | None, ranks_per_memory: int = 1) -> tuple[str, str]:
    """(strategy, why). On CPU all ranks share one memory, so each gets ``1/ranks_per_memory`` of it."""
    if world_size == 1:
        return "single", "one rank"
    if requested != "auto":
        return requested, f"parallel.strategy = {requested!r}"
    states = BYTES_PER_PARAM_STATES * params_total
    if memory_bytes is None:
        return "ddp", "device memory unknown: DDP"
    budget = DDP_MEMORY_SHARE * memory_bytes / ranks_per_memory
    if states <= budget:
        return "ddp", (f"replicated model states {states / 2**30:.2f} GiB fit {DDP_MEMORY_SHARE:.0%} of the "
                       f"{memory_bytes / ranks_per_memory / 2**30:.1f} GiB per rank: DDP")
    return "fsdp", (f"replicated model states {states / 2**30:.2f} GiB exceed {DDP_MEMORY_SHARE:.0%} of the "
                    f"{memory_bytes / ranks_per_memory / 2**30:.1f} GiB per rank: FSDP2")


def wrap(model: Any, strategy: str, ctx: Any, family: Any) -> Any:
    """The module to train: DDP-wrapped, FSDP2-sharded (each ``family.fsdp_blocks`` unit, then the root), or as is."""
    if strategy == "single":
        return model
    if strategy == "ddp":
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [ctx.local_rank] if ctx.device_type == "cuda" else None
        return DDP(model, device_ids=ids)
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    mesh = init_device_mesh(ctx.device_type, (ctx.world_size,))
    for block in (family.fsdp_blocks(model) if family.fsdp_blocks else []):
        fully_shard(block, mesh=mesh)
    fully_shard(model, mesh=mesh)
    return model


def grad_sync(model: Any, strategy: str, sync: bool):
    """Gradients are reduced over ranks only on a step's last micro-batch."""
    if strategy == "ddp" and not sync:
        return model.no_sync()
    if strategy == "fsdp":
        model.set_requires_gradient_sync(sync)
    return contextlib.nullcontext()
