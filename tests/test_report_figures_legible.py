"""The report's figures read without squinting: few tick labels in words on log axes, legends in words,
impossible MFU values flagged, CPU-only gaps said plainly. (Screenshots were looked at by hand too.)"""

from __future__ import annotations

import re

import pytest

from scalebench.report import ReportOptions, build_report_data
from scalebench.report.figures import render_figures
from scalebench.report.synthetic import make_synthetic_sweep
from scalebench.store import ResultStore


@pytest.mark.parametrize("lo, hi, want", [
    (3.49, 4.84, [3.5, 4.0, 4.5]),  # narrow: even steps, not one lonely label
    (2.0, 5.5, [2, 3, 4, 5]),
    (2.4e4, 3.0e5, [3e4, 5e4, 1e5, 2e5, 3e5]),
    (1e9, 1e20, [1e9, 1e11, 1e13, 1e15, 1e17, 1e19]),  # many decades: every other power of ten
])
def test_log_ticks_are_few_and_round(lo, hi, want):
    from scalebench.report.figures import log_ticks

    ticks = log_ticks(lo, hi)
    assert ticks == pytest.approx(want)
    assert 2 <= len(ticks) <= 7


def test_numbers_and_budgets_in_words():
    from scalebench.report.figures import budget_words, human

    assert [human(v) for v in (750e3, 1.2e6, 3e9, 33_100, 512)] == ["750k", "1.2M", "3B", "33.1k", "512"]
    assert human(3e15, "sci") == "3e15" and human(1.5e20, "sci") == "1.5e20" and human(2.5, "plain") == "2.5"
    assert budget_words("t7.5e5") == "750k tokens"
    assert budget_words("tpp20") == "20 tokens/param"
    assert budget_words("C1e15") == "C = 1e15 FLOPs" and budget_words("c1e+17") == "C = 1e17 FLOPs"
    assert budget_words("my-budget") == "my-budget"


def _texts(svg: str) -> list[str]:
    return [re.sub(r"<[^>]+>", "", t).strip() for t in re.findall(r"<text[^>]*>(.*?)</text>", svg, flags=re.S)]


@pytest.fixture(scope="module")
def figures(tmp_path_factory):
    folder = make_synthetic_sweep(tmp_path_factory.mktemp("legible") / "s", n_sizes=5, n_budgets=3)
    with ResultStore(folder) as store:  # one run faster than the peak: impossible, so flagged
        row = store.runs()[0]
        store.set_status(row["run_id"], "done", record={**row["record"], "mfu": 1.3})
    data = build_report_data(folder, ReportOptions(bootstrap=0))
    return render_figures(data), row["run_id"]


def test_figure_legends_and_ticks_are_words_not_codes(figures):
    figs, _ = figures
    texts = _texts(figs["loss_params_tokens"].svg)
    assert "C = 1e17 FLOPs" in texts and not any(re.fullmatch(r"[cC]\d.*", t) for t in texts)
    for key in ("loss_compute", "loss_params_tokens", "curves", "throughput"):
        labels = _texts(figs[key].svg)
        assert not any("10^" in t or "×10" in t for t in labels), key  # no 4×10⁰-style minor labels
        numeric = [t for t in labels if re.fullmatch(r"[0-9.]+(k|M|B|T|e\d+)?", t)]
        assert 4 <= len(numeric) <= 40, (key, numeric)  # a handful per axis, not dozens


def test_mfu_above_one_is_flagged_not_plotted_as_fact(figures):
    figs, run_id = figures
    f = figs["throughput"]
    assert "above 100%: the peak is understated" in f.svg
    assert "MFU above 100%" in f.note and run_id in f.note and "datasheet peak" in f.note


def test_cpu_sweep_says_plainly_what_it_cannot_show(tmp_path):
    folder = make_synthetic_sweep(tmp_path / "cpu", n_sizes=3, n_budgets=2, instrumented=False,
                                  measured_peak=True)
    with ResultStore(folder) as store:  # as a CPU sweep records it
        for row in store.runs():
            store.set_status(row["run_id"], row["status"], record={**(row["record"] or {}), "device": "cpu"})
        store.query("SELECT 1")
    data = build_report_data(folder, ReportOptions(bootstrap=0))
    figs = render_figures(data)
    if data.spend.device_kind != "CPU":
        pytest.skip("the synthetic sweep did not read as a CPU sweep")
    assert figs["energy"].missing.startswith("on a CPU: power and energy come from NVML")
    assert "on a CPU: GPU utilisation" in figs["telemetry"].missing
    assert "profiling.profiler = 'on'" in figs["kernels"].missing
