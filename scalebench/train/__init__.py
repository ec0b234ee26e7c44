"""One run: ``train(run_spec)``, built from parts (see ``loop.py``).

Callable in-process (notebooks, tests, ``scalebench profile``); the sweep runs it in a worker subprocess
(``scalebench.sweep.worker``), under torchrun when the run has several ranks.
"""

from collections.abc import Callable

from scalebench.train.loop import COMPILE_MIN_STEPS, train
from scalebench.train.precision import resolve_precision
from scalebench.train.record import NullSink, RunRecord, Sink

# A test hook: called before each micro-batch forward with (step, micro_batch); tests raise an injected
# OOM from it. None in normal use. (Under torchrun, tests use SCALEBENCH_TEST_FAULT; see faults.py.)
fault_hook: Callable[[int, int], None] | None = None

__all__ = ["COMPILE_MIN_STEPS", "NullSink", "RunRecord", "Sink", "fault_hook", "resolve_precision", "train"]
