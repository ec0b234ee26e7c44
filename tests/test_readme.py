"""The README's quickstart, end to end at reduced size: the same commands, a smaller ladder."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import tomllib

from scalebench.cli import main

ROOT = Path(__file__).resolve().parents[1]


def _readme_commands() -> list[list[str]]:
    block = re.search(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.S).group(1)
    lines = [ln for ln in block.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    quickstart = lines[0]
    return [shlex.split(part) for part in quickstart.split("&&")], lines[1]


def _reduced_quickstart(tmp_path: Path) -> Path:
    """sweeps/quickstart.toml with a smaller ladder and budgets, everything else as shipped."""
    text = (ROOT / "sweeps" / "quickstart.toml").read_text()
    spec = tomllib.loads(text)
    # issue 11: enough runs for a five-parameter law to be checked (3 per parameter), on 3+ budgets
    assert len(spec["model"]["shapes"]) >= 5 and len(spec["budget"]["tokens"]) >= 3
    assert len(spec["model"]["shapes"]) * len(spec["budget"]["tokens"]) >= 15
    text = re.sub(r"(?ms)^shapes = \[.*?^\]$", 'sizes = ["debug", "100k", "200k"]', text)
    text = re.sub(r"(?m)^tokens = .*$", "tokens = [16384, 32768]", text)
    text = re.sub(r"(?m)^interval_steps = .*$", "interval_steps = 8", text)
    text = re.sub(r"(?m)^eval_tokens = .*$", "eval_tokens = 4096", text)
    path = tmp_path / "quickstart.toml"
    path.write_text(text)
    return path


@pytest.mark.slow
def test_readme_quickstart_end_to_end(tmp_path, monkeypatch, capsys):
    commands, test_command = _readme_commands()
    assert test_command.strip() == "pip install -e '.[dev]' && python -m pytest -q"
    # torch from PyTorch's CPU index (a torch already there is kept), then scalebench without extras
    assert commands[0] == ["pip", "install", "torch", "--index-url", "https://download.pytorch.org/whl/cpu"]
    assert commands[1] == ["pip", "install", "-e", "."]
    scalebench_cmds = [c[1:] for c in commands if c[0] == "scalebench"]
    assert scalebench_cmds == [["quickstart"]]  # sweep, fit and report in one command
    from scalebench.sweep.cli import quickstart_spec

    assert (ROOT / "sweeps" / "quickstart.toml").resolve() == quickstart_spec()  # the packaged sweep
    spec = _reduced_quickstart(tmp_path)
    monkeypatch.chdir(tmp_path)  # the default output folder is reports/<name>/ under the working directory
    assert main(["quickstart", "--sweep", str(spec), "--no-progress"]) == 0
    out = tmp_path / "reports" / "quickstart"
    import scalebench

    df = scalebench.load_results(out)
    assert (df["status"] == "done").all() and len(df) == 6
    by = df.pivot_table(index="params", columns="tokens", values="eval_loss")
    assert (by.iloc[:, -1] <= by.iloc[:, 0] + 0.05).all()  # more data does not hurt
    assert main(["status", str(out)]) == 0
    assert "6 done" in capsys.readouterr().out
    # the fit step is not wasted: it saves its diagnosed fit, and the page shows that fit and its verdict
    import json

    saved = json.loads((out / "fit.json").read_text())
    verdict = saved["summary"]["diagnostics"]["verdict"]
    assert verdict == "undetermined"  # 6 runs for 5 parameters, on two budgets: and it says so
    assert any("6 points for 5 free parameters" in r for r in saved["summary"]["diagnostics"]["reasons"])
    assert saved["summary"]["n_bootstrap"] > 0
    html = (out / "index.html").read_text()  # quickstart wrote the page too
    assert f'<span id="verdict">{verdict}</span>' in html and "Fit from <code>fit.json</code>" in html
