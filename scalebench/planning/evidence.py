"""The default MFU: a table of published at-scale training runs, by accelerator generation and model size.

Each row is one documented pretraining run with the GPU-hours its authors published. Its utilisation is
what PaLM (Chowdhery et al. 2022, appendix B) calls model FLOPs utilisation, computed here over the
published accelerator-hours:

    mfu = model FLOPs / (published GPU-hours · 3600 · dense peak[dtype])

with model FLOPs = (6·N_active + 12·L·T·H·Q) · D from the preset's shape (recomputation excluded). It is an
at-scale figure: it already contains the run's communication, pipeline bubbles, stragglers and whatever
downtime the authors counted in their hours, so the estimator puts no cluster penalty on top of it.

The table itself holds each row's *hardware* rate, ``rate = mfu · RECOMPUTE_FACTOR[checkpointing]``: a run
that recomputed every forward pass (BLOOM, BloombergGPT, Gopher: ``checkpointing="full"``, sourced per row) spent a
quarter of its FLOPs on recomputation, and the estimator turns the table's rate back into an MFU for the
recomputation it chooses (:mod:`~scalebench.planning.timing`). Rows that state no recomputation count as
none.

The default for a new run is, among the rows of its accelerator generation and precision class (16-bit or
fp8), a least-squares line of the rate against log10(active parameters) (it rises with model width), clipped
to [0.75 · lowest, 1.15 · highest] of those rows; one row, or rows of one size, give their median. A
generation without rows borrows the pooled 16-bit rows (and says so); fp8 without fp8 rows borrows the
16-bit rows at half the 16-bit fraction (fp8 peaks are twice the 16-bit ones: no speed-up is assumed).

The range around it is the evidence's own spread: each row predicted from the table without it
(leave-one-out), and the smallest and largest ratio published/predicted rate over all rows scale the
default MFU down and up. ``leave_one_out()`` returns that table; ``benchmarks/published_runs.py`` prints it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import pandas as pd

from scalebench.hardware.catalog import get_gpu
from scalebench.planning.presets import get_architecture
from scalebench.planning.timing import RECOMPUTE_FACTOR

__all__ = ["PublishedRun", "PUBLISHED_RUNS", "default_mfu", "default_mfu_array", "leave_one_out", "loo_ratio_range", "run_table"]

CLIP_LOW, CLIP_HIGH = 0.75, 1.15
FP8_FALLBACK_FACTOR = 0.5


@dataclass(frozen=True, kw_only=True)
class PublishedRun:
    """One documented run: preset, accelerator, published accelerator-hours, optional published utilisation.

    ``published_mfu`` (PaLM's definition) or ``published_hfu`` (a hardware rate, recomputation counted, as
    Megatron-style TFLOP/s figures are) with its source; ``checkpointing`` the recomputation the run used
    (``None``: not stated) with its source; ``published_goodput`` the share of the hours spent training
    where the authors say; ``hours_note`` what the published hours contain where that explains a gap;
    ``default_note`` why the default table misses the run, where it does.
    """

    name: str
    model: str  # a preset in scalebench.planning.presets
    gpu: str
    precision: str
    gpu_hours: float
    source: str
    num_gpus: int | None = None
    global_batch_tokens: float | None = None
    tokens: float | None = None  # when the run's token count differs from the preset's
    published_mfu: float | None = None
    published_mfu_source: str = ""
    published_hfu: float | None = None
    published_goodput: float | None = None  # share of the hours spent training, where the authors say
    checkpointing: str | None = None  # "none", "selective" or "full" where published
    checkpointing_source: str = ""
    hours_note: str = ""  # what the published hours contain beyond training at the published rate
    default_note: str = ""  # why the default table does not fit this run, where it does not

    def __post_init__(self) -> None:
        if self.published_mfu is not None and self.published_hfu is not None:
            raise ValueError(f"PublishedRun {self.name}: give published_mfu or published_hfu, not both")
        if (self.published_mfu or self.published_hfu) and not self.published_mfu_source:
            raise ValueError(f"PublishedRun {self.name}: a published utilisation needs published_mfu_source")
        if self.checkpointing is not None and self.checkpointing not in RECOMPUTE_FACTOR:
            raise ValueError(f"PublishedRun {self.name}: checkpointing must be one of {', '.join(RECOMPUTE_FACTOR)}")
        if self.checkpointing is not None and not self.checkpointing_source:
            raise ValueError(f"PublishedRun {self.name}: a published checkpointing needs checkpointing_source")

    @property
    def arch(self):
        return get_architecture(self.model)

    @property
    def train_tokens(self) -> float:
        return float(self.tokens or self.arch.tokens)

    @property
    def flops(self) -> float:
        return self.arch.flops_per_token() * self.train_tokens

    @property
    def generation(self) -> str:
        return get_gpu(self.gpu).generation

    def estimate_kwargs(self) -> dict:
        """The published setup only, as ``estimate`` keywords: preset, accelerator, precision, tokens; GPUs,
        batch and recomputation where the authors published them."""
        kw = dict(model=self.model, gpu=self.gpu, precision=self.precision, tokens=self.train_tokens)
        if self.num_gpus:
            kw["num_gpus"] = self.num_gpus
        if self.global_batch_tokens:
            kw["global_batch"] = max(1, round(self.global_batch_tokens / self.arch.seq_len))
        if self.checkpointing:
            kw["checkpointing"] = self.checkpointing
        return kw

    @property
    def implied_mfu(self) -> float:
        """Model FLOPs over the published hours at the dense peak (PaLM's MFU of the whole run)."""
        return self.flops / (self.gpu_hours * 3600.0 * get_gpu(self.gpu).peak_for(self.precision))

    @property
    def implied_rate(self) -> float:
        """The hardware rate the table holds: implied MFU times the run's recomputation factor."""
        return self.implied_mfu * RECOMPUTE_FACTOR[self.checkpointing or "none"]


_LLAMA1 = "Touvron et al. 2023, LLaMA (arXiv:2302.13971), table 15: GPU-hours on A100-80GB"
_LLAMA2 = "Touvron et al. 2023, Llama 2 (arXiv:2307.09288), table 2: pretraining GPU-hours on A100-80GB"
_LLAMA31 = "Meta, Llama 3.1 model card (2024-07): training GPU-hours on H100-80GB"

PUBLISHED_RUNS: tuple[PublishedRun, ...] = (
    PublishedRun(name="LLaMA-7B", model="llama-7b", gpu="A100-80GB", precision="bf16", gpu_hours=82_432,
                 source=_LLAMA1, global_batch_tokens=4e6),
    PublishedRun(name="LLaMA-13B", model="llama-13b", gpu="A100-80GB", precision="bf16", gpu_hours=135_168,
                 source=_LLAMA1, global_batch_tokens=4e6),
    PublishedRun(name="LLaMA-33B", model="llama-33b", gpu="A100-80GB", precision="bf16", gpu_hours=530_432,
                 source=_LLAMA1, global_batch_tokens=4e6),
    PublishedRun(name="LLaMA-65B", model="llama-65b", gpu="A100-80GB", precision="bf16", gpu_hours=1_022_362,
                 source=_LLAMA1, num_gpus=2048, global_batch_tokens=4e6,
                 published_mfu=380 * 407306127360.0 / 312e12,
                 published_mfu_source="section 2.4: 380 tokens/s/GPU on 2048 A100-80GB (x PaLM FLOPs/token / 312 TFLOP/s)"),
    PublishedRun(name="Llama-2-7B", model="llama2-7b", gpu="A100-80GB", precision="bf16", gpu_hours=184_320,
                 source=_LLAMA2, global_batch_tokens=4e6),
    PublishedRun(name="Llama-2-13B", model="llama2-13b", gpu="A100-80GB", precision="bf16", gpu_hours=368_640,
                 source=_LLAMA2, global_batch_tokens=4e6),
    PublishedRun(name="Llama-2-34B", model="llama2-34b", gpu="A100-80GB", precision="bf16", gpu_hours=1_038_336,
                 source=_LLAMA2, global_batch_tokens=4e6),
    PublishedRun(name="Llama-2-70B", model="llama2-70b", gpu="A100-80GB", precision="bf16", gpu_hours=1_720_320,
                 source=_LLAMA2, global_batch_tokens=4e6),
    PublishedRun(name="BloombergGPT", model="bloomberggpt-50b", gpu="A100-40GB", precision="bf16",
                 gpu_hours=512 * 53 * 24,
                 source="Wu et al. 2023, BloombergGPT (arXiv:2303.17564), sections 3.3 and 4: 64 x 8 A100-40GB "
                        "(512 GPUs) for 139,200 steps (~53 days): 512 x 53 x 24 GPU-hours",
                 num_gpus=512, global_batch_tokens=2048 * 2048, published_hfu=102e12 / 312e12,
                 published_mfu_source="section 3.4: '102 TFLOPs on average', with activation checkpointing (section 3.2: "
                                      "'an additional 0.33x TFLOPs per iteration due to repeated forward passes')",
                 checkpointing="full",
                 checkpointing_source="Wu et al. 2023, section 3.4: 'We apply activation checkpointing to each "
                                      "transformer layer'",
                 default_note="it trained on AWS p4d instances with 400 Gb/s of EFA per 8 GPUs (section 3.3), a "
                              "quarter of the catalog A100's 200 Gb/s per GPU, with ZeRO-3 over 128 GPUs: slower "
                              "than the table's rate; its published HFU lands within 0.5%"),
    PublishedRun(name="BLOOM-176B", model="bloom-176b", gpu="A100-80GB", precision="bf16", gpu_hours=1_082_990,
                 source="BigScience 2022, BLOOM (arXiv:2211.05100), section 3.5: 1,082,990 compute hours on 384 A100-80GB",
                 num_gpus=384, global_batch_tokens=2048 * 2048, published_hfu=149e12 / 312e12,
                 published_mfu_source="bigscience-workshop/bigscience, train/tr11-176B-ml/chronicles.md, 2022-03-18: "
                                      "'at full throttle of GBS=2048 and at 149-150 TFLOPs per GPU' (Megatron's count, "
                                      "recomputation included; the 156 TFlop/s GENCI quotes, the fastest configuration, "
                                      "gives a ratio of 0.868)",
                 checkpointing="full",
                 checkpointing_source="bigscience-workshop/bigscience, train/tr11-176B-ml/tr11-176B-ml.slurm: "
                                      "--checkpoint-activations (TP 4, PP 12, global batch 2048, ramped up from 192)",
                 hours_note="the hours are the run's 3.5 calendar months on 384 GPUs (1,082,990 / 384 = 117.5 days); "
                            "the run's chronicle lists time not spent at 149 TFLOP/s without totalling it: 7 days of "
                            "batch-size ramp-up, weekly GPU failures (up to 3 h lost each; 7.3 h, 18 h and 6 h in "
                            "three incidents), a spell at 140 TFLOP/s from a slow GPU, evaluation 0.7%; the FLOP "
                            "count is not the gap (Megatron's 96·B·s·l·h²·(1 + s/6h + V/16lh) gives a recompute "
                            "factor of 1.327, ours 4/3: 0.5%)"),
    PublishedRun(name="Gopher-280B", model="gopher-280b", gpu="TPU-v3", precision="bf16", gpu_hours=4096 * 920,
                 source="Rae et al. 2021, Gopher (arXiv:2112.11446), compute-usage appendix, table A27: 'We trained Gopher for "
                        "920 hours' on 4096 TPU v3 chips: 4096 x 920 chip-hours",
                 num_gpus=4096, published_mfu=0.325,
                 published_mfu_source="Chowdhery et al. 2022 (PaLM), table 3: 32.5% MFU for Gopher on 4096 TPU v3, "
                                      "from 0.0152 steps/s (personal communication with the authors)",
                 checkpointing="full",
                 checkpointing_source="Rae et al. 2021, compute-usage appendix: rematerialization adds 33% to the compute"),
    PublishedRun(name="PaLM-540B", model="palm-540b", gpu="TPU-v4", precision="bf16", gpu_hours=8_404_992,
                 source="Chowdhery et al. 2022, PaLM (arXiv:2204.02311), section 13: 6144 TPU v4 chips for 1200 h "
                        "and 3072 for 336 h, including downtime and repeated steps",
                 num_gpus=6144, global_batch_tokens=4e6, published_mfu=0.462,
                 published_mfu_source="table 3: 46.2% MFU (with self-attention)",
                 hours_note="the chip-hours include 'some downtime and repeated steps' (rollbacks after loss spikes, "
                            "section 5.1) the paper does not quantify; at the published 238.3K tokens/s the 780B "
                            "tokens take 909 h on 6144 chips, against 1200 h + 336 h on half the chips"),
    PublishedRun(name="Llama-3.1-8B", model="llama3-8b", gpu="H100-SXM", precision="bf16", gpu_hours=1.46e6,
                 source=_LLAMA31, global_batch_tokens=16e6),
    PublishedRun(name="Llama-3.1-70B", model="llama3-70b", gpu="H100-SXM", precision="bf16", gpu_hours=7.0e6,
                 source=_LLAMA31, global_batch_tokens=16e6),
    PublishedRun(name="Llama-3.1-405B", model="llama3-405b", gpu="H100-SXM", precision="bf16", gpu_hours=30.84e6,
                 source=_LLAMA31, num_gpus=16384, global_batch_tokens=16e6, published_mfu=0.41,
                 published_mfu_source="Dubey et al. 2024, table 4: 41% BF16 MFU on 16,384 GPUs at 8K context (38-43%); "
                                      "section 3.3.4: 'higher than 90% effective training time' (goodput 0.90)",
                 published_goodput=0.90),
    PublishedRun(name="DeepSeek-V3", model="deepseek-v3", gpu="H800", precision="fp8", gpu_hours=2.664e6,
                 source="DeepSeek-AI 2024, DeepSeek-V3 Technical Report (arXiv:2412.19437), table 1: 2664K H800 "
                        "GPU-hours of pretraining (2.788M with context extension and post-training)",
                 num_gpus=2048, global_batch_tokens=15360 * 4096),
)


@dataclass(frozen=True)
class _Line:
    """mfu = clip(intercept + slope · log10(N_active), low, high) · factor, from the rows named in basis."""

    intercept: float
    slope: float
    low: float
    high: float
    factor: float
    basis: str

    def __call__(self, params_active):
        x = np.log10(np.asarray(params_active, dtype=float))
        return np.clip(self.intercept + self.slope * x, self.low, self.high) * self.factor


def _line(rows: tuple[PublishedRun, ...], factor: float, basis: str) -> _Line:
    values = np.array([r.implied_rate for r in rows])
    logs = np.log10([r.arch.active for r in rows])
    if len(values) >= 2 and np.ptp(logs) > 0:
        slope, intercept = np.polyfit(logs, values, 1)
    else:
        slope, intercept = 0.0, float(np.median(values))
    return _Line(float(intercept), float(slope), CLIP_LOW * values.min(), CLIP_HIGH * values.max(), factor, basis)


def _model(rows: tuple[PublishedRun, ...], generation: str, fp8: bool) -> _Line:
    """The table's rule for one generation and precision class (see the module docstring)."""
    def group(gen: str | None, want_fp8: bool) -> tuple[PublishedRun, ...]:
        return tuple(r for r in rows if (gen is None or r.generation == gen) and (r.precision == "fp8") == want_fp8)

    names = lambda g: ", ".join(r.name for r in g)  # noqa: E731
    if fp8:
        g = group(generation, True)
        if g:
            return _line(g, 1.0, f"published fp8 runs on {generation}: {names(g)}")
        g16 = group(generation, False) or group(None, False)
        where = generation if group(generation, False) else "all generations"
        return _line(g16, FP8_FALLBACK_FACTOR, f"no published fp8 run on {generation}: half the 16-bit fraction "
                                               f"of {where} ({names(g16)}), i.e. no fp8 speed-up")
    g = group(generation, False)
    if g:
        return _line(g, 1.0, f"published runs on {generation}: {names(g)}")
    g = group(None, False)
    return _line(g, 1.0, f"no published run on {generation or 'this generation'} in the table: all 16-bit runs ({names(g)})")


@functools.lru_cache(maxsize=64)
def _table_model(generation: str, fp8: bool) -> _Line:
    return _model(PUBLISHED_RUNS, generation, fp8)


def _predict(rows, generation: str, fp8: bool, params_active: float) -> tuple[float, str]:
    line = _model(tuple(rows), generation, fp8)
    return float(line(params_active)), line.basis


@functools.lru_cache(maxsize=1)
def loo_ratio_range() -> tuple[float, float]:
    """(smallest, largest) published/predicted MFU ratio of the leave-one-out table."""
    table = leave_one_out()
    r = table["implied_rate"] / table["loo_mfu"]
    return float(r.min()), float(r.max())


def default_mfu(generation: str, precision: str, params_active: float) -> tuple[float, float, float, str]:
    """(mfu, low, high, basis): the table's MFU for a run, and the range the evidence's spread gives."""
    line = _table_model(generation, precision == "fp8")
    point = float(line(params_active))
    lo, hi = loo_ratio_range()
    return point, point * lo, point * hi, line.basis


def default_mfu_array(generation, precision, params_active) -> np.ndarray:
    """:func:`default_mfu`'s point value for arrays of scenarios."""
    gen, prec = np.asarray(generation, dtype=object), np.asarray(precision, dtype=object)
    active = np.asarray(params_active, dtype=float)
    out = np.full(active.shape, np.nan)
    for g in set(gen.tolist()):
        for fp8 in (False, True):
            rows = (gen == g) & ((prec == "fp8") == fp8)
            if rows.any():
                out[rows] = _table_model(g, fp8)(active[rows])
    return out


def leave_one_out() -> pd.DataFrame:
    """Each published run predicted without its own row: the default table's honest error."""
    out = []
    for i, run in enumerate(PUBLISHED_RUNS):
        others = [r for j, r in enumerate(PUBLISHED_RUNS) if j != i]
        loo, basis = _predict(others, run.generation, run.precision == "fp8", run.arch.active)
        full, _ = _predict(list(PUBLISHED_RUNS), run.generation, run.precision == "fp8", run.arch.active)
        out.append({"run": run.name, "gpu": run.gpu, "generation": run.generation, "precision": run.precision,
                    "params_active": run.arch.active, "checkpointing": run.checkpointing or "none",
                    "implied_mfu": run.implied_mfu, "implied_rate": run.implied_rate, "table_mfu": full,
                    "loo_mfu": loo, "loo_basis": basis})
    return pd.DataFrame(out)


def run_table() -> pd.DataFrame:
    """The rows themselves, with their implied MFU and sources."""
    return pd.DataFrame([{"run": r.name, "model": r.model, "gpu": r.gpu, "precision": r.precision,
                          "num_gpus": r.num_gpus, "tokens": r.train_tokens, "gpu_hours": r.gpu_hours,
                          "flops": r.flops, "checkpointing": r.checkpointing, "implied_mfu": r.implied_mfu,
                          "implied_rate": r.implied_rate, "published_mfu": r.published_mfu,
                          "published_hfu": r.published_hfu, "published_goodput": r.published_goodput,
                          "source": r.source, "hours_note": r.hours_note} for r in PUBLISHED_RUNS])
