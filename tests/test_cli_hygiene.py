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
