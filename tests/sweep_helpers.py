"""Helpers the executor tests share: a sweep folder's rows, the every-step-once check, a live-process probe."""

from __future__ import annotations

from pathlib import Path

from scalebench.store import ResultStore, load_steps


def store_rows(sweep_dir: Path) -> dict[str, dict]:
    with ResultStore(sweep_dir) as s:
        return {r["run_id"]: r for r in s.runs()}


def assert_steps_once(sweep_dir: Path) -> None:
    """Every run recorded each of its steps exactly once (nothing lost, nothing repeated)."""
    steps = load_steps(sweep_dir)
    for run_id, row in store_rows(sweep_dir).items():
        assert steps[steps.run_id == run_id]["step"].tolist() == list(range(row["spec"]["steps"])), run_id


def alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False
