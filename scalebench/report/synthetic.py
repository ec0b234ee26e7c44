"""A synthetic sweep store drawn from a known Chinchilla law, for tests, benchmarks and demos.

Every field a real GPU sweep records is filled: final losses (law + seeded noise), training curves,
throughput, MFU, memory, energy, NVML telemetry and a bottleneck verdict with time by kernel category;
``failed``/``diverged`` runs carry error text. The design is an isoFLOP grid: ``n_budgets`` FLOP budgets,
``n_sizes`` model sizes spread in log N around each budget's optimum.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from scalebench.store import ResultStore

__all__ = ["TRUE_LAW", "make_synthetic_sweep"]

# Hoffmann et al. (2022), eq. 10 (the values the synthetic losses are drawn from).
TRUE_LAW = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}
_DEVICE = "NVIDIA H100 80GB HBM3"
_PEAK_BF16 = 989e12
_CATEGORIES = ("matmul", "attention", "elementwise", "memcpy", "communication", "other")


def _loss(n: float, d: float, law: dict | None = None) -> float:
    t = law or TRUE_LAW
    return t["E"] + t["A"] / n ** t["alpha"] + t["B"] / d ** t["beta"]


def _shape(params: float) -> tuple[int, int, int]:
    """A GPT shape with about ``params`` non-embedding parameters (12·L·d², d = 64·L)."""
    n_layer = max(2, round((params / (12 * 64**2)) ** (1 / 3)))
    d_model = max(64, 64 * round(math.sqrt(params / (12 * n_layer)) / 64))
    return n_layer, d_model, max(1, d_model // 64)


def _verdict(mfu: float, small: bool) -> tuple[str, dict, dict[str, float]]:
    if small:
        cats = {"matmul": 0.30, "attention": 0.08, "elementwise": 0.37, "memcpy": 0.10, "communication": 0.0,
                "other": 0.15}
        kind, rule = "host-overhead", "idle_share 0.450 > 0.3 and median kernel 8.0 µs < 20.0 µs"
        rec = "The device waits on the host (launch-bound): enable torch.compile to fuse kernels."
        idle, median_us = 0.45, 8.0
    else:
        cats = {"matmul": 0.62, "attention": 0.14, "elementwise": 0.14, "memcpy": 0.04, "communication": 0.0,
                "other": 0.06}
        kind, rule = "compute", "matmul+attention share 0.760 >= 0.5"
        rec = f"Compute-bound (MFU {mfu:.0%}): this is the healthy case."
        idle, median_us = 0.05, 85.0
    window = 0.5
    busy = window * (1 - idle)
    by_cat = {c: round(busy * cats[c], 6) for c in _CATEGORIES}
    evidence = {
        "device_type": "cuda", "mfu": round(mfu, 4), "idle_share": idle, "median_kernel_us": median_us,
        "compute_share": round(cats["matmul"] + cats["attention"], 4),
        "memory_share": round(cats["elementwise"] + cats["memcpy"], 4), "data_wait_share": 0.01,
        "window_s": window, "busy_s": round(busy, 6), "time_by_category_s": by_cat, "n_kernels": 4000,
    }
    detail = {"bottleneck": kind, "rule": rule, "recommendation": rec, "also": [], "evidence": evidence}
    return kind, detail, by_cat


def make_synthetic_sweep(
    sweep_dir: str | Path,
    *,
    name: str = "synthetic",
    notes: str = "A synthetic isoFLOP sweep drawn from Chinchilla's law.",
    n_sizes: int = 5,
    n_budgets: int = 3,
    n_failed: int = 0,
    n_diverged: int = 0,
    steps_per_run: int = 60,
    telemetry_per_run: int = 20,
    noise: float = 0.005,
    instrumented: bool = True,
    measured_peak: bool = False,
    families: dict[str, dict[str, float]] | None = None,
    seed: int = 0,
) -> Path:
    """Write a synthetic sweep store into ``sweep_dir`` (created) and return the folder.

    ``n_sizes × n_budgets`` runs; the last ``n_failed`` and ``n_diverged`` of them end failed / diverged.
    ``instrumented=False`` writes what a CPU sweep without NVML or profiler records: no MFU, device memory,
    energy, telemetry or bottleneck verdict, but the worker's peak RSS; ``measured_peak=True`` adds
    ``mfu_measured_peak`` (a CPU sweep run after ``scalebench env --calibrate``). ``families`` maps a family
    name to overrides of ``TRUE_LAW`` (e.g. ``{"gpt": {}, "lstm": {"alpha": 0.5}}``): the whole grid is run
    once per family, the runs' ``family`` column says which.
    """
    rng = np.random.default_rng(seed)
    out = Path(sweep_dir)
    budgets = np.logspace(17, 17 + 0.5 * (n_budgets - 1), n_budgets)
    runs = []
    laws = {fam: {**TRUE_LAW, **over} for fam, over in (families or {"gpt": {}}).items()}
    for fam in laws:
        for c in budgets:
            n_opt = 0.09 * c**0.5  # near the law's optimum
            for n in n_opt * np.logspace(-0.8, 0.8, n_sizes):
                runs.append((fam, float(c), float(n), float(c / (6 * n))))
    n_runs = len(runs)
    bad = {i: "failed" for i in range(n_runs - n_failed - n_diverged, n_runs - n_diverged)}
    bad.update({i: "diverged" for i in range(n_runs - n_diverged, n_runs)})
    spec = {
        "name": name, "notes": notes, "family": "gpt",
        "budget": {"flops": [float(b) for b in budgets], "tokens": [], "max_epochs": 16.0},
        "model": {"sizes": [], "params": [], "tie_embeddings": True},
        "train": {"seq_len": 1024, "lr": 3e-4, "precision": "bf16", "schedule": "cosine"},
        "devices": {"device": "cuda", "gpus": [0]},
    }
    env = {"python": "3.11.7", "torch": "2.13.0", "scalebench": "0.1.0", "cuda_available": True,
           "cuda_version": "13.0", "devices": [{"name": _DEVICE, "memory_bytes": 85_899_345_920}],
           "nvml": True, "host": "synthetic"}
    if not instrumented:
        env.update(cuda_available=False, cuda_version=None, devices=[], nvml=False,
                   nvml_reason="NVML Shared Library Not Found")
    corpus = {"source": "synthetic", "fingerprint": f"synthetic-{seed}", "train_tokens": 10**10,
              "vocab_size": 50304}
    with ResultStore(out, create=True) as store:
        store.set_meta(spec=spec, env=env, corpus=corpus, plan_notes=[], sweep_name=name)
        ids = []
        for i, (fam, c, n, d) in enumerate(runs):
            n_layer, d_model, n_head = _shape(n)
            run_id = f"{fam}-n{n:.3g}-c{c:.2g}"
            ids.append(run_id)
            store.add_runs([(run_id, f"h{i}", {
                "family": fam, "size": f"{n:.3g}", "budget_label": f"c{c:.2g}", "params": n,
                "params_total": n * 1.1, "tokens": d, "flops": c, "flops_per_token": 6 * n,
                "shape": {"n_layer": n_layer, "d_model": d_model, "n_head": n_head, "seq_len": 1024},
            })])
        t0 = 0.0
        for i, (fam, _c, n, d) in enumerate(runs):
            run_id = ids[i]
            status = bad.get(i, "done")
            n_layer, d_model, _ = _shape(n)
            mfu = float(np.clip(0.12 + 0.08 * math.log10(n / 1e6), 0.05, 0.55) * rng.uniform(0.95, 1.05))
            tps = mfu * _PEAK_BF16 / (6 * n)
            wall = d / tps
            power = 250 + 400 * mfu
            final = _loss(n, d, laws[fam]) * math.exp(rng.normal(0, noise))
            kind, detail, _ = _verdict(mfu, small=n < np.median([r[2] for r in runs]))
            toks = np.linspace(d / steps_per_run, d, steps_per_run)
            curve = [_loss(n, t, laws[fam]) * (1 + 0.3 * math.exp(-6 * t / d)) * math.exp(rng.normal(0, noise)) for t in toks]
            if status == "diverged":
                curve = [x * (1 + 8 * max(0.0, j / steps_per_run - 0.5)) for j, x in enumerate(curve)]
            store.add_steps(run_id, [
                {"step": j, "tokens": int(t), "loss": float(x), "lr": 3e-4, "step_time_s": wall / steps_per_run,
                 "eval_loss": float(x) if j % 10 == 9 else None}
                for j, (t, x) in enumerate(zip(toks, curve, strict=True))
            ])
            ts = np.linspace(0, wall, telemetry_per_run if instrumented else 0)
            store.add_telemetry(run_id, [
                {"t_s": float(t0 + t), "gpu_util": float(min(100, 60 + 80 * mfu)), "mem_used_bytes": 2e9 + 40 * n,
                 "power_w": float(power * rng.uniform(0.95, 1.05)), "sm_clock_mhz": 1980.0, "temp_c": 55.0,
                 "throttle_reasons": 0}
                for t in ts
            ])
            t0 += wall
            record = {
                "train_loss": final * 1.01, "eval_loss": final, "tokens_per_s": tps, "step_time_s": 1024 * 64 / tps,
                "mfu": mfu, "peak_mem_bytes": 20.0 * n * 1.1 + 3e8 * n_layer * d_model / 512,
                "peak_reserved_bytes": 22.0 * n * 1.1 + 3e8, "energy_j": power * wall, "avg_power_w": power,
                "gpu_util_mean": 60 + 80 * mfu, "bottleneck": kind, "bottleneck_detail": detail,
                "precision": "bf16", "device": _DEVICE, "micro_batch": 8, "wall_time_s": wall,
                "steps": steps_per_run, "epochs": d / 1e10,
            }
            if not instrumented:
                record = {k: record[k] for k in ("train_loss", "eval_loss", "tokens_per_s", "step_time_s",
                                                 "wall_time_s", "steps", "epochs", "micro_batch")}
                # what a CPU worker records: its process RSS (runtime included), and MFU against the
                # measured peak only when `scalebench env --calibrate` ran before the sweep
                record.update(device="cpu", precision="fp32", peak_rss_bytes=3.9e8 + 16.0 * n)
                if measured_peak:
                    record["mfu_measured_peak"] = mfu
            store.set_status(run_id, "running", pid=1, host="synthetic")
            if status == "done":
                store.set_status(run_id, "done", record=record)
            elif status == "failed":
                store.set_status(run_id, "failed", error=(
                    "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB\n"
                    "  <see run log> & retry with micro_batch=4"))
            else:
                store.set_status(run_id, "diverged", record={**record, "eval_loss": None},
                                 error=f"loss {curve[-1]:.2f} exceeded 4x its running minimum at step {steps_per_run}")
    return out
