"""The SQLite store: concurrent writers, consistent reads, clear errors."""

from __future__ import annotations

import multiprocessing as mp

import pytest

from scalebench.errors import StoreError
from scalebench.store import ResultStore, load_results, load_steps


def _writer(sweep_dir: str, run_id: str, n: int) -> None:
    with ResultStore(sweep_dir) as store:
        for i in range(n):
            store.add_steps(run_id, [{"step": i, "tokens": i * 10, "loss": 1.0 / (i + 1)}])
            if i % 10 == 0:
                store.add_event(run_id, "tick", str(i))
        store.set_status(run_id, "done", record={"eval_loss": 1.0, "tokens_per_s": 5.0})


def test_several_processes_write_at_once_without_loss(tmp_path):
    with ResultStore(tmp_path, create=True) as store:
        store.add_runs((f"r{i}", "h", {"params": 10 * (i + 1), "tokens": 100}) for i in range(4))
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), f"r{i}", 150)) for i in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    steps = load_steps(tmp_path)
    assert len(steps) == 600 and steps.groupby("run_id").size().tolist() == [150] * 4
    df = load_results(tmp_path)
    assert df["status"].tolist() == ["done"] * 4 and df["eval_loss"].tolist() == [1.0] * 4
    assert df.columns[:3].tolist() == ["run_id", "status", "family"]


def test_status_moves_are_guarded_and_validated(tmp_path):
    with ResultStore(tmp_path, create=True) as store:
        store.add_runs([("a", "h", {})])
        assert store.set_status("a", "running")
        assert not store.set_status("a", "pending", expect="done")  # not in that state: no change
        assert store.runs()[0]["status"] == "running" and store.runs()[0]["attempts"] == 1
        with pytest.raises(StoreError, match="unknown status"):
            store.set_status("a", "finished")
        store.add_runs([("a", "other", {})])  # re-adding a planned run keeps the original
        assert len(store.runs()) == 1 and store.runs()[0]["spec_hash"] == "h"


def test_missing_or_corrupt_store_is_a_clear_error(tmp_path):
    with pytest.raises(StoreError, match="no scalebench store"):
        load_results(tmp_path)
    (tmp_path / "scalebench.sqlite").write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="not a readable scalebench store"):
        load_results(tmp_path)
