"""Turn a SweepSpec into the list of runs it asks for (sizes × data budgets)."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from scalebench.config import RunSpec, SweepSpec
from scalebench.errors import ConfigError

REPEAT_WARN_EPOCHS = 4.0  # Muennighoff et al. (2023): beyond ~4 epochs repeated data is worth much less


@dataclass(frozen=True, kw_only=True)
class SweepPlan:
    spec: SweepSpec
    runs: tuple[RunSpec, ...]
    corpus: dict
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def total_flops(self) -> float:
        return sum(r.flops for r in self.runs)

    def table(self):
        import pandas as pd

        train_units = self.corpus.get("train_units", self.corpus.get("train_tokens", 0))
        rows = [{"run_id": r.run_id, "family": r.family, "size": r.size, "shape": shape_label(r.family, r.shape),
                 **r.axes, "params": r.params, "params_total": r.params_total, "unit": r.unit, "tokens": r.tokens,
                 "steps": r.steps, "flops": r.flops, "epochs": r.tokens / max(1, train_units)} for r in self.runs]
        if len({r.train.lr for r in self.runs}) > 1 and not any("lr" in r.axes for r in self.runs):
            for row, r in zip(rows, self.runs, strict=True):  # set per family or per optimizer: show it
                row["lr"] = r.train.lr
        if any(r.train.recipe or r.train.recipe_table for r in self.runs):  # the recipe's values per size
            from scalebench.train.optim import warmup_steps

            for row, r in zip(rows, self.runs, strict=True):
                row.update(lr=r.train.lr, batch=r.batch_units, beta1=r.train.betas[0], beta2=r.train.betas[1],
                           warmup_steps=warmup_steps(r.steps, r.train), weight_decay=r.train.weight_decay)
        return pd.DataFrame(rows)


def shape_label(family: str, shape: dict) -> str:
    """The family's short label of a stored shape (``L4-d96-h3`` for GPT)."""
    from scalebench.families import get_family

    fam = get_family(family)
    return fam.label(fam.make_shape(**shape))


def _num_label(x: float) -> str:
    s = f"{x:.3g}".replace("+", "")
    return s.replace("e0", "e")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-")


def _batch_units(train, family, where: str) -> tuple[int, str]:
    """Units in one global batch and the key that sets it (batch_tokens or batch_samples)."""
    if family.unit == "tokens":
        return train.batch_tokens, "train.batch_tokens"
    if train.batch_samples is None:
        raise ConfigError(f"{where}train.batch_samples: the {family.name} family counts samples; set "
                          "train.batch_samples (the global batch in samples)")
    return train.batch_samples, "train.batch_samples"


def resolve_device(spec: SweepSpec) -> str:
    if spec.devices.device != "auto":
        return spec.devices.device
    from scalebench.hardware.devices import gpu_driver_visible

    if not gpu_driver_visible():  # certain without importing torch, which `validate` would otherwise pay for
        return "cpu"
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def device_memory_bytes(spec: SweepSpec, device: str) -> tuple[float, str] | None:
    """What one run may use: the smallest GPU's memory, or this machine's RAM shared by its CPU workers."""
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            return None
        idx = list(spec.devices.gpus) or list(range(torch.cuda.device_count()))
        props = [torch.cuda.get_device_properties(i) for i in idx if i < torch.cuda.device_count()]
        if not props:
            return None
        p = min(props, key=lambda q: q.total_memory)
        return float(p.total_memory), f"{p.name} memory"
    try:
        ram = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None
    workers = spec.devices.cpu_workers
    return ram / workers, f"this machine's RAM ({ram / 2**30:.1f} GiB) / devices.cpu_workers = {workers}"


# the estimator's optimizer-state models: Adam and AdamW keep two moments, SGD (momentum) one, GD none (the
# nearest model, SGD, errs towards more memory, so a refusal is never wrong)
_ESTIMATOR_OPTIMIZER = {"adamw": "adamw", "adam": "adamw", "sgd": "sgd", "gd": "sgd"}


def _check_memory(spec: SweepSpec, runs: list, device: str, where: str) -> list[str]:
    """Refuse sizes whose training memory (the estimator's model) cannot fit the device even at a
    micro-batch of one sequence (the trainer halves the micro-batch on OOM down to one); note sizes that
    only fit at a smaller micro-batch than planned."""
    cap = device_memory_bytes(spec, device)
    if cap is None:
        return []
    capacity, what = cap
    notes = _check_family_memory(spec, [r for r in runs if r.family != "gpt"], device, capacity, what, where)
    runs = [r for r in runs if r.family == "gpt"]  # the estimator's memory model knows GPT shapes
    if not runs:
        return notes
    import pandas as pd

    from scalebench.planning import estimate

    sizes = {r.size: r for r in runs}
    prec = {"auto": "bf16" if device == "cuda" else "fp32"}.get(spec.train.precision, spec.train.precision)
    micro = spec.train.micro_batch or spec.train.batch_seqs
    frame = pd.DataFrame([{**{k: r.shape[k] for k in ("n_layer", "d_model", "n_head", "vocab_size", "d_ff") if k in r.shape},
                           "family": "gpt", "seq_len": spec.train.seq_len, "micro_batch": m, "precision": prec,
                           "optimizer": _ESTIMATOR_OPTIMIZER.get(spec.train.optimizer, "adamw"), "gpu": "H100-SXM", "num_gpus": 1, "zero": 0,
                           "checkpointing": "none", "tokens": float(r.tokens), "framework": "autocast",
                           "context_bytes": 0.0 if device == "cpu" else None}
                          for r in sizes.values() for m in (1, micro)])
    frame["context_bytes"] = frame["context_bytes"].astype(float)
    need = estimate(frame)["memory_total_bytes"].to_numpy(float).reshape(len(sizes), 2)
    refused = []
    for (label, _), (at_one, planned) in zip(sizes.items(), need, strict=True):
        if at_one > capacity:
            refused.append(f"{label} needs {at_one / 2**30:.2f} GiB even at 1 sequence per micro-batch")
        elif planned > capacity:
            notes.append(f"{label}: {planned / 2**30:.2f} GiB at micro-batch {micro} exceeds {what} "
                         f"({capacity / 2**30:.2f} GiB); it will train at a smaller micro-batch (same global batch)")
    if refused:
        raise ConfigError(f"{where}model: by the estimator's memory model, {'; '.join(refused)}, more than "
                          f"{what} = {capacity / 2**30:.2f} GiB; drop these sizes or use a larger device")
    return notes


def _check_local(spec: SweepSpec, where: str, python: str | None = None) -> None:
    """What a local sweep needs of this machine, checked at validate rather than when its workers start (a
    remote executor's workers run elsewhere: their interpreter and devices are theirs). ``python`` (``--python``)
    is the workers' interpreter instead of ``executor.local.python``, which is then not used nor checked."""
    if spec.executor.kind != "local":
        return
    import shutil

    given = python or getattr(getattr(spec.executor, "local", None), "python", "")
    if given and not (shutil.which(given) or (os.path.isfile(given) and os.access(given, os.X_OK))):
        key = f"--python {given!r}" if python else f"{where}executor.local.python = {given!r}"
        raise ConfigError(f"{key}: no such executable here; give the path of a Python with scalebench installed"
                          + ("" if python else ", or remove the key to use this one"))
    if spec.devices.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(f"{where}devices.device = 'cuda', but torch sees no CUDA device on this machine; "
                              "use device = 'auto' or 'cpu', or run on a machine with a GPU")


def _check_family_memory(spec: SweepSpec, runs: list, device: str, capacity: float, what: str,
                         where: str) -> list[str]:
    """The same refusal for every other family, by its own ``memory_model`` (model states alone where it has
    none): a size that cannot train even at one row per micro-batch is refused before anything starts."""
    from scalebench.families import get_family
    from scalebench.families._memory import training_bytes

    prec = {"auto": "bf16" if device == "cuda" else "fp32"}.get(spec.train.precision, spec.train.precision)
    prec = "fp32" if device == "cpu" else prec
    notes, refused, seen = [], [], set()
    for r in runs:
        if (r.family, r.size) in seen:
            continue
        seen.add((r.family, r.size))
        fam = get_family(r.family)
        shape = fam.make_shape(**r.shape)
        micro = min(spec.train.micro_batch or r.batch_rows, r.batch_rows)
        need = ((lambda rows, f=fam, s=shape: f.memory_model(s, rows, prec)) if fam.memory_model is not None
                else (lambda rows, f=fam, s=shape: training_bytes(f.params_total(s), 0, prec)))
        at_one, planned = float(need(1)), float(need(micro))
        unit = "sequence" if r.unit == "tokens" else "sample"
        if at_one > capacity:
            refused.append(f"{r.family} {r.size} needs {at_one / 2**30:.2f} GiB even at 1 {unit} per micro-batch")
        elif planned > capacity:
            notes.append(f"{r.family} {r.size}: {planned / 2**30:.2f} GiB at micro-batch {micro} exceeds {what} "
                         f"({capacity / 2**30:.2f} GiB); it will train at a smaller micro-batch (same global batch)")
    if refused:
        raise ConfigError(f"{where}model: by the family's memory model, {'; '.join(refused)}, more than {what} = "
                          f"{capacity / 2**30:.2f} GiB; drop these sizes or use a larger device")
    return notes


def prepare_sweep_corpus(spec: SweepSpec, source: str = ""):
    """The data of the sweep's task (its families share one); its errors name the spec file they come from."""
    from scalebench.data.tasks import get_task
    from scalebench.families import get_family

    try:
        return get_task(get_family(spec.families[0]).task).prepare(spec.data, spec.eval.held_out_share)
    except ConfigError as exc:
        if not source or str(exc).startswith(source):
            raise
        raise type(exc)(f"{source}: {exc}") from None


def plan_runs(spec: SweepSpec, *, corpus=None, sweep_dir: str | Path | None = None, source: str = "",
              python: str | None = None) -> SweepPlan:
    """Every run of the sweep (families × grid points × sizes × budgets), largest compute first.

    ``python``: the local workers' interpreter when given (``--python``), instead of ``executor.local.python``.
    Raises ConfigError on an impossible budget or grid point."""
    from scalebench.data.tasks import get_task
    from scalebench.families import get_family
    from scalebench.sweep.grid import check_precision, grid_points, point_label, train_for_point

    where = f"{source}: " if source else ""
    families = [get_family(name) for name in spec.families]  # one task for all (SweepSpec checks it)
    task = get_task(families[0].task)
    _check_local(spec, where, python)
    corpus = corpus or prepare_sweep_corpus(spec, source)
    device = resolve_device(spec)
    full_batch_rows = corpus.train_units if getattr(task, "full_batch", False) else None
    runs, notes = [], []
    _check_synthetic(spec, corpus, where)
    for family in families:
        context = family.shape_context(corpus, spec.train, spec.model)
        if spec.model.parametrization != "standard" and "parametrization" not in context:
            raise ConfigError(f"{where}model.parametrization = {spec.model.parametrization!r}: the {family.name} "
                              "family has no parametrisations other than 'standard' (gpt has mup and completep)")
        ladder = _ladder(spec, family, context, where)
        _check_splits(corpus, family, spec.train, where)
        for point in grid_points(spec):
            train = train_for_point(spec, point, family=family.name, unit=family.unit,
                                    full_batch_rows=full_batch_rows, task=family.task, where=where)
            if "precision" in point or train.precision == "fp8":
                check_precision(train.precision, device, f"{where}grid.precision: " if "precision" in point else where)
            axes = {"family": family.name} if spec.grid.family else {}
            axes.update(point)
            if "batch" in axes and axes["batch"] is None:  # gd: the whole training set
                axes["batch"] = _batch_units(train, family, where)[0]
            runs += _ladder_runs(spec, family, ladder, train, axes, point_label(point), corpus, device,
                                 sweep_dir, where, notes)
    b = spec.budget
    for b_value in (getattr(b, b.kind) if b.kind == "flops" else ()):
        if not any(r.budget_label == f"C{_num_label(b_value)}" for r in runs):
            raise ConfigError(f"{where}budget.flops: budget {b_value:g} is too small for every size in the ladder")
    if len({r.run_id for r in runs}) < len(runs):
        raise ConfigError(f"{where}budget: two budgets give the same run; list distinct values")
    cores = os.cpu_count() or 1
    if device == "cpu" and spec.devices.cpu_workers * spec.devices.threads_per_worker > cores:
        notes.append(f"devices.cpu_workers x threads_per_worker = "
                     f"{spec.devices.cpu_workers * spec.devices.threads_per_worker} exceeds the {cores} CPU cores: "
                     "runs will contend and throughput figures will understate the hardware")
    if device == "cpu" and spec.executor.kind == "local" and spec.devices.threads_per_worker > cores:
        raise ConfigError(f"{where}devices.threads_per_worker = {spec.devices.threads_per_worker} is more than the "
                          f"{cores} CPU cores here; use at most {cores}")
    notes += _check_memory(spec, runs, device, where)
    if device == "cpu" and spec.train.precision in ("bf16", "fp16"):
        notes.append(f"train.precision = {spec.train.precision!r}, but the runs go to the CPU, where they train in "
                     "fp32: scalebench does not autocast on CPU (for these sizes it is slower than fp32 and changes "
                     "the numbers); the store records precision = 'fp32'")
    for note in notes:
        if "epochs" in note:
            warnings.warn(note, stacklevel=2)
    runs = _wsd_branches(spec, runs, where)
    # longest first (the best packing for a pool of workers), wsd trunks before the branches that wait on them
    runs.sort(key=lambda r: (bool(r.fork_from), -r.flops))
    return SweepPlan(spec=spec, runs=tuple(runs), corpus=corpus.as_dict(), notes=tuple(notes))


def _ladder(spec: SweepSpec, family, context: dict, where: str) -> list[tuple[str, object]]:
    """(label, shape) of every size in [model] for one family."""
    ladder = []
    m = spec.model
    for i, name in enumerate(m.sizes):
        try:
            ladder.append((name, family.shape_from_flavour(name, **context)))
        except ConfigError as exc:
            raise ConfigError(f"{where}model.sizes[{i}]: {exc}") from None
    for i, shape in enumerate(m.shapes):
        fixed = sorted(set(shape) & set(context))
        if fixed:
            raise ConfigError(f"{where}model.shapes[{i}]: {fixed[0]!r} is set for the whole sweep (by the "
                              f"{family.name} family from the data and the train table: "
                              f"{', '.join(sorted(context))}); remove it here")
        try:
            s = family.make_shape(**{**context, **shape})
        except TypeError as exc:
            raise ConfigError(f"{where}model.shapes[{i}]: {exc}") from None
        except ConfigError as exc:
            raise ConfigError(f"{where}model.shapes[{i}]: {exc}") from None
        ladder.append((family.label(s), s))
    for target in m.params:
        ladder.append((f"p{_num_label(target)}", family.shape_for_params(target, **context)))
    labels = [label for label, _ in ladder]
    if len(set(map(family.params, (s for _, s in ladder)))) < len(ladder):
        dup = [lab for lab in labels if labels.count(lab) > 1] or labels
        raise ConfigError(f"{where}model: the ladder has two entries of the same size ({dup[0]}); list distinct sizes")
    return ladder


def _check_splits(corpus, family, t, where: str) -> None:
    window = t.seq_len + 1 if family.unit == "tokens" else 1
    for split, n_units, fix in (("held-out", corpus.val_units, "raise eval.held_out_share or add data"),
                                ("training", corpus.train_units, "add data")):
        if n_units < window + (family.unit == "tokens"):
            need = f"one window of train.seq_len + 1 = {window}" if family.unit == "tokens" else "one sample"
            raise ConfigError(f"{where}data.source: the {split} split has {n_units} {family.unit}, fewer than "
                              f"{need}; {fix}")


def _ladder_runs(spec: SweepSpec, family, ladder, t, axes: dict, suffix: str, corpus, device: str,
                 sweep_dir, where: str, notes: list) -> list[RunSpec]:
    """The runs of one family at one grid point: every size × every budget."""
    b = spec.budget
    runs = []
    t_point = t
    by_size = sorted(ladder, key=lambda entry: family.params(entry[1]))
    ends = {by_size[0][0], by_size[-1][0]} if "lr" not in axes else set()  # an lr axis is its own probe
    for label, shape in ladder:
        n, fpt = family.params(shape), family.flops_per_token(shape)
        for value in getattr(b, b.kind):
            if b.kind == "tokens":
                tokens, blabel = value, f"t{_num_label(value)}"
            elif b.kind == "tokens_per_param":
                tokens, blabel = value * n, f"tpp{_num_label(value)}"
            else:
                tokens, blabel = value / fpt, f"C{_num_label(value)}"
            t = _recipe_train(spec, family, t_point, label, shape, n, tokens, fpt * tokens, axes, where)
            batch_units, batch_key = _batch_units(t, family, where)
            if t.optimizer == "gd":
                batch_key = f"the whole training set ({batch_units} samples: optimizer 'gd')"
            if spec.parallel.ranks > 1 and t.batch_seqs % spec.parallel.ranks and family.unit == "tokens":
                raise ConfigError(f"{where}parallel.ranks = {spec.parallel.ranks}: the global batch of {t.batch_seqs} "
                                  "sequences (train.batch_tokens / seq_len) must split evenly over the ranks")
            steps = round(tokens / batch_units)
            if steps < b.min_steps:
                msg = (f"size {label} with budget {b.kind}={value:g} is {tokens:.3g} {family.unit}, under "
                       f"budget.min_steps={b.min_steps} batches of {batch_key}={batch_units}")
                if b.kind == "flops":
                    notes.append(msg + ": dropped from this isoFLOP budget")
                    continue
                raise ConfigError(f"{where}budget.{b.kind}: {msg}; raise the budget or lower {batch_key}")
            if t.warmup_steps is not None and t.warmup_steps >= steps:
                raise ConfigError(f"{where}train.warmup_steps = {t.warmup_steps}: size {label} with budget "
                                  f"{b.kind}={value:g} trains {steps} steps, so its learning rate would never leave "
                                  f"the warm-up; set warmup_steps below {steps} (or use warmup_share, a share of "
                                  "each run's steps)")
            tokens_int = steps * batch_units
            epochs = tokens_int / max(1, corpus.train_units)
            if epochs > b.max_epochs and t.optimizer != "gd":  # full-batch GD repeats the set by design
                raise ConfigError(
                    f"{where}budget.{b.kind}: size {label} would see the corpus {epochs:.1f} times, over "
                    f"budget.max_epochs={b.max_epochs:g}; use a larger corpus (data.source, or "
                    f"data.include_site_packages = true) or a smaller budget")
            if epochs > REPEAT_WARN_EPOCHS and t.optimizer != "gd":
                notes.append(f"{label} {blabel}: {epochs:.1f} epochs of the corpus (repeated data is worth "
                             "less past ~4 epochs, Muennighoff et al. 2023)")
            for extra, t_run in _repeats(spec, t, probe=label in ends and blabel == _first_budget(b)):
                run_id = _slug(f"{family.name}-{label}-{blabel}" + (f"-{suffix}" if suffix else "")
                               + "".join(f"-{k}{_num_label(v)}" for k, v in extra.items()))
                runs.append(RunSpec(
                    run_id=run_id, sweep=spec.name, family=family.name, size=label, shape=shape.as_dict(),
                    params=n, params_total=family.params_total(shape), flops_per_token=fpt, tokens=tokens_int,
                    flops=fpt * tokens_int, steps=steps, budget_label=blabel, train=t_run, eval=spec.eval,
                    data=spec.data, profiling=spec.profiling, device=device,
                    threads=spec.devices.threads_per_worker, parallel=spec.parallel, unit=family.unit,
                    axes={**axes, **extra}, run_dir=str(Path(sweep_dir) / "runs" / run_id) if sweep_dir else "",
                ))
    return runs


def _first_budget(b) -> str:
    value = getattr(b, b.kind)[0]
    return {"tokens": "t", "tokens_per_param": "tpp", "flops": "C"}[b.kind] + _num_label(value)


def _recipe_train(spec: SweepSpec, family, t, label: str, shape, n: int, tokens: float, flops: float, axes: dict,
                  where: str):
    """[train] with the recipe's values for one cell (scalebench/recipes.py); grid axes and the
    per-family / per-optimizer tables win over the recipe as [train]'s own keys do."""
    if not (t.recipe or t.recipe_table):
        return t
    import math

    from scalebench.recipes import RecipeInput, is_per_budget, resolve

    if is_per_budget(t) and t.schedule == "wsd":
        raise ConfigError(f"{where}train.recipe = {t.recipe!r} sets values per budget, but schedule = 'wsd' shares "
                          "one stable phase across a size's budgets; use schedule = 'cosine' or a per-size recipe")
    pinned = [k for k in ("lr", "batch") if axes.get(k) is not None]
    pinned = [("batch_tokens" if k == "batch" else k) for k in pinned]
    for table in (spec.grid.per_family.get(family.name, {}), spec.grid.per_optimizer.get(t.optimizer, {})):
        pinned += list(table)
    d = shape.as_dict()
    unit_len = t.seq_len if family.unit == "tokens" else 1
    batch = _batch_units(t, family, where)[0]
    x = RecipeInput(family=family.name, size=label, params=n, d_model=d.get("d_model"), n_layer=d.get("n_layer"),
                    seq_len=unit_len, batch_tokens=batch, tokens=tokens, flops=flops)
    quantum = math.lcm(t.micro_batch or 1, spec.parallel.ranks)
    try:
        return resolve(t, x, pinned=tuple(pinned), quantum=quantum)
    except ConfigError as exc:
        raise ConfigError(f"{where}{exc}") from None


def _repeats(spec: SweepSpec, t, *, probe: bool):
    """(extra axes, TrainSpec) of each run of one cell: ``[ladder] seeds`` repeats, then the lr probes (x0.5,
    x2) at the smallest and largest size's first budget (scalebench/laws/health.py judges them)."""
    seeds = spec.ladder.seeds
    for k in range(seeds):
        yield ({"seed": k} if seeds > 1 else {}), (dataclasses.replace(t, seed=t.seed + k) if k else t)
    if spec.ladder.probe and probe:
        for f in spec.ladder.probe_factors:
            yield {"probe": f}, dataclasses.replace(t, lr=t.lr * f)


def _wsd_branches(spec: SweepSpec, runs: list[RunSpec], where: str) -> list[RunSpec]:
    """Under ``schedule = "wsd"`` the budgets of one size (and grid point) share a warm-up and a stable phase:
    the longest run (the trunk) saves its state where each shorter run's cooldown begins, and that run (a
    branch) starts from it, so a size costs its longest run plus the cooldowns (Hägele et al. 2024, §4).
    A branch started from the trunk's state is the run it would be from scratch (tests check it bit for bit)."""
    from scalebench.train.optim import cooldown_start

    groups: dict[tuple, list[RunSpec]] = {}
    for r in runs:
        if r.train.schedule == "wsd":
            groups.setdefault((r.family, r.size, json.dumps(r.axes, sort_keys=True)), []).append(r)
    if not groups:
        return runs
    if spec.executor.kind != "local":
        raise ConfigError(f"{where}train.schedule = 'wsd': branches wait on their trunk's state, which only the "
                          f"local executor orders for now; run it locally, or use schedule = 'cosine' on "
                          f"{spec.executor.kind}")
    if spec.parallel.ranks > 1:
        raise ConfigError(f"{where}train.schedule = 'wsd' branches are single-process for now; set parallel.ranks "
                          "= 1 or schedule = 'cosine'")
    out = {r.run_id: r for r in runs}
    for group in groups.values():
        t = group[0].train  # one grid point: the same [train] for every budget
        warm = t.warmup_steps if t.warmup_steps is not None else int(t.warmup_share * min(r.steps for r in group))
        group = [dataclasses.replace(r, train=dataclasses.replace(r.train, warmup_steps=warm)) for r in group]
        shortest = min(group, key=lambda r: r.steps)
        first_cool = cooldown_start(shortest.steps, shortest.train)
        if warm > first_cool:
            raise ConfigError(f"{where}train: {warm} warm-up steps, but run {shortest.run_id} ({shortest.steps} steps) "
                              f"starts its cooldown at step {first_cool}; lower warmup_share or cooldown_share, or "
                              "raise the smallest budget")
        trunk = max(group, key=lambda r: r.steps)
        forks = {r.run_id: cooldown_start(r.steps, r.train) for r in group if r is not trunk}
        forks = {k: v for k, v in forks.items() if v > 0}
        shared = Counter(forks.values())  # two budgets can cool down from the same step: one fork serves both
        trunk = dataclasses.replace(trunk, fork_steps=tuple(sorted(shared)))
        out[trunk.run_id] = trunk
        for r in group:
            if r.run_id in forks:
                step = forks[r.run_id]
                r = dataclasses.replace(r, fork_from={"run_id": trunk.run_id, "step": step, "shared": shared[step],
                                                      "spec_hash": trunk.spec_hash()})
            if r.run_id != trunk.run_id:
                out[r.run_id] = r
    return [out[r.run_id] for r in runs]


def _check_synthetic(spec: SweepSpec, corpus, where: str) -> None:
    """The synthetic language: one document per window, and a floor that is the evaluated tokens'."""
    if getattr(corpus, "source", None) != "synthetic":
        return
    from scalebench.data.synthetic import check_window

    check_window(corpus, spec.train.seq_len, where)
    if spec.eval.eval_tokens < corpus.val_tokens:
        raise ConfigError(f"{where}eval.eval_tokens = {spec.eval.eval_tokens} evaluates fewer than the "
                          f"{corpus.val_tokens} held-out tokens the floor is computed on (data.synthetic.val_documents "
                          f"x seq_len); raise eval_tokens to {corpus.val_tokens} or lower val_documents")


def describe_sweep_corpus(spec: SweepSpec, source: str = ""):
    """The sweep's data as ``validate`` plans it: a text corpus built or estimated, any other task prepared."""
    from scalebench.data.describe import describe_text_corpus
    from scalebench.families import get_family

    if get_family(spec.families[0]).task == "text":
        try:
            info = describe_text_corpus(spec.data, spec.eval.held_out_share)
        except ConfigError as exc:
            raise type(exc)(f"{source}: {exc}" if source and not str(exc).startswith(source) else str(exc)) from None
        if info is not None:
            return info
    return prepare_sweep_corpus(spec, source)
