"""The estimator's inputs declared as data: one row per argument, giving its default, its kind, the range it
must lie in and why, and the command-line flag that carries it.

Every check of a number — in :func:`~scalebench.planning.estimate.estimate` (which names the argument) and on
the command line (which names the flag, exit 2) — reads this table, and the tests are generated from it, so a
message, a range and its test cannot drift apart. ``CLI_ONLY`` holds the numbers only the command line takes
(inference workload, plan constraints, ``--reserve-gib``).
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from typing import Any

from scalebench.errors import ConfigError

__all__ = ["Arg", "ARGS", "ARGUMENTS", "CLI_ONLY", "STRINGS", "check", "cli_type", "arg", "range_text"]

_GIB = float(2**30)


@dataclass(frozen=True)
class Arg:
    """One input. ``kind``: "number", "integer", "text" (parsed by its own function) or "flag" (true/false).
    A number must satisfy ``low <(=) x <= high`` (``low_open``: strictly above ``low``); ``why`` is said in the
    message. ``flag`` is the command-line spelling, ``scale`` the factor from the flag's unit to the
    argument's (GiB -> bytes); ``cli_low``/``cli_high`` stricter bounds on the command line only (a plan's
    search passes the library sizes no person would type)."""

    name: str
    default: Any = None
    kind: str = "number"
    low: float = 0.0
    high: float = math.inf
    low_open: bool = True
    why: str = ""
    flag: str | None = None
    scale: float = 1.0
    cli_low: float | None = None
    cli_high: float | None = None
    text: str = ""  # the range in words where the generated wording would say less

    @property
    def cli_flag(self) -> str:
        return self.flag or "--" + self.name.replace("_", "-")

    @property
    def numeric(self) -> bool:
        return self.kind in ("number", "integer")


def _n(name, low=0.0, high=math.inf, *, integer=False, low_open=True, why="", default=None, **kw) -> Arg:
    return Arg(name=name, default=default, kind="integer" if integer else "number", low=low, high=high,
               low_open=low_open, why=why, **kw)


_SIZE = "orders of magnitude past any model on record: a typo"
ARGS: tuple[Arg, ...] = (
    _n("params", cli_high=1e16, why=f"more is {_SIZE}"),
    _n("tokens", cli_low=1e6, cli_high=1e16,
       why="fewer than a million is shorter than one optimizer step of any real batch"),
    Arg(name="model", kind="text"), Arg(name="family", kind="text"),
    _n("n_layer", 1, 1e5, integer=True, low_open=False), _n("d_model", 1, 1e7, integer=True, low_open=False),
    _n("n_head", 1, 1e5, integer=True, low_open=False), _n("n_kv_head", 1, 1e5, integer=True, low_open=False),
    _n("d_ff", 1, 1e8, integer=True, low_open=False), _n("vocab_size", 1, 1e8, integer=True, low_open=False),
    _n("seq_len", 1, 1e8, integer=True, low_open=False),
    Arg(name="gpu", kind="text"),
    _n("num_gpus", 1, 2**20, integer=True, low_open=False,
       why="GPUs; the largest clusters on record hold about 100,000 GPUs"),
    Arg(name="precision", default="bf16", kind="text"), Arg(name="optimizer", default="adamw", kind="text"),
    Arg(name="zero", default="auto", kind="text"), Arg(name="checkpointing", default="auto", kind="text"),
    Arg(name="flash_attention", default=True, kind="flag"),
    _n("micro_batch", 1, 1e6, integer=True, low_open=False, default=1),
    _n("global_batch", 1, 1e9, integer=True, low_open=False),
    _n("mfu", 1e-3, 1.0, low_open=False, text="a fraction of the peak from 0.001 to 1"),
    _n("price_usd_per_hour", high=1000.0, flag="--price-usd-per-hour",
       why="USD per GPU-hour; list prices are $0.3-$15, and 1000 is a typo"),
    _n("grid_gco2_per_kwh", high=2000.0, low_open=False, flag="--grid-intensity",
       why="g CO2e per kWh; coal-fired grids are about 1000"),
    _n("power_fraction", high=1.0, why="average power over the board limit (TDP)"),
    _n("pue", 1.0, 3.0, low_open=False, why="data-centre power usage effectiveness = facility power / IT power: "
                                            "at least 1 by definition, about 1.1 at hyperscalers"),
    _n("allocator_overhead", high=1.0, low_open=False, why="a fraction of the allocated bytes"),
    _n("context_bytes", high=1024 * _GIB, low_open=False, flag="--reserve-gib", scale=_GIB,
       why="the per-GPU memory reserve (CUDA context, workspaces)"),
    _n("scaling_efficiency", high=1.0, why="a multiplier on throughput, at most 1"),
    Arg(name="law", kind="text"),
    _n("tp", 1, 65536, integer=True, low_open=False), _n("pp", 1, 65536, integer=True, low_open=False),
    _n("cp", 1, 65536, integer=True, low_open=False), _n("ep", 1, 65536, integer=True, low_open=False),
    _n("params_active", cli_high=1e16, why="parameters one token passes through"),
    _n("n_experts", 1, 1e5, integer=True, low_open=False), _n("top_k", 1, 1e5, integer=True, low_open=False),
    _n("expert_params", cli_high=1e16, low_open=False),
    _n("goodput", high=1.0, why="the share of reserved GPU time spent training"),
    _n("head_dim", 1, 1e5, integer=True, low_open=False),
    _n("hfu", 1e-3, 1.0, low_open=False, text="a fraction of the peak from 0.001 to 1",
       why="recomputation counted"),
    _n("gemm_efficiency", high=1.0, why="measured GEMM rate over the datasheet peak (env --calibrate)"),
    Arg(name="framework", default="megatron", kind="text"), Arg(name="grad_dtype", kind="text"),
    Arg(name="master_dtype", kind="text"),
    _n("dropout", 0.0, 1.0, low_open=False, default=0.0, why="a dropout probability; 0 keeps no masks"),
)

CLI_ONLY: tuple[Arg, ...] = (
    _n("context", 1, 1e8, integer=True, low_open=False, why="tokens per sequence, prompt plus output"),
    _n("input_tokens", 1, 1e8, integer=True, low_open=False, why="prompt tokens per request"),
    _n("batch", 1, 1e6, integer=True, low_open=False, why="sequences decoded together"),
    _n("output_tokens", 1, 1e7, integer=True, low_open=False),
    _n("request_rate", high=1e6, why="requests per second"),
    _n("decode_efficiency", high=1.0, why="a fraction of the memory bandwidth"),
    _n("prefill_mfu", 1e-3, 1.0, low_open=False, text="a fraction of the peak from 0.001 to 1"),
    _n("flops", high=1e35, why="a compute budget in FLOPs"),
    _n("budget_usd", why="a dollar budget"),
    _n("gpu_hours", why="a GPU-hour budget"),
    _n("deadline_days", high=36525.0, why="a wall-clock deadline; 100 years is a typo"),
    _n("target_loss", high=100.0, why="a loss in nats per token"),
    _n("tokens_per_param", high=1e7),
    _n("max_days", high=36525.0, why="a wall-clock limit for choosing the GPU count; 100 years is a typo"),
)

ARGUMENTS: dict[str, Any] = {a.name: a.default for a in ARGS}  # also the accepted DataFrame columns
STRINGS = tuple(a.name for a in ARGS if a.kind == "text")
_BY_NAME = {a.name: a for a in (*ARGS, *CLI_ONLY)}


def arg(name: str) -> Arg:
    return _BY_NAME[name]


def _fmt(x: float) -> str:
    return f"{x:,.0f}" if x == round(x) and abs(x) < 1e7 else f"{x:g}"


def range_text(a: Arg, low: float | None = None, scale: float = 1.0, high: float | None = None) -> str:
    """'a positive integer no larger than 1,048,576'-style wording of one row's range (in units of
    ``scale``: the flag's unit on the command line)."""
    if a.text and low is None and high is None:
        return a.text
    open_ = a.low_open and (low is None or low == a.low)
    lo = (a.low if low is None else low) / scale
    kind = "an integer" if a.kind == "integer" else "a number"
    if lo == 0 or (lo == 1 and not open_ and a.kind == "integer"):
        kind = ("a positive " if open_ or lo == 1 else "a non-negative ") + kind.split(" ", 1)[1]
    else:
        kind += f" above {_fmt(lo)}" if open_ else f" of at least {_fmt(lo)}"
    hi = a.high if high is None else high
    if math.isfinite(hi):
        kind += f" no larger than {_fmt(hi / scale)}"
    return kind


def _bad(a: Arg, x, low: float, high: float | None = None):
    """Elementwise: outside the range (x a numpy array)."""
    import numpy as np

    below = (x <= low) if (a.low_open and low == a.low) else (x < low)
    out = ~np.isfinite(x) | below | (x > (a.high if high is None else high))
    if a.kind == "integer":
        out |= np.isfinite(x) & (x != np.round(x))
    return out


def check(name: str, values) -> None:
    """Raise ConfigError naming ``name`` where a value (NaN = not given) of the array ``values`` is outside
    its row's range."""
    import numpy as np

    a = _BY_NAME[name]
    present = ~np.isnan(values)
    bad = present & _bad(a, values, a.low)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        where = f" (row {i})" if len(values) > 1 else ""
        why = f" ({a.why})" if a.why else ""
        raise ConfigError(f"{name} must be {range_text(a)}{why}, got {float(values[i]):g}{where}")


def cli_type(name: str):
    """An argparse ``type`` for the row's flag: parses, range-checks (``cli_low`` where stricter) and scales;
    argparse then names the flag and exits 2."""
    a = _BY_NAME[name]
    low = a.cli_low if a.cli_low is not None else a.low
    high = a.cli_high if a.cli_high is not None else a.high

    stricter = a.cli_low is not None or a.cli_high is not None or a.scale != 1.0
    words = range_text(a, low, a.scale, high) if stricter else range_text(a)

    def parse(text: str) -> float | int:
        why = f" ({a.why})" if a.why else ""
        try:
            value = float(text) * a.scale
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(f"must be {words}{why}, got {text!r}") from None
        below = value <= low if (a.low_open and low == a.low) else value < low
        if not math.isfinite(value) or below or value > high or (a.kind == "integer" and value != round(value)):
            hint = ""
            if name in ("mfu", "hfu", "prefill_mfu") and 1 < value <= 100:
                hint = f" (a percentage? {value:g}% is {a.cli_flag} {value / 100:g})"
            raise argparse.ArgumentTypeError(f"must be {words}{why}, got {text!r}{hint}")
        return int(value) if a.kind == "integer" else value

    parse.__name__ = a.kind
    return parse
