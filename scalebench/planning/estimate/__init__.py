"""``estimate``: FLOPs, memory per GPU, GPU count, time, cost, energy and loss of one training run — or of
a whole table of scenarios at once.

One code path serves both: the arguments (or a DataFrame's columns, named like the arguments) become
numpy arrays, every formula runs vectorised, and a single row comes back as an :class:`Estimate`, several
as a DataFrame. The package's modules, by role:

* :mod:`.arguments` — every input as a row of data: default, range, why, command-line flag;
* :mod:`.inputs` — arguments into arrays; :mod:`.core` — the formulas (shape, FLOPs, hardware, layout,
  time, cost, energy); :mod:`.loss` — the predicted loss; :mod:`.notes` — what an estimate says;
* :mod:`.result` — :class:`Estimate`; :mod:`.api` — :func:`estimate`.

The physics lives beside the package: :mod:`~scalebench.memory` (memory, with sources),
:mod:`~scalebench.planning.layout` (parallel layouts), :mod:`~scalebench.planning.throughput` (step time
from the hardware), :mod:`~scalebench.planning.timing` (time, energy) and
:mod:`~scalebench.planning.presets` (published shapes).
"""

from scalebench._util import lazy_attributes

# public name -> module (loaded on first use: the CLI reads .arguments for --help without numpy or pandas)
_LAZY = {
    "estimate": "scalebench.planning.estimate.api", "_estimate": "scalebench.planning.estimate.api",
    "ARGS": "scalebench.planning.estimate.arguments", "ARGUMENTS": "scalebench.planning.estimate.arguments",
    "Estimate": "scalebench.planning.estimate.result", "MemoryBreakdown": "scalebench.planning.estimate.result",
    "MEMORY_KEYS": "scalebench.planning.estimate.result", "_si": "scalebench.planning.estimate.result",
    "_resolve_law": "scalebench.planning.estimate.loss",  # _estimate, _resolve_law and _si: planning.plan
}
__all__ = ["Estimate", "MemoryBreakdown", "estimate", "ARGUMENTS", "ARGS", "MEMORY_KEYS"]

__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, globals())
