"""Time the report page against its reference, in the same run, as a ratio.

The reference is the page path before the renderer's speed work (``figures.REFERENCE``: seaborn's style,
which imports seaborn and scipy.stats, a second "tight" drawing pass per figure, minor ticks on log axes, one
process); the fast path is the default (``figures.default_mode()``). Each is timed in a fresh interpreter
(imports count, as they do for `scalebench report`), on a sweep folder given with --data (it must hold a
saved fit: run `scalebench fit DIR` first) or on a synthetic one built here.

    python benchmarks/report_speed.py [--data DIR] [--runs 200] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_CHILD = """
import sys, time
t0 = time.perf_counter()
from scalebench.report import build_report_data, render_html
from scalebench.report import figures
mode = figures.REFERENCE if sys.argv[2] == "reference" else figures.default_mode()
html = render_html(build_report_data(sys.argv[1]), mode=mode)
open(sys.argv[3], "w", encoding="utf-8").write(html)
print(time.perf_counter() - t0)
"""


def _time(sweep: Path, which: str, out: Path) -> float:
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", _CHILD, str(sweep), which, str(out)], check=True, capture_output=True)
    return time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, help="a sweep folder with fit.json (default: a synthetic sweep)")
    ap.add_argument("--runs", type=int, default=50, help="runs in the synthetic sweep (sizes x 5 budgets)")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        sweep = args.data
        if sweep is None:
            from scalebench import Sweep
            from scalebench.report.synthetic import make_synthetic_sweep

            sweep = make_synthetic_sweep(Path(tmp) / "sweep", name="bench", n_sizes=max(2, args.runs // 5),
                                         n_budgets=5, steps_per_run=400, telemetry_per_run=100)
            Sweep(sweep).fit(bootstrap=200)  # what `scalebench fit DIR` saves; the page renders it
        _time(sweep, "fast", Path(tmp) / "warm.html")  # file caches warm for both
        times: dict[str, list[float]] = {"reference": [], "fast": []}
        for _ in range(args.repeat):
            for which in times:
                times[which].append(_time(sweep, which, Path(tmp) / f"{which}.html"))
    ref, fast = statistics.median(times["reference"]), statistics.median(times["fast"])
    print(f"report of {sweep if args.data else f'a synthetic {args.runs}-run sweep'} (median of {args.repeat}, "
          f"fresh interpreter each): fast {fast:.2f} s, reference {ref:.2f} s: {ref / fast:.2f}x faster")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
