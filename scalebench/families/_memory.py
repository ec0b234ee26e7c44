"""Training memory of one device for the families' ``memory_model`` hooks: model states by the estimator's
table (``scalebench.memory``: weights, gradients, AdamW's two moments) plus the activations a family keeps for
its backward pass, counted in values per micro-batch (each family's hook says what it counts)."""

from __future__ import annotations


def training_bytes(params_total: float, activation_values: float, precision: str) -> int:
    """Allocated bytes to train on one device without sharding, as scalebench's trainer holds them: AdamW
    states (the largest optimizer state scalebench trains with) with fp32 weights under autocast, 16 bytes per
    parameter (``scalebench.memory``'s ``autocast`` row), plus ``activation_values`` values in the precision's
    activation width. No allocator overhead: this is what ``torch.cuda.max_memory_allocated`` measures."""
    from scalebench.memory import ACTIVATION_SCALE, parse_precision, state_bytes_per_param

    prec = parse_precision(precision)
    w, g, o = state_bytes_per_param(prec, "adamw", "autocast")
    value_bytes = 2.0 * ACTIVATION_SCALE[prec]  # the table's activation scale counts 2-byte values
    return int(params_total * (w + g + o) + float(activation_values) * value_bytes)
