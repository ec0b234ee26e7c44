"""``mlflow``: MLflow, by default into a local SQLite store ``FOLDER/mlflow.db`` (``mlflow ui
--backend-store-uri sqlite:///FOLDER/mlflow.db``), artifacts beside it. ``[tracking] mode = "online"``
uses ``MLFLOW_TRACKING_URI`` (a tracking server). Needs ``mlflow-skinny`` with SQLAlchemy and Alembic for the
SQLite store (``scalebench[trackers]``).

The experiment is the project, the run is named by its run id and tagged with its sweep; the config is
logged as flat parameters (``train.lr``) and as ``config.json``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from scalebench._util import open_nofollow
from scalebench.errors import ConfigError
from scalebench.tracking import TrackerContext, flatten

STATUS = {"done": "FINISHED", "diverged": "FAILED", "failed": "FAILED", "interrupted": "KILLED"}
_MAX_PARAM_CHARS = 500  # the shortest limit MLflow stores have had for a parameter's value
_BATCH = 100  # MLflow's limit of parameters per log_batch call


def tracking_uri(ctx: TrackerContext) -> str:
    if ctx.online:
        uri = os.environ.get("MLFLOW_TRACKING_URI", "")
        if not uri:
            raise ConfigError("tracking.mode = 'online' with mlflow needs MLFLOW_TRACKING_URI (the server's URL)")
        return uri
    return f"sqlite:///{Path(ctx.folder).resolve() / 'mlflow.db'}"


@contextlib.contextmanager
def _folder_lock(folder: Path):
    """One worker at a time creates the SQLite store (its schema migrations must not race)."""
    folder.mkdir(parents=True, exist_ok=True)
    with os.fdopen(open_nofollow(folder / ".mlflow.lock"), "w") as f:  # a planted link is refused (ELOOP)
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


class MlflowTracker:
    kind = "mlflow"

    def __init__(self, ctx: TrackerContext) -> None:
        from mlflow.tracking import MlflowClient

        self.ctx = ctx
        with _folder_lock(Path(ctx.folder)):
            self.client = MlflowClient(tracking_uri=tracking_uri(ctx))
            exp = self.client.get_experiment_by_name(ctx.project)
            if exp is None:
                where = None if ctx.online else (Path(ctx.folder).resolve() / "mlflow-artifacts").as_uri()
                self.experiment_id = self.client.create_experiment(ctx.project, artifact_location=where)
            else:
                self.experiment_id = exp.experiment_id
        self.run_id: str | None = None

    def start(self, config: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        run = self.client.create_run(self.experiment_id, run_name=self.ctx.run_id,
                                     tags={"scalebench.sweep": self.ctx.sweep, "scalebench.run_id": self.ctx.run_id})
        self.run_id = run.info.run_id
        params = [Param(k, str(v)[:_MAX_PARAM_CHARS]) for k, v in flatten(config).items()]
        for i in range(0, len(params), _BATCH):
            self.client.log_batch(self.run_id, params=params[i:i + _BATCH])
        self.client.log_dict(self.run_id, dict(config), "config.json")

    def log(self, step: int, metrics: Mapping[str, float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(k, v, now, step) for k, v in metrics.items()])

    def finish(self, status: str) -> None:
        self.client.set_tag(self.run_id, "scalebench.status", status)
        self.client.set_terminated(self.run_id, STATUS.get(status, "FAILED"))


def read(folder: str | Path, project: str, run_name: str) -> dict[str, list[tuple[int, float]]]:
    """Each metric's (step, value) history of the run named ``run_name`` in a local store's experiment."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{Path(folder).resolve() / 'mlflow.db'}")
    exp = client.get_experiment_by_name(project)
    runs = client.search_runs([exp.experiment_id], filter_string=f"attributes.run_name = '{run_name}'")
    if not runs:
        raise FileNotFoundError(f"no MLflow run named {run_name!r} in experiment {project!r} under {folder}")
    run = runs[0]
    return {key: sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, key))
            for key in run.data.metrics}
