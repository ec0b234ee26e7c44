"""Sweep specifications: strict TOML in, frozen dataclasses out.

A sweep file has a few top-level keys and one table per concern::

    name = "quickstart"          # the sweep's folder under reports/
    family = "gpt"
    [model]    sizes / shapes / params  (exactly one: the size ladder)
    [budget]   tokens / tokens_per_param / flops  (exactly one: the data budget per run)
    [data]     the corpus
    [train]    optimizer and schedule
    [eval]     held-out evaluation
    [devices]  where runs go
    [executor] how runs are launched
    [profiling] what each run measures besides its loss

Each table is owned by one dataclass below; ``load_sweep`` rejects unknown keys, wrong types and
impossible values with the file, the key path and the accepted values.
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from scalebench._strict import build
from scalebench.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


MAX_THREADS_PER_WORKER = 1024  # a sanity bound; on this machine the planner also caps it at its core count
MAX_NAME_BYTES = 100  # sweep names become folder names and prefixes of Slurm job names; NAME_MAX is 255


def _positive(name: str, value: float | int | None) -> None:
    if value is not None and not value > 0:
        raise ConfigError(f"{name} must be positive, got {value!r}")


@dataclass(frozen=True, kw_only=True)
class ModelSpec:
    """The size ladder: named flavours, explicit shapes, or target parameter counts (exactly one)."""

    sizes: tuple[str, ...] = ()
    shapes: tuple[dict[str, Any], ...] = ()
    params: tuple[float, ...] = ()
    tie_embeddings: bool = True

    def __post_init__(self) -> None:
        given = [k for k in ("sizes", "shapes", "params") if getattr(self, k)]
        if len(given) != 1:
            raise ConfigError(
                "give exactly one of 'sizes' (flavour names), 'shapes' (tables of n_layer, d_model, n_head) "
                f"or 'params' (target parameter counts); got {given or 'none'}"
            )
        ladder = getattr(self, given[0])
        if len(ladder) < 2:
            raise ConfigError(f"{given[0]}: a ladder needs at least 2 sizes to fit a law, got {len(ladder)}")
        for i, p in enumerate(self.params):
            if not p > 0:
                raise ConfigError(f"params[{i}]: a target parameter count must be positive, got {p!r}")


@dataclass(frozen=True, kw_only=True)
class BudgetSpec:
    """Data per run: explicit token counts, tokens-per-parameter ratios, or isoFLOP compute budgets.

    With ``flops`` every size gets D = C / flops_per_token for each budget C (an isoFLOP design); sizes
    whose D would be under ``min_steps`` batches are dropped from that budget, with a note in the plan.
    """

    tokens: tuple[float, ...] = ()
    tokens_per_param: tuple[float, ...] = ()
    flops: tuple[float, ...] = ()
    max_epochs: float = 16.0  # refuse a run that would repeat the corpus more often (Muennighoff et al. 2023)
    min_steps: int = 10

    def __post_init__(self) -> None:
        given = [k for k in ("tokens", "tokens_per_param", "flops") if getattr(self, k)]
        if len(given) != 1:
            raise ConfigError(
                "give exactly one of 'tokens', 'tokens_per_param' or 'flops' (isoFLOP budgets); "
                f"got {given or 'none'}"
            )
        for key in given:
            for i, v in enumerate(getattr(self, key)):
                if not v > 0:
                    raise ConfigError(f"{key}[{i}] must be positive, got {v!r}")
        _positive("max_epochs", self.max_epochs)
        _positive("min_steps", self.min_steps)

    @property
    def kind(self) -> str:
        return next(k for k in ("tokens", "tokens_per_param", "flops") if getattr(self, k))


@dataclass(frozen=True, kw_only=True)
class DataSpec:
    """The corpus. ``source = "default"`` is the embedded corpus: installed Python sources."""

    source: str = "default"
    include_site_packages: bool = False  # default corpus: add site-packages (dedup by content)
    patterns: tuple[str, ...] = ("*.py", "*.txt", "*.md", "*.rst")  # text folders: files to read
    val_source: str | None = None  # .bin corpora: a separate held-out file (else the tail is held out)
    dtype: Literal["uint8", "uint16", "uint32"] = "uint16"  # .bin corpora
    vocab_size: int | None = None  # .bin corpora: required

    def __post_init__(self) -> None:
        if not self.source:
            raise ConfigError("source must be 'default', a text file or folder, or a .bin token file")
        if self.source.endswith(".bin") and self.vocab_size is None:
            raise ConfigError(f"source {self.source!r} is a token file: set vocab_size (e.g. 50304)")
        _positive("vocab_size", self.vocab_size)


@dataclass(frozen=True, kw_only=True)
class TrainSpec:
    # adamw/adam: Adam with decoupled / L2 weight decay; sgd: with momentum (0 = plain); gd: full-batch
    # gradient descent (the task's whole training set as the batch, where the task allows it)
    optimizer: Literal["adamw", "adam", "sgd", "gd"] = "adamw"
    lr: float = 3e-3
    min_lr_ratio: float = 0.1  # cosine decays to lr·min_lr_ratio
    warmup_share: float = 0.05  # share of the run's steps spent warming up linearly
    schedule: Literal["cosine", "constant"] = "cosine"
    weight_decay: float = 0.1
    betas: tuple[float, ...] = (0.9, 0.95)
    momentum: float = 0.9  # sgd
    grad_clip: float = 1.0  # 0 disables
    batch_tokens: int = 8192  # global batch in tokens (token families)
    batch_samples: int | None = None  # global batch in samples (sample families: cnn, mlp)
    seq_len: int = 128
    micro_batch: int | None = None  # sequences per forward pass; None = the whole batch
    # auto: bf16 on GPU, fp32 on CPU; fp16 with loss scaling; fp8 only on hardware that has it
    precision: Literal["auto", "fp32", "bf16", "fp16", "fp8"] = "auto"
    compile: Literal["auto", "on", "off"] = "auto"
    seed: int = 0
    checkpoint_interval_s: float = 120.0  # 0 disables checkpoints
    divergence_factor: float = 4.0  # loss above this × best smoothed loss = diverged

    def __post_init__(self) -> None:
        for name in ("lr", "batch_tokens", "seq_len"):
            _positive(name, getattr(self, name))
        if not self.divergence_factor > 1:
            raise ConfigError(f"divergence_factor must be > 1 (a multiple of the best loss), got {self.divergence_factor!r}")
        if not 0 <= self.momentum < 1:
            raise ConfigError(f"momentum must be within [0, 1), got {self.momentum!r}")
        if self.seed < 0:
            raise ConfigError(f"seed must be >= 0, got {self.seed!r}")
        _positive("micro_batch", self.micro_batch)
        _positive("batch_samples", self.batch_samples)
        if not 0 <= self.min_lr_ratio <= 1:
            raise ConfigError(f"min_lr_ratio must be within [0, 1], got {self.min_lr_ratio!r}")
        if not 0 <= self.warmup_share < 1:
            raise ConfigError(f"warmup_share must be within [0, 1), got {self.warmup_share!r}")
        if self.weight_decay < 0 or self.grad_clip < 0 or self.checkpoint_interval_s < 0:
            raise ConfigError("weight_decay, grad_clip and checkpoint_interval_s must be >= 0")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ConfigError(f"betas must be two numbers within [0, 1), got {list(self.betas)!r}")
        if self.batch_tokens % self.seq_len:
            raise ConfigError(
                f"batch_tokens ({self.batch_tokens}) must be a multiple of seq_len ({self.seq_len})"
            )
        seqs = self.batch_tokens // self.seq_len
        if self.micro_batch is not None and seqs % self.micro_batch:
            raise ConfigError(
                f"micro_batch ({self.micro_batch}) must divide the batch of {seqs} sequences "
                f"(batch_tokens / seq_len)"
            )

    @property
    def batch_seqs(self) -> int:
        return self.batch_tokens // self.seq_len


@dataclass(frozen=True, kw_only=True)
class EvalSpec:
    held_out_share: float = 0.05  # share of files (or the tail of a .bin) kept out of training
    interval_steps: int = 50
    eval_tokens: int = 32768

    def __post_init__(self) -> None:
        if not 0 < self.held_out_share < 0.5:
            raise ConfigError(f"held_out_share must be within (0, 0.5), got {self.held_out_share!r}")
        _positive("interval_steps", self.interval_steps)
        _positive("eval_tokens", self.eval_tokens)


@dataclass(frozen=True, kw_only=True)
class DevicesSpec:
    device: Literal["auto", "cpu", "cuda"] = "auto"
    gpus: tuple[int, ...] = ()  # indices among the visible CUDA devices (0 = first visible); empty = all
    cpu_workers: int = 2  # concurrent runs on CPU
    threads_per_worker: int = 1

    def __post_init__(self) -> None:
        _positive("cpu_workers", self.cpu_workers)
        _positive("threads_per_worker", self.threads_per_worker)
        if self.threads_per_worker > MAX_THREADS_PER_WORKER or self.cpu_workers > MAX_THREADS_PER_WORKER:
            raise ConfigError(f"cpu_workers and threads_per_worker must be at most {MAX_THREADS_PER_WORKER}, got "
                              f"{self.cpu_workers} and {self.threads_per_worker}")
        if any(g < 0 for g in self.gpus):
            raise ConfigError(f"gpus must be device indices >= 0, got {list(self.gpus)!r}")


@dataclass(frozen=True, kw_only=True)
class ExecutorSpec:
    """How runs are launched: worker processes here, or Slurm jobs through submitit (``scalebench[slurm]``).

    The ``slurm_*`` keys are per job (one run each) and only used with ``kind = "slurm"``.
    """

    kind: Literal["local", "slurm"] = "local"  # a Ray executor is planned, not built yet
    max_attempts: int = 2  # a run that crashes (not diverges) is retried this many times in all
    timeout_s: float = 0.0  # per run; 0 = none (slurm: counted from submission, queue time included)
    max_parallel: int = 8  # slurm: jobs in flight at once (on this machine also capped by its device slots)
    slurm_cluster: Literal["auto", "local", "slurm"] = "auto"  # auto: Slurm where srun is found; local: here
    slurm_partition: str = ""  # empty = the cluster's default partition
    slurm_time_min: int = 60  # the job's time limit
    slurm_gpus_per_job: int = 1  # asked only for CUDA runs
    slurm_cpus_per_job: int = 4
    slurm_mem_gb: float = 32.0

    def __post_init__(self) -> None:
        for name in ("max_attempts", "max_parallel", "slurm_time_min", "slurm_cpus_per_job", "slurm_mem_gb"):
            _positive(name, getattr(self, name))
        if self.timeout_s < 0:
            raise ConfigError(f"timeout_s must be >= 0, got {self.timeout_s!r}")
        if self.slurm_gpus_per_job < 0:
            raise ConfigError(f"slurm_gpus_per_job must be >= 0, got {self.slurm_gpus_per_job!r}")


@dataclass(frozen=True, kw_only=True)
class ParallelSpec:
    """One run on several ranks: GPUs per run on GPU, gloo processes on CPU (started with torchrun).

    ``strategy = "auto"`` picks DDP when the replicated model states fit the device by the memory model,
    else FSDP2 (``fully_shard`` per block). The global batch and seed are those of the 1-rank run.
    """

    ranks: int = 1
    strategy: Literal["auto", "ddp", "fsdp"] = "auto"

    def __post_init__(self) -> None:
        if not isinstance(self.ranks, int) or self.ranks < 1:
            raise ConfigError(f"ranks must be a positive integer, got {self.ranks!r}")


@dataclass(frozen=True, kw_only=True)
class ProfilingSpec:
    enabled: bool = True
    count_flops: bool = True  # one FlopCounterMode step per run -> flops_counted_ratio
    telemetry_interval_s: float = 0.1
    profiler: Literal["auto", "on", "off"] = "auto"  # torch.profiler window: auto = on for GPU runs
    profiler_wait: int = 5
    profiler_warmup: int = 2
    profiler_active: int = 3
    warmup_steps: int = 3  # excluded from throughput statistics
    telemetry: bool = True  # sample NVML (GPU runs)

    def __post_init__(self) -> None:
        _positive("telemetry_interval_s", self.telemetry_interval_s)
        for name in ("profiler_wait", "profiler_warmup", "warmup_steps"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0")
        _positive("profiler_active", self.profiler_active)


@dataclass(frozen=True, kw_only=True)
class SweepSpec:
    name: str
    family: str = "gpt"
    notes: str = ""
    model: ModelSpec
    budget: BudgetSpec
    data: DataSpec = field(default_factory=DataSpec)
    train: TrainSpec = field(default_factory=TrainSpec)
    eval: EvalSpec = field(default_factory=EvalSpec)
    devices: DevicesSpec = field(default_factory=DevicesSpec)
    executor: ExecutorSpec = field(default_factory=ExecutorSpec)
    parallel: ParallelSpec = field(default_factory=ParallelSpec)
    profiling: ProfilingSpec = field(default_factory=ProfilingSpec)

    def __post_init__(self) -> None:
        if not self.name or any(c in self.name for c in "/\\\0") or self.name in (".", ".."):
            raise ConfigError(f"name must be a plain folder name (no slashes), got {self.name!r}")
        if len(self.name.encode("utf-8")) > MAX_NAME_BYTES:
            raise ConfigError(f"name must be at most {MAX_NAME_BYTES} bytes (it names the sweep's folder), got "
                              f"{len(self.name.encode('utf-8'))}: {self.name[:40]!r}...")
        from scalebench.families import get_family

        get_family(self.family)

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_dict(cls, table: dict[str, Any], source: str = "<dict>") -> SweepSpec:
        return build(cls, table, source)


@dataclass(frozen=True, kw_only=True)
class RunSpec:
    """One planned run: everything a worker process needs, JSON round-trippable."""

    run_id: str
    sweep: str
    family: str
    size: str  # the ladder entry as written (flavour name, shape label or target count)
    shape: dict[str, Any]
    params: int
    params_total: int
    flops_per_token: float
    tokens: int
    flops: float
    steps: int
    budget_label: str  # e.g. "tokens=2e5", "tpp=20", "C=1e13"
    train: TrainSpec
    eval: EvalSpec
    data: DataSpec
    profiling: ProfilingSpec
    device: str = "cpu"  # "cpu" or "cuda" (the GPUs are pinned by CUDA_VISIBLE_DEVICES)
    threads: int = 1
    run_dir: str = ""
    unit: Literal["tokens", "samples"] = "tokens"  # what `tokens` and `flops_per_token` count for the family
    parallel: ParallelSpec = field(default_factory=ParallelSpec)
    axes: dict[str, Any] = field(default_factory=dict)  # grid-axis values of this run (optimizer, lr, ...)

    @property
    def batch_rows(self) -> int:
        """Rows (sequences or samples) in one global batch."""
        if self.unit == "samples":
            if self.train.batch_samples is None:
                raise ConfigError(f"run {self.run_id}: a {self.family} run needs train.batch_samples")
            return self.train.batch_samples
        return self.train.batch_seqs

    @property
    def units_per_row(self) -> int:
        return self.train.seq_len if self.unit == "tokens" else 1

    @property
    def batch_units(self) -> int:
        return self.batch_rows * self.units_per_row

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunSpec:
        return build(cls, d, "run spec")

    def spec_hash(self) -> str:
        """What decides a run's result; a finished run whose hash changed must not be silently reused."""
        d = self.to_dict()
        for volatile in ("run_dir", "threads", "device", "profiling"):
            d.pop(volatile)
        # fields added after stores were written: at their defaults they leave the hash as it was
        if d["unit"] == "tokens":
            d.pop("unit")
        if d["parallel"]["ranks"] == 1:
            d.pop("parallel")
        if not d["axes"]:
            d.pop("axes")
        if d["train"]["batch_samples"] is None:
            d["train"].pop("batch_samples")
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


def load_sweep(path: str | Path) -> SweepSpec:
    """Read and validate a sweep TOML file; every error names the file and the key."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such sweep file (see sweeps/ for examples)")
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a UTF-8 text file") from None
    return build(SweepSpec, table, str(path))
