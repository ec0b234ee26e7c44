"""The HTML report of a sweep: one self-contained page (inline CSS and SVG figures, no scripts, no network).

>>> from scalebench.report import write_report
>>> write_report("reports/quickstart")                      # doctest: +SKIP
PosixPath('reports/quickstart/index.html')

:func:`build_report_data` computes everything the page shows (fits, isoFLOP analyses, backtest,
bottlenecks, plan) as a :class:`ReportData`; :func:`render_html` turns it into the page.
"""

from __future__ import annotations

from pathlib import Path

from scalebench.report.data import ReportData, ReportOptions, Spend, build_report_data
from scalebench.report.page import render_html

__all__ = ["ReportData", "ReportOptions", "Spend", "build_report_data", "render_html", "write_report"]

REPORT_NAME = "index.html"


def write_report(sweep_dir: str | Path, out: str | Path | None = None, *,
                 options: ReportOptions | None = None) -> Path:
    """Write the sweep's report to ``out`` (default ``SWEEP_DIR/index.html``) and return its path."""
    data = build_report_data(sweep_dir, options)
    path = Path(out) if out is not None else Path(sweep_dir) / REPORT_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(render_html(data), encoding="utf-8")
    tmp.replace(path)  # readers never see half a page
    return path
