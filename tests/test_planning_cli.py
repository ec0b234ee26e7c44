"""`scalebench estimate` and `scalebench plan`."""

from __future__ import annotations

import json
import re

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
    assert 0.9e6 <= d["estimate"]["cost_usd"] <= 1e6 * (1 + 1e-6) and d["params"] > 1e10  # never over budget


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
    missing = [k for k in (*ARGUMENTS, *INFERENCE_ARGS) if k not in dests]
    assert missing == []


def _out_of_range(a):
    """Values just outside one row of the argument table (in the flag's own unit)."""
    from scalebench.planning.estimate.arguments import range_text  # noqa: F401 (the same table)

    low = a.cli_low if a.cli_low is not None else a.low
    high = a.cli_high if a.cli_high is not None else a.high
    bad = [low - (1 if low else 1e-3) * max(1.0, abs(low)) * a.scale] if low > 0 or not a.low_open else [low]
    if high != float("inf"):
        bad.append(high * 10)
    if a.kind == "integer":
        bad.append(low + 0.5 if low >= 1 else 1.5)
    return [v / a.scale for v in bad]


def _number_flags():
    from scalebench.planning.estimate.arguments import ARGS, CLI_ONLY

    return [a for a in (*ARGS, *CLI_ONLY) if a.numeric]


@pytest.mark.parametrize("a", _number_flags(), ids=lambda a: a.name)
def test_every_number_flag_is_range_checked_by_its_own_name(capsys, a):
    """Generated from the argument table: each number flag, out of its range, exits 2 naming the flag."""
    mode = {"context", "input_tokens", "batch", "output_tokens", "request_rate", "decode_efficiency", "prefill_mfu"}
    plan = {"flops", "budget_usd", "gpu_hours", "deadline_days", "target_loss", "tokens_per_param", "max_days"}
    import argparse

    from scalebench.planning.cli import register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    sub = parser._subparsers._group_actions[0].choices["plan" if a.name in plan else "estimate"]
    flags = {o: act for act in sub._actions for o in act.option_strings}
    if a.cli_flag not in flags:
        pytest.skip(f"{a.cli_flag} is not a flag of this command yet")
    for value in _out_of_range(a):
        argv = ["plan" if a.name in plan else "estimate", "--gpu", "H100-SXM", a.cli_flag, repr(value)]
        if a.name in mode:
            argv += ["--mode", "inference", "--params", "7e9"]
        assert main(argv) == 2, (a.name, value)
        err = capsys.readouterr().err
        assert re.search(rf"argument {re.escape(a.cli_flag)}(/--[a-z-]+)*: must be", err), err  # aliases follow


@pytest.mark.parametrize("a", [a for a in _number_flags() if a.name in __import__(
    "scalebench.planning.estimate.arguments", fromlist=["ARGUMENTS"]).ARGUMENTS], ids=lambda a: a.name)
def test_every_number_argument_is_range_checked_in_the_library(a):
    """The same table, through estimate(): ConfigError naming the argument."""
    from scalebench.errors import ConfigError
    from scalebench.planning.estimate import estimate

    bad = [v * a.scale for v in _out_of_range(a) if a.cli_low is None or v < a.low]
    bad = [v for v in bad if v < a.low or v > a.high or (a.kind == "integer" and v != round(v))
           or (v == a.low and a.low_open)]
    for value in bad:
        kw = {"params": 7e9, "tokens": 1e12, "gpu": "H100-SXM", a.name: value}
        with pytest.raises(ConfigError, match=f"^{a.name} must be"):
            estimate(**kw)


def test_reserve_larger_than_the_card_names_the_flag():
    from scalebench.errors import ConfigError
    from scalebench.planning.estimate import estimate

    with pytest.raises(ConfigError, match="--reserve-gib"):
        estimate(params=7e9, tokens=1e12, gpu="H100-SXM", context_bytes=100 * 2**30)


def test_plan_without_a_gpu_count_finishes_within_a_stated_deadline(capsys):
    """Not an 871-day run on the fewest GPUs that fit: the fewest that finish within 90 days, said."""
    assert main(["plan", "--budget-usd", "1e6", "--gpu", "H100", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["estimate"]["wall_clock_s"] <= 90 * 86400 and "90 days (the default deadline" in d["gpu_count_rule"]
    assert d["estimate"]["cost_usd"] <= 1e6 * (1 + 1e-6)
    assert main(["plan", "--budget-usd", "1e6", "--gpu", "H100", "--max-days", "400"]) == 0
    out = capsys.readouterr().out
    assert "within 400 days (--max-days)" in out
