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
    p.add_argument("--no-progress", action="store_true", help="no progress bar (the per-run lines stay)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar and no per-run lines")
    p.add_argument("--backend", metavar="KIND",
                   help="how runs are started (overrides executor.kind): local (worker processes here), ray "
                        "(Ray tasks), slurm (Slurm job arrays), or a kind registered with register_executor")
    p.add_argument("--track", metavar="KINDS",
                   help="trackers mirroring each run's metrics, comma-separated (overrides tracking.kinds): "
                        "tensorboard, wandb, mlflow, trackio; a JSON-lines log is always written")
    p.add_argument("--python", metavar="PATH",
                   help="the interpreter the workers run (overrides executor.local.python / executor.slurm.python)")
    p.add_argument("--dry-run", action="store_true",
                   help="print what would be started (for slurm: the sbatch script of the job array) and "
                        "start, submit and write nothing")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("quickstart", help="run the quickstart sweep, fit a scaling law to it and write its report",
                       description="One command for the README's quickstart: `scalebench run` on the packaged "
                                   "quickstart sweep, `scalebench fit DIR --law chinchilla` (saved as DIR/fit.json), "
                                   "then `scalebench report DIR` (DIR/index.html). Resumes where it stopped.")
    p.add_argument("--sweep", default=None, metavar="SPEC",
                   help="another sweep spec instead of the packaged quickstart (e.g. a smaller one)")
    p.add_argument("--out", help="sweep directory (default: reports/<sweep name>/)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (the per-run lines stay)")
    p.set_defaults(func=cmd_quickstart)

    p = sub.add_parser("validate", help="check a sweep spec and print its planned runs without training")
    p.add_argument("sweep")
    p.add_argument("--python", metavar="PATH",
                   help="the interpreter the workers run (overrides executor.local.python / executor.slurm.python)")
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


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class RunReporter:
    """What `scalebench run` shows: one line per finished run on stdout (logs and pipes get them too), and
    a FLOP-weighted bar on stderr when that is a terminal."""

    def __init__(self, *, bar: bool, quiet: bool, out=None, clock=None) -> None:
        import time

        self.quiet, self.want_bar = quiet, bar and not quiet
        self.out = out if out is not None else sys.stdout
        self.clock = clock or time.monotonic
        self.bar, self.seen, self.start = None, set(), None

    def __call__(self, p) -> None:
        if self.quiet:
            return
        now = self.clock()
        if self.start is None:
            self.start = (now, p.flops_finished)
        if self.want_bar and self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=p.flops_total, unit="FLOP", unit_scale=True, dynamic_ncols=True, file=sys.stderr,
                            mininterval=1.0, disable=None)  # disable=None: no bar when stderr is not a terminal
        for f in p.finished:
            if f.run_id not in self.seen:
                self.seen.add(f.run_id)
                self._line(self._describe(f, p, now))
        if self.bar is not None:
            self.bar.set_description(f"runs {p.runs_finished}/{p.runs_total}")
            if p.last_loss is not None:
                self.bar.set_postfix_str(f"{p.last_run} loss {p.last_loss:.3f}")
            self.bar.update(p.flops_finished - self.bar.n)

    def _describe(self, f, p, now: float) -> str:
        loss = f"eval loss {f.eval_loss:.4f}" if f.eval_loss is not None else (f.error or "no eval loss")
        wall = f"{f.wall_time_s:.1f} s" if f.wall_time_s is not None else "-"
        left = p.runs_total - p.runs_finished
        todo = f"{left} left" + (f" ({len(p.runs_running)} running)" if p.runs_running else "")
        t0, flops0 = self.start
        rate = (p.flops_finished - flops0) / (now - t0) if now > t0 else 0.0
        if left and rate > 0:
            todo += f", about {_duration((p.flops_total - p.flops_finished) / rate)} to go"
        return f"[{len(self.seen)}/{p.runs_to_do or p.runs_total}] {f.run_id} {f.status}: {loss}, {wall}; {todo}"

    def _line(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text, file=self.out)
        else:
            print(text, file=self.out, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _track_kinds(text: str | None) -> tuple[str, ...] | None:
    if text is None:
        return None
    return tuple(k.strip().lower() for k in text.split(",") if k.strip())


def cmd_run(args) -> int:
    if args.dry_run:
        from scalebench.sweep.runner import describe_sweep

        sys.stdout.write(describe_sweep(args.sweep, args.out, backend=args.backend, python=args.python))
        return 0
    from scalebench.sweep.runner import run_sweep

    reporter = RunReporter(bar=not args.no_progress, quiet=args.quiet)
    try:
        outcome = run_sweep(args.sweep, args.out, progress=reporter, backend=args.backend,
                            track=_track_kinds(args.track), python=args.python)
    finally:
        reporter.close()
    for note in outcome.notes:
        print(f"note: {note}", file=sys.stderr)
    counts = ", ".join(f"{v} {k}" for k, v in sorted(outcome.counts.items()))
    print(f"sweep finished in {outcome.wall_time_s:.0f} s: {counts}")
    print(f"results: {outcome.sweep_dir}   (scalebench status {outcome.sweep_dir})")
    return 0 if outcome.ok else 1


def quickstart_spec() -> Path:
    """The packaged quickstart sweep (``sweeps/quickstart.toml`` in a source checkout is a link to it)."""
    return Path(__file__).resolve().parents[1] / "sweeps" / "quickstart.toml"


def cmd_quickstart(args) -> int:
    from scalebench.cli import main

    spec = args.sweep or str(quickstart_spec())
    run = ["run", spec, *(["--out", args.out] if args.out else []), *(["--no-progress"] if args.no_progress else [])]
    code = cmd_run(build_namespace(run))
    if code:
        return code
    from scalebench.config import load_sweep
    from scalebench.sweep.runner import default_sweep_dir

    out = args.out or str(default_sweep_dir(load_sweep(spec)))
    for step in (["fit", out, "--law", "chinchilla"], ["report", out]):  # exactly the commands a user would type
        print(f"$ scalebench {' '.join(step)}", flush=True)
        code = main(step)
        if code:
            return code
    return 0


def build_namespace(argv: list[str]) -> argparse.Namespace:
    """``argv`` parsed by the ``run`` command's own parser (its defaults included)."""
    parser = argparse.ArgumentParser(prog="scalebench")
    register(parser.add_subparsers())
    return parser.parse_args(argv)


def cmd_validate(args) -> int:
    import pandas as pd

    from scalebench._ticker import working
    from scalebench.config import load_sweep
    from scalebench.data.describe import is_estimate
    from scalebench.sweep.planner import describe_sweep_corpus, plan_runs

    spec = load_sweep(args.sweep)
    with working("validate: describing the corpus (never built here) and planning"):
        corpus = describe_sweep_corpus(spec, args.sweep)
        plan = plan_runs(spec, corpus=corpus, source=args.sweep, python=args.python)
    table = plan.table()
    c = plan.corpus
    print(f"sweep {spec.name!r}: family {', '.join(spec.families)}, {len(plan.runs)} runs, "
          f"{plan.total_flops:.3g} FLOPs in all, device {plan.runs[0].device}")
    if is_estimate(corpus):
        print(f"corpus: {c['source']} — not built yet (scalebench run builds it once): about {c['train_tokens']:,} "
              f"train / {c['val_tokens']:,} held-out tokens estimated from file sizes, vocab {c['vocab_size']}, "
              f"tokenizer {c['tokenizer']}")
    elif "vocab_size" in c:
        print(f"corpus: {c['source']} — {c['train_tokens']:,} train / {c['val_tokens']:,} held-out tokens, "
              f"vocab {c['vocab_size']}, tokenizer {c.get('tokenizer', 'bytes')}, fingerprint {c['fingerprint']}")
    else:  # a task's own description (images, teacher)
        from scalebench.data.tasks import get_task
        from scalebench.families import get_family

        info = get_task(get_family(spec.families[0]).task).info_from_dict(c)
        print(f"data: {getattr(info, 'description', c.get('source'))}, fingerprint {c['fingerprint']}")
    if spec.train.recipe or spec.train.recipe_table:
        from scalebench.recipes import get_recipe

        r = get_recipe(spec.train.recipe) if spec.train.recipe else None
        print(f"recipe {r.name}: {r.formula} ({r.source})" if r else "recipe: train.recipe_table (values per size)")
        if spec.train.pinned:
            print(f"  kept from [train] over the recipe: {', '.join(spec.train.pinned)}")
    with pd.option_context("display.width", 250, "display.max_columns", 30):
        print(table.to_string(index=False, formatters={"flops": "{:.3g}".format, "epochs": "{:.3f}".format}))
    for note in plan.notes:
        print(f"note: {note}")
    return 0


STATUS_COLUMNS = ("run_id", "status", "params", "tokens", "flops", "eval_loss", "tokens_per_s", "mfu",
                  "memory", "energy_j", "bottleneck", "wall_time_s")


def cmd_status(args) -> int:
    import pandas as pd

    from scalebench.sweep.runner import sweep_running
    from scalebench.sweep_dir import Sweep

    df = Sweep(args.dir).status()
    if args.json:
        print(df.to_json(orient="records"))
        return 0
    if df.empty:  # a sweep killed between creating its store and planning its runs leaves one
        print(f"{args.dir}: no runs yet (the sweep was stopped before it planned them); run its spec again with "
              f"--out {args.dir} to start it")
        return 0
    stale = (df["status"] == "running") & (not sweep_running(args.dir))
    df.loc[stale, "status"] = "interrupted"  # no sweep process holds the folder: nothing of it trains
    counts = df["status"].value_counts().to_dict()
    print(f"{args.dir}: {len(df)} runs — " + ", ".join(f"{v} {k}" for k, v in counts.items()))
    df["memory"] = [  # device memory on GPU; the worker's peak RSS on CPU
        f"{m / 2**20:.1f} MiB" if pd.notna(m) else f"{r / 2**20:.0f} MiB RSS" if pd.notna(r) else "-"
        for m, r in zip(df["peak_mem_bytes"], df["peak_rss_bytes"], strict=False)
    ]
    against = "the catalog peak"
    if df["mfu"].isna().all() and df["mfu_measured_peak"].notna().any():
        df["mfu"] = df["mfu_measured_peak"]  # no catalog peak (a CPU): against the calibrated peak
        against = "the calibrated peak (scalebench env --calibrate)"
    impossible = df["mfu"].astype(float) > 1
    show = df[list(STATUS_COLUMNS)].copy()
    for col, spec in (("params", ".3g"), ("tokens", ".3g"), ("flops", ".3g"), ("eval_loss", ".4f"),
                      ("tokens_per_s", ".3g"), ("mfu", ".3f"), ("energy_j", ".3g"), ("wall_time_s", ".1f")):
        show[col] = show[col].map(lambda v, s=spec: _fmt(v, s))
    show.loc[impossible, "mfu"] = show.loc[impossible, "mfu"] + "!"  # not a fact: flagged, explained below
    show["bottleneck"] = show["bottleneck"].fillna("-")
    with pd.option_context("display.width", 250, "display.max_columns", 30):
        print(show.to_string(index=False))
    if impossible.any():
        ids = ", ".join(df.loc[impossible, "run_id"])
        print(f"mfu!: {ids}: MFU above 1 against {against} is impossible, so that peak is understated (a "
              "calibration taken while the machine was busy?); rerun `scalebench env --calibrate` on an idle "
              "machine. These MFU values are not measurements of the runs.")
    if stale.any():
        print(f"interrupted: no `scalebench run` holds {args.dir} now (stopped or killed), so these runs are not "
              "training; run the spec again with the same --out to resume them from their checkpoints")
    bad = df[df["status"].isin(["failed", "diverged"])]
    for row in bad.itertuples():
        print(f"{row.run_id} {row.status}: {str(row.error).splitlines()[0] if row.error else ''}")
    return 0


def cmd_export(args) -> int:
    from scalebench.sweep_dir import Sweep

    sweep = Sweep(args.dir)
    out = sweep.export(args.out, steps=args.steps)  # whole or not at all, into a folder made if missing
    print(f"wrote {len(sweep.steps if args.steps else sweep.results)} rows to {out}")
    return 0


def cmd_env(args) -> int:
    from scalebench.hardware.devices import environment

    env = environment()
    if args.calibrate:
        from scalebench._ticker import working
        from scalebench.hardware.calibrate import calibrate, save_calibration

        with working("env: calibrating matmul peak, a matmul-efficiency grid and copy bandwidth"):
            cal = calibrate(grid=True)
        path = save_calibration(cal)
        env["calibration"] = {**cal.as_dict(), "saved_to": str(path), "noisy": cal.noisy()}
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
        _print_calibration(env["calibration"])
    return 0


def _print_calibration(c: dict) -> None:
    print(f"calibration of {c['device_name']} ({c['rounds']} rounds of {c['repeats']} timings; robust maximum = "
          "90th percentile, spread = (p90 - p10) / p90):")
    for key, label, unit, scale in (("fp32_matmul", "fp32 matmul", "GFLOP/s", 1e9),
                                    ("bf16_matmul", "bf16 matmul", "GFLOP/s", 1e9),
                                    ("copy_bandwidth", "copy bandwidth", "GB/s", 1e9)):
        peak = c.get(f"{key}_flops_per_s", c.get(f"{key}_bytes_per_s"))
        if peak is None:
            print(f"  {label:15s} not measured (no kernel for it here)")
            continue
        print(f"  {label:15s} {peak / scale:9.1f} {unit}   median {c[f'{key}_median'] / scale:.1f}, "
              f"spread {c[f'{key}_spread']:.0%}")
    if c.get("noisy"):
        print(f"  note: spread above 25% for {', '.join(c['noisy'])}: the machine was busy, so the peak is likely "
              "understated (MFU against it overstated); calibrate again when it is idle")
    print(f"  saved to {c['saved_to']}")
