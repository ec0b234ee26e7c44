"""Training memory of one device for the families' ``memory_model`` hooks: model states by the estimator's
table (``scalebench.memory``: weights, gradients, AdamW's two moments) plus the activations a family keeps for
its backward pass, counted in values per micro-batch (each family's hook says what it counts)."""

from __future__ import annotations


def training_bytes(params_total: float, activation_values: float, precision: str) -> int:
    """Bytes to train on one device without sharding: states (AdamW, the largest optimizer state scalebench
    trains with) plus ``activation_values`` values in the precision's activation width."""
    from scalebench.memory import ACTIVATION_SCALE, memory_per_gpu, parse_precision

    prec = parse_precision(precision)
    value_bytes = 2.0 * ACTIVATION_SCALE[prec]  # the table's activation scale counts 2-byte values
    mem = memory_per_gpu(params_total=params_total, num_gpus=1, precision=prec, optimizer="adamw", zero=0,
                         activations=float(activation_values) * value_bytes, context_bytes=0.0)
    return int(mem["total"])
