"""Published at-scale training runs: what calibrates and validates the estimator's hardware model.

Each row is one documented pretraining run with the GPU-hours its authors published. Its utilisation is
what PaLM (Chowdhery et al. 2022, appendix B) calls model FLOPs utilisation, computed over the published
accelerator-hours:

    implied mfu = model FLOPs / (published GPU-hours · 3600 · dense peak[dtype])

with model FLOPs = (6·N_active + 12·L·T·H·Q) · D from the preset's shape (recomputation excluded; for the
Llama presets the llama family's count, whose N leaves out the untied token embedding). It
contains everything the run spent: communication, bubbles, stragglers and whatever downtime the authors
counted in their hours.

The estimator no longer reads its utilisation from this table: it times each run's work on the hardware
(:mod:`~scalebench.planning.throughput`, :mod:`~scalebench.planning.layout`), from datasheet and kernel
benchmark constants. The table then fits exactly one number, the **goodput**: the share of reserved time at
the modelled throughput a published run achieved, ``γ_i = modelled hours_i / published hours_i`` (downtime,
restarts, evaluation and ramp-up, and whatever the model leaves out), pooled as the geometric mean over the
rows — :func:`calibrated_goodput`, the default ``goodput`` of a modelled estimate. :func:`leave_one_out`
predicts every run with the goodput of the others: its error is the model's honest out-of-sample error,
and its spread (a 90% band of the log errors, robust scale, at most 2.5x wide) is the range every modelled
estimate carries (:func:`model_range`). ``benchmarks/published_runs.py`` prints both. Runs are added to the
table only with a primary source; a new run checks the model, it does not tune it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import pandas as pd

from scalebench.hardware.catalog import get_gpu
from scalebench.planning.presets import get_architecture
from scalebench.planning.timing import RECOMPUTE_FACTOR

__all__ = ["PublishedRun", "PUBLISHED_RUNS", "calibrated_goodput", "leave_one_out", "model_range", "run_table"]


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
                 published_mfu=380 * get_architecture("llama-65b").flops_per_token() / 312e12,
                 published_mfu_source="section 2.4: 380 tokens/s/GPU on 2048 A100-80GB (x the preset's FLOPs/token / "
                                      "312 TFLOP/s)"),
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


GOODPUT_Z = 1.645  # the range: a two-sided 90% band of the leave-one-out log errors
RANGE_MAX_WIDTH = 2.5  # ... never wider than this (high / low)
_CALIBRATING: list[float] = []  # while the table's own runs are estimated: the kernel efficiency to use


def calibrating_efficiency() -> float | None:
    """The kernel efficiency the table's own runs are being estimated at (None outside calibration)."""
    return _CALIBRATING[-1] if _CALIBRATING else None


def _estimate_runs(efficiency: float) -> pd.DataFrame:
    """Each run estimated with only its published setup, at goodput 1 and the given kernel efficiency
    (one vectorised call)."""
    from scalebench.planning.estimate import estimate

    frame = pd.DataFrame([r.estimate_kwargs() for r in PUBLISHED_RUNS])
    frame["goodput"] = 1.0
    frame["checkpointing"] = frame["checkpointing"].fillna("auto")
    _CALIBRATING.append(efficiency)  # the rows' own ranges and efficiency would need this very table
    try:
        return estimate(frame)
    finally:
        _CALIBRATING.pop()


def _published_mfu(run: PublishedRun) -> float:
    """A published throughput utilisation as an MFU (an HFU over the run's recompute factor); NaN if none."""
    if run.published_mfu:
        return run.published_mfu
    if run.published_hfu:
        return run.published_hfu / RECOMPUTE_FACTOR[run.checkpointing or "none"]
    return float("nan")


def _geomean(x: np.ndarray) -> float:
    x = x[np.isfinite(x) & (x > 0)]
    return float(np.exp(np.mean(np.log(x))))


@functools.lru_cache(maxsize=1)
def _fit() -> pd.DataFrame:
    """Both fitted numbers and every run's share of them (see the module docstring)."""
    kernel = _estimate_runs(1.0)
    published = np.array([_published_mfu(r) for r in PUBLISHED_RUNS])
    eff_i = published / kernel["mfu"].to_numpy(float)  # NaN where a run publishes no throughput
    eff = _geomean(eff_i)
    at_eff = _estimate_runs(eff)
    hours = np.array([r.gpu_hours for r in PUBLISHED_RUNS])
    goodput_i = at_eff["gpu_hours"].to_numpy(float) / hours
    return pd.DataFrame({
        "run": [r.name for r in PUBLISHED_RUNS], "gpu": [r.gpu for r in PUBLISHED_RUNS],
        "generation": [r.generation for r in PUBLISHED_RUNS], "precision": [r.precision for r in PUBLISHED_RUNS],
        "layout": [" ".join(f"{k}{int(v)}" for k, v in zip(("tp", "pp", "cp", "ep", "dp"), row, strict=True))
                   for row in at_eff[["tp", "pp", "cp", "ep", "dp"]].to_numpy(float)],
        "kernel_mfu": kernel["mfu"].to_numpy(float), "published_mfu": published, "implied_efficiency": eff_i,
        "modelled_mfu": at_eff["mfu"].to_numpy(float), "modelled_gpu_hours": at_eff["gpu_hours"].to_numpy(float),
        "published_gpu_hours": hours, "implied_mfu": [r.implied_mfu for r in PUBLISHED_RUNS],
        "implied_goodput": goodput_i})


@functools.lru_cache(maxsize=1)
def kernel_efficiency() -> float:
    """The share of the kernel model's throughput that published training stacks reach while training:
    the geometric mean of published / modelled MFU over the runs that publish a throughput."""
    return _geomean(_fit()["implied_efficiency"].to_numpy(float))


@functools.lru_cache(maxsize=1)
def calibrated_goodput() -> float:
    """The geometric mean over the published runs of modelled / published GPU-hours, at the fitted kernel
    efficiency: the share of reserved time spent training at the modelled throughput."""
    return _geomean(_fit()["implied_goodput"].to_numpy(float))


@functools.lru_cache(maxsize=1)
def _loo_errors() -> np.ndarray:
    return np.log(leave_one_out()["loo_ratio"].to_numpy(float))


def _without_each(x: np.ndarray) -> np.ndarray:
    """Geometric mean of the finite entries of x with each entry in turn left out."""
    logs = np.where(np.isfinite(x) & (x > 0), np.log(np.where(x > 0, x, 1.0)), np.nan)
    ok = np.isfinite(logs)
    total, count = np.nansum(logs), ok.sum()
    return np.exp((total - np.where(ok, logs, 0.0)) / (count - ok))


def leave_one_out() -> pd.DataFrame:
    """Each published run predicted with both numbers fitted without it: ``loo_ratio`` = predicted /
    published GPU-hours (> 1: the model is too slow). A run's own throughput leaves the efficiency fit;
    its hours, taken at the full table's efficiency, scale by that efficiency over its leave-one-out value
    (the compute share of a step; communication does not scale, so this is close, not exact)."""
    t = _fit().copy()
    eff_all = kernel_efficiency()
    t["loo_efficiency"] = _without_each(t["implied_efficiency"].to_numpy(float))
    t["loo_goodput"] = _without_each(t["implied_goodput"].to_numpy(float))
    t["loo_gpu_hours"] = t["modelled_gpu_hours"] * eff_all / t["loo_efficiency"] / t["loo_goodput"]
    t["loo_ratio"] = t["loo_gpu_hours"] / t["published_gpu_hours"]
    return t


def model_range() -> tuple[float, float]:
    """(low, high) multipliers of a modelled MFU: a 90% band of the leave-one-out log errors (scale from
    the median absolute deviation, robust to one odd run), capped at RANGE_MAX_WIDTH wide."""
    if _CALIBRATING:
        return 1.0, 1.0
    err = _loo_errors()
    sigma = 1.4826 * float(np.median(np.abs(err - np.median(err))))
    half = min(GOODPUT_Z * sigma, 0.5 * np.log(RANGE_MAX_WIDTH))
    return float(np.exp(-half)), float(np.exp(half))


def run_table() -> pd.DataFrame:
    """The rows themselves, with their implied MFU and sources."""
    return pd.DataFrame([{"run": r.name, "model": r.model, "gpu": r.gpu, "precision": r.precision,
                          "num_gpus": r.num_gpus, "tokens": r.train_tokens, "gpu_hours": r.gpu_hours,
                          "flops": r.flops, "checkpointing": r.checkpointing, "implied_mfu": r.implied_mfu,
                          "implied_rate": r.implied_rate, "published_mfu": r.published_mfu,
                          "published_hfu": r.published_hfu, "published_goodput": r.published_goodput,
                          "source": r.source, "hours_note": r.hours_note} for r in PUBLISHED_RUNS])
