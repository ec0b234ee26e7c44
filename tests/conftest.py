"""Shared fixtures: one corpus cache per test session, tiny sweep specs, a CUDA skip marker."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

TINY_SWEEP = """
name = "{name}"
family = "gpt"
[model]
sizes = ["debug", "100k"]
[budget]
tokens = {tokens}
[train]
batch_tokens = 512
seq_len = 32
lr = 3e-3
compile = "off"
[eval]
interval_steps = 10
eval_tokens = 2048
[devices]
device = "cpu"
cpu_workers = {workers}
"""


@pytest.fixture(scope="session", autouse=True)
def scalebench_home(tmp_path_factory) -> Path:
    """Corpus caches and calibrations go to a session folder, never the user's ~/.cache."""
    home = tmp_path_factory.mktemp("scalebench_home")
    old = os.environ.get("SCALEBENCH_HOME")
    os.environ["SCALEBENCH_HOME"] = str(home)
    yield home
    if old is None:
        os.environ.pop("SCALEBENCH_HOME", None)
    else:
        os.environ["SCALEBENCH_HOME"] = old


@pytest.fixture
def write_sweep(tmp_path):
    """Write a tiny CPU sweep TOML; keyword arguments fill the template or append raw TOML."""

    def _write(name: str = "tiny", tokens: str = "[8192, 16384]", workers: int = 2, extra: str = "") -> Path:
        path = tmp_path / f"{name}.toml"
        path.write_text(TINY_SWEEP.format(name=name, tokens=tokens, workers=workers) + extra)
        return path

    return _write


def pytest_collection_modifyitems(config, items):
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
