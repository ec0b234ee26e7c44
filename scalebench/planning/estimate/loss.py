"""The predicted loss of each scenario under a scaling law (a preset name or a FitResult)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from scalebench.errors import ConfigError, FitError
from scalebench.planning.estimate.inputs import _categorical, _is_array


def _resolve_law(law: Any):
    if law is None:
        return None, None
    if isinstance(law, str):
        from scalebench.laws.presets import get_preset

        return get_preset(law), law
    if not hasattr(law, "predict"):
        raise ConfigError(f"law must be a preset name or a FitResult, got {type(law).__name__}")
    source = str(getattr(law, "source", "") or "")
    return law, source.removeprefix("preset:") or getattr(law, "law", None) or type(law).__name__


def _loss(law_arg: Any, params: np.ndarray, tokens: np.ndarray, n: int):
    nan = np.full(n, np.nan)
    if _is_array(law_arg):
        codes, laws = _categorical(law_arg, n, _resolve_law)
        loss, lo, hi, names = nan.copy(), nan.copy(), nan.copy(), np.full(n, None, dtype=object)
        for i, (law, name) in enumerate(laws):
            rows = codes == i
            loss[rows], lo[rows], hi[rows], _ = _loss(law, params[rows], tokens[rows], int(rows.sum()))
            names[rows] = name
        return loss, lo, hi, names
    law, name = _resolve_law(law_arg)
    if law is None:
        return nan, nan, nan, np.full(n, None, dtype=object)
    loss = np.asarray(law.predict(params=params, tokens=tokens), dtype=float).reshape(n)
    lo, hi = nan.copy(), nan.copy()
    interval = getattr(law, "predict_interval", None)
    if interval is not None:
        try:
            band = interval(params=params, tokens=tokens)
        except FitError:  # a fit without bootstrap has no interval; the point estimate stands
            band = None
        if band is not None:
            lo, hi = _interval_bounds(band, n)
    return loss, lo, hi, np.full(n, name, dtype=object)


def _interval_bounds(band: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(band, pd.DataFrame):
        cols = [c for c in band.columns if c in ("lo", "low", "lower")], [c for c in band.columns if c in ("hi", "high", "upper")]
        if cols[0] and cols[1]:
            return band[cols[0][0]].to_numpy(float), band[cols[1][0]].to_numpy(float)
        return band.iloc[:, 0].to_numpy(float), band.iloc[:, -1].to_numpy(float)
    if isinstance(band, Mapping):
        return np.asarray(band.get("lo", band.get("lower")), float).reshape(n), np.asarray(band.get("hi", band.get("upper")), float).reshape(n)
    lo, hi = band
    return np.asarray(lo, float).reshape(n), np.asarray(hi, float).reshape(n)

