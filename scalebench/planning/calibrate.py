"""``calibrate``: what a sweep measured, turned into the estimator's efficiency inputs.

* MFU against model size: least squares of ``mfu = intercept + slope · log10(params)`` over the sweep's
  finished GPU runs (MFU rises with size as kernels grow, then saturates; over the one or two decades a
  sweep spans a line in log N is what the data can support). Prediction is clipped to
  [0.5 · lowest measured, (1 + headroom) · highest measured] and, beyond ``extrapolation_limit`` times the
  sweep's largest (or below its smallest / limit) model, held at the value at that edge and flagged.
* Power: the median of ``avg_power_w / tdp_w`` becomes ``power_fraction`` for energy estimates.
* Memory model check: the median ratio of measured ``peak_mem_bytes`` to the model's allocated bytes
  (weights + gradients + optimizer + activations, no overhead), with the per-run table in ``runs``.

Runs whose ``mfu`` is missing get it from ``tokens_per_s · flops/tokens / peak`` when their device is in
the catalog. CPU runs carry no MFU and are skipped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from scalebench import memory as mem
from scalebench.errors import FitError
from scalebench.hardware.catalog import match_device_name

__all__ = ["Calibration", "calibrate"]


@dataclass(frozen=True, kw_only=True)
class Calibration:
    """MFU as a function of model size (and power draw, memory-model error) measured on one GPU type."""

    gpu: str | None
    n_runs: int
    mfu_intercept: float
    mfu_slope: float  # per decade of params
    params_min: float
    params_max: float
    mfu_min_observed: float
    mfu_max_observed: float
    mfu_cap: float
    extrapolation_limit: float = 10.0
    power_fraction: float | None = None
    memory_ratio: float | None = None
    runs: pd.DataFrame | None = field(default=None, repr=False, compare=False)

    def predict_mfu(self, params: Any) -> tuple[np.ndarray, np.ndarray]:
        """(mfu, extrapolated) for each parameter count."""
        p = np.atleast_1d(np.asarray(params, dtype=float))
        lo, hi = self.params_min / self.extrapolation_limit, self.params_max * self.extrapolation_limit
        extrapolated = (p < lo) | (p > hi)
        x = np.log10(np.clip(p, lo, hi))
        mfu = np.clip(self.mfu_intercept + self.mfu_slope * x, 0.5 * self.mfu_min_observed, self.mfu_cap)
        return mfu, extrapolated

    def residual_range(self) -> tuple[float, float]:
        """(low, high) ratios measured/fitted MFU over the sweep's runs: the estimate's range. Without the
        runs (a Calibration built by hand), ±15%."""
        if self.runs is None or "mfu" not in self.runs or "params" not in self.runs or self.runs.empty:
            return 0.85, 1.15
        fitted, _ = self.predict_mfu(self.runs["params"].to_numpy(float))
        ratio = self.runs["mfu"].to_numpy(float) / fitted
        ratio = ratio[np.isfinite(ratio) & (ratio > 0)]
        if not ratio.size:
            return 0.85, 1.15
        return float(min(1.0, ratio.min())), float(max(1.0, ratio.max()))

    def summary(self) -> dict[str, Any]:
        keys = ("gpu", "n_runs", "mfu_intercept", "mfu_slope", "params_min", "params_max", "mfu_min_observed",
                "mfu_max_observed", "mfu_cap", "extrapolation_limit", "power_fraction", "memory_ratio")
        return {k: getattr(self, k) for k in keys}

    def report(self) -> str:
        lines = [f"calibration on {self.gpu or 'unknown GPU'} from {self.n_runs} runs "
                 f"({self.params_min:.3g}-{self.params_max:.3g} params)",
                 f"  mfu = {self.mfu_intercept:.3f} + {self.mfu_slope:.3f}·log10(params), capped at {self.mfu_cap:.3f}"]
        if self.power_fraction is not None:
            lines.append(f"  power draw {self.power_fraction:.2f} of TDP")
        if self.memory_ratio is not None:
            lines.append(f"  measured / modelled peak memory: {self.memory_ratio:.2f} (median)")
        return "\n".join(lines)


def calibrate(
    sweep: str | Path | pd.DataFrame, *, extrapolation_limit: float = 10.0, headroom: float = 0.10
) -> Calibration:
    """Fit MFU against model size (and power draw) from a sweep directory's results or a results DataFrame."""
    if isinstance(sweep, pd.DataFrame):
        frame = sweep
    else:
        from scalebench.store import load_results

        frame = load_results(sweep)
    df = frame.copy()
    if "status" in df:
        df = df[df["status"] == "done"]
    if df.empty or "params" not in df or "device" not in df:
        raise FitError("calibrate needs finished runs with params and device columns")
    specs = {d: match_device_name(str(d)) for d in df["device"].dropna().unique()}
    df["gpu"] = df["device"].map(lambda d: specs.get(d).name if specs.get(d) else None)
    df = df[df["gpu"].notna()]
    if df.empty:
        raise FitError("calibrate found no runs on a catalogued GPU (CPU runs carry no MFU); run the sweep on a GPU")
    gpu = df["gpu"].value_counts().index[0]
    df = df[df["gpu"] == gpu].copy()
    spec = next(s for s in specs.values() if s is not None and s.name == gpu)
    mfu = pd.to_numeric(df.get("mfu", pd.Series(np.nan, index=df.index)), errors="coerce")
    if mfu.isna().any() and {"tokens_per_s", "flops", "tokens"} <= set(df):
        prec = df["precision"] if "precision" in df else pd.Series("bf16", index=df.index)
        peak = prec.map(lambda p: spec.peak_for(p) if isinstance(p, str) else None).astype(float)
        derived = df["tokens_per_s"] * df["flops"] / df["tokens"] / peak
        mfu = mfu.fillna(derived)
    df["mfu"] = mfu
    df = df[np.isfinite(df["mfu"]) & (df["mfu"] > 0) & (df["params"] > 0)]
    if df.empty:
        raise FitError(f"calibrate found no {gpu} run with a measured MFU")
    x = np.log10(df["params"].to_numpy(float))
    y = df["mfu"].to_numpy(float)
    if np.ptp(x) > 0:
        slope, intercept = np.polyfit(x, y, 1)
    else:
        slope, intercept = 0.0, float(y.mean())
    power = None
    if "avg_power_w" in df and spec.tdp_w:
        frac = pd.to_numeric(df["avg_power_w"], errors="coerce") / spec.tdp_w
        frac = frac[np.isfinite(frac) & (frac > 0)]
        power = float(np.clip(frac.median(), 0.05, 1.0)) if len(frac) else None
    df["memory_modelled_bytes"] = _modelled_memory(df)
    ratio = df["peak_mem_bytes"] / df["memory_modelled_bytes"] if "peak_mem_bytes" in df else pd.Series(dtype=float)
    ratio = pd.to_numeric(ratio, errors="coerce")
    df["memory_ratio"] = ratio
    finite = ratio[np.isfinite(ratio)]
    return Calibration(
        gpu=gpu, n_runs=len(df), mfu_intercept=float(intercept), mfu_slope=float(slope),
        params_min=float(df["params"].min()), params_max=float(df["params"].max()),
        mfu_min_observed=float(y.min()), mfu_max_observed=float(y.max()),
        mfu_cap=float(min(0.95, y.max() * (1.0 + headroom))), extrapolation_limit=float(extrapolation_limit),
        power_fraction=power, memory_ratio=float(finite.median()) if len(finite) else None,
        runs=df.reset_index(drop=True),
    )


def _modelled_memory(df: pd.DataFrame) -> pd.Series:
    """Allocated bytes the memory model predicts for each run (one GPU, no sharding, no overhead)."""
    need = {"n_layer", "d_model", "n_head", "seq_len", "micro_batch"}
    if not need <= set(df):
        return pd.Series(np.nan, index=df.index)
    out = []
    for _, r in df.iterrows():
        try:
            prec = mem.parse_precision(r.get("precision", "bf16"))
        except Exception:  # noqa: BLE001 - an unknown precision string: no model for this run
            out.append(math.nan)
            continue
        opt = r.get("optimizer", "adamw") if isinstance(r.get("optimizer"), str) else "adamw"
        w, g, o = mem.state_bytes_per_param(prec, opt, "autocast")  # scalebench's trainer: fp32 weights
        total = r.get("params_total", r["params"])
        act = mem.activation_bytes(
            n_layer=r["n_layer"], d_model=r["d_model"], n_head=r["n_head"], seq_len=r["seq_len"],
            micro_batch=r["micro_batch"], vocab_size=r.get("vocab_size", 256), checkpointing="none",
            flash_attention=True, scale=mem.ACTIVATION_SCALE[prec],
        )
        out.append(float(total * (w + g + o) + act))
    return pd.Series(out, index=df.index, dtype=float)
