"""The docs say what the code does: dependencies, conventions, where the design lives."""

from __future__ import annotations

import ast
import importlib.metadata as md
import re
import sys
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]


def _requirement_names(reqs: list[str]) -> set[str]:
    return {re.split(r"[\s<>=!\[;~]", r, maxsplit=1)[0].lower().replace("_", "-") for r in reqs}


def _test_imports() -> set[str]:
    """Top-level modules the tests import or importorskip (third-party ones are filtered by the caller)."""
    names = set()
    for path in (ROOT / "tests").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
            elif (isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "importorskip" and node.args
                  and isinstance(node.args[0], ast.Constant)):
                names.add(str(node.args[0].value).split(".")[0])
    local = {path.stem for path in (ROOT / "tests").rglob("*.py")}  # conftest, shared helper modules
    return names - set(sys.stdlib_module_names) - {"scalebench"} - local


def test_every_test_dependency_is_installed_by_the_dev_extra():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    installed = _requirement_names(project["dependencies"]) | _requirement_names(
        project["optional-dependencies"]["dev"])
    dists = md.packages_distributions()
    missing = {}
    for module in sorted(_test_imports()):
        owners = {d.lower().replace("_", "-") for d in dists.get(module, [module])}
        if not owners & installed:
            missing[module] = sorted(owners)
    assert missing == {}, f"tests import these, but pip install -e '.[dev]' does not install them: {missing}"
    # pandas' to_parquet in the export test needs pyarrow, which no test imports by name
    assert "pyarrow" in _requirement_names(project["optional-dependencies"]["dev"])


def test_readme_points_into_the_repository_and_states_the_flop_convention_as_computed():
    readme = (ROOT / "README.md").read_text()
    assert "../shared" not in readme and "DESIGN.md" not in readme
    assert "docs/ARCHITECTURE.md" in readme and (ROOT / "docs" / "ARCHITECTURE.md").is_file()
    for link in re.findall(r"\]\(([^)#:]+)\)", readme):  # relative links resolve inside the repository
        assert (ROOT / link).exists(), link
    assert "6·N_matmul + 12·L·T·d" in readme
    assert "scalebench[ray]" in readme and "--backend ray" in readme  # the Ray executor runs (tests/test_ray.py)

    from scalebench.families.gpt import GPTShape, flops_per_token, params

    s = GPTShape(n_layer=3, d_model=64, n_head=4, vocab_size=256, seq_len=32)
    layernorm = 3 * 4 * 64 + 2 * 64
    assert flops_per_token(s) == 6 * (params(s) - layernorm) + 12 * 3 * 32 * 64  # what the README says


def test_architecture_names_the_modules_that_exist():
    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
    for name in re.findall(r"`((?:[a-z_]+/)+|[a-z_]+\.py)`", text):
        hits = list((ROOT / "scalebench").glob(f"**/{name.rstrip('/')}"))
        assert hits, f"docs/ARCHITECTURE.md names {name}, which is not in scalebench/"
