"""Costing compute targets and modelling a sweep's memory: the planning the report shows, as functions.

* :func:`cost_compute_targets` — for each compute budget, the compute-optimal (N, D) under a fitted law,
  run on the least power-of-two number of GPUs that holds the model and finishes within a deadline (at
  most ``MAX_PLAN_GPUS``), with the estimator's full row; plus the wall clock on fixed cluster sizes.
* :func:`modelled_memory_bytes` — the modelled allocated bytes per run of a sweep (weights, gradients,
  optimizer state and activations on one device; the estimator for GPT rows, the family's own
  ``memory_model`` for the others), to set beside what the runs measured.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["MAX_PLAN_GPUS", "cost_compute_targets", "modelled_memory_bytes"]

MAX_PLAN_GPUS = 16384  # GPU counts tried: powers of two up to this many


def cost_compute_targets(
    law: Any,
    flops: Any,
    *,
    gpu: str,
    mfu: Any = 0.40,
    max_days: float = 30.0,
    clusters: tuple[int, ...] = (),
) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """(estimates, cluster wall clocks, one note per target). ``law``: a `FitResult` with a compute-optimal
    frontier; ``mfu``: a number or a `Calibration`. A target that cannot finish within ``max_days`` on
    ``MAX_PLAN_GPUS`` GPUs takes the most that fit and its note says so."""
    from scalebench.planning.estimate import estimate

    c = np.atleast_1d(np.asarray(flops, dtype=float))
    opt = law.compute_optimal(c)
    n_opt, d_opt = opt["params"].to_numpy(float), opt["tokens"].to_numpy(float)
    counts = np.union1d(2 ** np.arange(int(math.log2(MAX_PLAN_GPUS)) + 1), np.asarray(clusters, dtype=int))
    k, m = len(c), len(counts)
    grid = estimate(params=np.repeat(n_opt, m), tokens=np.repeat(d_opt, m), num_gpus=np.tile(counts, k),
                    gpu=gpu, mfu=mfu, precision="bf16")
    grid = grid.assign(target=np.repeat(np.arange(k), m))
    limit_s = max_days * 86400.0
    chosen, notes = [], []
    for i in range(k):
        g = grid[(grid["target"] == i) & grid["fits"].astype(bool)]
        ok = g[g["wall_clock_s"] <= limit_s]
        if len(ok):
            chosen.append(int(ok["num_gpus"].min()))
            notes.append("")
        elif len(g):
            chosen.append(int(g["num_gpus"].max()))
            notes.append(f"needs more than {int(g['num_gpus'].max()):,} GPUs to finish within {max_days:g} days")
        else:
            chosen.append(None)  # fits on none: the estimator picks (and says why)
            notes.append("")
    num_gpus = np.array([np.nan if x is None else x for x in chosen], dtype=float)
    est = estimate(params=n_opt, tokens=d_opt, gpu=gpu, mfu=mfu, precision="bf16", law=law,
                   **({"num_gpus": num_gpus.astype(int)} if not np.isnan(num_gpus).any() else {}))
    table = grid[grid["num_gpus"].isin(clusters)][["target", "num_gpus", "fits", "wall_clock_s", "cost_usd"]].copy()
    table["flops"] = c[table["target"].to_numpy()]
    return est.reset_index(drop=True), table.reset_index(drop=True), notes


def modelled_memory_bytes(results: pd.DataFrame) -> pd.Series:
    """Modelled allocated bytes per run (weights + gradients + optimizer + activations, one device): GPT rows
    by the estimator, rows of any other family by the family's own ``memory_model`` (its shape rebuilt from
    the row's shape columns), NaN where the family has none, is not installed here, or the row's shape or
    micro-batch is not recorded. The vocabulary is the run's own (the estimator's default where a table lacks
    it); the card only bounds what fits, not the bytes."""
    out = pd.Series(np.nan, index=results.index, dtype=float)
    if results.empty:
        return out
    family = (results["family"] if "family" in results.columns else pd.Series("gpt", index=results.index))
    family = family.fillna("gpt").astype(str).str.lower()
    gpt = family == "gpt"
    if gpt.any():
        out.loc[gpt] = _estimator_memory(results[gpt])
    for name, rows in results[~gpt].groupby(family[~gpt], sort=False):
        out.loc[rows.index] = _family_memory(name, rows)
    return out


def _precision(rows: pd.DataFrame) -> pd.Series:
    prec = rows["precision"] if "precision" in rows.columns else pd.Series("bf16", index=rows.index)
    return prec.where(prec.isin(["fp32", "tf32", "bf16", "fp16", "fp8"]), "bf16")


def _estimator_memory(results: pd.DataFrame) -> pd.Series:
    """GPT rows: the estimator's weights + gradients + optimizer + activations (scalebench's trainer: fp32
    weights under autocast)."""
    from scalebench.planning.estimate import estimate

    need = ["n_layer", "d_model", "n_head", "seq_len", "micro_batch"]
    if "vocab_size" in results.columns:  # stored with every GPT shape; a table without it gets the estimator's
        need.append("vocab_size")
    if any(c not in results.columns for c in need):
        return pd.Series(np.nan, index=results.index)
    rows = results.dropna(subset=need)
    if rows.empty:
        return pd.Series(np.nan, index=results.index)
    est = estimate(pd.DataFrame({
        "family": "gpt", **{k: rows[k].astype(int).to_numpy() for k in need},
        "precision": _precision(rows).to_numpy(), "gpu": "H100-SXM", "num_gpus": 1, "zero": 0,
        "checkpointing": "none", "framework": "autocast", "tokens": rows["tokens"].to_numpy(float),
    }, index=rows.index))
    parts = ["memory_weights_bytes", "memory_gradients_bytes", "memory_optimizer_bytes", "memory_activations_bytes"]
    return est[parts].astype(float).sum(axis=1).reindex(results.index)


def _family_memory(name: str, rows: pd.DataFrame) -> pd.Series:
    """Rows of one non-GPT family: its ``memory_model(shape, micro_batch, precision)``, the shape rebuilt from
    the row's columns named like the fields of the family's ``debug`` shape (the store spreads a run's shape
    into columns)."""
    from scalebench.errors import ConfigError
    from scalebench.families import get_family

    out = pd.Series(np.nan, index=rows.index, dtype=float)
    try:
        fam = get_family(name)
    except ConfigError:  # not installed here
        return out
    if fam.memory_model is None or "micro_batch" not in rows.columns:
        return out
    reference = fam.shape_from_flavour("debug").as_dict()
    fields = [k for k in reference if k in rows.columns]
    for i, row in rows.iterrows():
        micro = row["micro_batch"]
        if pd.isna(micro):
            continue
        kw = {k: _like(reference[k], row[k]) for k in fields if not _missing(row[k])}
        try:
            shape = fam.make_shape(**kw)
        except (ConfigError, TypeError, ValueError):  # a shape this table does not fully record
            continue
        out.loc[i] = float(fam.memory_model(shape, int(micro), str(_precision(rows.loc[[i]]).iloc[0])))
    return out


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _like(reference: Any, value: Any) -> Any:
    """A table's value (numpy scalar, or a float where the column also holds NaN) as the shape's type."""
    value = value.item() if hasattr(value, "item") else value
    if isinstance(reference, bool):
        return bool(value)
    if isinstance(reference, float):
        return float(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value
