"""The family registry: built-ins always present, case-insensitive names, third-party entry points."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import textwrap

import pytest

from scalebench.errors import ConfigError
from scalebench.families import base, get_family, list_families, register_family


@pytest.fixture
def registry(monkeypatch):
    """A fresh registry, as in a new process that has not loaded any family yet."""
    monkeypatch.setattr(base, "_REGISTRY", {})
    monkeypatch.setattr(base, "_LOADED", False)
    monkeypatch.setattr(base, "_BROKEN", {})
    return base


def _toy(name: str):
    import scalebench.families.gpt as gpt

    return dataclasses.replace(gpt.GPT_FAMILY, name=name)


def test_gpt_survives_another_family_registering_first(registry):
    register_family(_toy("first"))
    assert get_family("gpt").name == "gpt"  # used to be lost: the registry looked non-empty
    assert {"first", "gpt"} <= set(list_families())


def test_names_are_case_insensitive(registry):
    register_family(_toy("MyFamily"))
    assert get_family("myfamily").name == "MyFamily" and get_family("MYFAMILY").name == "MyFamily"
    assert get_family("GPT").name == "gpt"


def test_an_unknown_family_lists_the_known_ones(registry):
    with pytest.raises(ConfigError, match=r"unknown model family 'nope'; known families: .*gpt"):
        get_family("nope")


def test_a_family_needs_a_debug_flavour():
    import scalebench.families.gpt as gpt

    with pytest.raises(ValueError, match="debug"):
        dataclasses.replace(gpt.GPT_FAMILY, name="x", flavours={"big": {}})


def test_an_entry_point_family_is_seen_by_a_fresh_process(tmp_path):
    """A third-party package registers through the `scalebench.families` group; a worker subprocess sees it."""
    (tmp_path / "toyfam.py").write_text(textwrap.dedent("""
        import dataclasses
        import scalebench.families.gpt as gpt
        FAMILY = dataclasses.replace(gpt.GPT_FAMILY, name="toy")
    """))
    dist = tmp_path / "toyfam-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: toyfam\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[scalebench.families]\ntoy = toyfam:FAMILY\nbroken = toyfam:NOPE\n")
    code = ("from scalebench.families import get_family, list_families\n"
            "print(get_family('Toy').name, 'toy' in list_families())\n"
            "try:\n    get_family('broken')\nexcept Exception as e:\n    print(type(e).__name__, e)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    first, second = proc.stdout.strip().splitlines()
    assert first == "toy True"
    assert second.startswith("ConfigError") and "failed to load" in second and "NOPE" in second
