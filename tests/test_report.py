"""The HTML report: content at DOM level (stdlib HTMLParser), escaping, missing sections, CLI."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from scalebench.cli import main
from scalebench.errors import ConfigError
from scalebench.report import ReportOptions, build_report_data, render_html, write_report
from scalebench.report.data import FAR_EXTRAPOLATION, ReportData, _plan_targets
from scalebench.report.narrative import bottleneck_summary
from scalebench.report.synthetic import TRUE_LAW, make_synthetic_sweep

FAST = ReportOptions(bootstrap=20)
XSS = "<script>alert(1)</script>"


def _flat(intervals) -> dict:
    """{name: (lo, hi)} as {name.lo: lo, name.hi: hi}: pytest.approx (9.2+) compares flat mappings only."""
    return {f"{k}.{end}": v for k, pair in intervals.items() for end, v in zip(("lo", "hi"), pair, strict=True)}


class Dom(HTMLParser):
    """Tags with attributes, ids, and the text inside elements with an id."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.text_by_id: dict[str, str] = {}
        self._open: list[str | None] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append((tag, a))
        if tag not in ("br", "meta", "link", "img", "input", "hr", "path", "use", "stop"):
            self._open.append(a.get("id"))
            if a.get("id"):
                self.text_by_id.setdefault(a["id"], "")

    def handle_endtag(self, tag):
        if self._open:
            self._open.pop()

    def handle_data(self, data):
        for i in self._open:
            if i:
                self.text_by_id[i] += data

    def find(self, tag: str, **attrs) -> list[dict]:
        return [a for t, a in self.tags if t == tag and all(a.get(k) == v for k, v in attrs.items())]

    def by_class(self, cls: str) -> list[dict]:
        return [a for _, a in self.tags if cls in (a.get("class") or "").split()]


@pytest.fixture(scope="module")
def full(tmp_path_factory) -> tuple[ReportData, str, Dom]:
    folder = make_synthetic_sweep(tmp_path_factory.mktemp("full") / "sweep", name=XSS,
                                  notes="notes & <i>markup</i>", n_sizes=5, n_budgets=3, n_failed=1, n_diverged=1)
    data = build_report_data(folder, FAST)
    html = render_html(data)
    return data, html, Dom(html)


def test_data_recovers_the_law_and_computes_every_part(full):
    data, _, _ = full
    assert data.missing == {}
    assert data.fit.n_points == 13  # 15 runs, 1 failed and 1 diverged left out
    assert data.fit.params["alpha"] == pytest.approx(TRUE_LAW["alpha"], abs=0.05)
    assert data.fit.params["beta"] == pytest.approx(TRUE_LAW["beta"], abs=0.05)
    assert data.n_bootstrap == 20 and "a" in data.fit.intervals
    assert list(data.predictions["factor"]) == [10.0, 100.0]
    assert data.predictions["flops"].iloc[0] == pytest.approx(10 * data.max_flops)
    assert (data.predictions["loss_low"] <= data.predictions["loss"]).all()
    assert data.backtest is not None and data.backtest.mape < 0.05
    # the last budget lost its two largest runs (failed, diverged): its optimum is at the edge, so dropped
    assert data.isoflop_source == "runs" and len(data.isoflop_minima) == 2
    assert [round(c) for c, _ in data.isoflop.dropped] == [round(10**18)]
    assert any("dropped" in n for n in data.notes_fit)
    assert data.calibration is not None and data.plan_gpu == "H100-SXM"
    assert set(data.kernel_time["category"]) >= {"matmul", "attention", "idle"}
    assert data.spend.by_status == {"done": 13, "failed": 1, "diverged": 1}
    assert data.spend.energy_kwh > 0 and data.spend.device_kind == "GPU"


def test_page_is_self_contained_and_escaped(full):
    _, html, dom = full
    assert "<script" not in html.lower().replace("&lt;script", "")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert dom.text_by_id["sweep-name"] == XSS
    assert dom.text_by_id["sweep-notes"] == "notes & <i>markup</i>"
    for tag, attrs in dom.tags:
        for key in ("src", "href", "xlink:href", "action"):
            value = attrs.get(key)
            assert value is None or value.startswith(("#", "data:")), (tag, key, value)
    assert not re.search(r"url\((?!#)", html)  # no CSS fetches
    assert not dom.find("link") and not dom.find("script") and not dom.find("iframe")


def test_page_has_every_section_figure_and_table(full):
    data, _, dom = full
    for section in ("headline", "scaling", "performance", "bottlenecks", "plan", "reproducibility"):
        assert dom.find("section", id=section)
    figures = [a["id"] for a in dom.find("figure")]
    assert figures == [f"fig-{k}" for k in ("loss_compute", "isoflop", "loss_params_tokens", "optimal",
                                            "residuals", "curves", "throughput", "memory", "energy",
                                            "telemetry", "kernels")]
    assert len(dom.by_class("fig")) == 11  # every figure is an inline SVG
    # the one missing box: no proposal was saved by `scalebench next` (the page never runs the advisor)
    assert len(dom.by_class("missing")) == 1 and "no proposal saved" in dom.text_by_id["plan"]
    assert "alpha" in dom.text_by_id["law-params"] and "[" in dom.text_by_id["law-params"]
    assert "10× largest run" in dom.text_by_id["predictions"]
    assert "100× largest run" in dom.text_by_id["predictions"]
    assert "15" in dom.text_by_id["spend"] and "kWh" in dom.text_by_id["spend"]
    assert "smallest models are host-overhead bound" in dom.text_by_id["bottleneck-summary"]
    assert "largest models are compute-bound" in dom.text_by_id["bottleneck-summary"]
    assert dom.text_by_id["bottleneck-table"].count("host-overhead") >= 5
    assert "calibrated" in dom.text_by_id["plan"] and "1000×" in dom.text_by_id["plan-table"]
    problems = dom.text_by_id["problems"]
    assert "CUDA out of memory" in problems and "<see run log> & retry" in problems and "diverged" in problems
    assert '"seq_len": 1024' in dom.text_by_id["spec"]
    assert "synthetic-0" in dom.text_by_id["corpus"] and "torch" in dom.text_by_id["env"]
    assert f"mean absolute percentage error {100 * data.backtest.mape:.2f}%" in full[1]
    assert "+0." in dom.text_by_id["backtest"] or "-0." in dom.text_by_id["backtest"]


def test_cpu_sweep_without_profiling_says_what_is_missing(tmp_path):
    folder = make_synthetic_sweep(tmp_path / "cpu", n_sizes=4, n_budgets=3, instrumented=False)
    data = build_report_data(folder, FAST)
    assert data.fit is not None and data.plan is not None  # uncalibrated: default MFU, said in the notes
    assert "not calibrated" in data.plan["notes"].iloc[0]
    assert set(data.missing) == {"bottlenecks", "telemetry"}
    dom = Dom(render_html(data))
    assert dom.find("figure", id="fig-kernels")
    text = " ".join(dom.text_by_id.values())
    assert "no run recorded a bottleneck verdict" in text
    assert "NVML Shared Library Not Found" in text
    assert "not measured" in dom.text_by_id["spend"]
    assert len(dom.by_class("fig")) == 8  # energy, telemetry, kernels missing


def _cells(html: str, table_id: str) -> list[list[str]]:
    """The text of each row's cells of table ``table_id``."""
    body = html[html.index(f'<table id="{table_id}"'):]
    body = body[:body.index("</table>")]
    return [[re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row, re.S)]
            for row in re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S)]


def test_plan_has_absolute_targets_compact_cells_and_marked_extrapolations(full):
    data, html, dom = full
    plan = data.plan
    assert data.max_flops == pytest.approx(1e18, rel=0.5)
    # relative targets kept; absolute ones at least 100x above the sweep (1e19 is only 10x here: left out)
    assert list(plan["target"]) == ["10× largest run", "100× largest run", "1000× largest run", "1e21 FLOPs",
                                    "1e23 FLOPs", "1e25 FLOPs"]
    assert list(plan["kind"]) == ["relative"] * 3 + ["absolute"] * 3
    assert (plan["flops"] >= 100 * data.max_flops).sum() >= 5
    row = plan[plan["target"] == "1e21 FLOPs"].iloc[0]
    assert row["flops"] == pytest.approx(1e21) and row["factor"] == pytest.approx(1e21 / data.max_flops)
    assert list(plan["far"]) == list(plan["factor"] > FAR_EXTRAPOLATION)
    # the GPU count: the least power of two that fits and finishes within 30 days
    limit = data.options.plan_max_days * 86400
    for _, r in plan.iterrows():
        n = int(r["num_gpus"])
        assert n & (n - 1) == 0 and n >= r["min_gpus"]
        assert r["wall_clock_s"] <= limit or n == 16384
    big = plan.iloc[-1]
    assert big["num_gpus"] > 64 and big["wall_clock_s"] > 86400  # 1e25 FLOPs: a cluster, not one GPU
    # the table: no notes column, short cells, extrapolations marked, notes as footnotes
    cells = _cells(html, "plan-table")
    assert "notes" not in cells[0] and len(cells) == 1 + len(plan)
    assert max(len(c) for r in cells for c in r) <= 32, max((c for r in cells for c in r), key=len)
    assert any(r[0] == "1e21 FLOPs" and r[1] == "1e+21" for r in cells)
    assert sum("⚠" in r[2] for r in cells[1:]) == int(plan["far"].sum()) >= 2
    assert "never tested this far" in dom.text_by_id["plan-notes"]
    assert 'href="#plan-note-1"' in html
    clusters = _cells(html, "plan-clusters")
    assert clusters[0] == ["target", "C (FLOPs)", "8 GPUs", "64 GPUs", "512 GPUs"]
    assert len(clusters) == 1 + len(plan)


def test_plan_targets_for_a_cpu_quickstart():
    t = _plan_targets(2.3e12, ReportOptions())
    assert list(t["target"]) == ["10× largest run", "100× largest run", "1000× largest run", "1e19 FLOPs",
                                 "1e21 FLOPs", "1e23 FLOPs"]
    t = _plan_targets(3e20, ReportOptions())
    assert list(t["target"][t["kind"] == "absolute"]) == ["1e23 FLOPs", "1e25 FLOPs"]
    with pytest.raises(ConfigError, match="plan_clusters"):
        ReportOptions(plan_clusters=(0,))
    with pytest.raises(ConfigError, match="plan_max_days"):
        ReportOptions(plan_max_days=0.0)


def test_cpu_sweep_mfu_and_memory_are_explained(tmp_path):
    folder = make_synthetic_sweep(tmp_path / "cpu", n_sizes=4, n_budgets=3, instrumented=False)
    data = build_report_data(folder, ReportOptions(bootstrap=0))
    html = render_html(data)
    dom = Dom(html)
    mfu_note = dom.text_by_id["note-throughput"]
    assert "no catalog peak for a CPU" in mfu_note and "scalebench env --calibrate" in mfu_note
    assert "<code>scalebench env --calibrate</code>" in html
    runs = _cells(html, "runs")
    mfu_i = runs[0].index("MFU")
    assert all(r[mfu_i] == "–" for r in runs[1:])
    mem = dom.text_by_id["note-memory"]
    assert "not measured on a CPU" in mem and "MiB" in mem and "Python and torch runtime" in mem
    rss = pd.to_numeric(data.done["peak_rss_bytes"]) / 2**20
    assert f"{rss.min():,.0f}–{rss.max():,.0f} MiB" in mem
    assert "RSS" not in html[html.index('id="fig-memory"'):html.index('id="note-memory"')]  # not plotted
    assert all(r[runs[0].index("peak memory")].endswith("MiB RSS") for r in runs[1:])
    # the same sweep after `scalebench env --calibrate`: MFU against the measured peak
    folder = make_synthetic_sweep(tmp_path / "cal", n_sizes=4, n_budgets=3, instrumented=False, measured_peak=True)
    html = render_html(build_report_data(folder, ReportOptions(bootstrap=0)))
    dom = Dom(html)
    assert "against the measured peak" in dom.text_by_id["note-throughput"]
    assert "MFU (% of measured peak FLOP/s)" in html
    runs = _cells(html, "runs")
    mfu_i = runs[0].index("MFU (measured peak)")
    assert all(r[mfu_i].endswith("%") for r in runs[1:])


def test_gpu_sweep_has_no_cpu_notes(full):
    _, html, dom = full
    assert "note-throughput" not in dom.text_by_id and "note-memory" not in dom.text_by_id
    assert "MFU (% of datasheet peak FLOP/s)" in html


def test_too_few_runs_still_gets_a_page(tmp_path):
    folder = make_synthetic_sweep(tmp_path / "small", name="small", n_sizes=2, n_budgets=2, n_failed=1)
    data = build_report_data(folder, FAST)
    assert data.fit is None
    assert "needs at least 6 points" in data.missing["fit"]
    assert {"backtest", "plan"} <= set(data.missing)
    dom = Dom(render_html(data))
    boxes = dom.by_class("missing")
    assert len(boxes) >= 4
    assert "needs at least 6 points" in " ".join(dom.text_by_id.values())
    assert dom.find("figure", id="fig-loss_compute") and dom.find("table", id="runs")


def test_bottleneck_summary_names_the_pattern(full):
    data, _, _ = full
    b = pd.DataFrame({"params": [1e6, 2e6, 3e6, 4e6, 5e6], "mfu": [0.1, 0.12, 0.2, 0.3, 0.35],
                      "verdict": ["host-overhead"] * 3 + ["compute"] * 2})
    text = bottleneck_summary(ReportData(**{**data.__dict__, "bottlenecks": b}))
    assert text.startswith("The three smallest models are host-overhead bound; the two largest models are "
                           "compute-bound.")
    one = bottleneck_summary(ReportData(**{**data.__dict__, "bottlenecks": b.assign(verdict="compute")}))
    assert one.startswith("Every model size in the sweep is compute-bound.")


def test_options_are_validated():
    with pytest.raises(ConfigError, match="bootstrap"):
        ReportOptions(bootstrap=-1)
    with pytest.raises(ConfigError, match="scale_factors"):
        ReportOptions(scale_factors=(10.0, 0.0))


def test_cli_writes_index_html_and_opens_it(tmp_path, monkeypatch, capsys):
    folder = make_synthetic_sweep(tmp_path / "cli", n_sizes=3, n_budgets=3)
    opened: list[str] = []
    monkeypatch.setattr("webbrowser.open", lambda url: opened.append(url) or True)
    assert main(["report", str(folder), "--bootstrap", "5", "--open"]) == 0
    page = folder / "index.html"
    assert page.is_file() and opened == [page.resolve().as_uri()]
    assert str(page) in capsys.readouterr().out
    out = tmp_path / "elsewhere" / "r.html"
    # the first report saved its fit in fit.json; --refit fits again, with the --bootstrap asked for
    assert main(["report", str(folder), "--out", str(out), "--bootstrap", "0", "--refit"]) == 0
    assert out.is_file() and "No bootstrap was run" in out.read_text()


def test_cli_on_a_folder_without_a_store(tmp_path):
    assert main(["report", str(tmp_path)]) != 0


def test_write_report_default_path(tmp_path):
    folder = make_synthetic_sweep(tmp_path / "w", n_sizes=3, n_budgets=3)
    path = write_report(folder, options=ReportOptions(bootstrap=0))
    assert path == Path(folder) / "index.html"


# --- one analysis: the page uses the laws' results, and the fit `scalebench fit DIR` saved -------------------
def test_fit_and_report_give_the_same_numbers(tmp_path, capsys):
    import json as _json

    from scalebench.cli import main

    folder = make_synthetic_sweep(tmp_path / "s", n_sizes=5, n_budgets=3)
    assert main(["fit", str(folder), "--bootstrap", "30", "--json"]) == 0
    printed = _json.loads(capsys.readouterr().out)
    assert (folder / "fit.json").is_file()
    data = build_report_data(folder, ReportOptions(bootstrap=7))  # the saved fit wins over the option
    assert data.fit_origin == "saved" and data.n_bootstrap == 30
    assert data.fit.params == pytest.approx(printed["params"])
    assert _flat(data.fit.intervals) == pytest.approx(_flat(printed["ci"]))
    assert data.fit.verdict == printed["diagnostics"]["verdict"]
    html = render_html(data)
    dom = Dom(html)
    assert dom.text_by_id["verdict"] == printed["diagnostics"]["verdict"]
    lo, hi = printed["ci"]["a"]
    assert f"[{lo:.3f}, {hi:.3f}]" in " ".join(narrative_fit(data))
    # without the saved fit the report fits the same way and gets the same numbers
    refit = build_report_data(folder, ReportOptions(bootstrap=30, use_saved_fit=False))
    assert refit.fit_origin.startswith("refit") and refit.fit.params == pytest.approx(printed["params"])
    assert _flat(refit.fit.intervals) == pytest.approx(_flat(printed["ci"]))


def narrative_fit(data):
    from scalebench.report.narrative import fit_summary

    return fit_summary(data)


def test_a_stale_saved_fit_is_not_used(tmp_path):
    from scalebench.laws import fit, save_fit

    folder = make_synthetic_sweep(tmp_path / "s", n_sizes=5, n_budgets=3)
    other = make_synthetic_sweep(tmp_path / "o", n_sizes=4, n_budgets=3, seed=3)
    save_fit(fit(other), folder)
    data = build_report_data(folder, ReportOptions(bootstrap=0))
    assert data.fit_origin.startswith("refit") and "other runs" in data.fit_origin


def test_weak_fit_is_led_by_its_verdict_and_marks_predictions_and_plan(tmp_path):
    folder = make_synthetic_sweep(tmp_path / "s", n_sizes=4, n_budgets=2)  # 8 runs, two budgets
    data = build_report_data(folder, ReportOptions(bootstrap=20))
    assert data.fit.verdict == "undetermined"
    html = render_html(data)
    dom = Dom(html)
    assert html.index('id="diagnosis"') < html.index('id="law-params"')
    assert "8 points for 5 free parameters" in dom.text_by_id["verdict-reasons"]
    assert "add at least 7 runs" in dom.text_by_id["verdict-suggestions"]
    assert "predictions-warning" in dom.text_by_id and "plan-warning" in dom.text_by_id
    assert any(s.startswith("If the undetermined fit held") for s in narrative_fit(data))


def test_grouping_axis_gets_a_comparison_section(tmp_path):
    folder = make_synthetic_sweep(tmp_path / "s", n_sizes=5, n_budgets=3,
                                  families={"gpt": {}, "lstm": {"alpha": 0.5}})
    data = build_report_data(folder, ReportOptions(bootstrap=20))
    assert data.groups is not None and data.groups.by == "family"
    assert set(data.groups.results) == {"gpt", "lstm"}
    assert data.groups.results["lstm"].params["alpha"] > data.groups.results["gpt"].params["alpha"]
    assert set(data.group_frontiers["group"]) == {"gpt", "lstm"}
    html = render_html(data)
    dom = Dom(html)
    assert "comparison" in dom.text_by_id and dom.find("figure", id="fig-groups")
    cells = _cells(html, "group-table")
    assert [c[0] for c in cells[1:]] == ["gpt", "lstm"] and any("[" in c for c in cells[1])
    single = build_report_data(make_synthetic_sweep(tmp_path / "one", n_sizes=5, n_budgets=3), FAST)
    assert single.groups is None and 'id="comparison"' not in render_html(single)


def test_group_axis_prefers_the_sweeps_grid_axes_then_known_columns():
    from scalebench.report.data import group_axis

    df = pd.DataFrame({"status": ["done"] * 4, "family": ["gpt"] * 4, "optimizer": ["adamw", "sgd"] * 2,
                       "lr": [1e-3, 1e-3, 3e-3, 3e-3]})
    assert group_axis(df) == "optimizer"  # family has one value
    assert group_axis(df, axes=("lr",)) == "lr"
    assert group_axis(df.assign(optimizer="adamw")) is None
    with pytest.raises(ConfigError, match="no column 'nope'"):
        group_axis(df, "nope")
