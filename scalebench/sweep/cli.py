"""Commands over sweeps: run, validate, status, export, env."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run (or resume) a sweep", description="Run a sweep spec; resume if DIR exists.")
    p.add_argument("sweep", help="sweep spec (TOML), e.g. sweeps/quickstart.toml")
    p.add_argument("--out", help="sweep directory (default: reports/<sweep name>/)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--backend", choices=("local", "ray", "slurm"),
                   help="how runs are started (overrides executor.kind): worker processes here, Ray tasks, "
                        "or Slurm job arrays")
    p.add_argument("--dry-run", action="store_true",
                   help="print what would be started (for slurm: the sbatch script of the job array) and "
                        "start, submit and write nothing")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("validate", help="check a sweep spec and print its planned runs without training")
    p.add_argument("sweep")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("status", help="a table of a sweep's runs and key metrics")
    p.add_argument("dir", help="sweep directory")
    p.add_argument("--json", action="store_true", help="print rows as JSON")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("export", help="write a sweep's results (and curves) as CSV or Parquet")
    p.add_argument("dir", help="sweep directory")
    p.add_argument("--out", required=True, help="output file: .csv or .parquet")
    p.add_argument("--steps", action="store_true", help="export the per-step curves instead of the runs")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("env", help="devices, versions, and whether NVML answers")
    p.add_argument("--calibrate", action="store_true", help="measure matmul peak and copy bandwidth; save them")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_env)


def _fmt(x, spec: str = ".3g") -> str:
    import math

    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return format(x, spec)


def cmd_run(args) -> int:
    if args.dry_run:
        from scalebench.sweep.runner import describe_sweep

        sys.stdout.write(describe_sweep(args.sweep, args.out, backend=args.backend))
        return 0
    from tqdm import tqdm

    from scalebench.sweep.runner import run_sweep

    bar = None

    def progress(p) -> None:
        nonlocal bar
        if args.no_progress:
            return
        if bar is None:
            bar = tqdm(total=p.flops_total, unit="FLOP", unit_scale=True, dynamic_ncols=True, file=sys.stderr,
                       mininterval=1.0, disable=None)  # disable=None: no bar when stderr is not a terminal
        bar.set_description(f"runs {p.runs_finished}/{p.runs_total}")
        if p.last_loss is not None:
            bar.set_postfix_str(f"{p.last_run} loss {p.last_loss:.3f}")
        bar.update(p.flops_finished - bar.n)

    try:
        outcome = run_sweep(args.sweep, args.out, progress=progress, backend=args.backend)
    finally:
        if bar is not None:
            bar.close()
    for note in outcome.notes:
        print(f"note: {note}", file=sys.stderr)
    counts = ", ".join(f"{v} {k}" for k, v in sorted(outcome.counts.items()))
    print(f"sweep finished in {outcome.wall_time_s:.0f} s: {counts}")
    print(f"results: {outcome.sweep_dir}   (scalebench status {outcome.sweep_dir})")
    return 0 if outcome.ok else 1


def cmd_validate(args) -> int:
    import pandas as pd

    from scalebench.config import load_sweep
    from scalebench.sweep.planner import plan_runs

    spec = load_sweep(args.sweep)
    plan = plan_runs(spec, source=args.sweep)
    table = plan.table()
    c = plan.corpus
    print(f"sweep {spec.name!r}: family {spec.family}, {len(plan.runs)} runs, "
          f"{plan.total_flops:.3g} FLOPs in all, device {plan.runs[0].device}")
    print(f"corpus: {c['source']} — {c['train_tokens']:,} train / {c['val_tokens']:,} held-out tokens, "
          f"vocab {c['vocab_size']}, fingerprint {c['fingerprint']}")
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table.to_string(index=False, formatters={"flops": "{:.3g}".format, "epochs": "{:.3f}".format}))
    for note in plan.notes:
        print(f"note: {note}")
    return 0


STATUS_COLUMNS = ("run_id", "status", "params", "tokens", "flops", "eval_loss", "tokens_per_s", "mfu",
                  "memory", "energy_j", "bottleneck", "wall_time_s")


def cmd_status(args) -> int:
    import pandas as pd

    from scalebench.store import load_results

    df = load_results(args.dir)
    if args.json:
        print(df.to_json(orient="records"))
        return 0
    counts = df["status"].value_counts().to_dict()
    print(f"{args.dir}: {len(df)} runs — " + ", ".join(f"{v} {k}" for k, v in counts.items()))
    df["memory"] = [  # device memory on GPU; the worker's peak RSS on CPU
        f"{m / 2**20:.1f} MiB" if pd.notna(m) else f"{r / 2**20:.0f} MiB RSS" if pd.notna(r) else "-"
        for m, r in zip(df["peak_mem_bytes"], df["peak_rss_bytes"], strict=False)
    ]
    if df["mfu"].isna().all() and df["mfu_measured_peak"].notna().any():
        df["mfu"] = df["mfu_measured_peak"]  # no catalog peak (a CPU): against the calibrated peak
    show = df[list(STATUS_COLUMNS)].copy()
    for col, spec in (("params", ".3g"), ("tokens", ".3g"), ("flops", ".3g"), ("eval_loss", ".4f"),
                      ("tokens_per_s", ".3g"), ("mfu", ".3f"), ("energy_j", ".3g"), ("wall_time_s", ".1f")):
        show[col] = show[col].map(lambda v, s=spec: _fmt(v, s))
    show["bottleneck"] = show["bottleneck"].fillna("-")
    with pd.option_context("display.width", 250, "display.max_columns", 30):
        print(show.to_string(index=False))
    bad = df[df["status"].isin(["failed", "diverged"])]
    for row in bad.itertuples():
        print(f"{row.run_id} {row.status}: {str(row.error).splitlines()[0] if row.error else ''}")
    return 0


def cmd_export(args) -> int:
    from scalebench.errors import ConfigError
    from scalebench.store import load_results, load_steps

    out = Path(args.out)
    df = load_steps(args.dir) if args.steps else load_results(args.dir)
    if out.suffix == ".csv":
        df.to_csv(out, index=False)
    elif out.suffix == ".parquet":
        try:
            df.to_parquet(out, index=False)
        except ImportError:
            raise ConfigError("--out: Parquet needs pyarrow (pip install 'scalebench[parquet]'); or use .csv") from None
    else:
        raise ConfigError(f"--out: {out.name!r} must end in .csv or .parquet")
    print(f"wrote {len(df)} rows to {out}")
    return 0


def cmd_env(args) -> int:
    from scalebench.hardware.devices import environment

    env = environment()
    if args.calibrate:
        from scalebench.hardware.calibrate import calibrate, save_calibration

        cal = calibrate()
        path = save_calibration(cal)
        env["calibration"] = {**cal.as_dict(), "saved_to": str(path)}
    if args.json:
        print(json.dumps(env, indent=1, default=str))
        return 0
    print(f"scalebench {env['scalebench']}  torch {env['torch']}  python {env['python']}")
    print(f"host {env['host']}  {env['platform']}  {env['cpu_count']} CPUs")
    if env["devices"]:
        for d in env["devices"]:
            print(f"cuda:{d['index']}  {d['name']}  {d['memory_bytes'] / 2**30:.1f} GiB  sm {d['capability']}")
    else:
        print("no CUDA device: runs go to the CPU")
    print(f"NVML: {'answers' if env['nvml'] else 'unavailable'}{'' if env['nvml'] else ' (' + env['nvml_reason'] + ')'}")
    if "calibration" in env:
        print("calibration: " + ", ".join(f"{k}={v}" for k, v in env["calibration"].items()))
    return 0
