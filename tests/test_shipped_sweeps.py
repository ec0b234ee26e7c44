"""The sweeps shipped in sweeps/ load as written, and the two comparison sweeps are designed so that each
group's law is determined on its own (docs/families.md, "Ready sweeps")."""

from __future__ import annotations

from pathlib import Path

import pytest

from scalebench.config import load_sweep
from scalebench.sweep.grid import grid_points

SWEEPS = Path(__file__).resolve().parents[1] / "sweeps"
LAW_PARAMETERS = 5  # Chinchilla's E, A, B, alpha, beta: the diagnostics call fewer than 3 points each weak


@pytest.mark.parametrize("path", sorted(SWEEPS.glob("*.toml")), ids=lambda p: p.name)
def test_a_shipped_sweep_loads(path):
    spec = load_sweep(path)
    assert spec.name == path.stem


@pytest.mark.parametrize("name, groups", [("lstm-vs-gpt", 2), ("optimizers", 3)])
def test_each_group_of_a_comparison_sweep_can_determine_its_law(name, groups):
    spec = load_sweep(SWEEPS / f"{name}.toml")
    sizes, budgets = len(spec.model.sizes), len(spec.budget.tokens)
    assert sizes >= 4 and budgets >= 4  # exponents need a spread in both N and D
    assert sizes * budgets >= 3 * LAW_PARAMETERS
    assert len(spec.families) * len(grid_points(spec)) == groups  # every group gets the whole ladder
