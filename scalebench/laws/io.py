"""Inputs for fitting: a DataFrame, a CSV (or Parquet) file, or a sweep directory.

The result is a DataFrame with the canonical columns ``params``, ``tokens``, ``flops`` and ``loss`` (plus
``run_id`` when the source has one), validated for what the chosen law needs.

Conventions:

* If ``tokens`` is absent but ``flops`` is present, tokens = flops / (6·params); if ``flops`` is absent it
  is 6·params·tokens (the C = 6·N·D approximation of Kaplan et al. 2020 §2.1).
* A sweep directory is one containing ``scalebench.sqlite``; only ``done`` runs are used (others are
  excluded with a warning) and the default loss column is ``eval_loss``. For files and DataFrames it is
  ``loss``.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from scalebench.errors import FitError

SWEEP_STORE_FILE = "scalebench.sqlite"


def describe_source(source: object) -> str:
    if isinstance(source, pd.DataFrame):
        return "DataFrame"
    return str(source)


def is_sweep_dir(source: object) -> bool:
    """Whether ``source`` is a sweep folder (a path, or a ``scalebench.Sweep``, holding the store)."""
    if not isinstance(source, (str, os.PathLike)) or not str(source):
        return False
    return (Path(source) / SWEEP_STORE_FILE).is_file()


def sweep_loss_col(frame: pd.DataFrame) -> str:
    """A sweep's default loss: ``eval_loss`` (nats per token), or ``eval_bpb`` (bits per byte, which compares
    across tokenizers) where its runs mix families and every run recorded it."""
    mixed = "family" in frame and frame["family"].nunique() > 1
    has_bpb = "eval_bpb" in frame and len(frame) and frame["eval_bpb"].notna().all()
    return "eval_bpb" if mixed and has_bpb else "eval_loss"


def done_runs(results: pd.DataFrame, where: object, stacklevel: int = 3) -> pd.DataFrame:
    """The ``done`` runs of a sweep's results, with a warning that counts the others (not fitted). Probe runs
    (``[ladder]`` learning-rate probes, checked by ``laws/health.py``) are not ladder cells and are left out."""
    if "probe" in results:
        results = results[results["probe"].isna()]
    status = results["status"] if "status" in results else pd.Series("done", index=results.index)
    excluded = status[status != "done"].value_counts()
    if len(excluded):
        order = {s: i for i, s in enumerate(("failed", "diverged", "pending", "running"))}
        detail = ", ".join(
            f"{excluded[s]} {s}" for s in sorted(excluded.index, key=lambda s: (order.get(s, 9), s))
        )
        warnings.warn(f"{where}: excluded {detail} run(s); only done runs are fitted", stacklevel=stacklevel)
    return results[status == "done"].copy()


def _read(source: object, loss_col: str | None) -> tuple[pd.DataFrame, str]:
    if isinstance(source, pd.DataFrame):
        return source.copy(), loss_col or "loss"
    if not isinstance(source, (str, os.PathLike)) or not str(source):
        raise FitError(
            f"source must be a DataFrame, a CSV/Parquet path or a sweep directory, not {source!r}"
        )
    path = Path(source)
    if path.is_dir():
        if not (path / SWEEP_STORE_FILE).exists():
            raise FitError(
                f"{path} is a directory without {SWEEP_STORE_FILE}; pass a sweep directory or a CSV file"
            )
        try:
            from scalebench import store  # lazy: the store pulls in sqlite and the run schema
        except ImportError as exc:
            raise FitError(f"{path}: reading a sweep directory needs scalebench.store ({exc})") from exc

        frame = done_runs(store.load_results(path), path, stacklevel=5)
        return frame, loss_col or sweep_loss_col(frame)
    if not path.exists():
        raise FitError(f"{path}: no such file or directory")
    if path.suffix.lower() == ".parquet":
        return pd.read_parquet(path), loss_col or "loss"
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise FitError(f"{path}: cannot read as CSV ({exc})") from exc
    import csv

    with open(path, newline="", encoding="utf-8", errors="replace") as f:  # pandas renames a repeat 'loss.1'
        header = next(csv.reader(f), [])
    twice = sorted({h for h in header if header.count(h) > 1})
    if twice:
        raise FitError(f"{path}: column {twice[0]!r} appears {header.count(twice[0])} times, so which one to fit is "
                       "unclear; rename or remove the others")
    return frame, loss_col or "loss"


def load_data(
    source: object,
    variables: Sequence[str] = ("params", "tokens"),
    *,
    loss_col: str | None = None,
    params_col: str = "params",
    tokens_col: str = "tokens",
    flops_col: str = "flops",
    extra_cols: Sequence[str] = (),
    where: str | None = None,
) -> pd.DataFrame:
    """Canonical, validated frame (``params``, ``tokens``, ``flops``, ``loss``[, ``run_id``]) from ``source``.

    ``extra_cols`` are carried through unchanged (same rows, same order as the canonical columns), for
    callers that group by a column of the source, such as a budget label. ``where`` names the source in
    messages (default: the path, or "DataFrame")."""
    raw, loss_name = _read(source, loss_col)
    where = where or describe_source(source)
    absent = [c for c in extra_cols if c not in raw.columns]
    if absent:
        raise FitError(f"{where}: no column(s) {absent}; columns are {list(raw.columns)}")
    if loss_name not in raw.columns:
        hint = " (sweeps default to eval_loss; try loss_col='train_loss')" if loss_col is None else ""
        raise FitError(f"{where}: no loss column {loss_name!r}{hint}; columns are {list(raw.columns)}")
    for col in {params_col, tokens_col, flops_col, loss_name, *variables} & set(raw.columns):
        if pd.api.types.is_bool_dtype(raw[col]):
            raise FitError(f"{where}: column {col!r} holds True/False, not numbers; fit a numeric column")
    out = pd.DataFrame(index=raw.index)
    for canon, col in (("params", params_col), ("tokens", tokens_col), ("flops", flops_col)):
        if col in raw.columns:
            out[canon] = pd.to_numeric(raw[col], errors="coerce").astype(float)
    out["loss"] = pd.to_numeric(raw[loss_name], errors="coerce").astype(float)
    if "run_id" in raw.columns:
        out["run_id"] = raw["run_id"].to_numpy()
    for var in variables:  # a law's own variables (e.g. unique_tokens) come by their own names
        if var not in out and var in raw.columns:
            out[var] = pd.to_numeric(raw[var], errors="coerce").astype(float)
    for col in extra_cols:
        if col not in out:
            out[col] = raw[col].to_numpy()
    if "tokens" not in out and "flops" in out and "params" in out:
        out["tokens"] = out["flops"] / (6.0 * out["params"])
    if "flops" not in out and "params" in out and "tokens" in out:
        out["flops"] = 6.0 * out["params"] * out["tokens"]
    needed = [*variables, "loss"]
    missing = [c for c in needed if c not in out]
    if missing:
        mapped = {"params": params_col, "tokens": tokens_col, "flops": flops_col, "loss": loss_name}
        names = [f"{c!r}" + (f" (from column {mapped[c]!r})" if mapped.get(c, c) != c else "") for c in missing]
        hint = ("; map other names with params_col/tokens_col/flops_col (CLI: --params-col, --tokens-col, "
                "--flops-col)") if set(missing) & {"params", "tokens", "flops"} else ""
        raise FitError(
            f"{where}: missing column(s) {', '.join(names)} needed by the law; columns are "
            f"{list(raw.columns)}{hint}"
        )
    validate(out, needed, where)
    out = out.reset_index(drop=True)
    out.attrs["loss_col"] = loss_name  # which loss the frame holds, for the fit's record (fit.json)
    return out


# Above these a value is not a measurement: a loss in nats per token starts near ln(vocabulary) (< 15 for
# any real vocabulary), so 1e4 is a diverged run or a perplexity left in; 1e35 params, tokens or FLOPs
# (far beyond any run) would overflow the laws' powers.
MAX_LOSS = 1e4
MAX_COUNT = 1e35


def validate(frame: pd.DataFrame, columns: Sequence[str], where: str = "data") -> None:
    """Raise FitError naming the column and how many rows are NaN, infinite, not positive or absurdly large."""
    for col in columns:
        values = frame[col].to_numpy(dtype=float)
        bad_nan = int(np.sum(~np.isfinite(values)))
        if bad_nan:
            raise FitError(
                f"{where}: column {col!r} has {bad_nan} NaN or infinite value(s); drop or fix those rows"
            )
        limit = MAX_LOSS if col == "loss" else MAX_COUNT
        huge = values > limit
        if huge.any():
            what = ("losses are nats per token; is it a diverged run, or a perplexity?" if col == "loss"
                    else "no training run is that large")
            raise FitError(f"{where}: column {col!r} has {int(huge.sum())} value(s) above {limit:g} (the largest is "
                           f"{float(values.max()):.3g}): {what} Drop or fix those rows")
        bad_pos = int(np.sum(values <= 0))
        if bad_pos:
            raise FitError(
                f"{where}: column {col!r} has {bad_pos} non-positive value(s); every value must be > 0"
            )


def data_fingerprint(frame: pd.DataFrame, variables: Sequence[str]) -> str:
    """A short hash of the fitted points (sorted), so a saved fit can tell whether its data changed."""
    import hashlib

    cols = [c for c in (*variables, "loss") if c in frame]
    values = np.round(frame[cols].to_numpy(dtype=float), 12)
    order = np.lexsort(values.T[::-1]) if len(values) else np.arange(0)
    return hashlib.sha256(np.ascontiguousarray(values[order]).tobytes()).hexdigest()[:16]


def drop_duplicate_runs(frame: pd.DataFrame, variables: Sequence[str], where: str = "data") -> pd.DataFrame:
    """``frame`` without exact duplicate runs (same law variables and loss), with a warning that counts them.
    A run listed twice would count twice in the fit and in every bootstrap resample, narrowing the intervals
    as if it had been measured twice; the first copy is kept."""
    cols = [c for c in (*variables, "loss") if c in frame]
    dup = frame.duplicated(subset=cols, keep="first")
    if not dup.any():
        return frame
    n = int(dup.sum())
    warnings.warn(
        f"{where}: {n} duplicate row(s) (same {', '.join(cols)} as an earlier row) dropped; each run is fitted "
        "and resampled once",
        stacklevel=3,
    )
    return frame[~dup].reset_index(drop=True)
