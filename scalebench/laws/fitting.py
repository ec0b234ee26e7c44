"""`fit`: load runs, fit a law robustly, optionally bootstrap and backtest, return a `FitResult`.

The objective is the Huber loss (δ = 1e-3) of log L̂ − log L summed over points, minimised with L-BFGS-B
and analytic gradients from a pre-screened multi-start grid (see ``optimize``), following Hoffmann et al.
2022 appendix D.2 and the replication of Besiroglu et al. 2024.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from scalebench.errors import ConfigError, FitError
from scalebench.laws.forms import LawForm
from scalebench.laws.io import data_fingerprint, describe_source, load_data  # noqa: F401 (data_fingerprint: re-exported)
from scalebench.laws.objective import huber
from scalebench.laws.optimize import multistart
from scalebench.laws.result import FitResult

# Bootstrap refits (method "warm") start from the full-data optimum plus at most this many other distinct local
# optima of the full fit that nearly tie with it; a sample of resamples is checked against the full grid
# (see ``bootstrap``).
BOOTSTRAP_EXTRA_STARTS = 3


def _real(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)) and math.isfinite(value)


def _integer(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


MAX_BOOTSTRAP = 100_000  # each resample is a full multi-start fit; more is hours for no better interval


def _check_options(
    huber_delta: float, confidence: float, bootstrap: int, n_refine: int | None, seed: object = 0,
    bootstrap_method: object = "warm",
) -> None:
    from scalebench.laws.bootstrap import METHODS

    if bootstrap_method not in METHODS:
        raise ConfigError(f"bootstrap_method must be one of {', '.join(map(repr, METHODS))} ('warm': refits from "
                          f"the full fit's optima, checked on a sample; 'full': the whole grid on every resample), "
                          f"not {bootstrap_method!r}")
    if not (_real(huber_delta) and huber_delta > 0):
        raise ConfigError(f"huber_delta must be a positive number, not {huber_delta!r}")
    if not (_real(confidence) and 0 < confidence < 1):
        raise ConfigError(f"confidence must be a number in (0, 1), e.g. 0.95, not {confidence!r}")
    if not (_integer(bootstrap) and 0 <= bootstrap <= MAX_BOOTSTRAP):
        raise ConfigError(f"bootstrap must be a non-negative integer count of resamples, at most {MAX_BOOTSTRAP:,} "
                          f"(1000 already gives stable 95% intervals), not {bootstrap!r}")
    if n_refine is not None and not (_integer(n_refine) and n_refine >= 1):
        raise ConfigError(f"n_refine must be an integer >= 1 (or None to refine every start), not {n_refine!r}")
    if seed is not None and not (_integer(seed) and seed >= 0):
        raise ConfigError(f"seed must be a non-negative integer (or None for a fresh one), not {seed!r}")


def check_backtest_below(value: object, name: str = "backtest_below") -> float:
    """A positive, finite FLOP count, as a float; ConfigError naming ``name`` otherwise."""
    if not (_real(value) and value > 0):
        raise ConfigError(f"{name} must be a positive FLOP count (a number, e.g. 1e18), not {value!r}")
    return float(value)


def _check_data(frame: pd.DataFrame, form: LawForm) -> None:
    n, p = len(frame), form.n_params
    if n < p + 1:
        raise FitError(f"law {form.name!r} has {p} parameters and needs at least {p + 1} points; got {n}")
    if len(form.variables) > 1:
        for var in form.variables:
            if frame[var].nunique() < 2:
                what = "model size" if var == "params" else f"value of {var!r}"
                raise FitError(
                    f"law {form.name!r} varies {list(form.variables)} but the data have a single {what} "
                    f"({frame[var].iloc[0]:.4g}); add runs at other sizes or fit a one-variable law"
                )


def fit_frame(
    frame: pd.DataFrame,
    form: LawForm,
    *,
    bootstrap: int = 0,
    bootstrap_method: str = "warm",
    seed: int = 0,
    confidence: float = 0.95,
    huber_delta: float = 1e-3,
    n_refine: int | None = 64,
    grid: Mapping[str, Sequence[float]] | np.ndarray | None = None,
    source: str = "",
    progress: Callable[[int, int], None] | None = None,
    backtest_below: float | None = None,
    diagnostics: bool = True,
    other_exponents: Mapping[str, float] | None = None,
    known_floor: float | None = None,
    cell_col: str | None = None,
) -> FitResult:
    """Fit ``form`` to a canonical, validated frame (see ``io.load_data``). Exact duplicate runs are
    dropped with a warning (they would count twice and narrow the intervals). With ``diagnostics`` the
    result carries a verdict (see ``diagnostics.diagnose``). ``cell_col`` names a column labelling repeated
    runs of one cell (seeds): where a cell has two runs or more, runs are weighted by the measured noise and the
    bootstrap resamples cells (``laws.noise``); without repeats the fit is the unweighted one."""
    from scalebench.laws.bootstrap import bootstrap as run_bootstrap
    from scalebench.laws.bootstrap import intervals
    from scalebench.laws.io import drop_duplicate_runs

    _check_options(huber_delta, confidence, bootstrap, n_refine, seed, bootstrap_method)
    frame = drop_duplicate_runs(frame, form.variables, source or "data")
    _check_data(frame, form)
    logx = np.log(frame[list(form.variables)].to_numpy(dtype=float).T)
    logy = np.log(frame["loss"].to_numpy(dtype=float))
    starts = form.init_grid(grid, logx=logx if not isinstance(grid, np.ndarray) else None)
    noise = _seed_noise(frame, form, logx, logy, cell_col)
    weights = None if noise is None else noise.weights
    delta = huber_delta if noise is None else noise.deltas(huber_delta)
    outcome = multistart(form, logx, logy, delta=delta, starts=starts, n_refine=n_refine, weights=weights)

    log_pred = form.log_predict(outcome.theta, logx)[0]
    keep = [c for c in ("run_id", *dict.fromkeys(("params", "tokens", "flops", *form.variables)), "loss") if c in frame]
    residuals = frame[keep].copy()
    residuals["predicted"] = np.exp(log_pred)
    residuals["residual"] = log_pred - logy  # in log loss, the fitted quantity
    residuals["huber"] = huber(residuals["residual"].to_numpy(), huber_delta)

    thetas, cis, boot_meta = None, {}, {}
    if bootstrap:
        groups = frame["run_id"].to_numpy() if "run_id" in frame else np.arange(len(frame))
        if noise is not None:  # a cell's seeds are one draw of the ladder: resampled together
            groups = noise.cells
        boot = run_bootstrap(form, logx, logy, groups, optima=outcome.optima, grid=starts, n_refine=n_refine,
                             n_resamples=int(bootstrap), seed=seed, delta=delta, method=bootstrap_method,
                             n_warm=1 + BOOTSTRAP_EXTRA_STARTS, progress=progress, point_weights=weights)
        thetas = boot.thetas
        cis = dict(intervals(form, thetas, confidence))
        boot_meta = {"bootstrap_method": boot.method} | ({} if noise is None else {"bootstrap_groups": "cells"})
        if boot.n_audited:
            boot_meta |= {"bootstrap_audited": boot.n_audited, "bootstrap_disagree": boot.n_disagree}

    result = FitResult(
        law=form.name,
        form=form,
        theta=outcome.theta,
        params={k: float(v) for k, v in form.to_public(outcome.theta).items()},
        intervals=cis,
        confidence=confidence,
        objective=outcome.objective,
        success=outcome.success,
        message=outcome.message,
        n_points=len(frame),
        n_starts=outcome.n_grid,
        n_refined=outcome.n_refined,
        n_at_best=outcome.n_at_best,
        on_bound=tuple(form.public_name(n) for n in outcome.on_bound),
        huber_delta=huber_delta,
        residuals=residuals.reset_index(drop=True),
        bootstrap_thetas=thetas,
        source=source,
        metadata={"seed": seed, "reach_rtol": outcome.reach_rtol, "n_local_optima": len(outcome.optima),
                  "n_refine": n_refine, "data_fingerprint": data_fingerprint(frame, form.variables), **boot_meta,
                  **({} if noise is None else {"seed_noise": noise.summary()})},
    )
    if backtest_below is not None:
        from scalebench.laws.backtest import backtest_frame

        options = {"huber_delta": huber_delta, "n_refine": n_refine, "grid": grid, "seed": seed,
                   "confidence": confidence, "cell_col": cell_col}
        result = dataclasses.replace(result, backtest=backtest_frame(frame, form, backtest_below, **options))
    if diagnostics:
        from scalebench.laws.diagnostics import diagnose

        others = dict(other_exponents or {})
        if not others and form.has_frontier and set(form.variables) == {"params", "tokens"}:
            others = _approach2_exponent(frame)
        diag = diagnose(result, frame, other_exponents=others, known_floor=known_floor)
        if noise is not None:
            diag = dataclasses.replace(diag, checks={**diag.checks, "seed_noise": noise.summary()})
        result = dataclasses.replace(result, diagnostics=diag)
    return result


def _seed_noise(frame: pd.DataFrame, form: LawForm, logx: np.ndarray, logy: np.ndarray,
                cell_col: str | None) -> object:
    """The runs' noise from their cells' repeats (``laws.noise.seed_noise``), or None: no repeats, no weights."""
    if cell_col is None:
        return None
    if cell_col not in frame:
        raise FitError(f"cell_col {cell_col!r} is not a column of the data; columns are {list(frame.columns)}")
    from scalebench.laws.noise import seed_noise

    return seed_noise(logx, logy, frame[cell_col].to_numpy(), form.variables)


def _approach2_exponent(frame: pd.DataFrame) -> dict[str, float]:
    """Approach 2's a on the same runs, when they form isoFLOP profiles (else nothing to compare)."""
    from scalebench.laws.isoflop import approach_exponents

    return approach_exponents(frame)


def fit(
    source: object,
    law: str | LawForm = "chinchilla",
    *,
    loss_col: str | None = None,
    params_col: str = "params",
    tokens_col: str = "tokens",
    flops_col: str = "flops",
    bootstrap: int = 0,
    bootstrap_method: str = "warm",
    seed: int = 0,
    backtest_below: float | None = None,
    confidence: float = 0.95,
    huber_delta: float = 1e-3,
    n_refine: int | None = 64,
    grid: Mapping[str, Sequence[float]] | np.ndarray | None = None,
    fix: Mapping[str, float] | None = None,
    tie: Mapping[str, str] | None = None,
    progress: Callable[[int, int], None] | None = None,
    cell_col: str | None = None,
) -> FitResult:
    """Fit a scaling law to runs.

    ``source``: a DataFrame, a CSV/Parquet path (columns ``params``, ``tokens``, ``loss``; tokens =
    flops/(6·params) when only ``flops`` is given; other names via ``*_col``; a law's other variables,
    such as ``unique_tokens``, by their own names) or a sweep directory (done runs only, loss ``eval_loss``
    by default; fitted as ``scalebench.Sweep(dir).fit`` does, see ``laws.sweepfit``). ``law``: a registered name (``chinchilla``, ``kaplan-joint``, ``power-*``, ``kaplan-*``
    with E = 0, ``broken-power-*``, ``data-constrained``) or a ``LawForm``. ``fix`` holds public
    parameters at given values (``{"E": 1.8}``); ``tie`` makes one equal another (``{"alpha": "beta"}``).
    ``bootstrap``: resamples over runs for percentile intervals at ``confidence``; ``bootstrap_method``
    ``"warm"`` refits them from the full fit's optima, all at once, checking a sample against the full grid
    (the share that disagree is in the diagnostics); ``"full"`` runs the full grid on every resample (slow). ``backtest_below``:
    also fit on runs below this many FLOPs and score predictions of the rest. ``n_refine``: grid starts
    refined after screening (None: all); ``grid``: per-raw-parameter start values or an (S, P) array
    replacing the form's grid. ``progress(done, total)`` is called after each bootstrap resample.
    ``cell_col`` (files and DataFrames): a column labelling repeated runs of one cell (seeds); runs are then
    weighted by the noise measured between repeats and the bootstrap resamples cells (``laws.noise``). A sweep
    folder whose ``[ladder] seeds`` repeat cells is weighted so without it.

    The result carries ``diagnostics`` (verdict, reasons, suggestions). A fit that does not converge
    returns with ``success=False``; unusable data raise ``FitError``.
    """
    from scalebench.laws.constraints import constrain
    from scalebench.laws.io import is_sweep_dir

    if is_sweep_dir(source):  # one way to fit a sweep: the CLI's, the report's and Sweep.fit's
        from scalebench.laws.sweepfit import fit_sweep

        return fit_sweep(source, law, loss_col=loss_col, params_col=params_col, tokens_col=tokens_col,
                         flops_col=flops_col, bootstrap=bootstrap, seed=seed, confidence=confidence,
                         huber_delta=huber_delta, n_refine=n_refine, grid=grid, fix=fix, tie=tie,
                         backtest_below=backtest_below, progress=progress, bootstrap_method=bootstrap_method)
    form = constrain(law, fix, tie)
    _check_options(huber_delta, confidence, bootstrap, n_refine, seed, bootstrap_method)
    if backtest_below is not None:
        backtest_below = check_backtest_below(backtest_below)
    frame = load_data(
        source,
        form.variables,
        loss_col=loss_col,
        params_col=params_col,
        tokens_col=tokens_col,
        flops_col=flops_col,
        extra_cols=(cell_col,) if cell_col else (),
    )
    columns = {"loss_col": frame.attrs.get("loss_col", loss_col), "params_col": params_col}
    result = fit_frame(
        frame,
        form,
        bootstrap=bootstrap,
        bootstrap_method=bootstrap_method,
        source=describe_source(source),
        progress=progress,
        huber_delta=huber_delta,
        n_refine=n_refine,
        grid=grid,
        seed=seed,
        confidence=confidence,
        backtest_below=backtest_below,
        cell_col=cell_col,
    )
    result.metadata.update(columns)  # saved with the fit: the report fits and shows the same columns
    return result
