"""A registry of kinds named by ``"package.module:Class"``, imported only when used, that third parties
extend through an entry-point group (executor kinds, trackers)."""

from __future__ import annotations

import importlib


class LazyRegistry:
    def __init__(self, group: str, builtins: dict[str, str]) -> None:
        self.group = group
        self.targets = dict(builtins)  # kind -> "module:Class"
        self._entry_points_loaded = False

    def register(self, kind: str, target: str) -> None:
        self.targets[kind] = target

    def _load_entry_points(self) -> None:
        if not self._entry_points_loaded:
            from importlib.metadata import entry_points

            for ep in entry_points(group=self.group):
                self.targets.setdefault(ep.name, ep.value)
            self._entry_points_loaded = True

    def kinds(self) -> list[str]:
        self._load_entry_points()
        return sorted(self.targets)

    def __contains__(self, kind: str) -> bool:
        self._load_entry_points()
        return kind in self.targets

    def load(self, kind: str) -> type:
        """The class registered under ``kind`` (the caller checks ``kind in registry`` for its own message)."""
        module, name = self.targets[kind].split(":")
        return getattr(importlib.import_module(module), name)
