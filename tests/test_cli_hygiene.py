"""The CLI as a daily user meets it: fast --help, exit codes, pipes."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("torch", "pandas", "scipy", "matplotlib", "seaborn")
COMMANDS = ("run", "validate", "status", "export", "env", "profile", "fit", "estimate", "plan", "report")

# One fresh interpreter asks for every help page in turn and records what each newly imported.
_PROBE = """
import contextlib, io, json, sys
from scalebench.cli import main
heavy, seen = {heavy!r}, {{}}
for argv in [["--help"]] + [[c, "--help"] for c in {commands!r}]:
    with contextlib.redirect_stdout(io.StringIO()) as out:
        code = main(argv)
    assert code == 0 and "usage:" in out.getvalue(), (argv, code)
    seen[" ".join(argv)] = [m for m in heavy if m in sys.modules]
print(json.dumps(seen))
"""


def test_help_imports_no_heavy_library():
    res = subprocess.run([sys.executable, "-c", _PROBE.format(heavy=HEAVY, commands=COMMANDS)],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    seen = json.loads(res.stdout)
    assert len(seen) == 1 + len(COMMANDS)
    assert {k: v for k, v in seen.items() if v} == {}


# --- exit codes: 2 for bad input, 1 for failures; no traceback into a closed pipe ----------------------

import pytest  # noqa: E402

from scalebench.cli import main  # noqa: E402


@pytest.mark.parametrize("argv", [["status", "{missing}"], ["fit", "{missing}"], ["report", "{missing}"],
                                  ["export", "{missing}", "--out", "{tmp}/x.csv"]], ids=lambda a: a[0])
def test_a_missing_sweep_folder_is_bad_input(tmp_path, capsys, argv):
    argv = [a.format(missing=tmp_path / "nope", tmp=tmp_path) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "nope" in err and "Traceback" not in err


def test_report_with_an_unknown_gpu_is_bad_input(tmp_path, capsys):
    from scalebench.report.synthetic import make_synthetic_sweep

    folder = make_synthetic_sweep(tmp_path / "s", n_sizes=3, n_budgets=2)
    assert main(["report", str(folder), "--gpu", "H900-IMAGINARY", "--bootstrap", "0"]) == 2
    err = capsys.readouterr().err
    assert "unknown GPU 'H900-IMAGINARY'" in err and "H100-SXM" in err
    assert not (folder / "index.html").exists()


def test_no_broken_pipe_traceback_when_the_reader_goes_away():
    # what `scalebench estimate ... | head -1` does: the reader closes the pipe before the writer is done
    proc = subprocess.Popen([sys.executable, "-m", "scalebench.cli", "estimate", "--params", "1e9", "--tokens",
                             "2e10", "--gpu", "H100-SXM", "--json"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    code = proc.wait(timeout=120)
    assert "Traceback" not in err and "BrokenPipeError" not in err and "Exception ignored" not in err, err
    assert code == 141  # 128 + SIGPIPE, as a Unix tool killed by the closed pipe reports it


def test_long_steps_show_an_elapsed_line_on_a_terminal_only():
    import io
    import time

    from scalebench._ticker import working

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    term, log = Terminal(), io.StringIO()
    with working("report: fitting", stream=term, every_s=0.01):
        time.sleep(0.1)
    with working("report: fitting", stream=log):
        pass
    assert "report: fitting … 0 s" in term.getvalue() and term.getvalue().endswith("\r")
    assert log.getvalue() == ""


# --- light commands import no heavy library: each in a fresh interpreter, on a real sweep folder -------------

_RUN_PROBE = """
import contextlib, io, json, sys
from scalebench.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    code = main({argv!r})
print(json.dumps({{"code": code, "heavy": [m for m in ("torch", "scipy", "matplotlib", "seaborn") if m in sys.modules]}}))
"""


def test_light_commands_import_no_torch_scipy_or_matplotlib(tmp_path):
    from pathlib import Path

    from scalebench.report.synthetic import make_synthetic_sweep

    sweep = make_synthetic_sweep(tmp_path / "sweep", n_sizes=3, n_budgets=2, steps_per_run=5, telemetry_per_run=2)
    spec = Path(__file__).resolve().parents[1] / "sweeps" / "synthetic.toml"
    for argv in (["status", str(sweep)], ["export", str(sweep), "--out", str(tmp_path / "runs.csv")],
                 ["export", str(sweep), "--steps", "--out", str(tmp_path / "steps.csv")], ["validate", str(spec)]):
        res = subprocess.run([sys.executable, "-c", _RUN_PROBE.format(argv=argv)], capture_output=True, text=True,
                             timeout=120)
        assert res.returncode == 0, res.stderr
        assert json.loads(res.stdout.splitlines()[-1]) == {"code": 0, "heavy": []}, argv


def test_each_command_maps_to_the_module_that_registers_it():
    # `scalebench status DIR` loads only scalebench.sweep.cli (COMMAND_OWNERS); a stale map would load the wrong one
    import argparse
    import importlib

    from scalebench.cli import COMMAND_MODULES, COMMAND_OWNERS, build_parser

    registered = {}
    for name in COMMAND_MODULES:
        sub = argparse.ArgumentParser().add_subparsers()
        importlib.import_module(name).register(sub)
        registered |= dict.fromkeys(sub.choices, name)
    assert registered == COMMAND_OWNERS
    for command, owner in COMMAND_OWNERS.items():
        assert set(build_parser([command])._subparsers._group_actions[0].choices) == {
            c for c, m in registered.items() if m == owner}
    assert set(build_parser(["-v"])._subparsers._group_actions[0].choices) == set(registered)
