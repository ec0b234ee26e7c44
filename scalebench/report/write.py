"""Write the page of a sweep to disk: computed first, then written whole (never half a page)."""

from __future__ import annotations

from pathlib import Path

from scalebench._util import write_text_atomic

REPORT_NAME = "index.html"


def write_report(sweep_dir: str | Path, out: str | Path | None = None, *, options=None) -> Path:
    """Compute the report of ``sweep_dir`` and write it to ``out`` (default ``DIR/index.html``)."""
    from scalebench.report.data import build_report_data
    from scalebench.report.page import render_html

    path = Path(out) if out is not None else Path(sweep_dir) / REPORT_NAME
    data = build_report_data(sweep_dir, options)
    write_text_atomic(path, render_html(data), what="report --out", make_parents=True)
    return path
