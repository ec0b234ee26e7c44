"""The HTML report of a sweep: one self-contained page (inline CSS and SVG figures, no scripts, no network).

>>> from scalebench.report import write_report
>>> write_report("reports/quickstart")                      # doctest: +SKIP
PosixPath('reports/quickstart/index.html')

:func:`build_report_data` gathers everything the page shows as a :class:`ReportData`: the laws' analysis as
``fit.json`` holds it (``laws.analysis``; fitted by ``scalebench fit``'s path only when missing or stale),
bottlenecks and the plan; :func:`render_html` turns it into the page, computing nothing.
"""

from __future__ import annotations

from scalebench._util import lazy_attributes

REPORT_NAME = "index.html"

# public name -> module that defines it (loaded on first use, so `report --help` imports no matplotlib)
_LAZY = {
    "ReportData": "scalebench.report.data",
    "ReportOptions": "scalebench.report.data",
    "Spend": "scalebench.report.data",
    "build_report_data": "scalebench.report.data",
    "render_html": "scalebench.report.page",
    "write_report": "scalebench.report.write",
}

__all__ = ["ReportData", "ReportOptions", "Spend", "build_report_data", "render_html", "write_report"]

__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, globals(), functions_win=True)
