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
    [tracking] experiment trackers mirroring each run's metrics (off by default)

Each table is owned by one dataclass below; ``load_sweep`` rejects unknown keys, wrong types and
impossible values with the file, the key path and the accepted values.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

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
class LlamaOptions:
    """``[model.llama]``: options the llama family applies to every size of the ladder
    (``scalebench/families/llama.py``)."""

    kv_heads: int = 0  # grouped-query attention: at most this many K/V heads per layer (0 = one per query head)
    qk_norm: bool = False  # RMSNorm on queries and keys (OLMo 2, Qwen 3)
    tie_embeddings: bool = False  # Llama unties the output head
    z_loss: float = 0.0  # coefficient of the log²Z auxiliary loss (PaLM: 1e-4)
    rope_theta: float = 10000.0

    def __post_init__(self) -> None:
        if self.kv_heads < 0:
            raise ConfigError(f"kv_heads must be >= 0 (0 = one K/V head per query head), got {self.kv_heads!r}")
        if not 0 <= self.z_loss < 1:
            raise ConfigError(f"z_loss must be in [0, 1), got {self.z_loss!r}")
        if not self.rope_theta > 1:
            raise ConfigError(f"rope_theta must be above 1, got {self.rope_theta!r}")

    def shape_fields(self) -> dict[str, Any]:
        return {"kv_heads": self.kv_heads, "qk_norm": self.qk_norm, "tie_embeddings": self.tie_embeddings,
                "z_loss": float(self.z_loss), "rope_theta": float(self.rope_theta)}


@dataclass(frozen=True, kw_only=True)
class ModelSpec:
    """The size ladder: named flavours, explicit shapes, or target parameter counts (exactly one)."""

    sizes: tuple[str, ...] = ()
    shapes: tuple[dict[str, Any], ...] = ()
    params: tuple[float, ...] = ()
    tie_embeddings: bool = True  # gpt and lstm (llama: [model.llama])
    llama: LlamaOptions = field(default_factory=LlamaOptions)
    # how initialisation, per-layer learning rates and output scale follow width (mup) and depth (completep)
    # from a base shape whose hyperparameters were tuned (scalebench/families/parametrization.py)
    parametrization: Literal["standard", "mup", "completep"] = "standard"
    base_d_model: int | None = None  # mup, completep: the width the base hyperparameters were tuned at
    base_n_layer: int | None = None  # completep: the depth they were tuned at

    def __post_init__(self) -> None:
        _positive("base_d_model", self.base_d_model)
        _positive("base_n_layer", self.base_n_layer)
        if self.parametrization != "standard" and self.base_d_model is None:
            raise ConfigError(f"parametrization = {self.parametrization!r} scales from a base width: set "
                              "model.base_d_model (the d_model your learning rate was tuned at, e.g. the smallest size's)")
        if self.parametrization == "completep" and self.base_n_layer is None:
            raise ConfigError("parametrization = 'completep' scales depth too: set model.base_n_layer (the depth "
                              "your learning rate was tuned at)")
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
class ImagesDataSpec:
    """``[data.images]``: the image task (cnn). ``data.source = "default"`` is the procedural set
    (``scalebench/data/images.py``); a folder of class folders is an ImageFolder; a folder holding
    CIFAR-10's ``data_batch_*.bin`` is read in that binary layout."""

    image_size: int | None = None  # None: 16 for the procedural set, 32 for CIFAR-10 and ImageFolder
    channels: Literal[1, 3] = 3
    num_classes: int = 10  # procedural set
    train_samples: int = 50000  # procedural set
    val_samples: int = 5000  # procedural set (ImageFolder without a val/ folder: eval.held_out_share)
    seed: int = 0  # procedural set: the same seed gives the same images on every machine

    def __post_init__(self) -> None:
        for name in ("image_size", "train_samples", "val_samples"):
            _positive(name, getattr(self, name))
        if self.image_size is not None and self.image_size < 4:
            raise ConfigError(f"image_size must be at least 4 pixels, got {self.image_size}")
        if not 2 <= self.num_classes <= 1000:
            raise ConfigError(f"num_classes must be within [2, 1000], got {self.num_classes!r}")
        if self.seed < 0:
            raise ConfigError(f"seed must be >= 0, got {self.seed!r}")


@dataclass(frozen=True, kw_only=True)
class TeacherDataSpec:
    """``[data.teacher]``: the teacher–student task (mlp). Inputs x ~ N(0, I); labels drawn from a fixed
    random teacher network's softmax at ``temperature``, mixed with uniform ``label_noise``, so the Bayes
    loss is known exactly (``scalebench/data/teacher.py``)."""

    input_dim: int = 8
    num_classes: int = 10
    hidden: int = 32  # the teacher's width
    layers: int = 1  # the teacher's hidden layers
    temperature: float = 0.25  # of the teacher's standardised logits: lower = less label noise
    label_noise: float = 0.0  # share of labels drawn uniformly instead
    train_samples: int = 50000
    val_samples: int = 20000
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("input_dim", "hidden", "layers", "temperature", "train_samples", "val_samples"):
            _positive(name, getattr(self, name))
        if not 2 <= self.num_classes <= 1000:
            raise ConfigError(f"num_classes must be within [2, 1000], got {self.num_classes!r}")
        if not 0 <= self.label_noise < 1:
            raise ConfigError(f"label_noise must be within [0, 1), got {self.label_noise!r}")
        if self.seed < 0:
            raise ConfigError(f"seed must be >= 0, got {self.seed!r}")


@dataclass(frozen=True, kw_only=True)
class SyntheticDataSpec:
    """``[data.synthetic]`` (``data.source = "synthetic"``, the GPT and LSTM families): a language whose
    irreducible loss is known exactly. Each document is one training window: one or two header tokens naming one of
    ``sources`` Markov chains over ``symbols`` tokens (chain k drawn with probability ∝ (k+1)^-zipf_exponent),
    then tokens from that chain to the end of the window (rows Dirichlet(``concentration``)); see
    ``scalebench/data/synthetic.py``."""

    sources: int = 1024  # chains; at most symbols² (the header spells the chain's index in two tokens)
    symbols: int = 32  # the vocabulary
    zipf_exponent: float = 1.5  # of the chains' frequencies: > 1, larger = fewer chains matter
    concentration: float = 0.1  # Dirichlet parameter of each transition row: lower = more predictable
    seq_len: int = 64  # tokens predicted per document; must equal train.seq_len
    val_documents: int = 512  # the held-out set (evaluate with eval.eval_tokens >= val_documents·seq_len)
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("sources", "symbols", "concentration", "seq_len", "val_documents"):
            _positive(name, getattr(self, name))
        if not 2 <= self.symbols <= 256:
            raise ConfigError(f"symbols must be within [2, 256], got {self.symbols!r}")
        if self.sources > self.symbols**2:
            raise ConfigError(f"sources must be at most symbols² = {self.symbols**2} (two header tokens name "
                              f"the chain), got {self.sources!r}; lower sources or raise symbols")
        if not 1 < self.zipf_exponent <= 5:
            raise ConfigError(f"zipf_exponent must be within (1, 5], got {self.zipf_exponent!r}")
        if self.seq_len < 2:
            raise ConfigError(f"seq_len must be at least 2, got {self.seq_len!r}")
        if self.seed < 0:
            raise ConfigError(f"seed must be >= 0, got {self.seed!r}")


def parse_tokenizer(value: Any) -> tuple[str, Any]:
    """(``"bytes"`` | ``"bpe"`` | ``"file"``, its argument); ConfigError naming ``data.tokenizer`` otherwise."""
    if value == "bytes":
        return "bytes", None
    if isinstance(value, dict):
        unknown = sorted(set(value) - {"bpe", "train_bytes"})
        if unknown or "bpe" not in value:
            raise ConfigError(f"data.tokenizer: a BPE is {{bpe = VOCAB}} (optionally train_bytes = N), got {value!r}")
        vocab, cap = value["bpe"], value.get("train_bytes")
        if not isinstance(vocab, int) or isinstance(vocab, bool) or not 257 <= vocab <= 2**20:
            raise ConfigError(f"data.tokenizer.bpe: the vocabulary must be an integer in 257..{2**20} (the 256 "
                              f"bytes, the end-of-text token and merges), got {vocab!r}")
        if cap is not None and (not isinstance(cap, int) or isinstance(cap, bool) or cap < 1):
            raise ConfigError(f"data.tokenizer.train_bytes must be a positive integer, got {cap!r}")
        return "bpe", {"bpe": vocab, "train_bytes": cap}
    if isinstance(value, str) and value.endswith(".json"):
        return "file", value
    raise ConfigError(f"data.tokenizer: expected \"bytes\", {{bpe = VOCAB}} or the path of a tokenizer.json, "
                      f"got {value!r}")


@dataclass(frozen=True, kw_only=True)
class DataSpec:
    """The corpus. ``source = "default"`` is the embedded corpus: installed Python sources."""

    source: str = "default"
    include_site_packages: bool = False  # default corpus: add site-packages (dedup by content)
    patterns: tuple[str, ...] = ("*.py", "*.txt", "*.md", "*.rst")  # text folders: files to read
    val_source: str | None = None  # .bin corpora: a separate held-out file (else the tail is held out)
    dtype: Literal["uint8", "uint16", "uint32"] = "uint16"  # .bin corpora
    vocab_size: int | None = None  # .bin corpora: required
    tokenizer: str | dict[str, Any] = "bytes"  # text: "bytes", {bpe = 4096} or a tokenizer.json (data/tokenizer.py)
    text_column: str = "text"  # JSONL / Parquet sources: the field holding each document (data/documents.py)
    images: ImagesDataSpec = field(default_factory=ImagesDataSpec)  # the image task (cnn)
    teacher: TeacherDataSpec = field(default_factory=TeacherDataSpec)  # the teacher-student task (mlp)
    synthetic: SyntheticDataSpec = field(default_factory=SyntheticDataSpec)  # source = "synthetic" (text)

    def __post_init__(self) -> None:
        if not self.source:
            raise ConfigError("source must be 'default', a text file or folder, or a .bin token file")
        if self.source.endswith(".bin") and self.vocab_size is None:
            raise ConfigError(f"source {self.source!r} is a token file: set vocab_size (e.g. 50304)")
        _positive("vocab_size", self.vocab_size)
        parse_tokenizer(self.tokenizer)
        one_file = self.source.endswith(".bin") and not any(ch in self.source for ch in "*?[")  # a glob: shards
        if self.tokenizer != "bytes" and (one_file or self.source == "synthetic"):
            raise ConfigError(f"tokenizer: {self.source!r} is already tokens; a tokenizer applies to text sources "
                              "(remove data.tokenizer)")
        for i, pattern in enumerate(self.patterns):
            if not pattern or pattern.startswith(("/", "~")) or ".." in Path(pattern).parts:
                raise ConfigError(f"patterns[{i}] = {pattern!r}: a pattern matches files inside data.source; give "
                                  "one relative to it, without '..' (e.g. '*.txt' or 'books/*.txt')")


@dataclass(frozen=True, kw_only=True)
class TrainSpec:
    # adamw/adam: Adam with decoupled / L2 weight decay; sgd: with momentum (0 = plain); gd: full-batch
    # gradient descent (the task's whole training set as the batch, where the task allows it)
    optimizer: Literal["adamw", "adam", "sgd", "gd"] = "adamw"
    lr: float = 3e-3
    min_lr_ratio: float = 0.1  # cosine (and wsd's cooldown) decays to lr·min_lr_ratio
    warmup_share: float = 0.05  # share of the run's steps spent warming up linearly
    # wsd: warm-up, stable at lr, then a linear cooldown over cooldown_share of the steps (Hägele et al. 2024);
    # a size's shorter budgets branch off its longest run's stable phase instead of training from scratch
    schedule: Literal["cosine", "constant", "wsd"] = "cosine"
    cooldown_share: float = 0.2  # wsd
    warmup_steps: int | None = None  # absolute warm-up (overrides warmup_share); wsd sets it per size
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
    # size-aware lr, batch, betas, warm-up and weight decay by a named rule (scalebench/recipes.py);
    # recipe_table: the user's own values per ladder size ({"1m" = {lr = 3e-3}, ...}); keys given in [train]
    # beside a recipe win over it (the loader lists them in `pinned`)
    recipe: str = ""
    recipe_table: dict[str, dict[str, Any]] = field(default_factory=dict)
    pinned: tuple[str, ...] = ()

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
        if not 0 < self.cooldown_share <= 1:
            raise ConfigError(f"cooldown_share must be within (0, 1], got {self.cooldown_share!r}")
        if self.warmup_steps is not None and self.warmup_steps < 0:
            raise ConfigError(f"warmup_steps must be >= 0, got {self.warmup_steps!r}")
        if self.weight_decay < 0 or self.grad_clip < 0 or self.checkpoint_interval_s < 0:
            raise ConfigError("weight_decay, grad_clip and checkpoint_interval_s must be >= 0")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ConfigError(f"betas must be two numbers within [0, 1), got {list(self.betas)!r}")
        if self.batch_tokens % self.seq_len:
            raise ConfigError(
                f"batch_tokens ({self.batch_tokens}) must be a multiple of seq_len ({self.seq_len})"
            )
        seqs = self.batch_tokens // self.seq_len
        # a sample family's batch is batch_samples; a token family's is batch_tokens / seq_len sequences
        rows, what = ((self.batch_samples, "samples (batch_samples)") if self.batch_samples is not None
                      else (seqs, "sequences (batch_tokens / seq_len)"))
        if self.micro_batch is not None and rows % self.micro_batch:
            raise ConfigError(f"micro_batch ({self.micro_batch}) must divide the batch of {rows} {what}")

        if self.recipe or self.recipe_table:
            from scalebench.recipes import check_recipe

            check_recipe(self)

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
    """Where runs go. A *slot* is a group of ``parallel.ranks`` GPUs (one run per group) or, on CPU, a group
    of ``parallel.ranks`` worker processes; ``runs_per_gpu`` > 1 packs several small runs onto each GPU."""

    device: Literal["auto", "cpu", "cuda"] = "auto"
    gpus: tuple[int, ...] = ()  # indices among the visible CUDA devices (0 = first visible); empty = all
    cpu_workers: int = 2  # worker processes at once on CPU (a run on N ranks takes N of them)
    threads_per_worker: int = 1
    # Packing is opt-in: on one H200, four small-model processes sharing the GPU gave only 1.12x the
    # aggregate throughput of one (and each packed run's own tokens/s and MFU understate the hardware).
    runs_per_gpu: int = 1

    def __post_init__(self) -> None:
        _positive("cpu_workers", self.cpu_workers)
        _positive("threads_per_worker", self.threads_per_worker)
        _positive("runs_per_gpu", self.runs_per_gpu)
        if self.threads_per_worker > MAX_THREADS_PER_WORKER or self.cpu_workers > MAX_THREADS_PER_WORKER:
            raise ConfigError(f"cpu_workers and threads_per_worker must be at most {MAX_THREADS_PER_WORKER}, got "
                              f"{self.cpu_workers} and {self.threads_per_worker}")
        if any(g < 0 for g in self.gpus):
            raise ConfigError(f"gpus must be device indices >= 0, got {list(self.gpus)!r}")
        if len(set(self.gpus)) < len(self.gpus):
            raise ConfigError(f"gpus lists a device twice: {list(self.gpus)!r}")


@dataclass(frozen=True, kw_only=True)
class LocalExecutorSpec:
    """``[executor.local]``: each run a worker process on this machine, one per device slot."""

    python: str = ""  # the workers' interpreter; empty = the one running the sweep


@dataclass(frozen=True, kw_only=True)
class RayExecutorSpec:
    """``[executor.ray]``: each run a Ray task asking for its GPUs (``parallel.ranks / devices.runs_per_gpu``)
    and CPUs; the task starts the same worker process a local run uses (``pip install 'scalebench[ray]'``)."""

    address: str = ""  # "auto", "HOST:6379" or "ray://HOST:10001"; "" = $RAY_ADDRESS, else start Ray here
    num_cpus: int | None = None  # the started instance's CPUs (None: all of this machine's)
    num_gpus: int | None = None  # the started instance's GPUs (None: what Ray detects)
    cpus_per_run: float | None = None  # a task's CPU request; None = devices.threads_per_worker x parallel.ranks
    gpus_per_node: int | None = None  # a run on more ranks spans nodes; None = the most any node of the cluster has

    def __post_init__(self) -> None:
        _positive("num_cpus", self.num_cpus)
        _positive("gpus_per_node", self.gpus_per_node)
        if self.num_gpus is not None and self.num_gpus < 0:
            raise ConfigError(f"num_gpus must be >= 0, got {self.num_gpus!r}")
        _positive("cpus_per_run", self.cpus_per_run)
        if self.address and (self.num_cpus is not None or self.num_gpus is not None):
            raise ConfigError("num_cpus and num_gpus size a Ray instance started here; with address set "
                              "the cluster's own resources are used: remove them")


# sbatch options scalebench (or submitit) writes itself: sbatch_extra must not repeat them
_SBATCH_OWNED = {"job-name": "", "partition": "partition", "account": "account", "time": "time_min",
                 "nodes": "", "ntasks-per-node": "", "cpus-per-task": "cpus_per_job", "gpus-per-node": "gpus_per_job",
                 "mem": "mem_gb", "array": "array_parallelism", "output": "", "error": "", "signal": ""}


@dataclass(frozen=True, kw_only=True)
class SlurmExecutorSpec:
    """``[executor.slurm]``: the runs as Slurm job arrays through submitit (``pip install 'scalebench[slurm]'``).
    Every key is per job (one run per job) except ``array_parallelism``."""

    cluster: Literal["auto", "local", "slurm"] = "auto"  # auto: Slurm where srun is found; local: here
    partition: str = ""  # empty = the cluster's default partition
    account: str = ""  # empty = the user's default account
    time_min: int = 60  # the job's time limit
    gpus_per_job: int | None = None  # None = parallel.ranks for CUDA runs (none for CPU runs); one-node jobs
    # a run on more ranks than this spans nodes (8 on the common HGX/DGX nodes; set your cluster's)
    gpus_per_node: int = 8
    cpus_per_job: int = 4  # per task: one task per rank
    mem_gb: float = 32.0
    array_parallelism: int = 8  # jobs of an array running at once (sbatch --array=0-K%P)
    setup: tuple[str, ...] = ()  # shell lines run before the job, e.g. "module load cuda/12.4"
    sbatch_extra: dict[str, Any] = field(default_factory=dict)  # more #SBATCH options, e.g. {qos = "high"}
    python: str = ""  # the interpreter on the nodes; empty = the one running the sweep

    def __post_init__(self) -> None:
        for name in ("time_min", "cpus_per_job", "mem_gb", "array_parallelism", "gpus_per_node"):
            _positive(name, getattr(self, name))
        if self.gpus_per_job is not None and self.gpus_per_job < 0:
            raise ConfigError(f"gpus_per_job must be >= 0, got {self.gpus_per_job!r}")
        for name in ("partition", "account"):
            if any(not c.isprintable() or c.isspace() for c in getattr(self, name)):
                raise ConfigError(f"{name} = {getattr(self, name)!r}: a Slurm name has no spaces or control "
                                  "characters (it is written into the job script)")
        for key, value in self.sbatch_extra.items():
            flag = key.replace("_", "-")
            if not key or not all(c.isalnum() or c in "-_" for c in key) or (
                    isinstance(value, str) and any(not c.isprintable() for c in value)):
                raise ConfigError(f"sbatch_extra.{key}: an #SBATCH option is one line: letters, digits, '-' and "
                                  f"'_' in its name and no newline or control character in its value (got "
                                  f"{value!r}); give each option as its own key")
            if flag in _SBATCH_OWNED:
                fix = (f"set executor.slurm.{_SBATCH_OWNED[flag]} instead" if _SBATCH_OWNED[flag]
                       else "a run spans nodes by parallel.ranks beyond executor.slurm.gpus_per_node, or "
                            "parallel.nodes" if flag in ("nodes", "ntasks-per-node")
                       else "scalebench writes it for every job")
                raise ConfigError(f"sbatch_extra.{key}: --{flag} is not an extra option; {fix}")
            if isinstance(value, (dict, list, tuple)) or value is False:
                raise ConfigError(f"sbatch_extra.{key}: got {value!r}, expected a string, a number or true")


@dataclass(frozen=True, kw_only=True)
class ExecutorSpec:
    """How runs are launched: ``kind`` picks the executor (``scalebench run --backend`` overrides it); each
    kind has its own table (``[executor.local]``, ``[executor.ray]``, ``[executor.slurm]``), read only when
    that kind runs. The keys here hold for every kind."""

    kind: str = "local"  # a registered executor kind (scalebench.sweep.executors.list_executors())
    max_attempts: int = 2  # a run that crashes (not diverges) is retried this many times in all
    timeout_s: float = 0.0  # per run; 0 = none (ray, slurm: counted from submission, queue time included)
    local: LocalExecutorSpec = field(default_factory=LocalExecutorSpec)
    ray: RayExecutorSpec = field(default_factory=RayExecutorSpec)
    slurm: SlurmExecutorSpec = field(default_factory=SlurmExecutorSpec)

    # keys of the first (flat) executor table: the strict loader names their new spelling
    renamed_keys: ClassVar[dict[str, str]] = {
        "slurm_cluster": "slurm.cluster", "slurm_partition": "slurm.partition", "slurm_time_min": "slurm.time_min",
        "slurm_gpus_per_job": "slurm.gpus_per_job", "slurm_cpus_per_job": "slurm.cpus_per_job",
        "slurm_mem_gb": "slurm.mem_gb", "max_parallel": "slurm.array_parallelism",
    }

    def __post_init__(self) -> None:
        from scalebench._lazy_registry import EXECUTORS

        object.__setattr__(self, "kind", self.kind.lower())
        if self.kind not in EXECUTORS:
            raise ConfigError(f"kind: got {self.kind!r}, expected a registered executor kind: "
                              f"{', '.join(repr(k) for k in EXECUTORS.kinds())}")
        _positive("max_attempts", self.max_attempts)
        if self.timeout_s < 0:
            raise ConfigError(f"timeout_s must be >= 0, got {self.timeout_s!r}")


@dataclass(frozen=True, kw_only=True)
class ParallelSpec:
    """One run on several ranks: GPUs per run on GPU, gloo processes on CPU (started with torchrun).

    ``strategy = "auto"`` picks DDP when the replicated model states fit the device by the memory model,
    else FSDP2 (``fully_shard`` per block). The global batch and seed are those of the 1-rank run.
    """

    ranks: int = 1
    strategy: Literal["auto", "ddp", "fsdp"] = "auto"
    # nodes one run spans: 0 = derived (ranks over the executor's GPUs per node); ranks split evenly over them
    nodes: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.ranks, int) or self.ranks < 1:
            raise ConfigError(f"ranks must be a positive integer, got {self.ranks!r}")
        if self.nodes < 0 or (self.nodes and self.ranks % self.nodes):
            raise ConfigError(f"nodes = {self.nodes}: the {self.ranks} ranks must split evenly over the nodes; "
                              "give a divisor of ranks (or 0 to derive it)")


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
class TrackingSpec:
    """``[tracking]``: trackers that mirror what each run reports to the store (``scalebench/tracking/``).

    A JSON-lines log in each run folder is always written; ``kinds`` adds more (tensorboard, wandb, mlflow,
    trackio; ``scalebench run --track``). Nothing is read back from them: the store stays the truth.
    """

    kinds: tuple[str, ...] = ()
    project: str = ""  # W&B project, MLflow experiment, Trackio project; "" = the sweep's name
    folder: str = ""  # the trackers' local files; "" = SWEEP_DIR/tracking
    mode: Literal["offline", "online"] = "offline"  # online: send to the service the environment configures

    def __post_init__(self) -> None:
        from scalebench.tracking import check_kinds

        object.__setattr__(self, "kinds", tuple(k.lower() for k in self.kinds))
        check_kinds(self.kinds, "kinds")

    def for_job(self, sweep_dir: Path, sweep: str) -> dict[str, Any]:
        """What a worker needs to open the trackers (job.json's ``tracking``): absolute folder, resolved names."""
        folder = Path(self.folder) if self.folder else Path(sweep_dir) / "tracking"
        return {"kinds": list(self.kinds), "project": self.project or sweep, "sweep": sweep,
                "folder": str(folder.resolve()), "mode": self.mode}


OPTIMIZERS = ("adamw", "adam", "sgd", "gd")
PRECISIONS = ("fp32", "bf16", "fp16", "fp8")
# [train] keys a [grid.per_optimizer.NAME] table may set for the runs of that optimizer
PER_OPTIMIZER_KEYS = ("lr", "momentum", "weight_decay", "betas", "warmup_share", "schedule", "min_lr_ratio",
                      "grad_clip")


@dataclass(frozen=True, kw_only=True)
class GridSpec:
    """``[grid]``: axes crossed with the size ladder and the budgets; each run carries its point in ``axes``.

    ``family`` replaces the top-level ``family`` (families must share a data task); ``momentum`` applies to
    the ``sgd`` and ``gd`` runs only (Adam runs are not repeated over it); ``batch`` is the global batch in
    the family's unit (tokens for gpt/lstm: ``train.batch_tokens``; samples for cnn/mlp:
    ``train.batch_samples``); ``gd`` takes the whole training set as its batch, so ``batch`` does not
    apply to it. ``[grid.per_optimizer.sgd]`` (any optimizer listed) sets [train] keys for that optimizer's
    runs, e.g. its own learning rate; ``[grid.per_family.lstm]`` does the same for one family's runs (an LSTM
    wants a larger Adam learning rate than a transformer). A key may be set by one of the two tables only.
    """

    family: tuple[str, ...] = ()
    optimizer: tuple[Literal["adamw", "adam", "sgd", "gd"], ...] = ()
    momentum: tuple[float, ...] = ()
    lr: tuple[float, ...] = ()
    batch: tuple[int, ...] = ()
    precision: tuple[Literal["fp32", "bf16", "fp16", "fp8"], ...] = ()
    per_optimizer: dict[str, dict[str, Any]] = field(default_factory=dict)
    per_family: dict[str, dict[str, Any]] = field(default_factory=dict)

    AXES = ("family", "optimizer", "momentum", "lr", "batch", "precision")

    def __post_init__(self) -> None:
        for name in self.AXES:
            values = getattr(self, name)
            if len(set(values)) < len(values):
                raise ConfigError(f"grid.{name}: values must be distinct, got {list(values)!r}")
        for i, v in enumerate(self.lr):
            _positive(f"grid.lr[{i}]", v)
        for i, v in enumerate(self.batch):
            _positive(f"grid.batch[{i}]", v)
        for i, v in enumerate(self.momentum):
            if not 0 <= v < 1:
                raise ConfigError(f"grid.momentum[{i}] must be within [0, 1), got {v!r}")
        object.__setattr__(self, "family", tuple(f.lower() for f in self.family))
        for name in self.per_optimizer:
            if name not in OPTIMIZERS:
                raise ConfigError(f"grid.per_optimizer.{name}: not an optimizer; one of {', '.join(OPTIMIZERS)}")
            if self.optimizer and name not in self.optimizer:
                raise ConfigError(f"grid.per_optimizer.{name}: {name!r} is not in grid.optimizer "
                                  f"{list(self.optimizer)!r}; list it there or remove the table")
        object.__setattr__(self, "per_family", {k.lower(): v for k, v in self.per_family.items()})
        for name in self.per_family:
            if self.family and name not in self.family:
                raise ConfigError(f"grid.per_family.{name}: {name!r} is not in grid.family "
                                  f"{list(self.family)!r}; list it there or remove the table")
        for kind in ("per_optimizer", "per_family"):
            for name, table in getattr(self, kind).items():
                if not isinstance(table, dict):
                    raise ConfigError(f"grid.{kind}.{name}: expected a table of [train] keys")
                for key in table:
                    if key not in PER_OPTIMIZER_KEYS:
                        raise ConfigError(f"grid.{kind}.{name}.{key}: not settable per "
                                          f"{kind.split('_')[1]}; one of {', '.join(PER_OPTIMIZER_KEYS)}")
                    if key in self.AXES and getattr(self, key):
                        raise ConfigError(f"grid.{kind}.{name}.{key}: {key} is also a grid axis; give it "
                                          "in one place")
        for fam, ftable in self.per_family.items():
            for opt, otable in self.per_optimizer.items():
                both = sorted(set(ftable) & set(otable))
                if both:
                    raise ConfigError(f"grid.per_family.{fam}.{both[0]} and grid.per_optimizer.{opt}.{both[0]} "
                                      "both set it; give each key in one of the two tables")

    @property
    def axes(self) -> dict[str, tuple]:
        """The axes given, in the fixed order of run ids."""
        return {name: getattr(self, name) for name in self.AXES if getattr(self, name)}


@dataclass(frozen=True, kw_only=True)
class LadderSpec:
    """``[ladder]``: how the ladder checks itself (scalebench/laws/health.py). ``seeds = K`` trains every cell
    K times with seeds train.seed + 0..K-1, so the fits can weigh cells by their measured noise; ``probe``
    adds learning-rate probes (x0.5 and x2 of the cell's lr) at the smallest and largest size."""

    seeds: int = 1
    probe: bool = False
    probe_factors: tuple[float, ...] = (0.5, 2.0)

    def __post_init__(self) -> None:
        if not isinstance(self.seeds, int) or isinstance(self.seeds, bool) or not 1 <= self.seeds <= 64:
            raise ConfigError(f"ladder.seeds must be an integer within [1, 64], got {self.seeds!r}")
        if not self.probe_factors or any(not f > 0 or f == 1 for f in self.probe_factors):
            raise ConfigError(f"ladder.probe_factors must be positive multiples of the lr other than 1, got "
                              f"{list(self.probe_factors)!r}")


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
    grid: GridSpec = field(default_factory=GridSpec)
    tracking: TrackingSpec = field(default_factory=TrackingSpec)
    ladder: LadderSpec = field(default_factory=LadderSpec)

    def __post_init__(self) -> None:
        if not self.name or any(c in self.name for c in "/\\\0") or self.name in (".", ".."):
            raise ConfigError(f"name must be a plain folder name (no slashes), got {self.name!r}")
        odd = [c for c in self.name if not c.isprintable()]
        if odd or self.name != self.name.strip() or self.name.startswith("-"):
            what = f"character {odd[0]!r} (U+{ord(odd[0]):04X})" if odd else "leading or trailing space, or '-'"
            raise ConfigError(f"name {self.name!r}: it names the sweep's folder and jobs, so it must be printable "
                              f"text without control or direction characters; remove the {what}")
        if len(self.name.encode("utf-8")) > MAX_NAME_BYTES:
            raise ConfigError(f"name must be at most {MAX_NAME_BYTES} bytes (it names the sweep's folder), got "
                              f"{len(self.name.encode('utf-8'))}: {self.name[:40]!r}...")
        from scalebench.families import get_family

        for family in self.families:
            get_family(family)
        if self.devices.runs_per_gpu > 1 and self.parallel.ranks > 1:
            raise ConfigError(f"devices.runs_per_gpu = {self.devices.runs_per_gpu} packs small runs onto one GPU, "
                              f"but parallel.ranks = {self.parallel.ranks} gives each run whole GPUs; set one of "
                              "them to 1")
        self._check_grid()

    @property
    def families(self) -> tuple[str, ...]:
        """The families the sweep trains: ``grid.family`` when given, else ``family``."""
        return self.grid.family or (self.family.lower(),)

    def _check_grid(self) -> None:
        from scalebench.families import get_family

        g = self.grid
        fams = [get_family(f) for f in self.families]
        if g.family and self.family.lower() not in g.family and self.family.lower() != "gpt":
            raise ConfigError(f"family = {self.family!r} but grid.family = {list(g.family)!r}: grid.family "
                              "replaces family; remove one")
        if g.momentum and not {"sgd", "gd"} & set(g.optimizer or (self.train.optimizer,)):
            raise ConfigError("grid.momentum applies to sgd and gd runs; list one of them in grid.optimizer "
                              "(or set train.optimizer) — Adam's momentum is train.betas")
        tasks = sorted({f.task for f in fams})
        if len(tasks) > 1:
            which = ", ".join(f"{f.name}: {f.task}" for f in fams)
            raise ConfigError(f"grid.family mixes data tasks ({which}): one sweep trains on one data set, so "
                              "families must share a task (gpt and lstm share 'text'); split it into one "
                              "sweep per task")
        if len(fams) > 1 and self.model.shapes:
            raise ConfigError("model.shapes: explicit shapes belong to one family; with several in "
                              "grid.family use model.sizes (flavour names every family has) or model.params")
        if g.per_family and not g.family and set(g.per_family) - {self.family.lower()}:
            raise ConfigError(f"grid.per_family: {sorted(g.per_family)} but the sweep trains {self.family!r} only")
        tables = [(f"per_optimizer.{n}", {"optimizer": n, **t}) for n, t in g.per_optimizer.items()]
        tables += [(f"per_family.{n}", t) for n, t in g.per_family.items()]
        for name, table in tables:
            try:
                dataclasses.replace(self.train, **table)
            except (ConfigError, TypeError) as exc:
                raise ConfigError(f"grid.{name}: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_dict(cls, table: dict[str, Any], source: str = "<dict>") -> SweepSpec:
        return build(cls, _pin_recipe_keys(table), source)


def _pin_recipe_keys(table: dict[str, Any]) -> dict[str, Any]:
    """A [train] key given beside a recipe wins over it: record which were given (once, as written)."""
    train = table.get("train")
    if not isinstance(train, dict) or not (train.get("recipe") or train.get("recipe_table")) or "pinned" in train:
        return table
    from scalebench.recipes import PINNABLE

    return {**table, "train": {**train, "pinned": [k for k in PINNABLE if k in train]}}


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
    # wsd branches: the trunk (a size's longest run) saves its state at these steps; a branch starts from the
    # trunk's state at its own cooldown's first step ({"run_id", "step", "spec_hash"} of the trunk, and how
    # many branches "shared" that step)
    fork_steps: tuple[int, ...] = ()
    fork_from: dict[str, Any] = field(default_factory=dict)

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
        d["parallel"].pop("nodes")  # where the ranks run does not change the result
        if d["parallel"]["ranks"] == 1:
            d.pop("parallel")
        if not d["axes"]:
            d.pop("axes")
        if d["train"]["batch_samples"] is None:
            d["train"].pop("batch_samples")
        for key, default in (("cooldown_share", 0.2), ("warmup_steps", None)):
            if d["train"][key] == default:
                d["train"].pop(key)
        for key, default in (("recipe", ""), ("recipe_table", {}), ("pinned", [])):
            if d["train"].get(key) == default:
                d["train"].pop(key)
        for key in ("fork_steps", "fork_from"):  # wsd bookkeeping: a branch is the run it would be from scratch
            d.pop(key)
        for key, default in (("tokenizer", "bytes"), ("text_column", "text")):  # added later: at their defaults
            if d["data"].get(key) == default:  # the hash stays as it was
                d["data"].pop(key)
        for table, default in (("images", ImagesDataSpec()), ("teacher", TeacherDataSpec()),
                               ("synthetic", SyntheticDataSpec())):
            if d["data"].get(table) == asdict(default):
                d["data"].pop(table)
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


def load_sweep(path: str | Path) -> SweepSpec:
    """Read and validate a sweep TOML file; every error names the file and the key."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such sweep file (see sweeps/ for examples)")
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8-sig"))  # a byte-order mark (Windows editors) is fine
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a UTF-8 text file") from None
    if "extends" in table:
        table = _extended(table, path)
    return build(SweepSpec, _pin_recipe_keys(table), str(path))


# In an extension, a ladder or budget given replaces the stored one of whichever kind (one kind per table).
_ALTERNATIVES = {"model": ("sizes", "shapes", "params"), "budget": ("tokens", "tokens_per_param", "flops")}


def _extended(table: dict[str, Any], path: Path) -> dict[str, Any]:
    """A sweep extension (``extends = "SWEEP_DIR"``, as `scalebench next --write` writes one): the folder's
    stored spec with this file's keys laid over it, table by table. ``extends`` is relative to this file."""
    table = dict(table)
    where = table.pop("extends")
    if not isinstance(where, str) or not where:
        raise ConfigError(f"{path}: extends must be the path of a sweep folder (a string), not {where!r}")
    folder = Path(where) if Path(where).is_absolute() else path.parent / where
    from scalebench.store import load_meta, store_path

    if not store_path(folder).is_file():
        raise ConfigError(f"{path}: extends = {where!r}: {folder} holds no sweep (no {store_path(folder).name}); "
                          "give the folder the sweep being extended ran into")
    base = load_meta(folder).get("spec")
    if not isinstance(base, dict) or not base:
        raise ConfigError(f"{path}: extends = {where!r}: the sweep in {folder} has no stored spec to extend")
    merged = dict(base)
    for key, value in table.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            sub = dict(merged[key])
            alternatives = _ALTERNATIVES.get(key, ())
            if any(k in value for k in alternatives):
                for k in alternatives:
                    sub.pop(k, None)
            merged[key] = {**sub, **value}
        else:
            merged[key] = value
    return merged
