"""The faster renderer changes no number on the page: the reference path (seaborn style, a second "tight"
drawing pass, minor ticks, one process) and the fast one (two forked workers) give the same page text and
the same words and numbers in every figure."""

from __future__ import annotations

import re

import pytest

from scalebench.report import ReportOptions, build_report_data, render_html
from scalebench.report.figures import REFERENCE, RenderMode
from scalebench.report.synthetic import make_synthetic_sweep


def _page_text(html: str) -> str:
    return re.sub(r"<svg.*?</svg>", "<svg/>", html, flags=re.S)


def _figure_texts(html: str) -> list[list[str]]:
    return [sorted(re.sub(r"<[^>]+>", "", t).strip() for t in re.findall(r"<text[^>]*>(.*?)</text>", svg, flags=re.S))
            for svg in re.findall(r"<svg.*?</svg>", html, flags=re.S)]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = make_synthetic_sweep(tmp_path_factory.mktemp("speed") / "s", n_sizes=4, n_budgets=3, n_failed=1)
    return build_report_data(folder, ReportOptions(bootstrap=8))


def test_fast_renderer_gives_the_reference_pages_numbers(data):
    ref = render_html(data, generated_at="t", mode=REFERENCE)
    fast = render_html(data, generated_at="t", mode=RenderMode(workers=2))
    assert _page_text(fast) == _page_text(ref)
    ref_texts, fast_texts = _figure_texts(ref), _figure_texts(fast)
    assert len(fast_texts) == len(ref_texts) >= 6
    assert fast_texts == ref_texts
    assert "seaborn" not in _page_text(fast)


def test_render_mode_is_validated():
    with pytest.raises(ValueError, match="workers"):
        RenderMode(workers=0)


def test_page_from_a_saved_fit_imports_no_scipy_or_seaborn(tmp_path):
    """Rendering a current fit.json computes nothing heavy: no scipy (the fitter) and no seaborn (scipy.stats)."""
    import json
    import subprocess
    import sys

    from scalebench.cli import main

    folder = make_synthetic_sweep(tmp_path / "s", n_sizes=4, n_budgets=3)
    assert main(["fit", str(folder), "--bootstrap", "20"]) == 0  # fit.json with the analysis (bootstrap intervals)
    code = ("import json, sys\nfrom scalebench.report import write_report\n"
            f"write_report({str(folder)!r})\n"
            "print(json.dumps([m for m in ('scipy', 'seaborn', 'torch') if m in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
    assert (folder / "index.html").is_file()
