"""Atomic checkpoints a run resumes from, loaded with ``weights_only=True``.

One rank or DDP: rank 0 writes ``checkpoint.pt`` (a temp file, fsync, rename: a kill mid-save leaves the
previous checkpoint). FSDP2: every rank writes its shards with ``torch.distributed.checkpoint`` into a temp
folder that rank 0 renames to ``checkpoint.dcp`` once all ranks are done. A checkpoint that cannot be read,
was written under other settings or on another corpus, holds a step outside the run, non-finite weights, or
loads but has the wrong structure is set aside (renamed ``*.unusable``) with an event, and the run starts
from scratch; a wsd fork likewise. Temp files are made afresh, never opened through a planted link.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

_TRAINER_KEYS = {"step": int, "micro_batch": int, "ema": (float, type(None)), "best_ema": float,
                 "backoffs": int, "trained_s": float, "spec_hash": str}


class Checkpointer:
    def __init__(self, run_dir: Path, *, spec_hash: str, run_id: str, sink: Any, ctx: Any, strategy: str,
                 steps: int, corpus: str | None = None) -> None:
        self.dir, self.spec_hash, self.run_id, self.sink = Path(run_dir), spec_hash, run_id, sink
        self.ctx, self.strategy = ctx, strategy
        self.steps, self.corpus = steps, corpus  # the run's length; the fingerprint of the data it trains on
        self.path = self.dir / ("checkpoint.dcp" if strategy == "fsdp" else "checkpoint.pt")

    # --- save ------------------------------------------------------------------------------------------
    def save(self, model: Any, optimizer: Any, scaler: Any, trainer: dict[str, Any]) -> None:
        trainer = {**trainer, "spec_hash": self.spec_hash, "corpus": self.corpus}
        if self.strategy == "fsdp":
            self._save_dcp(model, optimizer, trainer)
        elif self.ctx.is_main:
            self._save_file(model, optimizer, scaler, trainer)
        self.ctx.barrier()

    def save_fork(self, model: Any, optimizer: Any, scaler: Any, trainer: dict[str, Any]) -> None:
        """A wsd trunk's state at a branch's fork step: ``forks/step-N.pt``, in the checkpoint's format."""
        if self.ctx.is_main:
            self._save_file(model, optimizer, scaler, {**trainer, "spec_hash": self.spec_hash, "corpus": self.corpus},
                            path=fork_path(self.dir, trainer["step"]))

    def _save_file(self, model: Any, optimizer: Any, scaler: Any, trainer: dict[str, Any],
                   path: Path | None = None) -> None:
        import torch

        path = path or self.path
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        module = getattr(model, "module", model)  # DDP keeps the model in .module
        with os.fdopen(_fresh(tmp), "wb") as f:
            torch.save({"model": module.state_dict(), "optimizer": optimizer.state_dict(), "trainer": trainer,
                        "scaler": scaler.state_dict() if scaler else {}}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    def _save_dcp(self, model: Any, optimizer: Any, trainer: dict[str, Any]) -> None:
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import get_state_dict

        tmp = self.dir / "checkpoint.dcp.tmp"
        if self.ctx.is_main:
            _clear(tmp)
            tmp.mkdir(parents=True)
        self.ctx.barrier()
        msd, osd = get_state_dict(model, optimizer)
        dcp.save({"model": msd, "optimizer": osd}, checkpoint_id=str(tmp))
        self.ctx.barrier()
        if self.ctx.is_main:
            with os.fdopen(_fresh(tmp / "trainer.json"), "w") as f:
                f.write(json.dumps(trainer))
            old = self.dir / "checkpoint.dcp.old"
            shutil.rmtree(old, ignore_errors=True)
            if self.path.exists():
                os.replace(self.path, old)
            os.replace(tmp, self.path)
            shutil.rmtree(old, ignore_errors=True)

    # --- load ------------------------------------------------------------------------------------------
    def load_fork(self, path: Path, spec_hash: str, model: Any, optimizer: Any, device: Any):
        """A wsd branch's start: the trunk's state at the fork (written under the trunk's ``spec_hash``), or
        None (with an event) when it cannot be used — the branch then trains from scratch, to the same result."""
        try:
            return self._load_file(model, optimizer, device, path=path, spec_hash=spec_hash,
                                   step=int(path.stem.rsplit("-", 1)[1]))
        except _Unusable as why:
            aside = _set_aside(path)  # damaged for every branch sharing it
            self.sink.add_event(self.run_id, why.kind, f"fork {path}: {why}; {aside}training from scratch instead")
            return None

    def load(self, model: Any, optimizer: Any, device: Any) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """Restore model and optimizer in place; returns (trainer state, scaler state) or None."""
        if not self.path.exists() and not self.path.is_symlink():
            return None
        try:
            if self.strategy == "fsdp":
                return self._load_dcp(model, optimizer)
            return self._load_file(model, optimizer, device)
        except _Unusable as why:
            self._set_aside(why.kind, str(why))
            return None

    def _load_file(self, model: Any, optimizer: Any, device: Any, path: Path | None = None,
                   spec_hash: str | None = None, step: int | None = None):
        import torch

        path, spec_hash = path or self.path, spec_hash or self.spec_hash
        try:
            state = torch.load(path, map_location=device, weights_only=True)
        except Exception as exc:  # noqa: BLE001 - a torn or foreign file must not make every retry fail
            raise _Unusable("checkpoint-unreadable", f"{path.name}: {exc}") from None
        if not isinstance(state, dict) or not isinstance(state.get("trainer"), dict):
            raise _Unusable("checkpoint-unusable", f"{path.name}: not a scalebench checkpoint")
        trainer = state["trainer"]
        if trainer.get("spec_hash") != spec_hash:
            raise _Unusable("checkpoint-stale", "checkpoint written under other settings")
        self._check_trainer(trainer, path.name, step)
        if not isinstance(state.get("model"), dict) or not all(
                not isinstance(v, torch.Tensor) or not v.is_floating_point() or bool(torch.isfinite(v).all())
                for v in state["model"].values()):
            raise _Unusable("checkpoint-unusable", f"{path.name}: its weights are missing or not finite")
        module = getattr(model, "module", model)
        backup = {k: v.detach().clone() for k, v in module.state_dict().items()}
        try:
            module.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
        except (KeyError, RuntimeError, ValueError, TypeError) as exc:
            module.load_state_dict(backup)  # "from scratch" must mean the run's own initial weights
            raise _Unusable("checkpoint-unusable", f"{path.name} does not match the model: "
                                                   f"{str(exc).splitlines()[0]}") from None
        return trainer, state.get("scaler") or {}

    def _load_dcp(self, model: Any, optimizer: Any):
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

        try:
            trainer = json.loads((self.path / "trainer.json").read_text())
        except (OSError, ValueError) as exc:
            raise _Unusable("checkpoint-unreadable", f"{self.path.name}: {exc}") from None
        if not isinstance(trainer, dict) or trainer.get("spec_hash") != self.spec_hash:
            raise _Unusable("checkpoint-stale", "checkpoint written under other settings")
        self._check_trainer(trainer, self.path.name)
        msd, osd = get_state_dict(model, optimizer)
        state = {"model": msd, "optimizer": osd}
        try:
            dcp.load(state, checkpoint_id=str(self.path))
            set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optimizer"])
        except Exception as exc:  # noqa: BLE001 - shards missing or of another model
            raise _Unusable("checkpoint-unusable", f"{self.path.name}: {str(exc).splitlines()[0]}") from None
        return trainer, {}

    def _check_trainer(self, trainer: dict[str, Any], name: str, step: int | None = None) -> None:
        """The trainer state is whole, of this corpus, and at a step of this run (a fork: at its own step)."""
        for key, types in _TRAINER_KEYS.items():
            if not isinstance(trainer.get(key), types) or isinstance(trainer.get(key), bool):
                raise _Unusable("checkpoint-unusable", f"{name}: trainer state {key!r} is missing or malformed")
        if self.corpus is not None and trainer.get("corpus") != self.corpus:
            raise _Unusable("checkpoint-stale", f"{name} was trained on another corpus (fingerprint "
                                                f"{trainer.get('corpus')}, this run's is {self.corpus})")
        ok = trainer["step"] == step if step is not None else 0 <= trainer["step"] <= self.steps
        if not ok or trainer["micro_batch"] < 1 or trainer["backoffs"] < 0:
            want = f"step {step}" if step is not None else f"a step within 0..{self.steps}"
            raise _Unusable("checkpoint-unusable", f"{name}: trainer state at step {trainer['step']}, micro-batch "
                                                   f"{trainer['micro_batch']}; this run needs {want}")

    def _set_aside(self, kind: str, message: str) -> None:
        self.ctx.barrier()  # every rank has decided before rank 0 moves the file
        if self.ctx.is_main:
            where = _set_aside(self.path)
            self.sink.add_event(self.run_id, kind, f"{message}; {where}starting from scratch")
        self.ctx.barrier()

    def remove(self) -> None:
        if not self.ctx.is_main:
            return
        if self.path.is_dir():
            shutil.rmtree(self.path, ignore_errors=True)
        else:
            self.path.unlink(missing_ok=True)


def fork_path(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / "forks" / f"step-{step}.pt"


def release_fork(branch_dir: Path, fork_from: dict[str, Any]) -> None:
    """A finished wsd branch: remove the trunk's state it started from, unless another branch shares it."""
    if fork_from and fork_from.get("shared", 1) == 1:
        fork_path(Path(branch_dir).parent / fork_from["run_id"], fork_from["step"]).unlink(missing_ok=True)



def _set_aside(path: Path) -> str:
    """Rename a damaged checkpoint or fork (a file, a folder or a link) to ``*.unusable``; says where."""
    aside = path.with_name(path.name + ".unusable")
    try:
        _clear(aside)
        os.replace(path, aside)
    except OSError:
        return ""
    return f"set aside as {aside.name}, "


def _clear(path: Path) -> None:
    """Remove whatever is at ``path`` (a file, a link, a folder), following no link."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _fresh(path: Path) -> int:
    """A temp file made anew: whatever was left at its name (a killed save's file, a folder, a planted link)
    is removed, and the file is created exclusively, never through a link."""
    from scalebench._util import open_exclusive

    _clear(path)
    return open_exclusive(path)


class _Unusable(Exception):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind

