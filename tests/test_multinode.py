"""One run across nodes: the job Slurm would start, the rank variables each task sets, and a 2-"node" run on
this machine through the real rendezvous (two process groups on loopback), plus the pre-flight's errors."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from scalebench.cli import main
from scalebench.config import ParallelSpec, load_sweep
from scalebench.errors import ConfigError, DeviceError
from scalebench.sweep.executors.base import node_layout, rendezvous_port

submitit = pytest.importorskip("submitit")

BIG = """
[parallel]
ranks = 16
[executor.slurm]
partition = "gpu"
"""


def _cuda(spec_path: Path) -> None:
    spec_path.write_text(spec_path.read_text().replace('device = "cpu"', 'device = "cuda"'))


def test_a_two_node_dry_run_prints_a_job_for_two_8_gpu_nodes(write_sweep, tmp_path, capsys):
    spec = write_sweep(tokens="[16384]", extra=BIG)
    _cuda(spec)
    assert main(["run", str(spec), "--out", str(tmp_path / "o"), "--backend", "slurm", "--dry-run"]) == 0
    text = capsys.readouterr().out
    sbatch = dict(re.findall(r"^#SBATCH --([\w-]+)=?(.*)$", text, flags=re.M))
    assert (sbatch["nodes"], sbatch["ntasks-per-node"], sbatch["gpus-per-node"]) == ("2", "8", "8")
    srun = [ln for ln in text.splitlines() if ln.startswith("srun ")]
    assert len(srun) == 1 and "submitit.core._submit" in srun[0]  # one srun: a task per rank
    assert "torch.distributed.run" not in text and "--standalone" not in text  # no torchrun inside the job
    assert "MASTER_ADDR = the first node of SLURM_JOB_NODELIST" in text
    assert not (tmp_path / "o").exists()


def test_nodes_are_derived_or_given_and_must_split_the_ranks(write_sweep):
    assert node_layout(16, 0, 8, "x") == (2, 8)
    assert node_layout(8, 0, 8, "x") == (1, 8)
    assert node_layout(12, 0, 8, "x") == (2, 6)
    assert node_layout(16, 4, 8, "x") == (4, 4)
    assert node_layout(4, 0, None, "x") == (1, 4)  # CPU ranks: one machine unless nodes is given
    with pytest.raises(ConfigError, match=r"parallel\.ranks = 9 on 2 nodes of 8 GPUs \(x\).*split evenly"):
        node_layout(9, 0, 8, "x")
    with pytest.raises(ConfigError, match=r"parallel\.nodes = 1 puts 16 ranks on each node, but a node has 8"):
        node_layout(16, 1, 8, "x")
    with pytest.raises(ConfigError, match=r"nodes = 3: the 16 ranks must split evenly"):
        ParallelSpec(ranks=16, nodes=3)
    spec = load_sweep(write_sweep(extra="[parallel]\nranks = 16\nnodes = 4\n[executor.slurm]\ngpus_per_node = 4\n"))
    from scalebench.sweep.executors.slurm import job_layout
    from scalebench.sweep.planner import plan_runs

    runs = [dataclasses.replace(r, device="cuda") for r in plan_runs(spec).runs]
    assert job_layout(spec, runs) == (4, 4)
    # where the ranks run does not change a run's result: the same spec hash on 2 or 4 nodes
    two = dataclasses.replace(runs[0], parallel=dataclasses.replace(runs[0].parallel, nodes=2))
    assert two.spec_hash() == runs[0].spec_hash()
    with pytest.raises(ConfigError, match=r"sbatch_extra\.nodes: .*parallel\.nodes"):
        load_sweep(write_sweep(extra="[executor.slurm]\nsbatch_extra = {nodes = 2}\n"))


def test_every_task_of_a_job_derives_the_same_port_and_jobs_differ():
    assert rendezvous_port("4242_3") == rendezvous_port("4242_3")
    ports = {rendezvous_port(str(j)) for j in range(1000, 1100)}
    assert len(ports) > 95 and all(15000 <= p < 30000 for p in ports)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_a_run_on_two_nodes_meets_through_the_real_rendezvous(write_sweep, tmp_path):
    """Two "nodes" (two process sessions) each run one Slurm task's code with Slurm's variables; the ranks
    meet at the allocation's first node (127.0.0.1) and train the run together."""
    from scalebench.store import ResultStore
    from scalebench.sweep.planner import plan_runs, prepare_sweep_corpus

    profiling = "[profiling]\nprofiler = 'on'\nprofiler_wait = 1\nprofiler_warmup = 1\nprofiler_active = 2\n"
    spec = load_sweep(write_sweep(tokens="[6144]", extra="[parallel]\nranks = 2\nnodes = 2\n" + profiling))
    sweep = tmp_path / "sweep"
    corpus = prepare_sweep_corpus(spec, "test")
    run = plan_runs(spec, corpus=corpus, sweep_dir=sweep).runs[0]
    with ResultStore(sweep, create=True) as store:
        store.add_runs([(run.run_id, run.spec_hash(), run.to_dict())])
        store.set_status(run.run_id, "running")
    Path(run.run_dir).mkdir(parents=True)
    job = Path(run.run_dir) / "job.json"
    job.write_text(json.dumps({"run": run.to_dict(), "corpus": corpus.as_dict(), "sweep_dir": str(sweep),
                               "outbox": False, "gpus": []}))
    job_id = f"7{_free_port()}"  # a job id whose derived port nothing else on this machine is likely to hold
    code = "import sys; from scalebench.sweep.executors.slurm import submitit_entry; " \
           "sys.exit(submitit_entry(sys.argv[1], None))"
    procs = []
    for node in range(2):
        env = {**os.environ, "SUBMITIT_EXECUTOR": "slurm", "SLURM_JOB_ID": job_id, "SLURM_NTASKS": "2",
               "SLURM_JOB_NUM_NODES": "2", "SLURM_NODEID": str(node), "SLURM_PROCID": str(node),
               "SLURM_LOCALID": "0", "SLURM_JOB_NODELIST": "127.0.0.1,127.0.0.2",
               "SCALEBENCH_RENDEZVOUS_TIMEOUT_S": "120"}
        procs.append(subprocess.Popen([sys.executable, "-c", code, str(job)], env=env, start_new_session=True,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
    outs = [p.communicate(timeout=600)[0].decode(errors="replace") for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    from scalebench.store import load_results

    row = load_results(sweep).iloc[0]
    assert row["status"] == "done" and row["world_size"] == 2 and row["eval_loss"] > 0
    # each rank traced the same window into the run's traces folder, which holds nothing else: HTA loads it
    traces = Path(run.run_dir) / "traces"
    assert sorted(p.name for p in traces.iterdir()) == ["rank0.trace.json.gz", "rank1.trace.json.gz"]
    from hta.trace_analysis import TraceAnalysis

    assert sorted(TraceAnalysis(trace_dir=str(traces)).t.get_ranks()) == [0, 1]


def _ctx(monkeypatch, rank: int, port: int):
    from scalebench.train.context import DistributedContext

    for key, value in {"RANK": rank, "WORLD_SIZE": 2, "LOCAL_RANK": 0, "MASTER_ADDR": "127.0.0.1",
                       "MASTER_PORT": port, "SCALEBENCH_RENDEZVOUS_TIMEOUT_S": 2}.items():
        monkeypatch.setenv(key, str(value))
    monkeypatch.delenv("TORCHELASTIC_RUN_ID", raising=False)
    return DistributedContext("cpu")


def test_a_rank_whose_rank_0_never_listens_fails_naming_the_address(monkeypatch):
    port = _free_port()
    with pytest.raises(DeviceError, match=rf"rendezvous failed on rank 1 of 2: .*127\.0\.0\.1:{port}"):
        _ctx(monkeypatch, 1, port).start()


def test_rank_0_on_a_taken_port_fails_saying_so(monkeypatch):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(DeviceError, match=rf"rank 0 could not listen on 127\.0\.0\.1:{port}: the port is taken"):
            _ctx(monkeypatch, 0, port).start()


@pytest.mark.slow
def test_submitits_local_executor_runs_each_rank_as_its_own_task(write_sweep, tmp_path):
    from scalebench.store import load_events, load_results
    from scalebench.sweep.runner import run_sweep

    spec = write_sweep(tokens="[6144]", extra='[parallel]\nranks = 2\n[executor.slurm]\ncluster = "local"\n')
    out = tmp_path / "sweep"
    assert run_sweep(spec, out, backend="slurm").counts == {"done": 2}
    assert (load_results(out)["world_size"] == 2).all()
    events = load_events(out)
    started = events[events.kind == "job"]["message"].tolist()
    assert len(started) == 2 and all("(rank 0 of 2; rendezvous 127.0.0.1:" in m for m in started)
