"""Shared fixtures: one corpus cache per test session, tiny sweep specs, a CUDA skip marker."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _checkout_state() -> set[str] | None:
    """Untracked and changed paths of the checkout (None outside a git checkout: nothing to compare)."""
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=all"],
                             capture_output=True, text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return set(out.splitlines())


def pytest_configure(config):
    if not hasattr(config, "workerinput"):  # the controller only (pytest-xdist workers share its checkout)
        config._checkout_before = _checkout_state()


def pytest_sessionfinish(session, exitstatus):
    """The suite writes nothing into the checkout: a test that leaves a file there fails the run."""
    before = getattr(session.config, "_checkout_before", None)
    after = _checkout_state() if before is not None else None
    if before is None or after is None:
        return
    new = sorted(after - before)
    if new:
        session.config.get_terminal_writer().line(
            "the test run left these in the checkout (tests must write under tmp_path): " + ", ".join(new),
            red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="session", autouse=True)
def _run_outside_the_checkout(tmp_path_factory):
    """Every test starts in a scratch folder, so a relative path can never land in the checkout."""
    old = os.getcwd()
    os.chdir(tmp_path_factory.mktemp("cwd"))
    yield
    os.chdir(old)

TINY_SWEEP = """
name = "{name}"
family = "gpt"
[model]
sizes = ["debug", "100k"]
[budget]
tokens = {tokens}
[train]
batch_tokens = 512
seq_len = 32
lr = 3e-3
compile = "off"
[eval]
interval_steps = 10
eval_tokens = 2048
[devices]
device = "cpu"
cpu_workers = {workers}
"""


@pytest.fixture(scope="session", autouse=True)
def scalebench_home(tmp_path_factory) -> Path:
    """Corpus caches and calibrations go to a session folder, never the user's ~/.cache."""
    home = tmp_path_factory.mktemp("scalebench_home")
    old = os.environ.get("SCALEBENCH_HOME")
    os.environ["SCALEBENCH_HOME"] = str(home)
    yield home
    if old is None:
        os.environ.pop("SCALEBENCH_HOME", None)
    else:
        os.environ["SCALEBENCH_HOME"] = old


@pytest.fixture
def write_sweep(tmp_path):
    """Write a tiny CPU sweep TOML; keyword arguments fill the template or append raw TOML."""

    def _write(name: str = "tiny", tokens: str = "[8192, 16384]", workers: int = 2, extra: str = "") -> Path:
        path = tmp_path / f"{name}.toml"
        path.write_text(TINY_SWEEP.format(name=name, tokens=tokens, workers=workers) + extra)
        return path

    return _write


def pytest_collection_modifyitems(config, items):
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def sweep_cli():
    """Start `scalebench run SPEC --out OUT` as a real subprocess; killed at teardown if still running."""
    import subprocess
    import sys

    procs = []

    def _start(spec: Path, out: Path, **popen_kw) -> subprocess.Popen:
        popen_kw.setdefault("stdout", subprocess.DEVNULL)
        popen_kw.setdefault("stderr", subprocess.DEVNULL)
        proc = subprocess.Popen([sys.executable, "-m", "scalebench.cli", "run", str(spec), "--out", str(out)],
                                **popen_kw)
        procs.append(proc)
        return proc

    yield _start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.fixture
def wait_until():
    """Poll ``condition`` until it holds; fail the test naming ``what`` after ``timeout_s``."""
    import time

    def _wait(condition, what: str, timeout_s: float = 120.0, every_s: float = 0.3) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            time.sleep(every_s)
            if condition():
                return
        pytest.fail(f"timed out after {timeout_s:g} s waiting until {what}")

    return _wait


# Runs long enough (768 steps of 512 tokens) that a signal sent once both train lands mid-run.
LONG_RUN_TOKENS = "[393216]"
LONG_RUN_STEPS = 768


def both_runs_training(out: Path) -> bool:
    """Both runs of a tiny sweep have recorded steps and neither has finished."""
    import sqlite3

    import pandas as pd

    from scalebench.errors import StoreError
    from scalebench.store import ResultStore, load_steps

    if not (out / "scalebench.sqlite").exists():
        return False
    try:  # the file exists a moment before its tables do (a loaded machine widens the window)
        if load_steps(out)["run_id"].nunique() < 2:
            return False
        with ResultStore(out) as store:
            return all(r["status"] == "running" for r in store.runs())
    except (sqlite3.Error, pd.errors.DatabaseError, StoreError):
        return False


@pytest.fixture
def both_training():
    return both_runs_training


@pytest.fixture
def long_run() -> tuple[str, int]:
    """(budget.tokens TOML, steps) of a tiny-sweep run long enough to interrupt mid-way."""
    return LONG_RUN_TOKENS, LONG_RUN_STEPS
