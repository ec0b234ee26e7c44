"""Which law describes the runs best: ``compare_laws`` fits several and scores each by a backtest (does it
extrapolate?) and information criteria (does it fit without spending parameters?).

Information criteria treat the log-loss residuals as Gaussian: AIC = n·ln(RSS/n) + 2k and BIC =
n·ln(RSS/n) + k·ln n, with k the law's free parameters (Akaike 1974; Schwarz 1978). The fit itself is
robust (Huber), so these are a guide; the backtest is the test that matters for a scaling law. The
backtest fits on the runs below the compute that leaves a quarter of the runs above it and predicts those.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from scalebench.errors import ConfigError, FitError
from scalebench.laws.forms import LAWS, get_law

COMPARE_COLUMNS = ["law", "k", "n_points", "rmse_log", "aic", "bic", "backtest_mape", "verdict", "error"]


def applicable_laws(columns: Sequence[str]) -> list[str]:
    """Registered laws whose variables are all among ``columns`` (flops counts when params and tokens do)."""
    have = set(columns)
    if {"params", "tokens"} <= have:
        have.add("flops")
    return sorted(n for n, f in LAWS.items() if set(f.variables) <= have)


def backtest_threshold(flops: np.ndarray, n_params: int) -> float | None:
    """The compute below which about three quarters of the runs (at least P+1) lie, or None if too few."""
    flops = np.sort(np.asarray(flops, dtype=float))
    n_train = max(n_params + 1, math.ceil(0.75 * len(flops)))
    if n_train >= len(flops):
        return None
    threshold = float(flops[n_train])
    return threshold if (flops < threshold).sum() >= n_params + 1 else None


def compare_laws(source: object, laws: Sequence[str] | None = None, **options: Any) -> pd.DataFrame:
    """Fit each of ``laws`` (default: every registered law the data's columns allow) and score it; sorted by
    backtest error, then BIC. ``options`` as for :func:`scalebench.laws.fit`. A sweep (folder or
    ``scalebench.Sweep``) has each law fitted by ``laws.sweepfit`` with these options, so a law's verdict
    here is the one ``scalebench fit DIR --law LAW`` gives with the same options."""
    from scalebench.laws.io import _read, is_sweep_dir

    columns = {k: options.pop(k) for k in ("loss_col", "params_col", "tokens_col", "flops_col") if k in options}
    sweep = None
    if is_sweep_dir(source):
        from scalebench.laws.sweepfit import as_sweep

        sweep = as_sweep(source)
    if laws is None:
        raw = sweep.results if sweep is not None else _read(source, columns.get("loss_col"))[0]
        rename = {columns.get(f"{c}_col", c): c for c in ("params", "tokens", "flops")}
        laws = applicable_laws([rename.get(c, c) for c in raw.columns])
    if not laws:
        raise ConfigError("compare: no law to compare (give names, e.g. chinchilla,kaplan-joint)")
    rows = []
    for name in laws:
        form = get_law(name)
        row: dict[str, Any] = {"law": form.name, "k": form.n_params}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if sweep is not None:
                    from scalebench.laws.sweepfit import fit_sweep

                    r = fit_sweep(sweep, form, **columns, **options)
                    bt = r.backtest
                else:
                    r, bt = _fit_and_backtest(source, form, columns, options)
            rss = float(np.sum(r.residuals["residual"] ** 2))
            n = r.n_points
            row |= {"n_points": n, "rmse_log": math.sqrt(rss / n), "verdict": r.verdict}
            ll = n * math.log(max(rss, 1e-300) / n)
            row |= {"aic": ll + 2 * form.n_params, "bic": ll + form.n_params * math.log(n)}
            if bt is not None:
                row["backtest_mape"] = bt.mape
        except (FitError, ConfigError) as exc:
            row["error"] = str(exc)
        rows.append(row)
    out = pd.DataFrame(rows).reindex(columns=COMPARE_COLUMNS)
    return out.sort_values(["backtest_mape", "bic"], na_position="last", kind="stable").reset_index(drop=True)


def _fit_and_backtest(source: object, form: Any, columns: dict[str, Any], options: dict[str, Any]) -> tuple[Any, Any]:
    """A file's or DataFrame's fit (as ``scalebench.laws.fit`` gives it) and the backtest on its runs."""
    from scalebench.laws.backtest import backtest_frame
    from scalebench.laws.fitting import fit_frame
    from scalebench.laws.io import load_data

    frame = load_data(source, form.variables, **columns)
    r = fit_frame(frame, form, **options)
    thr = backtest_threshold(frame["flops"], form.n_params) if "flops" in frame else None
    if thr is None:
        return r, None
    opts = {k: v for k, v in options.items() if k not in ("bootstrap", "progress", "backtest_below")}
    return r, backtest_frame(frame, form, thr, **opts)
