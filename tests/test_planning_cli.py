"""`scalebench estimate` and `scalebench plan`."""

from __future__ import annotations

import json

import pytest

from scalebench.cli import main


def test_estimate_json(capsys):
    assert main(["estimate", "--params", "7e9", "--tokens", "1.4e12", "--gpu", "H100-SXM", "--num-gpus", "64",
                 "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["flops"] == pytest.approx(5.88e22) and d["num_gpus"] == 64
    assert set(d["memory_per_gpu"]) == {"weights", "gradients", "optimizer", "activations", "overhead", "total"}


def test_estimate_text_and_preset(capsys):
    assert main(["estimate", "--model", "llama2-7b", "--gpu", "A100-80GB", "--law", "chinchilla"]) == 0
    out = capsys.readouterr().out
    assert "llama2-7b" in out and "predicted loss" in out


def test_plan_json(capsys):
    assert main(["plan", "--budget-usd", "1e6", "--gpu", "H100-SXM", "--law", "chinchilla-epoch", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["estimate"]["cost_usd"] == pytest.approx(1e6, rel=1e-6) and d["params"] > 1e10


def test_plan_deadline_days(capsys):
    assert main(["plan", "--deadline-days", "30", "--num-gpus", "256", "--gpu", "H100-SXM"]) == 0
    assert "30.0 days" in capsys.readouterr().out


def test_unknown_gpu_lists_names(capsys):
    assert main(["estimate", "--params", "7e9", "--tokens", "1e12", "--gpu", "H900"]) == 2
    err = capsys.readouterr().err
    assert "unknown GPU 'H900'" in err and "H100-SXM" in err and "MI300X" in err


@pytest.mark.parametrize("args,name", [
    (["--params", "0"], "--params"), (["--params", "-7e9"], "--params"), (["--params", "seven"], "--params"),
    (["--tokens", "nan"], "--tokens"), (["--num-gpus", "0"], "--num-gpus"), (["--num-gpus", "1.5"], "--num-gpus"),
])
def test_bad_numbers_name_the_argument(capsys, args, name):
    base = {"--params": "7e9", "--tokens": "1e12"}
    base.update(dict(zip(args[::2], args[1::2], strict=True)))
    argv = ["estimate", "--gpu", "H100-SXM", *[x for kv in base.items() for x in kv]]
    assert main(argv) == 2
    assert f"argument {name}" in capsys.readouterr().err


def test_plan_bad_budget(capsys):
    assert main(["plan", "--budget-usd", "-1", "--gpu", "H100-SXM"]) == 2
    assert "argument --budget-usd" in capsys.readouterr().err
    assert main(["plan", "--gpu", "H100-SXM"]) == 2
    assert "needs one constraint" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [
    ["estimate", "--params", "1e15", "--tokens", "1e12", "--gpu", "H100-SXM", "--json"],
    ["estimate", "--model", "llama3-70b", "--gpu", "L4", "--micro-batch", "64", "--json"],
    ["plan", "--params", "1e15", "--tokens-per-param", "20", "--gpu", "H100-SXM", "--json"],
])
def test_json_when_no_gpu_count_fits(capsys, argv):
    assert main(argv) == 0
    d = json.loads(capsys.readouterr().out)
    est = d.get("estimate", d)
    assert est["num_gpus"] is None and est["memory_per_gpu"]["total"] is None and est["cost_usd"] is None


def test_text_when_no_gpu_count_fits(capsys):
    assert main(["estimate", "--params", "1e15", "--tokens", "1e12", "--gpu", "H100-SXM"]) == 0
    out = capsys.readouterr().out
    assert "does not fit on any number of H100-SXM" in out and "nan" not in out.lower()


def test_plan_budget_beyond_what_fits_exits_2(capsys):
    assert main(["plan", "--budget-usd", "1e40", "--gpu", "H100-SXM"]) == 2
    assert "buys more than any configuration that fits" in capsys.readouterr().err


def test_estimates_docs_commands_run(capsys):
    import re
    import shlex
    from pathlib import Path

    section = (Path(__file__).resolve().parents[1] / "docs" / "estimates.md").read_text()
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    commands = [shlex.split(line.split("#")[0]) for line in block.splitlines() if line.strip()]
    assert len(commands) >= 4 and all(c[0] == "scalebench" for c in commands)
    for argv in commands:
        assert main(argv[1:]) == 0, argv
    out = capsys.readouterr().out
    assert "layout" in out and "tokens/s" in out and "chinchilla-epoch" in out


def test_every_estimate_option_is_on_the_cli():
    import argparse

    from scalebench.planning.cli import register
    from scalebench.planning.estimate import ARGUMENTS
    from scalebench.planning.inference import _ARGS as INFERENCE_ARGS

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    sub = parser._subparsers._group_actions[0].choices["estimate"]
    dests = {a.dest for a in sub._actions}
    renamed = {"context_bytes": "reserve_gib"}  # given in GiB on the command line
    missing = [k for k in (*ARGUMENTS, *INFERENCE_ARGS) if renamed.get(k, k) not in dests]
    assert missing == []
