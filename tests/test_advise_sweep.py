"""`scalebench next --write` on a real (tiny) sweep: the extension trains into the same sweep folder."""

from __future__ import annotations

import json

import pytest
import tomllib

import scalebench
from scalebench.cli import main


@pytest.mark.slow
def test_written_extension_runs_into_the_same_folder(write_sweep, tmp_path, capsys):
    spec = write_sweep(name="adv-e2e", tokens="[5120, 10240, 20480]")  # 2 sizes x 3 budgets: just fittable
    out = tmp_path / "sweep"
    assert main(["run", str(spec), "--out", str(out), "--no-progress"]) == 0
    before = scalebench.load_results(out).set_index("run_id")
    budget = float(before["flops"].sum())
    ext = tmp_path / "ext.toml"
    capsys.readouterr()
    assert main(["next", str(out), "--target-flops", "1e13", "--budget-flops", str(budget), "--max-runs", "2",
                 "--bootstrap", "8", "--json", "--write", str(ext)]) == 0
    advice = json.loads(capsys.readouterr().out)
    assert 2 <= len(advice["runs"]) <= 2 and advice["total_cost"] <= budget
    assert set(tomllib.loads(ext.read_text())) <= {"extends", "model", "budget", "train"}  # only what changes

    assert main(["run", str(ext), "--out", str(out), "--no-progress"]) == 0
    after = scalebench.load_results(out).set_index("run_id")
    assert len(after) == len(before) + len(advice["runs"]) and set(after["status"]) == {"done"}
    assert scalebench.load_meta(out)["sweep_name"] == "adv-e2e"
    for run_id, row in before.iterrows():  # the finished runs are kept, not repeated
        assert after.loc[run_id, "eval_loss"] == row["eval_loss"]
    new = after.drop(index=before.index)
    assert sorted(zip(new["params"], new["tokens"], strict=False)) == sorted((r["params"], r["tokens"]) for r in advice["runs"])
    assert sorted(new.index) == sorted(r["run_id"] for r in advice["runs"])  # the ids `next` printed
    capsys.readouterr()
    assert main(["fit", str(out), "--at-flops", "1e13", "--json"]) in (0, 1)  # 1: converged flag only
    assert "optimum" in json.loads(capsys.readouterr().out)
