"""Time `scalebench report` on a synthetic 50-run sweep (10 sizes x 5 isoFLOP budgets, fully instrumented).

Target: at most 20 s on 2 cores. Prints the seconds for building the data and rendering the page.

    python benchmarks/report_speed.py
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from scalebench.report import build_report_data, render_html
from scalebench.report.synthetic import make_synthetic_sweep

TARGET_S = 20.0


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        sweep = make_synthetic_sweep(Path(tmp) / "sweep", name="bench-50", n_sizes=10, n_budgets=5, n_failed=2,
                                     n_diverged=1, steps_per_run=400, telemetry_per_run=100)
        t0 = time.perf_counter()
        data = build_report_data(sweep)
        t1 = time.perf_counter()
        html = render_html(data)
        (sweep / "index.html").write_text(html, encoding="utf-8")
        t2 = time.perf_counter()
    total = t2 - t0
    parts = ", ".join(f"{k} {v:.2f}" for k, v in data.timings_s.items())
    print(f"report of a 50-run sweep: {total:.2f} s (data {t1 - t0:.2f} s [{parts}]; figures + page "
          f"{t2 - t1:.2f} s; {len(html) / 1e6:.2f} MB; {data.n_bootstrap} bootstrap resamples)")
    print(f"target <= {TARGET_S:.0f} s: {'ok' if total <= TARGET_S else 'TOO SLOW'}")
    return 0 if total <= TARGET_S else 1


if __name__ == "__main__":
    raise SystemExit(main())
