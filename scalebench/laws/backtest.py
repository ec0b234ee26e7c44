"""Backtest: fit on the runs below a compute threshold, predict the larger ones, report the errors.

This is the test that matters for a scaling law (does it extrapolate?), as opposed to in-sample fit.
Relative error is (predicted − actual) / actual; MAPE is the mean of its absolute value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from scalebench.errors import FitError
from scalebench.laws.forms import LawForm, get_law
from scalebench.laws.result import FitResult, json_float


@dataclass(frozen=True, kw_only=True, eq=False)
class BacktestResult:
    law: str
    below_flops: float
    n_train: int
    n_test: int
    mape: float  # fraction, not percent
    errors: pd.DataFrame = field(repr=False)  # params, tokens, flops, loss, predicted, rel_error
    fit: FitResult = field(repr=False)  # the fit on the runs below the threshold

    def summary(self) -> dict[str, Any]:
        return {
            "below_flops": float(self.below_flops),
            "n_train": int(self.n_train),
            "n_test": int(self.n_test),
            "mape": json_float(self.mape),
            "rel_errors": [json_float(x) for x in self.errors["rel_error"]],
            "fit_params": {k: json_float(v) for k, v in self.fit.params.items()},
        }


def backtest_frame(frame: pd.DataFrame, form: LawForm, below_flops: float, **options: Any) -> BacktestResult:
    """Backtest on a canonical frame (see ``io.load_data``); options go to the fit."""
    from scalebench.laws.fitting import check_backtest_below, fit_frame  # fitting imports this module

    below_flops = check_backtest_below(below_flops, "below_flops")
    if "flops" not in frame:
        raise FitError("backtest needs a flops column (or params and tokens, with flops = 6*params*tokens)")
    train = frame[frame["flops"] < below_flops]
    test = frame[frame["flops"] >= below_flops]
    if test.empty:
        raise FitError(
            f"backtest: no runs at or above {below_flops:.3g} FLOPs to predict (max is {frame['flops'].max():.3g})"
        )
    result = fit_frame(train, form, diagnostics=False, **options)
    predicted = np.asarray(result.predict(**{v: test[v].to_numpy() for v in form.variables}))
    errors = test[[c for c in ("params", "tokens", "flops", "loss") if c in test]].copy()
    errors["predicted"] = predicted
    errors["rel_error"] = (predicted - test["loss"].to_numpy()) / test["loss"].to_numpy()
    return BacktestResult(
        law=form.name,
        below_flops=float(below_flops),
        n_train=len(train),
        n_test=len(test),
        mape=float(np.mean(np.abs(errors["rel_error"]))),
        errors=errors.reset_index(drop=True),
        fit=result,
    )


def backtest(
    source: object, law: str | LawForm = "chinchilla", below_flops: float = 0.0, **options: Any
) -> BacktestResult:
    """Fit ``law`` on runs with flops < ``below_flops`` and predict the rest. ``source`` and the column
    options are as for :func:`scalebench.laws.fit`; other options (``huber_delta``, ``n_refine``, ``grid``)
    go to the fit."""
    from scalebench.laws.io import load_data

    form = get_law(law)
    columns = {
        k: options.pop(k) for k in ("loss_col", "params_col", "tokens_col", "flops_col") if k in options
    }
    frame = load_data(source, form.variables, **columns)
    return backtest_frame(frame, form, below_flops, **options)
