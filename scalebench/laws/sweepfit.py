"""The one way to fit a sweep: ``scalebench.Sweep(dir).fit()``, ``scalebench.fit(DIR)``, ``scalebench fit DIR``
and the report all call :func:`fit_sweep` (or :func:`fit_sweep_groups` for one law per group), so a sweep
has one set of numbers, one verdict and one list of reasons wherever it is read.

The inputs, decided here and nowhere else:

* **runs**: the ``done`` runs (others are counted in a warning);
* **loss column**: ``eval_loss`` (``eval_bpb`` where the runs mix families: bits per byte compare across
  tokenizers) when every done run has it, else ``train_loss`` (with a warning); a given ``loss_col`` wins;
* **known floor**: the task's exact irreducible held-out loss where the store's meta knows it (synthetic
  language, teacher task), for ``eval_loss`` only; checked against E by the diagnostics;
* **other approaches**: the frontier exponent a by Approach 2 (the runs' isoFLOP budgets) and Approach 1
  (the training curves in the store), for the disagreement check;
* **backtest**: on the runs below the compute that leaves about a quarter above it (``compare.backtest_threshold``)
  unless ``backtest_below`` is given; none when too few runs. Its error joins the verdict;
* **ladder health** (``laws.health``: lr probes, loss spikes, crossing curves, cells left out) joins the verdict;
* **seed noise**: where ``[ladder] seeds`` repeats cells, runs are weighted by the noise measured between seeds
  and the bootstrap resamples cells (``laws.noise``).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pandas as pd

from scalebench.errors import FitError

DEFAULT_BOOTSTRAP = 200  # as `scalebench fit`: 200 resamples give stable 95% percentile intervals


def as_sweep(sweep: Any) -> Any:
    """The tables of a sweep: a ``scalebench.Sweep`` (or ``store.SweepTables``) as given, a folder's path
    read into ``store.SweepTables`` (the laws need nothing above the store)."""
    from scalebench.store import SweepTables

    return sweep if isinstance(sweep, SweepTables) else SweepTables(sweep)


def sweep_loss_col(done: pd.DataFrame, wanted: str | None = None) -> str:
    """The loss a sweep is fitted on: ``wanted``, else ``io.sweep_loss_col``'s (``eval_loss``; ``eval_bpb``
    where the runs mix families) when every done run has it, else ``train_loss`` when every done run has
    that (with a warning saying why)."""
    from scalebench.laws.io import sweep_loss_col as default

    if wanted is not None:
        return wanted

    def complete(col: str) -> bool:
        return col in done and len(done) > 0 and bool(pd.to_numeric(done[col], errors="coerce").notna().all())

    col = default(done)
    if complete(col) or not complete("train_loss"):
        return col
    warnings.warn(f"some done runs have no {col} (no held-out evaluation); fitting train_loss instead "
                  f"(pass loss_col={col!r} / --loss-col {col} to insist)", stacklevel=3)
    return "train_loss"


def known_floor(meta: Mapping[str, Any], loss_col: str) -> float | None:
    """The task's exact irreducible loss (meta ``irreducible_loss``) when fitting ``eval_loss``, else None."""
    floor = meta.get("irreducible_loss") if loss_col == "eval_loss" else None
    return None if floor is None else float(floor)


def sweep_curves(sweep: Any, run_ids: Sequence[str] | None = None) -> pd.DataFrame | None:
    """The smoothed training curves of the sweep's done runs (``run_ids`` only, when given); None without."""
    from scalebench.laws.isoflop import smoothed_curves

    if sweep.steps.empty:
        return None
    curves = smoothed_curves(sweep.steps, sweep.results)
    if run_ids is not None:
        curves = curves[curves["run_id"].isin(set(run_ids))]
    return curves if len(curves) else None


def fit_runs(frame: pd.DataFrame, form: Any, *, curves: pd.DataFrame | None, floor: float | None,
             backtest_below: float | None, source: str, **options: Any) -> Any:
    """Fit ``form`` to a canonical frame of one sweep's runs with the inputs of the module doc."""
    from scalebench.laws.compare import backtest_threshold
    from scalebench.laws.fitting import fit_frame
    from scalebench.laws.isoflop import approach_exponents

    others = approach_exponents(frame, curves) if form.has_frontier and "flops" in frame else None
    if backtest_below is None and "flops" in frame:
        backtest_below = backtest_threshold(frame["flops"].to_numpy(), form.n_params)
    return fit_frame(frame, form, source=source, other_exponents=others, known_floor=floor,
                     backtest_below=backtest_below, **options)


def _form(law: Any, fix: Mapping[str, float] | None, tie: Mapping[str, str] | None) -> Any:
    from scalebench.laws.constraints import constrain

    return constrain(law, fix, tie)


CELL_COL = "cell"  # the column of a fitted frame naming each run's cell, where seeds repeat cells


def _frame(sweep: Any, form: Any, loss_col: str | None, columns: Mapping[str, str],
           extra_cols: Sequence[str] = ()) -> tuple[pd.DataFrame, str]:
    from scalebench.laws.io import done_runs, load_data
    from scalebench.laws.noise import seed_cells

    done = done_runs(sweep.results, sweep.path, stacklevel=5)
    col = sweep_loss_col(done, loss_col)
    frame = load_data(done, form.variables, loss_col=col, extra_cols=extra_cols, where=str(sweep.path),
                      **columns)
    cells = seed_cells(done, sweep.axes)
    if cells is not None and "run_id" in frame:
        frame[CELL_COL] = frame["run_id"].map(cells).fillna(frame["run_id"].astype(str))
    return frame, col


def _cell_col(frame: pd.DataFrame) -> str | None:
    return CELL_COL if CELL_COL in frame else None


def _options(bootstrap: int, seed: int, confidence: float, huber_delta: float, n_refine: int | None,
             grid: Any, progress: Callable[[int, int], None] | None, bootstrap_method: str = "warm") -> dict[str, Any]:
    from scalebench.laws.fitting import _check_options

    _check_options(huber_delta, confidence, bootstrap, n_refine, seed, bootstrap_method)
    return {"bootstrap": bootstrap, "seed": seed, "confidence": confidence, "huber_delta": huber_delta,
            "n_refine": n_refine, "grid": grid, "progress": progress, "bootstrap_method": bootstrap_method}


def fit_sweep(
    sweep: Any,
    law: Any = "chinchilla",
    *,
    loss_col: str | None = None,
    params_col: str = "params",
    tokens_col: str = "tokens",
    flops_col: str = "flops",
    bootstrap: int = DEFAULT_BOOTSTRAP,
    seed: int = 0,
    confidence: float = 0.95,
    huber_delta: float = 1e-3,
    n_refine: int | None = 64,
    grid: Any = None,
    fix: Mapping[str, float] | None = None,
    tie: Mapping[str, str] | None = None,
    backtest_below: float | None = None,
    progress: Callable[[int, int], None] | None = None,
    bootstrap_method: str = "warm",
) -> Any:
    """Fit ``law`` to a sweep (a :class:`scalebench.Sweep` or its folder) with the inputs of the module doc;
    a `FitResult` with residuals, backtest and verdict. Options as for :func:`scalebench.laws.fit`."""
    from scalebench.laws.fitting import check_backtest_below

    sweep = as_sweep(sweep)
    form = _form(law, fix, tie)
    options = _options(bootstrap, seed, confidence, huber_delta, n_refine, grid, progress, bootstrap_method)
    if backtest_below is not None:
        backtest_below = check_backtest_below(backtest_below)
    columns = {"params_col": params_col, "tokens_col": tokens_col, "flops_col": flops_col}
    frame, col = _frame(sweep, form, loss_col, columns)
    _warn_if_mixed(sweep)
    result = fit_runs(frame, form, curves=sweep_curves(sweep), floor=known_floor(sweep.meta, col),
                      backtest_below=backtest_below, source=str(sweep.path), cell_col=_cell_col(frame), **options)
    result.metadata.update(loss_col=col, params_col=params_col)  # saved: the report shows the same columns
    return _with_health(result, sweep, col)


def _with_health(result: Any, sweep: Any, loss_col: str) -> Any:
    """The fit with the ladder's own checks (``laws.health``: lr probes, spikes, crossing curves, cells left
    out) joined to its verdict, from the sweep's tables (no second read of the store)."""
    from dataclasses import replace

    from scalebench.laws.health import health_of, join

    if result.diagnostics is None:
        return result
    trained = {k: (v.get("train") or {}).get("lr") for k, v in sweep.specs.items()}  # recipes vary it per size
    results = sweep.results.assign(train_lr=sweep.results["run_id"].map(trained))
    return replace(result, diagnostics=join(result.diagnostics, health_of(results, sweep.steps, loss_col=loss_col)))


def _warn_if_mixed(sweep: Any) -> None:
    from scalebench.laws.analysis import group_axis

    axis = group_axis(sweep.results, None, sweep.axes)
    if axis is not None:
        values = sorted(sweep.done[axis].dropna().unique(), key=str)
        warnings.warn(f"{sweep.path}: the runs mix {len(values)} values of {axis!r} ({', '.join(map(str, values))}); "
                      f"one law fitted to them pooled describes none of them: fit one per group (group_by="
                      f"{axis!r}, CLI --group-by {axis})", stacklevel=3)


def _warn_if_pooled(sweep: Any, by: str) -> None:
    """A grouping that pools runs of several grid combinations (``by = optimizer`` over momentum 0 and 0.9)
    fits one law to runs that differ in another setting: say so, and how to fit per combination."""
    done = sweep.done
    if by == "group" or "group" not in done or by not in done:
        return
    pooled = [f"{by}={value} holds {' and '.join(sorted(map(str, g['group'].unique())))}"
              for value, g in done.groupby(by, sort=True) if g["group"].nunique() > 1]
    if pooled:
        warnings.warn(f"{sweep.path}: grouping by {by!r} pools runs that differ in other grid axes ({'; '.join(pooled)}); "
                      "each such law describes none of them: fit one per combination (group_by='group', CLI "
                      "--group-by group)", stacklevel=3)


def fit_sweep_groups(
    sweep: Any,
    law: Any = "chinchilla",
    *,
    by: str,
    loss_col: str | None = None,
    params_col: str = "params",
    tokens_col: str = "tokens",
    flops_col: str = "flops",
    bootstrap: int = DEFAULT_BOOTSTRAP,
    seed: int = 0,
    confidence: float = 0.95,
    huber_delta: float = 1e-3,
    n_refine: int | None = 64,
    grid: Any = None,
    fix: Mapping[str, float] | None = None,
    tie: Mapping[str, str] | None = None,
    backtest_below: float | None = None,
    progress: Callable[[Any], None] | None = None,
    bootstrap_method: str = "warm",
) -> Any:
    """One law per value of column ``by`` (any axis: family, optimizer, lr, ...), each group fitted by the
    same path as :func:`fit_sweep` on its own runs and curves; a :class:`~scalebench.laws.GroupedFit`."""
    from scalebench.laws.fitting import check_backtest_below
    from scalebench.laws.groups import GroupedFit

    sweep = as_sweep(sweep)
    form = _form(law, fix, tie)
    options = _options(bootstrap, seed, confidence, huber_delta, n_refine, grid, None, bootstrap_method)
    if backtest_below is not None:
        backtest_below = check_backtest_below(backtest_below)
    if by not in sweep.results:
        raise FitError(f"{sweep.path}: no column {by!r} to group by; columns are {list(sweep.results.columns)}")
    columns = {"params_col": params_col, "tokens_col": tokens_col, "flops_col": flops_col}
    frame, col = _frame(sweep, form, loss_col, columns, extra_cols=(by,))
    if "run_id" not in frame:
        raise FitError(f"{sweep.path}: the results have no run_id column")
    if frame[by].isna().any():
        raise FitError(f"{sweep.path}: column {by!r} has {int(frame[by].isna().sum())} missing value(s)")
    _warn_if_pooled(sweep, by)
    floor = known_floor(sweep.meta, col)
    results, errors = {}, {}
    for value, g in frame.groupby(by, sort=True):
        if progress is not None:
            progress(value)
        runs = g.drop(columns=[by]).reset_index(drop=True)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("default")
                r = fit_runs(runs, form, curves=sweep_curves(sweep, runs["run_id"].tolist()), floor=floor,
                             backtest_below=backtest_below, source=f"{sweep.path} [{by}={value}]",
                             cell_col=_cell_col(runs), **options)
        except FitError as exc:
            errors[value] = str(exc)
            continue
        r.metadata.update(loss_col=col, params_col=params_col)
        results[value] = r
    if not results:
        raise FitError(f"no group of {by!r} could be fitted: " + "; ".join(f"{k}: {v}" for k, v in errors.items()))
    return GroupedFit(by=by, results=results, errors=errors)
