"""The report in a real browser: headless Chromium driven over the DevTools protocol (``--remote-debugging-pipe``:
NUL-separated JSON on fds 3/4, standard library only). The page must load with no console message of level
error, no uncaught exception, no dialog and no network request; every figure must have a rendered size; a
sweep named ``<script>alert(1)</script>`` must show that name as text. A full-page screenshot is saved
(``$SCALEBENCH_REPORT_SCREENSHOT`` or the test's tmp folder) for a human to look at.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from scalebench.report import ReportOptions, write_report
from scalebench.report.synthetic import make_synthetic_sweep

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
pytestmark = [pytest.mark.browser, pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium not installed")]

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-quic", "--disable-extensions",
         "--disable-default-apps", "--mute-audio", "--hide-scrollbars"]
XSS = "<script>alert(1)</script>"


class Chromium:
    """A minimal CDP client over ``--remote-debugging-pipe`` (Chromium reads fd 3, writes fd 4)."""

    def __init__(self, timeout_s: float = 60.0) -> None:
        self.timeout_s = timeout_s
        self.profile = tempfile.mkdtemp(prefix="sb-chromium-")
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()

        def wire() -> None:  # in the child, before exec: put the pipe ends at fds 3 and 4
            a, b = os.dup(to_child_r), os.dup(from_child_w)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.proc = subprocess.Popen(
            [CHROMIUM, *FLAGS, f"--user-data-dir={self.profile}", "--remote-debugging-pipe", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            preexec_fn=wire, close_fds=False,
        )
        os.close(to_child_r)
        os.close(from_child_w)
        self._buf = b""
        self._id = 0
        self.events: list[dict] = []

    def _read_message(self, deadline: float) -> dict:
        import select

        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("Chromium did not answer in time")
            ready, _, _ = select.select([self._from_child], [], [], left)
            if ready:
                chunk = os.read(self._from_child, 1 << 20)
                if not chunk:
                    raise RuntimeError(f"Chromium closed the pipe: {self.proc.stderr.read()[-2000:]!r}")
                self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        return json.loads(raw)

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._to_child, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + self.timeout_s
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str, timeout_s: float = 30.0) -> dict:
        deadline = time.monotonic() + timeout_s
        for e in self.events:
            if e.get("method") == method:
                return e
        while True:
            e = self._read_message(deadline)
            self.events.append(e)
            if e.get("method") == method:
                return e

    def drain(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        try:
            while True:
                self.events.append(self._read_message(deadline))
        except TimeoutError:
            pass

    def close(self) -> None:
        try:
            self.send("Browser.close")
        except Exception:  # noqa: BLE001 - already gone
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self._to_child, self._from_child):
            os.close(fd)
        self.proc.stderr.close()
        shutil.rmtree(self.profile, ignore_errors=True)


_FIGURE_SIZES = """JSON.stringify({
  title: document.title,
  name: document.getElementById('sweep-name').textContent,
  scripts: document.scripts.length,
  figures: Array.from(document.querySelectorAll('figure .plot svg')).map(e => {
      const r = e.getBoundingClientRect(); return [e.closest('figure').id, r.width, r.height]; }),
  missing: document.querySelectorAll('.missing').length,
  links: Array.from(document.querySelectorAll('[src],[href]')).map(e => e.getAttribute('src') || e.getAttribute('href')),
  height: document.documentElement.scrollHeight,
  plan: (() => { const t = document.getElementById('plan-table'); if (!t) return null;
      const rows = Array.from(t.rows).slice(1).map(r => r.getBoundingClientRect().height);
      return {width: t.scrollWidth, room: t.parentElement.clientWidth, rows: rows}; })(),
})"""


def inspect_page(html: Path, screenshot: Path, expression: str = _FIGURE_SIZES) -> dict:
    """Load ``html`` in headless Chromium; return page facts, console errors, exceptions and requests."""
    browser = Chromium()
    try:
        target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Network", "Log"):
            browser.send(f"{domain}.enable", session=session)
        browser.send("Emulation.setDeviceMetricsOverride",
                     {"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": False}, session=session)
        url = html.resolve().as_uri()
        browser.events.clear()  # an about:blank load event must not count as the page's
        browser.send("Page.navigate", {"url": url}, session=session)
        browser.wait_for("Page.loadEventFired")
        browser.drain(0.5)
        facts = json.loads(browser.send("Runtime.evaluate", {"expression": expression, "returnByValue": True},
                                        session=session)["result"]["value"])
        height = min(int(facts["height"]), 16000)
        browser.send("Emulation.setDeviceMetricsOverride",
                     {"width": 1280, "height": height, "deviceScaleFactor": 1, "mobile": False}, session=session)
        shot = browser.send("Page.captureScreenshot", {"format": "png"}, session=session)
        screenshot.write_bytes(base64.b64decode(shot["data"]))
        browser.drain(0.2)
        events = browser.events
    finally:
        browser.close()

    def of(method: str) -> list[dict]:
        return [e["params"] for e in events if e.get("method") == method]

    facts["console_errors"] = [
        " ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", []))
        for p in of("Runtime.consoleAPICalled") if p.get("type") in ("error", "assert", "warning")
    ] + [p["entry"]["text"] for p in of("Log.entryAdded") if p["entry"].get("level") == "error"]
    facts["exceptions"] = [p["exceptionDetails"].get("text", "") for p in of("Runtime.exceptionThrown")]
    facts["dialogs"] = of("Page.javascriptDialogOpening")
    facts["requests"] = [p["request"]["url"] for p in of("Network.requestWillBeSent")
                         if p["request"]["url"] != url and not p["request"]["url"].startswith("data:")]
    return facts


def _screenshot_path(tmp_path: Path, name: str) -> Path:
    folder = os.environ.get("SCALEBENCH_REPORT_SCREENSHOT")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        return Path(folder) / name
    return tmp_path / name


FAST = ReportOptions(bootstrap=20)


def test_report_in_chromium(tmp_path):
    sweep = make_synthetic_sweep(tmp_path / "sweep", name=XSS, notes="notes with <b>markup</b> & ampersand",
                                 n_sizes=5, n_budgets=3, n_failed=1, n_diverged=1)
    import scalebench

    done = scalebench.load_results(sweep).query("status == 'done'")
    scalebench.Sweep(sweep).next(target_flops=100 * done["flops"].max(), budget_flops=done["flops"].sum(),
                                 bootstrap=8)  # the saved proposal the "Next runs" section shows
    page = write_report(sweep, options=FAST)
    facts = inspect_page(page, _screenshot_path(tmp_path, "report.png"))

    assert facts["console_errors"] == []
    assert facts["exceptions"] == []
    assert facts["dialogs"] == []  # alert(1) never ran
    assert facts["requests"] == []
    assert facts["scripts"] == 0
    assert facts["name"] == XSS  # shown as text
    assert XSS in facts["title"]
    assert all(link.startswith("#") or link.startswith("data:") for link in facts["links"]), facts["links"]
    assert len(facts["figures"]) == 11  # every figure renders with this fully instrumented sweep
    for fig_id, width, height in facts["figures"]:
        assert width > 100 and height > 50, (fig_id, width, height)
    assert facts["missing"] == 0
    assert _screenshot_path(tmp_path, "report.png").stat().st_size > 10_000
    plan = facts["plan"]  # compact at 1280 px: no horizontal scrolling, one line per row
    assert plan["width"] <= plan["room"], plan
    assert len(plan["rows"]) == 6 and max(plan["rows"]) < 40, plan["rows"]


def test_report_with_too_few_runs_in_chromium(tmp_path):
    sweep = make_synthetic_sweep(tmp_path / "small", name="tiny", n_sizes=2, n_budgets=2, n_failed=1)
    page = write_report(sweep, options=FAST)
    facts = inspect_page(page, _screenshot_path(tmp_path, "report-small.png"))
    assert facts["console_errors"] == [] and facts["exceptions"] == [] and facts["requests"] == []
    assert facts["missing"] >= 3  # fit, plan, backtest, isoFLOP profiles ... say why they are missing
    for fig_id, width, height in facts["figures"]:
        assert width > 100 and height > 50, (fig_id, width, height)


def test_the_harness_sees_requests_errors_and_dialogs(tmp_path):
    """The checks above can fail: a page that fetches, logs an error and calls alert is caught."""
    page = tmp_path / "bad.html"
    page.write_text('<!DOCTYPE html><html><body><img src="http://127.0.0.1:9/x.png">'
                    '<script>console.error("boom")</script></body></html>')
    facts = inspect_page(page, tmp_path / "bad.png", "JSON.stringify({height: document.body.scrollHeight})")
    assert any("127.0.0.1:9" in u for u in facts["requests"])
    assert any("boom" in m for m in facts["console_errors"])


def test_mixed_family_report_in_chromium(tmp_path):
    """A sweep over the family axis: the comparison section and its figure render in a real browser."""
    sweep = make_synthetic_sweep(tmp_path / "mixed", name="mixed", n_sizes=5, n_budgets=3,
                                 families={"gpt": {}, "lstm": {"alpha": 0.5}})
    page = write_report(sweep, options=FAST)
    facts = inspect_page(page, _screenshot_path(tmp_path, "report-mixed.png"))
    assert facts["console_errors"] == [] and facts["exceptions"] == [] and facts["requests"] == []
    sizes = {fig_id: (w, h) for fig_id, w, h in facts["figures"]}
    assert "fig-groups" in sizes, sorted(sizes)
    assert all(w > 100 and h > 50 for w, h in sizes.values()), sizes
