"""One law per group of runs (``--group-by COL``): e.g. per model ``family``, ``optimizer`` or any grid axis.

Each group is fitted on its own (its own bootstrap and diagnostics); ``comparison`` puts the groups' frontier
exponents and law exponents side by side with their intervals, and says where two groups' intervals do not
overlap (a difference the data support) and where they do (no difference shown).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from scalebench.errors import FitError
from scalebench.laws.result import FitResult, json_float


@dataclass(frozen=True, kw_only=True, eq=False)
class GroupedFit:
    """``results`` maps each value of column ``by`` to its `FitResult`; ``errors`` maps groups that could not
    be fitted to the reason."""

    by: str
    results: dict[Any, FitResult]
    errors: dict[Any, str] = field(default_factory=dict)

    def comparison(self) -> pd.DataFrame:
        """One row per group and quantity (the law's exponents and a, b): value, low, high, verdict."""
        rows = []
        for group, r in self.results.items():
            names = [n for n in r.params if not r.form.is_log_scaled(n)]
            values = {**{n: r.params[n] for n in names}, **({"a": r.a, "b": r.b} if r.a is not None else {})}
            for name, value in values.items():
                lo, hi = r.intervals.get(name, (math.nan, math.nan))
                rows.append({"group": group, "quantity": name, "value": value, "low": lo, "high": hi,
                             "n_points": r.n_points, "verdict": r.verdict})
        return pd.DataFrame(rows, columns=["group", "quantity", "value", "low", "high", "n_points", "verdict"])

    def differences(self) -> list[str]:
        """Sentences on the frontier exponent a across groups. A difference is claimed only between two
        fits that determine a (verdict not ``undetermined``, with an interval), one sentence per such pair:
        disjoint intervals are a difference the data support, overlapping ones are none shown. A group that
        does not determine a is named with what it lacks, and no claim involves it."""
        table = self.comparison()
        a = table[table["quantity"] == "a"]
        determined, out = [], []
        for row in a.itertuples(index=False):
            r = self.results[row.group]
            if r.verdict == "undetermined":
                why = "; ".join(r.diagnostics.reasons[:2]) if r.diagnostics is not None else ""
                out.append(f"no claim about a for {self.by} = {row.group}: its fit is undetermined"
                           + (f" ({why})" if why else "") + "; add the runs its verdict asks for")
            elif not (math.isfinite(row.low) and math.isfinite(row.high)):
                out.append(f"no claim about a for {self.by} = {row.group}: no interval (fit with a bootstrap, "
                           "e.g. --bootstrap 200)")
            else:
                determined.append(row)
        claims = []
        for x, y in _pairs(determined):
            both = (f"{x.group} ({x.value:.3f} [{x.low:.3f}, {x.high:.3f}]) and {y.group} ({y.value:.3f} "
                    f"[{y.low:.3f}, {y.high:.3f}])")
            claims.append(f"a differs between {both}: the intervals do not overlap" if _apart(x, y) else
                          f"no difference in a shown between {both}: the intervals overlap")
        return claims + out

    def summary(self) -> dict[str, Any]:
        comp = self.comparison()
        return {
            "group_by": self.by,
            "groups": {str(g): r.summary() for g, r in self.results.items()},
            "errors": {str(g): e for g, e in self.errors.items()},
            "comparison": [{k: (json_float(v) if isinstance(v, float) else (str(v) if k == "group" else v))
                            for k, v in row.items()} for row in comp.to_dict("records")],
            "differences": self.differences(),
        }

    def report(self) -> str:
        lines = [f"one fit per value of {self.by!r}: {len(self.results)} fitted"
                 + (f", {len(self.errors)} not" if self.errors else "")]
        for g, r in self.results.items():
            lines += ["", f"=== {self.by} = {g} ===", r.report()]
        for g, e in self.errors.items():
            lines += ["", f"=== {self.by} = {g}: not fitted ({e})"]
        comp = self.comparison()
        if len(comp):
            lines += ["", "comparison:"]
            for row in comp.itertuples(index=False):
                ci = f"[{row.low:.4g}, {row.high:.4g}]" if math.isfinite(row.low) else ""
                lines.append(f"  {str(row.group):>14} {row.quantity:>8} = {row.value:.4g} {ci}  ({row.verdict})")
        lines += [f"  {d}" for d in self.differences()]
        return "\n".join(lines)


def _pairs(rows: list) -> list[tuple]:
    return [(x, y) for i, x in enumerate(rows) for y in rows[i + 1:]]


def _apart(x: Any, y: Any) -> bool:
    return x.high < y.low or y.high < x.low


def fit_groups(
    source: object,
    law: Any = "chinchilla",
    *,
    by: str,
    progress: Callable[[Any], None] | None = None,
    **options: Any,
) -> GroupedFit:
    """Fit ``law`` separately to the runs of each value of column ``by``; ``options`` as for
    :func:`scalebench.laws.fit` (column mapping, bootstrap, fix/tie, ...). A group that cannot be fitted
    (too few runs) is recorded in ``errors``; if none can, FitError."""
    from scalebench.laws.constraints import constrain
    from scalebench.laws.fitting import _check_options, fit_frame
    from scalebench.laws.io import describe_source, load_data

    form = constrain(law, options.pop("fix", None), options.pop("tie", None))
    columns = {k: options.pop(k) for k in ("loss_col", "params_col", "tokens_col", "flops_col") if k in options}
    _check_options(options.get("huber_delta", 1e-3), options.get("confidence", 0.95), options.get("bootstrap", 0),
                   options.get("n_refine", 64), options.get("seed", 0))
    frame = load_data(source, form.variables, extra_cols=(by,), **columns)
    if frame[by].isna().any():
        raise FitError(f"{describe_source(source)}: column {by!r} has {int(frame[by].isna().sum())} missing value(s)")
    results, errors = {}, {}
    for value, g in frame.groupby(by, sort=True):
        if progress is not None:
            progress(value)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("default")
                results[value] = fit_frame(g.drop(columns=[by]).reset_index(drop=True), form,
                                           source=f"{describe_source(source)} [{by}={value}]", **options)
        except FitError as exc:
            errors[value] = str(exc)
    if not results:
        raise FitError(f"no group of {by!r} could be fitted: " + "; ".join(f"{k}: {v}" for k, v in errors.items()))
    return GroupedFit(by=by, results=results, errors=errors)
