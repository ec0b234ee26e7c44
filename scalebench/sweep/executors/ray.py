"""``kind = "ray"``: each run a Ray task asking for its GPUs and CPUs (``pip install 'scalebench[ray]'``).

The task (``ray_entry``) starts the same worker command a local run uses, as a child process, so thread
counts, the environment, GPU pinning and kill semantics are those of a local worker: cancelling the task
stops the worker gracefully (its run is left pending with its checkpoint), a killed Ray worker process
takes its worker down with it (parent-death signal) and the sweep fails or retries that run. Workers
report through the run's outbox (the sweep folder must be on a file system every node sees); the sweep
applies it to the store. Ray's own task retries are off: ``executor.max_attempts`` decides, as for
every executor.

GPU request: ``parallel.ranks / devices.runs_per_gpu`` (a fraction packs small runs onto one GPU);
CPU request: ``executor.ray.cpus_per_run``, else ``devices.threads_per_worker x parallel.ranks``.

A run on several ranks is a *group*: a placement group of one bundle per node (``STRICT_SPREAD`` over the
nodes its ranks need, ``STRICT_PACK`` on one), one actor per rank in its node's bundle, each starting the
worker itself (no torchrun) with its rank's variables. Rank 0's actor picks its node's IP address and a
free port there; Ray hands that address to the other actors before they start.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from scalebench._util import open_append, write_text_atomic
from scalebench.config import ExecutorSpec, RunSpec
from scalebench.errors import ConfigError, ScalebenchError
from scalebench.sweep.executors.base import (
    JOB_LOST,
    Launch,
    Slot,
    node_layout,
    rank_env,
    spawn_worker,
    tail,
    wait_forwarding_stop,
    worker_command,
    worker_env,
)
from scalebench.sweep.executors.reaper import Reaper

EXIT_INTERRUPTED = 130


def _import_ray():
    try:
        import ray
    except ImportError:
        raise ConfigError("executor.kind = 'ray' needs Ray, which is not installed: pip install 'scalebench[ray]' "
                          "(or run with --backend local)") from None
    return ray


def task_resources(run: RunSpec, spec: Any) -> dict[str, float]:
    """The Ray resource request of ``run``'s task."""
    ranks = spec.parallel.ranks
    cpus = spec.executor.ray.cpus_per_run or float(run.threads * ranks)
    gpus = ranks / spec.devices.runs_per_gpu if run.device == "cuda" else 0.0
    return {"num_cpus": cpus, "num_gpus": gpus}


def ray_entry(job_path: str, driver_pid: int | None = None, driver_host: str = "") -> int:
    """What a Ray task runs: the run's worker as a child process; returns its exit code. On the sweep's own
    machine the worker is killed as soon as the sweep process is gone (Ray notices a dead driver only seconds
    later, while the worker would go on training and writing its outbox)."""
    import ray

    from scalebench.sweep.outbox import OutboxSink

    path = Path(job_path)
    job = json.loads(path.read_text())
    run = RunSpec.from_dict(job["run"])
    slot = Slot(label="ray", gpus=tuple(str(g) for g in ray.get_gpu_ids()))  # the GPUs Ray gave this task
    job["gpus"] = slot.gpu_indices()
    write_text_atomic(path, json.dumps(job), what="job file")  # the sampler watches the GPUs this task got
    with open_append(path.parent / "worker.log") as log:
        proc = spawn_worker(worker_command(run, path), worker_env(run, slot), stdout=log)
        with OutboxSink(run.run_dir) as sink:
            sink.set_pid(run.run_id, proc.pid)
            sink.add_event(run.run_id, "job", f"Ray task started on {socket.gethostname()}, worker pid {proc.pid}")
        # ray.cancel raises KeyboardInterrupt here: the worker stops cleanly
        return wait_forwarding_stop(proc, watch_pid=driver_pid if driver_host == socket.gethostname() else None)


def group_layout(run: RunSpec, spec: Any, gpus_per_node: int | None) -> tuple[int, int]:
    """(nodes, ranks per node) of a run on several ranks: ``parallel.nodes``, or as many nodes of
    ``gpus_per_node`` GPUs as its ranks need (CPU ranks: one node unless ``parallel.nodes`` says more)."""
    per = spec.executor.ray.gpus_per_node or gpus_per_node
    return node_layout(spec.parallel.ranks, spec.parallel.nodes, per if run.device == "cuda" else None,
                       "executor.ray.gpus_per_node")


def group_bundles(run: RunSpec, spec: Any, nodes: int, per_node: int) -> tuple[list[dict[str, float]], str]:
    """The placement group of a run on several ranks: one bundle per node, and its strategy."""
    cpus = task_resources(run, spec)["num_cpus"] / spec.parallel.ranks  # per rank
    bundle = {"CPU": cpus * per_node, **({"GPU": float(per_node)} if run.device == "cuda" else {})}
    return [dict(bundle) for _ in range(nodes)], "STRICT_SPREAD" if nodes > 1 else "STRICT_PACK"


class RankActor:
    """One rank of a group run (a Ray actor in its node's bundle): starts that rank's worker."""

    def address(self) -> tuple[str, int]:
        """This node's IP address as Ray knows it and a port the OS finds free here (rank 0's rendezvous)."""
        import ray

        with socket.socket() as s:
            s.bind(("", 0))
            port = s.getsockname()[1]
        return ray.util.get_node_ip_address(), port

    def run(self, job_path: str, master: tuple[str, int], rank: int, per_node: int) -> int:
        import ray

        from scalebench.sweep.outbox import OutboxSink

        path = Path(job_path)
        job = json.loads(path.read_text())
        run = RunSpec.from_dict(job["run"])
        slot = Slot(label="ray", gpus=tuple(str(g) for g in ray.get_gpu_ids()))  # this rank's GPU
        env = worker_env(run, slot)
        # one GPU visible per rank: its local rank among what it sees is 0
        env.update(rank_env(rank=rank, local_rank=0, world_size=run.parallel.ranks, local_world_size=1,
                            node_rank=rank // per_node, master_addr=master[0], master_port=master[1]))
        command = worker_command(run, path, torchrun=False)
        if rank == 0:  # the telemetry sampler (rank 0) watches the GPU this actor got; atomic: others read it
            from scalebench._util import write_text_atomic

            write_text_atomic(path, json.dumps({**job, "gpus": slot.gpu_indices()}), what="job file")
        with open(path.parent / ("worker.log" if rank == 0 else f"worker-rank{rank}.log"), "ab") as log:
            proc = spawn_worker(command, env, stdout=log)
            if rank == 0:
                with OutboxSink(run.run_dir) as sink:
                    sink.set_pid(run.run_id, proc.pid)
                    sink.add_event(run.run_id, "job", f"Ray actor (rank 0 of {run.parallel.ranks}) started on "
                                   f"{socket.gethostname()}, rendezvous {master[0]}:{master[1]}, worker pid {proc.pid}")
            return wait_forwarding_stop(proc)


class _RayGroupHandle:
    """A run on several ranks: its actors, their result refs and its placement group."""

    pid = None

    def __init__(self, ray: Any, actors: list, refs: list, group: Any, run: RunSpec, log_path: Path) -> None:
        self._ray, self.actors, self.refs, self.group = ray, actors, refs, group
        self._run, self._log_path = run, log_path
        self._code: int | None = None
        self._failure: int | None = None
        self._error = ""

    def _outcome(self, ref: Any) -> int:
        from ray.exceptions import TaskCancelledError

        try:
            value = self._ray.get(ref)
            return value if isinstance(value, int) else 1
        except TaskCancelledError:
            return EXIT_INTERRUPTED
        except Exception as exc:  # noqa: BLE001 - an actor or its node died
            self._error = f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0]}"
            return JOB_LOST

    def poll(self) -> int | None:
        if self._code is not None:
            return self._code
        ready, _ = self._ray.wait(self.refs, num_returns=len(self.refs), timeout=0)
        codes = [self._outcome(r) for r in self.refs if r in ready]
        failed = [c for c in codes if c != 0]
        if failed and self._failure is None:  # the first rank to end badly says how the run ended
            self._failure = failed[0]
            if len(codes) < len(self.refs):
                self.kill()  # the other ranks would wait on it until their collectives time out
        if len(codes) < len(self.refs):
            return None
        self._code = self._failure if self._failure is not None else 0
        return self._code

    def terminate(self) -> None:
        for ref in self.refs:
            self._ray.cancel(ref, force=False)

    def kill(self) -> None:
        for actor in self.actors:
            self._ray.kill(actor)

    def wait(self, timeout: float) -> int | None:
        self._ray.wait(self.refs, num_returns=len(self.refs), timeout=timeout)
        return self.poll()

    def describe(self, code: int) -> str:
        where = f"Ray actors of {self._run.run_id} ({self._run.parallel.ranks} ranks; log {self._log_path})"
        if code == JOB_LOST:
            return f"{where} ended without recording an outcome ({self._error}): an actor or its node died"
        return f"{where}: rank 0's worker exited with code {code}" if code >= 0 else \
            f"{where}: a worker was killed by signal {-code}"

    def log_tail(self, lines: int = 8) -> str:
        return tail(self._log_path, lines)

    def close(self) -> None:
        from ray.util import remove_placement_group

        self.kill()
        remove_placement_group(self.group)


class _RayHandle:
    pid = None  # the task records its worker's pid through the outbox

    def __init__(self, ray: Any, ref: Any, run: RunSpec, log_path: Path) -> None:
        self._ray, self.ref, self._run, self._log_path = ray, ref, run, log_path
        self._code: int | None = None
        self._error = ""
        try:  # where this attempt's output will start in the run's (appended) log
            self._log_offset = log_path.stat().st_size
        except OSError:
            self._log_offset = 0

    def poll(self) -> int | None:
        if self._code is not None:
            return self._code
        ready, _ = self._ray.wait([self.ref], timeout=0)
        if not ready:
            return None
        from ray.exceptions import TaskCancelledError

        try:
            value = self._ray.get(self.ref)
            self._code = value if isinstance(value, int) else 1
        except TaskCancelledError:
            self._code = EXIT_INTERRUPTED
        except Exception as exc:  # noqa: BLE001 - WorkerCrashedError, node lost, ...: the run's outcome is unknown
            self._error = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            self._error = f"{type(exc).__name__}: {self._error}"
            self._code = JOB_LOST
        return self._code

    def terminate(self) -> None:
        self._ray.cancel(self.ref, force=False)

    def kill(self) -> None:
        self._ray.cancel(self.ref, force=True)

    def wait(self, timeout: float) -> int | None:
        self._ray.wait([self.ref], timeout=timeout)
        return self.poll()

    def describe(self, code: int) -> str:
        where = f"Ray task of {self._run.run_id} (log {self._log_path})"
        if code == JOB_LOST:
            return (f"{where} ended without recording an outcome ({self._error}): its Ray worker process or "
                    "node died, or it was killed")
        if code < 0:
            return f"{where}: its worker was killed by signal {-code}"
        return f"{where}: its worker exited with code {code}"

    def log_tail(self, lines: int = 8) -> str:
        return tail(self._log_path, lines, self._log_offset)

    def close(self) -> None:
        pass


class RayExecutor:
    """Each run a Ray task on a cluster reached by ``executor.ray.address``, or on a Ray started here."""

    kind = "ray"
    remote = True  # tasks may run on other nodes: they report through their outbox, never SQLite

    def __init__(self, spec: ExecutorSpec, sweep_dir: Path, python: str | None = None) -> None:
        self._ray = _import_ray()  # fail fast, before planning; connect when the sweep starts
        self.spec = spec.ray
        self._owned = False
        self._reaper: Reaper | None = None
        self._remote: Any = None
        self._sweep_spec: Any = None
        self._notes: tuple[str, ...] = ()

    def _connect(self) -> None:
        ray = self._ray
        if ray.is_initialized():  # a notebook (or a test session) already holds a connection: use it
            return
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": "warning",
                                  "configure_logging": False}
        if self.spec.address:
            kwargs["address"] = self.spec.address
        else:
            kwargs.update(num_cpus=self.spec.num_cpus, num_gpus=self.spec.num_gpus)
            # a Ray started here ends with this process, killed or not (see reaper.py)
            self._reaper = Reaper() if sys.platform.startswith("linux") else None
        try:
            ray.init(**kwargs)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            self._close_reaper()
            raise ConfigError(f"executor.ray.address = {self.spec.address!r}: cannot connect to a Ray cluster "
                              f"({exc}); start one (`ray start --head`) or leave address empty to start Ray "
                              "here") from None
        except Exception as exc:  # noqa: BLE001 - Ray raises a bare Exception when its node does not come up
            self._close_reaper()
            raise ScalebenchError(f"executor.kind = 'ray': the Ray instance started here did not come up ({exc}); "
                                  "its logs are in Ray's session folder (/tmp/ray/session_latest/logs); on a "
                                  "loaded machine try again, or run with --backend local") from exc
        except BaseException:
            self._close_reaper()
            raise
        if self._reaper is not None:
            self._reaper.adopted()
        self._owned = True

    def slots(self, runs: Sequence[RunSpec], spec: Any) -> list[Slot]:
        self._connect()
        self._sweep_spec = spec
        self._remote = self._ray.remote(max_retries=0)(ray_entry)
        cluster = self._ray.cluster_resources()
        if runs:
            need = task_resources(runs[0], spec)
            have = {"num_cpus": cluster.get("CPU", 0.0), "num_gpus": cluster.get("GPU", 0.0)}
            short = [k for k, v in need.items() if v > have[k]]
            if short:
                raise ConfigError(f"executor.kind = 'ray': each run asks for {need['num_cpus']:g} CPUs and "
                                  f"{need['num_gpus']:g} GPUs, but the Ray cluster has {have['num_cpus']:g} CPUs and "
                                  f"{have['num_gpus']:g} GPUs in all; lower devices.threads_per_worker, "
                                  "parallel.ranks or executor.ray.cpus_per_run, or add nodes")
        if runs and runs[0].device == "cpu" and spec.devices.device == "auto" and cluster.get("GPU", 0) > 0:
            self._notes = ("executor.kind = 'ray': devices.device = 'auto' found no GPU on this machine, so the "
                           f"runs trained on CPU although the Ray cluster has {cluster['GPU']:g} GPUs; set "
                           "devices.device = 'cuda' for GPU tasks",)
        # every run in flight at once: Ray queues the tasks until their resources are free
        return [Slot(label=f"ray:{i}") for i in range(max(1, len(runs)))]

    def _node_gpus(self) -> int | None:
        """The most GPUs any alive node of the cluster has (how many ranks one node can hold)."""
        gpus = [n["Resources"].get("GPU", 0) for n in self._ray.nodes() if n.get("Alive")]
        return int(max(gpus)) if gpus and max(gpus) > 0 else None

    def _start_group(self, item: Launch) -> _RayGroupHandle:
        from ray.util.placement_group import placement_group
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        run, spec = item.run, self._sweep_spec
        nodes, per_node = group_layout(run, spec, self._node_gpus())
        bundles, strategy = group_bundles(run, spec, nodes, per_node)
        group = placement_group(bundles, strategy=strategy, name=f"scalebench-{run.run_id}")
        actor_cls = self._ray.remote(max_restarts=0)(RankActor)
        cpus = bundles[0]["CPU"] / per_node
        actors = [actor_cls.options(num_cpus=cpus, num_gpus=1 if run.device == "cuda" else 0,
                                    scheduling_strategy=PlacementGroupSchedulingStrategy(
                                        placement_group=group, placement_group_bundle_index=rank // per_node))
                  .remote() for rank in range(spec.parallel.ranks)]
        master = actors[0].address.remote()  # resolved by Ray before any rank's run starts: no wait here
        refs = [a.run.remote(str(item.job_path), master, rank, per_node) for rank, a in enumerate(actors)]
        return _RayGroupHandle(self._ray, actors, refs, group, run, item.job_path.parent / "worker.log")

    def start(self, launches: Sequence[Launch]) -> list[Any]:
        handles: list[Any] = []
        for item in launches:
            if item.run.parallel.ranks > 1:
                handles.append(self._start_group(item))
                continue
            opts = task_resources(item.run, self._sweep_spec)
            ref = self._remote.options(name=f"scalebench-{item.run.run_id}", **opts).remote(
                str(item.job_path), os.getpid(), socket.gethostname())
            handles.append(_RayHandle(self._ray, ref, item.run, item.job_path.parent / "worker.log"))
        return handles

    def describe(self, runs: Sequence[RunSpec], spec: Any, sweep_dir: Path) -> str:
        address = self.spec.address or os.environ.get("RAY_ADDRESS", "")  # ray.init's own order
        where = (f"the Ray cluster at {address}" if address else
                 f"a Ray instance started here (num_cpus={self.spec.num_cpus}, num_gpus={self.spec.num_gpus})")
        lines = [f"# ray: {len(runs)} tasks on {where}; nothing started"]
        for run in runs:
            res = task_resources(run, spec)
            if run.parallel.ranks > 1:
                nodes, per_node = group_layout(run, spec, None)
                bundles, strategy = group_bundles(run, spec, nodes, per_node)
                cmd = worker_command(run, Path(run.run_dir) / "job.json", sys.executable, torchrun=False)
                lines.append(f"group {run.run_id}: placement group {strategy} of {nodes} bundle(s) {bundles[0]}, "
                             f"{run.parallel.ranks} actors (one per rank, {per_node} per node); rank 0's actor "
                             "shares its node's IP and a free port as MASTER_ADDR:MASTER_PORT; each runs "
                             + " ".join(cmd))
                continue
            cmd = worker_command(run, Path(run.run_dir) / "job.json", sys.executable)
            lines.append(f"task {run.run_id}: num_cpus={res['num_cpus']:g} num_gpus={res['num_gpus']:g} runs "
                         + " ".join(cmd))
        return "\n".join(lines) + "\n"

    def notes(self) -> tuple[str, ...]:
        return self._notes

    def abandon(self, run_dir: Path) -> None:
        pass  # Ray ends a dead driver's tasks, their workers die with them; the runner waits for any left here

    def close(self) -> None:
        if self._owned and self._ray.is_initialized():
            self._ray.shutdown()
        self._owned = False
        self._close_reaper()

    def _close_reaper(self) -> None:
        if self._reaper is not None:
            self._reaper.close()  # ends whatever Ray left running
        self._reaper = None

