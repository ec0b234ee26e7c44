"""Sweeps end to end on CPU: subprocess isolation, resume after kill -9, refusal of changed specs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from scalebench.cli import main
from scalebench.errors import ConfigError
from scalebench.store import ResultStore, load_events, load_results, load_steps
from scalebench.sweep.runner import run_sweep


def _store_rows(sweep_dir):
    with ResultStore(sweep_dir) as s:
        return {r["run_id"]: r for r in s.runs()}


def _one_done_one_running(out) -> bool:
    import sqlite3

    from scalebench.errors import StoreError

    if not (out / "scalebench.sqlite").exists():
        return False
    try:  # the file exists a moment before its tables do (a loaded machine widens the window)
        statuses = [r["status"] for r in _store_rows(out).values()]
    except (sqlite3.Error, StoreError):
        return False
    return "done" in statuses and "running" in statuses


def test_resume_after_kill_9_loses_and_repeats_nothing(write_sweep, tmp_path, sweep_cli, wait_until):
    spec = write_sweep(tokens="[8192, 49152]", workers=1)
    out = tmp_path / "sweep"
    proc = sweep_cli(spec, out)
    wait_until(lambda: _one_done_one_running(out), "one run is done and another is mid-way")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = _store_rows(out)
    done_before = {k: v["finished_at"] for k, v in before.items() if v["status"] == "done"}
    interrupted = [k for k, v in before.items() if v["status"] == "running"]
    assert done_before and interrupted
    time.sleep(1.0)  # the orphaned worker gets SIGKILL with its parent (PR_SET_PDEATHSIG)

    outcome = run_sweep(spec, out)
    assert outcome.ok and outcome.counts == {"done": 4}
    after = _store_rows(out)
    for run_id, finished_at in done_before.items():  # finished runs were not repeated
        assert after[run_id]["finished_at"] == finished_at and after[run_id]["attempts"] == 1
    steps = load_steps(out)
    for run_id, row in after.items():  # every step recorded exactly once
        got = steps[steps.run_id == run_id]["step"].tolist()
        assert got == list(range(row["spec"]["steps"])), run_id
    events = load_events(out)
    assert set(interrupted) <= set(events[events.kind == "interrupted"].run_id)


def test_a_crashing_run_does_not_take_the_sweep_down(write_sweep, tmp_path, monkeypatch):
    # A worker that dies hard (here: the interpreter it is started with exits at once) is marked
    # failed with its log, retried up to executor.max_attempts, and the other runs go on.
    spec = write_sweep(tokens="[8192]", extra="[executor]\nmax_attempts = 2\n")
    fake = tmp_path / "python"
    fake.write_text(f"#!/bin/sh\ncase \"$*\" in *debug*) echo 'Segmentation fault' >&2; kill -9 $$;; esac\n"
                    f"exec {sys.executable} \"$@\"\n")
    fake.chmod(0o755)
    outcome = run_sweep(spec, tmp_path / "sweep", python=str(fake))
    df = load_results(tmp_path / "sweep").set_index("size")
    assert df.loc["100k", "status"] == "done"
    assert df.loc["debug", "status"] == "failed" and df.loc["debug", "attempts"] == 2
    assert "killed by signal 9" in df.loc["debug", "error"] and "Segmentation fault" in df.loc["debug", "error"]
    assert not outcome.ok


def test_changed_spec_that_would_alter_finished_runs_is_refused(write_sweep, tmp_path, capsys):
    spec = write_sweep(tokens="[8192]")
    out = tmp_path / "sweep"
    assert main(["run", str(spec), "--out", str(out), "--no-progress"]) == 0
    text = spec.read_text().replace("lr = 3e-3", "lr = 1e-3")
    spec.write_text(text)
    with pytest.raises(ConfigError, match=r"another setup: train.lr = 0.001 \(was 0.003\)"):
        run_sweep(spec, out)
    assert main(["run", str(spec), "--out", str(out), "--no-progress"]) == 2
    # running the unchanged spec again repeats nothing
    spec.write_text(text.replace("lr = 1e-3", "lr = 3e-3"))
    before = _store_rows(out)
    assert run_sweep(spec, out).counts == {"done": 2}
    assert {k: v["finished_at"] for k, v in _store_rows(out).items()} == {k: v["finished_at"] for k, v in before.items()}


def test_status_and_export(write_sweep, tmp_path, capsys):
    spec = write_sweep(tokens="[8192]")
    out = tmp_path / "sweep"
    assert main(["run", str(spec), "--out", str(out), "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["status", str(out)]) == 0
    text = capsys.readouterr().out
    assert "2 done" in text and "gpt-100k-t8.19e3" in text and "eval_loss" in text
    assert main(["export", str(out), "--out", str(tmp_path / "r.csv")]) == 0
    import pandas as pd

    assert len(pd.read_csv(tmp_path / "r.csv")) == 2
    assert main(["export", str(out), "--steps", "--out", str(tmp_path / "s.parquet")]) == 0
    assert len(pd.read_parquet(tmp_path / "s.parquet")) == 32
    assert main(["export", str(out), "--out", str(tmp_path / "r.xlsx")]) == 2
    assert main(["status", str(tmp_path / "nowhere")]) == 2  # bad input: no sweep there


def test_ctrl_c_leaves_the_store_consistent_and_the_sweep_resumable(write_sweep, tmp_path, sweep_cli, wait_until,
                                                                   both_training, long_run):
    tokens, n_steps = long_run
    spec = write_sweep(tokens=tokens, workers=2)
    out = tmp_path / "sweep"
    proc = sweep_cli(spec, out, stderr=subprocess.PIPE)
    wait_until(lambda: both_training(out), "both runs have recorded steps")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and b"interrupted" in err
    rows = _store_rows(out)
    assert {r["status"] for r in rows.values()} == {"pending"}  # nothing left "running"
    assert run_sweep(spec, out).counts == {"done": 2}
    steps = load_steps(out)
    assert steps.groupby("run_id")["step"].apply(list).map(lambda s: s == list(range(n_steps))).all()


def test_cuda_requested_without_a_gpu_fails_fast(write_sweep, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    spec = write_sweep(extra="")
    spec.write_text(spec.read_text().replace('device = "cpu"', 'device = "cuda"'))
    from scalebench.errors import ConfigError

    with pytest.raises(ConfigError, match="devices.device = 'cuda', but torch sees no CUDA device"):
        run_sweep(spec, tmp_path / "sweep")  # refused when planned, as `validate` refuses it


def test_sigterm_to_the_sweep_stops_it_cleanly(write_sweep, tmp_path, sweep_cli, wait_until, both_training,
                                               long_run):
    spec = write_sweep(tokens=long_run[0], workers=2)
    out = tmp_path / "sweep"
    proc = sweep_cli(spec, out)
    wait_until(lambda: both_training(out), "both runs have recorded steps")
    proc.terminate()
    proc.wait(timeout=60)
    assert {r["status"] for r in _store_rows(out).values()} == {"pending"}
