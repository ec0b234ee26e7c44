"""``scalebench.Sweep(dir)``: a sweep folder read through one object.

>>> from scalebench import Sweep
>>> sweep = Sweep("reports/quickstart")                     # doctest: +SKIP
>>> result = sweep.fit()                                    # the fit `scalebench fit DIR` prints; saved as fit.json
>>> sweep.report()                                          # the page, rendered from fit.json
PosixPath('reports/quickstart/index.html')

The store is opened once, on first use, and its tables (``results``, ``steps``, ``telemetry``, ``events``,
``meta``) are kept; ``spec`` and the grid ``axes`` come from them. The methods carry the CLI's verbs:
``fit``, ``next``, ``report``, ``status``, ``export``; each is what the command of that name runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from scalebench.store import SweepTables

__all__ = ["Sweep"]


class Sweep(SweepTables):
    """One sweep folder (it holds ``scalebench.sqlite``). Tables load on first use and are cached: a
    sweep still running is re-read with :meth:`reload`."""

    def __repr__(self) -> str:
        return f"Sweep({str(self.path)!r})"

    # --- the verbs -----------------------------------------------------------------------------------
    def fit(self, law: Any = "chinchilla", *, group_by: str | None = None, save: bool = True,
            **options: Any) -> Any:
        """Fit ``law`` to the done runs, the one way every surface does (``laws.sweepfit``); with ``group_by``
        one law per value of that column (a `GroupedFit`). ``options`` as for :func:`scalebench.laws.fit`
        (``bootstrap`` defaults to 200, as the CLI). An ungrouped fit is saved as ``DIR/fit.json`` (with its
        residuals and backtest) unless ``save=False``; the report renders it."""
        from scalebench.laws.sweepfit import fit_sweep, fit_sweep_groups

        if group_by is not None:
            return fit_sweep_groups(self, law, by=group_by, **options)
        result = fit_sweep(self, law, **options)
        if save:
            self.save_fit(result)
        return result

    def save_fit(self, result: Any) -> Path:
        """Write ``result`` to ``DIR/fit.json``; ConfigError naming the file when the folder is read-only."""
        from scalebench.laws.result import save_fit

        return save_fit(result, self.path)

    def saved_fit(self) -> Any:
        """The fit in ``DIR/fit.json`` (None when there is none)."""
        from scalebench.laws.result import FIT_FILE, load_fit

        return load_fit(self.path / FIT_FILE) if (self.path / FIT_FILE).is_file() else None

    def next(self, *, target_flops: float, save: bool = True, **options: Any) -> Any:
        """The advisor's proposal (``scalebench next``): the runs that most narrow the compute-optimal target
        at ``target_flops``; ``options`` as for :func:`scalebench.advise` (a budget is required). Saved as
        ``DIR/next.json`` unless ``save=False``; the report shows the saved proposal."""
        from scalebench.advisor.advise import advise

        advice = advise(self.path, target_flops=target_flops, **options)
        if save:
            self.save_next(advice)
        return advice

    def save_next(self, advice: Any) -> Path:
        """Write a proposal to ``DIR/next.json`` (the report's "Next runs" section shows it)."""
        from scalebench.laws.analysis import save_next

        return save_next(advice, self.path)

    def report(self, out: str | Path | None = None, *, options: Any = None) -> Path:
        """Write the sweep's HTML page (``scalebench report``) to ``out`` (default ``DIR/index.html``)."""
        from scalebench.report.write import write_report

        return write_report(self, out, options=options)

    def status(self) -> Any:
        """One row per run with its status and key metrics (``scalebench status``)."""
        return self.results.copy()

    def export(self, out: str | Path, *, steps: bool = False) -> Path:
        """Write the runs (or, with ``steps``, the per-step curves) to ``out`` (.csv or .parquet)."""
        import io

        from scalebench._util import write_bytes_atomic
        from scalebench.errors import ConfigError

        out = Path(out)
        if out.suffix not in (".csv", ".parquet"):
            raise ConfigError(f"--out: {out.name!r} must end in .csv or .parquet")
        df = self.steps if steps else self.results
        buf = io.BytesIO()
        if out.suffix == ".csv":
            df.to_csv(buf, index=False)
        else:
            try:
                df.to_parquet(buf, index=False)
            except ImportError:
                raise ConfigError("--out: Parquet needs pyarrow (pip install 'scalebench[parquet]'); "
                                  "or use .csv") from None
        write_bytes_atomic(out, buf.getvalue(), what="export --out", make_parents=True)
        return out
