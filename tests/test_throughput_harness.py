"""benchmarks/train_throughput.py --tiny: the GPU harness's CPU path, as CI runs it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_tiny_harness_prints_one_row_per_shape_and_the_smallest_ratio():
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "train_throughput.py"), "--tiny", "--steps", "2"],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [line for line in proc.stdout.splitlines() if re.match(r"^L\d+-d\d+", line)]
    assert len(rows) == 2
    ratios = [float(r.split()[4]) for r in rows]
    assert all(x > 0 for x in ratios)
    last = proc.stdout.strip().splitlines()[-1]
    assert last == f"smallest ratio ours/reference: {min(ratios):.3f}"
