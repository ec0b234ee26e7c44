"""Fault injection for tests: an in-process hook, or a plan in ``SCALEBENCH_TEST_FAULT`` for ranks under torchrun.

``SCALEBENCH_TEST_FAULT`` is JSON: ``{"kind": "oom" | "nan" | "kill", "rank": R, "step": S, "micro_above": M}``;
``oom`` raises an injected CUDA out-of-memory error on rank R (at step S or later, while the micro-batch is
above M), ``kill`` sends SIGKILL to rank R's own process at step S, ``nan`` makes rank R's loss non-finite
from step S (see :func:`poison`). With ``"once": PATH`` a fault fires only while PATH does not exist (it is
created as the fault fires), so a retried run goes through. Unset in normal use: the checks cost one
``None`` test per micro-batch.
"""

from __future__ import annotations

import json
import os
import signal
from typing import Any

ENV = "SCALEBENCH_TEST_FAULT"


def plan_from_env(run_id: str) -> dict[str, Any] | None:
    """This run's fault plan: the env holds one plan or a list; a plan with ``run_id`` applies to that run only."""
    raw = os.environ.get(ENV)
    if not raw:
        return None
    plans = json.loads(raw)
    for plan in plans if isinstance(plans, list) else [plans]:
        if plan.get("run_id", run_id) == run_id:
            return plan
    return None


def before_micro_step(step: int, micro: int, rank: int, plan: dict[str, Any] | None) -> None:
    import scalebench.train as pkg

    if pkg.fault_hook is not None:
        pkg.fault_hook(step, micro)
    if plan is None or plan.get("rank", 0) != rank or step < plan.get("step", 0) or _spent(plan):
        return
    if plan["kind"] == "oom" and micro > plan.get("micro_above", 0):
        import torch

        raise torch.cuda.OutOfMemoryError("CUDA out of memory (injected by SCALEBENCH_TEST_FAULT)")
    if plan["kind"] == "kill":
        _spend(plan)
        os.kill(os.getpid(), signal.SIGKILL)


def _spent(plan: dict[str, Any]) -> bool:
    return bool(plan.get("once")) and os.path.exists(plan["once"])


def _spend(plan: dict[str, Any]) -> None:
    if plan.get("once"):
        with open(plan["once"], "w"):
            pass


def poison(loss: Any, step: int, rank: int, plan: dict[str, Any] | None) -> Any:
    """The loss, made NaN on the planned rank from the planned step (a diverging rank)."""
    if plan is None or plan["kind"] != "nan" or plan.get("rank", 0) != rank or step < plan.get("step", 0):
        return loss
    return loss * float("nan")
