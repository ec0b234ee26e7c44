"""The GPU catalog: peak FLOP/s per dtype, memory, bandwidth, power and price, each with its source.

The table lives in ``catalog.toml`` beside this module (data, not code); read its header for the
conventions: peaks are *dense* (NVIDIA's "with sparsity" figures halved), ``memory_bytes`` reads the
datasheet's "GB" as GiB (HBM/GDDR capacities are binary), bandwidth is decimal bytes/s, prices are
estimates of on-demand cloud list prices with the date they were read.

A user file overrides fields of an entry or adds entries, in the same format::

    # my-gpus.toml  (pass to load_catalog(), or name it in $SCALEBENCH_GPU_CATALOG)
    [H100-SXM]
    price_usd_per_hour = 2.10
    price_source = "our contract, 2025-02"

    [MyCard]
    vendor = "NVIDIA"
    peak_flops = { bf16 = 100e12, fp32 = 20e12 }
    memory_bytes = 25769803776
    bandwidth_bytes_per_s = 1e12
    tdp_w = 300
    source = "vendor sheet"

A dtype the chip has no unit for is omitted (or written ``"none"``) and reads as ``None``; unknown names
are never mapped to a guess.
"""

from __future__ import annotations

import functools
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from scalebench.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["GPUSpec", "get_gpu", "match_device_name", "list_gpus", "load_catalog", "DTYPES", "ENV_VAR"]

ENV_VAR = "SCALEBENCH_GPU_CATALOG"
DTYPES = ("fp32", "tf32", "bf16", "fp16", "fp8", "int8")
_BUILTIN = Path(__file__).with_name("catalog.toml")

# dtype spellings (ours, torch's, numpy's) -> catalog key
_DTYPE_ALIASES = {
    "fp32": "fp32", "float32": "fp32", "float": "fp32", "f32": "fp32", "single": "fp32",
    "tf32": "tf32", "tensorfloat32": "tf32",
    "bf16": "bf16", "bfloat16": "bf16",
    "fp16": "fp16", "float16": "fp16", "half": "fp16", "f16": "fp16",
    "fp8": "fp8", "float8": "fp8", "float8_e4m3fn": "fp8", "float8_e5m2": "fp8",
    "float8_e4m3fnuz": "fp8", "float8_e5m2fnuz": "fp8", "e4m3": "fp8", "e5m2": "fp8",
    "int8": "int8", "i8": "int8", "qint8": "int8",
}


def normalize_dtype(dtype: Any) -> str:
    """``"bfloat16"``, ``torch.bfloat16``, ``"torch.bfloat16"`` -> ``"bf16"``; unknown -> ConfigError."""
    key = str(dtype).strip().lower().removeprefix("torch.").replace("-", "")
    try:
        return _DTYPE_ALIASES[key]
    except KeyError:
        raise ConfigError(f"unknown dtype {dtype!r}; known: {', '.join(DTYPES)} (and torch spellings)") from None


@dataclass(frozen=True, kw_only=True)
class GPUSpec:
    """One accelerator: dense peak FLOP/s per dtype, memory, bandwidth, power, interconnect and a price.

    ``tdp_w`` is None where the vendor publishes no board power (Google TPUs, Trainium2): energy is then
    unknown rather than guessed. Interconnect: ``node_size`` accelerators share the fast domain (NVLink,
    Infinity Fabric, TPU ICI, NeuronLink) at ``intra_node_bandwidth_bytes_per_s`` per accelerator and
    direction; ``inter_node_bandwidth_bytes_per_s`` is the scale-out network per accelerator and direction
    (None when unpublished). ``sparsity_2_4`` says whether the matrix units run 2:4 structured-sparse
    weights at twice the dense rate.
    """

    name: str
    vendor: str
    peak_flops: Mapping[str, float | None]
    memory_bytes: int
    bandwidth_bytes_per_s: float
    tdp_w: float | None
    price_usd_per_hour: float | None
    price_source: str
    source: str
    aliases: tuple[str, ...] = ()
    generation: str = ""
    node_size: int = 8
    intra_node_bandwidth_bytes_per_s: float | None = None
    inter_node_bandwidth_bytes_per_s: float | None = None
    interconnect_source: str = ""
    sparsity_2_4: bool = False
    sparsity_source: str = ""
    compute_units: int | None = None  # SMs (NVIDIA) or CUs (AMD): the estimator's wave quantisation
    compute_units_source: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ConfigError(f"GPUSpec.name must be a non-empty string, got {self.name!r}")
        unknown = set(self.peak_flops) - set(DTYPES)
        if unknown:
            raise ConfigError(f"GPUSpec {self.name}: peak_flops has unknown dtype(s) {sorted(unknown)}; known: {', '.join(DTYPES)}")
        for dtype, value in self.peak_flops.items():
            if value is not None and not _positive(value):
                raise ConfigError(f"GPUSpec {self.name}: peak_flops.{dtype} must be a positive number or None, got {value!r}")
        for attr in ("memory_bytes", "bandwidth_bytes_per_s", "node_size"):
            if not _positive(getattr(self, attr)):
                raise ConfigError(f"GPUSpec {self.name}: {attr} must be a positive number, got {getattr(self, attr)!r}")
        for attr in ("tdp_w", "intra_node_bandwidth_bytes_per_s", "inter_node_bandwidth_bytes_per_s", "compute_units"):
            if getattr(self, attr) is not None and not _positive(getattr(self, attr)):
                raise ConfigError(f"GPUSpec {self.name}: {attr} must be a positive number or omitted, got {getattr(self, attr)!r}")
        if int(self.node_size) != self.node_size:
            raise ConfigError(f"GPUSpec {self.name}: node_size must be a whole number, got {self.node_size!r}")
        if not isinstance(self.sparsity_2_4, bool):
            raise ConfigError(f"GPUSpec {self.name}: sparsity_2_4 must be true or false, got {self.sparsity_2_4!r}")
        object.__setattr__(self, "node_size", int(self.node_size))
        if self.price_usd_per_hour is not None and not _positive(self.price_usd_per_hour):
            raise ConfigError(f"GPUSpec {self.name}: price_usd_per_hour must be positive or None, got {self.price_usd_per_hour!r}")
        object.__setattr__(self, "memory_bytes", int(self.memory_bytes))
        object.__setattr__(self, "peak_flops", MappingProxyType(dict(self.peak_flops)))
        object.__setattr__(self, "aliases", tuple(self.aliases))

    def peak_for(self, dtype: Any) -> float | None:
        """Dense peak FLOP/s for ``dtype`` (any spelling); fp16 and bf16 stand in for each other only when
        one of them is absent from the mapping (an explicit ``None`` means the chip has no such unit)."""
        key = normalize_dtype(dtype)
        if key in self.peak_flops:
            return self.peak_flops[key]
        twin = {"fp16": "bf16", "bf16": "fp16"}.get(key)
        return self.peak_flops.get(twin) if twin else None


def _positive(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0 and value == value


def _norm_name(name: str) -> str:
    key = re.sub(r"[\s_]+", "-", str(name).strip().lower())
    for prefix in ("nvidia-", "amd-"):
        key = key.removeprefix(prefix)
    return key


_FIELDS = {f.name for f in fields(GPUSpec)}
_REQUIRED_NEW = {"vendor", "peak_flops", "memory_bytes", "bandwidth_bytes_per_s", "source"}


def _entry(name: str, table: Any, base: GPUSpec | None, path: Path) -> GPUSpec:
    where = f"{path}: [{name}]"
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table of fields, got {type(table).__name__}")
    unknown = set(table) - (_FIELDS - {"name"})
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}; known keys: {', '.join(sorted(_FIELDS - {'name'}))}")
    values: dict[str, Any] = dict(table)
    peaks = values.get("peak_flops")
    if peaks is not None:
        if not isinstance(peaks, dict):
            raise ConfigError(f"{where}: peak_flops must be a table like {{ bf16 = 989e12 }}")
        bad = set(peaks) - set(DTYPES)
        if bad:
            raise ConfigError(f"{where}: unknown key(s) peak_flops.{', peak_flops.'.join(sorted(bad))}; known dtypes: {', '.join(DTYPES)}")
        merged = dict(base.peak_flops) if base else dict.fromkeys(DTYPES)
        merged.update({k: None if isinstance(v, str) and v.lower() == "none" else v for k, v in peaks.items()})
        values["peak_flops"] = merged
    for key in ("price_usd_per_hour", "tdp_w", "intra_node_bandwidth_bytes_per_s", "inter_node_bandwidth_bytes_per_s",
                "compute_units"):
        if isinstance(values.get(key), str) and values[key].lower() == "none":
            values[key] = None
    if "aliases" in values:
        values["aliases"] = tuple(values["aliases"])
    try:
        if base is not None:
            return replace(base, **values)
        missing = _REQUIRED_NEW - set(values)
        if missing:
            raise ConfigError(f"{where}: a new entry needs key(s) {', '.join(sorted(missing))}")
        values.setdefault("price_usd_per_hour", None)
        values.setdefault("price_source", "")
        values.setdefault("tdp_w", None)
        return GPUSpec(name=name, **values)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except TypeError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"GPU catalog file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"GPU catalog file {path} is not valid TOML: {exc}") from None


def _apply(catalog: dict[str, GPUSpec], data: dict[str, Any], path: Path) -> dict[str, GPUSpec]:
    by_key = {_norm_name(k): k for k in catalog}
    for name, table in data.items():
        existing = by_key.get(_norm_name(name))
        spec = _entry(existing or name, table, catalog.get(existing) if existing else None, path)
        catalog[spec.name] = spec
        by_key[_norm_name(spec.name)] = spec.name
    return catalog


@functools.lru_cache(maxsize=1)
def _builtin() -> dict[str, GPUSpec]:
    return _apply({}, _read_toml(_BUILTIN), _BUILTIN)


@functools.lru_cache(maxsize=8)
def _with_overrides(path: str, _mtime_ns: int) -> dict[str, GPUSpec]:
    p = Path(path)
    return _apply(dict(_builtin()), _read_toml(p), p)


def _source() -> tuple[str | None, int]:
    """(override path, its mtime) for the file named by $SCALEBENCH_GPU_CATALOG, if any."""
    path = os.environ.get(ENV_VAR) or None
    if path is None:
        return None, 0
    p = Path(path).expanduser()
    try:
        return str(p.resolve()), p.stat().st_mtime_ns
    except FileNotFoundError:
        raise ConfigError(f"GPU catalog file {p} (named by ${ENV_VAR}) does not exist") from None


def load_catalog(overrides: str | Path | None = None) -> dict[str, GPUSpec]:
    """The catalog, name -> GPUSpec: the built-in table, then ``overrides`` (or the file named by
    ``$SCALEBENCH_GPU_CATALOG``) applied on top. Bad keys raise ConfigError naming the file and key."""
    if overrides is None:
        return dict(_current(*_source())[0])
    p = Path(overrides).expanduser()
    try:
        mtime = p.stat().st_mtime_ns
    except FileNotFoundError:
        raise ConfigError(f"GPU catalog file {p} does not exist") from None
    return dict(_with_overrides(str(p.resolve()), mtime))


def _index(catalog: Mapping[str, GPUSpec]) -> dict[str, GPUSpec]:
    index: dict[str, GPUSpec] = {}
    for spec in catalog.values():
        for alias in spec.aliases:
            index.setdefault(_norm_name(alias), spec)
    for spec in catalog.values():  # canonical names win over aliases
        index[_norm_name(spec.name)] = spec
    return index


@functools.lru_cache(maxsize=8)
def _current(path: str | None, mtime_ns: int) -> tuple[dict[str, GPUSpec], dict[str, GPUSpec]]:
    catalog = _builtin() if path is None else _with_overrides(path, mtime_ns)
    return catalog, _index(catalog)


def list_gpus() -> list[str]:
    """Canonical names of the catalog entries (built-in plus any $SCALEBENCH_GPU_CATALOG file)."""
    return list(load_catalog())


# The short forms people type for the part published runs and clouds mean by them (the SXM boards). Only
# get_gpu (user input) reads these: match_device_name never maps a device's reported name by a guess.
SHORT_NAMES = {"h100": "H100-SXM", "a100": "A100-80GB", "v100": "V100-32GB", "mi300": "MI300X"}


def get_gpu(name: str | GPUSpec) -> GPUSpec:
    """Look up by canonical name, alias or short form (``H100``), case-insensitively; unknown -> ConfigError
    listing the names."""
    if isinstance(name, GPUSpec):
        return name
    catalog, index = _current(*_source())
    key = _norm_name(name) if isinstance(name, str) else None
    spec = index.get(key) if key is not None else None
    if spec is None and key in SHORT_NAMES:
        spec = index.get(_norm_name(SHORT_NAMES[key]))
    if spec is None:
        raise ConfigError(f"unknown GPU {name!r}; known GPUs: {', '.join(catalog)}")
    return spec


def match_device_name(reported: str) -> GPUSpec | None:
    """Map a name from ``torch.cuda.get_device_name()`` or NVML (``"NVIDIA H100 80GB HBM3"``) to its entry;
    ``None`` when it is not in the catalog (an unknown card is never mapped to a similar one)."""
    if not isinstance(reported, str) or not reported.strip():
        return None
    return _current(*_source())[1].get(_norm_name(reported))

