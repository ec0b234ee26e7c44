"""A registry of kinds named by ``"package.module:Class"``, imported only when used, that third parties
extend through an entry-point group, and the registries themselves (executor kinds, trackers). They are declared
here, below every package, so that validating a spec (``config``) never imports the machinery it names."""

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


EXECUTORS = LazyRegistry("scalebench.executors", {  # kind -> "module:Class", imported on use
    "local": "scalebench.sweep.executors.local:LocalExecutor",
    "ray": "scalebench.sweep.executors.ray:RayExecutor",
    "slurm": "scalebench.sweep.executors.slurm:SubmititExecutor",
})
TRACKERS = LazyRegistry("scalebench.trackers", {  # kind -> "module:Class", imported only when enabled
    "jsonl": "scalebench.tracking.jsonl:JsonlTracker",
    "tensorboard": "scalebench.tracking.tensorboard:TensorBoardTracker",
    "wandb": "scalebench.tracking.wandb:WandbTracker",
    "mlflow": "scalebench.tracking.mlflow:MlflowTracker",
    "trackio": "scalebench.tracking.trackio:TrackioTracker",
})
