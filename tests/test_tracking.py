"""Trackers: each one written and read back offline with its real library; the curves equal the store's."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from scalebench.config import load_sweep
from scalebench.errors import ConfigError
from scalebench.store import ResultStore, load_events, load_steps
from scalebench.sweep.runner import run_sweep
from scalebench.tracking import TrackerContext, Trackers, TrackingSink, flatten, jsonl

KINDS = ["tensorboard", "wandb", "mlflow", "trackio"]


def _store_curves(sweep_dir: Path) -> dict[str, dict[str, list[tuple[int, float]]]]:
    steps = load_steps(sweep_dir)
    out: dict[str, dict[str, list]] = {}
    for run_id, rows in steps.groupby("run_id"):
        curves = {}
        for col in ("loss", "lr", "eval_loss"):
            part = rows[rows[col].notna()].sort_values("step")
            curves[col] = [(int(s), float(v)) for s, v in zip(part["step"], part[col], strict=True)]
        out[str(run_id)] = curves
    return out


def _close(a: list[tuple[int, float]], b: list[tuple[int, float]], rel: float = 1e-6) -> bool:
    return [s for s, _ in a] == [s for s, _ in b] and all(
        math.isclose(x, y, rel_tol=rel, abs_tol=1e-9) for (_, x), (_, y) in zip(a, b, strict=True))


def _curves_from_rows(rows: list[dict], step_key: str) -> dict[str, list[tuple[int, float]]]:
    out: dict[str, list] = {}
    for row in rows:
        for key in ("loss", "lr", "eval_loss"):
            if row.get(key) is not None:
                out.setdefault(key, []).append((int(row[step_key]), float(row[key])))
    return {k: sorted(v) for k, v in out.items()}


def _trackio_rows(folder: Path, project: str, run: str) -> list[dict]:
    # trackio reads its folder once per process: read in a fresh one
    code = ("import json, sys; from scalebench.tracking import trackio as t; "
            "print(json.dumps(t.read(sys.argv[1], sys.argv[2], sys.argv[3]), default=str))")
    out = subprocess.run([sys.executable, "-c", code, str(folder), project, run], capture_output=True, text=True,
                         check=True, timeout=120)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_a_tiny_sweep_leaves_the_stores_curves_in_every_tracker(write_sweep, tmp_path):
    from scalebench.tracking import mlflow as mlf
    from scalebench.tracking import tensorboard as tb
    from scalebench.tracking import wandb as wb

    spec = write_sweep(name="tracked", tokens="[8192]", extra=f'[tracking]\nkinds = {json.dumps(KINDS)}\n')
    out = tmp_path / "sweep"
    assert run_sweep(spec, out).ok
    folder = out / "tracking"
    store = _store_curves(out)
    assert len(store) == 2 and all(len(c["loss"]) == 16 and c["eval_loss"] for c in store.values())
    for run_id, want in store.items():
        got = {
            "jsonl": _curves_from_rows(jsonl.read(out / "runs" / run_id), "step"),
            "tensorboard": {k: v for k, v in tb.read(folder / "tensorboard" / run_id).items() if k in want},
            "wandb": _curves_from_rows(wb.read(folder, run_id), "_step"),
            "mlflow": {k: v for k, v in mlf.read(folder, "tracked", run_id).items() if k in want},
            "trackio": _curves_from_rows(_trackio_rows(folder, "tracked", run_id), "step"),
        }
        for kind, curves in got.items():
            assert sorted(curves) == sorted(want), (kind, run_id, sorted(curves))
            for key in want:  # TensorBoard stores float32
                assert _close(curves[key], want[key], rel=1e-6 if kind != "tensorboard" else 1e-6 + 2**-23), \
                    (kind, run_id, key)
    events = load_events(out)
    assert not (events["kind"] == "tracker").any()  # no tracker failed


def test_a_failing_tracker_is_an_event_and_the_run_trains_on(write_sweep, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the trackers' folder should be")
    spec = write_sweep(name="trackfail", tokens="[6144]",
                       extra=f'[tracking]\nkinds = ["tensorboard"]\nfolder = "{blocker}"\n')
    out = tmp_path / "sweep"
    assert run_sweep(spec, out).ok
    with ResultStore(out) as s:
        assert {r["status"] for r in s.runs()} == {"done"}
    events = load_events(out)
    msgs = events[events["kind"] == "tracker"]["message"].tolist()
    assert len(msgs) == 2 and all("'tensorboard'" in m and "trains on" in m for m in msgs)
    for run in (out / "runs").iterdir():  # the JSON-lines log is still there, finished
        lines = (run / "metrics.jsonl").read_text().splitlines()
        assert json.loads(lines[-1]) == {**json.loads(lines[-1]), "event": "finish", "status": "done"}


def test_trackers_isolate_a_failure_and_the_store_is_written_first(tmp_path):
    events, logged = [], []

    class Store:
        def add_steps(self, run_id, rows):
            logged.append(("store", rows[0]["step"]))

    ctx = TrackerContext(run_id="r1", sweep="s", project="p", folder=tmp_path / "t", run_dir=tmp_path)
    trackers = Trackers(ctx, [], lambda kind, msg: events.append((kind, msg)))

    class Broken:
        kind = "broken"

        def start(self, config):
            pass

        def log(self, step, metrics):
            raise OSError("disk full")

    trackers.active.append(Broken())
    sink = TrackingSink(Store(), trackers)
    trackers.start({"train": {"lr": 0.1}})
    sink.add_steps("r1", [{"step": 0, "loss": 2.0, "lr": 0.1, "grad_norm": None}])
    sink.add_steps("r1", [{"step": 1, "loss": 1.5, "lr": 0.1}])
    trackers.finish("done")
    assert logged == [("store", 0), ("store", 1)]
    assert len(events) == 1 and events[0][0] == "broken" and "disk full" in events[0][1]
    assert [(r["step"], r["loss"]) for r in jsonl.read(tmp_path)] == [(0, 2.0), (1, 1.5)]
    assert "grad_norm" not in jsonl.read(tmp_path)[0]  # a missing value is not logged as a number
    assert flatten({"train": {"lr": 0.1}, "axes": {}}) == {"train.lr": 0.1, "axes": {}}


def test_a_missing_extra_is_named_in_the_event(tmp_path, monkeypatch):
    from scalebench import tracking

    monkeypatch.setitem(tracking._REGISTRY, "nolib", "scalebench_no_such_module:Tracker")
    events = []
    ctx = TrackerContext(run_id="r1", sweep="s", project="p", folder=tmp_path, run_dir=tmp_path)
    Trackers(ctx, ["nolib"], lambda kind, msg: events.append(msg))
    assert len(events) == 1 and "scalebench[trackers]" in events[0]


def test_tracking_table_and_track_flag_are_checked(write_sweep):
    spec = load_sweep(write_sweep(extra='[tracking]\nkinds = ["TensorBoard", "wandb"]\nproject = "ladder"\n'))
    assert spec.tracking.kinds == ("tensorboard", "wandb") and spec.tracking.mode == "offline"
    assert load_sweep(write_sweep()).tracking.kinds == ()  # off by default
    with pytest.raises(ConfigError, match=r"\[tracking\] kinds: 'neptune' is not a tracker; one of jsonl, mlflow"):
        load_sweep(write_sweep(extra='[tracking]\nkinds = ["neptune"]\n'))
    with pytest.raises(ConfigError, match=r"tracking\.mode: got 'cloud'"):
        load_sweep(write_sweep(extra='[tracking]\nmode = "cloud"\n'))


def test_the_track_flag_is_checked_before_anything_runs(write_sweep, tmp_path):
    from scalebench.cli import main

    assert main(["run", str(write_sweep()), "--out", str(tmp_path / "o"), "--track", "tensorboard,neptune"]) == 2
    assert not (tmp_path / "o").exists()
