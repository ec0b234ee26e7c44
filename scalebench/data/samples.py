"""Sampling without replacement from a finite set of samples, deterministic in (seed, position).

Global training position p (step · batch_rows + micro_index · rows + j) maps to sample
``perm_e[p mod n]`` of epoch e = p // n, where ``perm_e`` is a permutation drawn from (seed, e): every
sample is seen once per epoch, any step can be recomputed after a restart, and the micro-batch split of a
step (the trainer's out-of-memory back-off) does not change which samples the step sees.
"""

from __future__ import annotations

import numpy as np


class EpochSampler:
    def __init__(self, n: int, seed: int) -> None:
        if n < 1:
            raise ValueError("EpochSampler needs at least one sample")
        self.n, self.seed = n, seed
        self._cache: dict[int, np.ndarray] = {}

    def _perm(self, epoch: int) -> np.ndarray:
        perm = self._cache.get(epoch)
        if perm is None:
            if len(self._cache) > 2:  # a batch spans at most two epochs unless it exceeds the set
                self._cache.clear()
            perm = np.random.default_rng((self.seed, epoch)).permutation(self.n)
            self._cache[epoch] = perm
        return perm

    def indices(self, start: int, count: int) -> np.ndarray:
        """Sample indices at global positions [start, start + count)."""
        pos = np.arange(start, start + count, dtype=np.int64)
        epochs, offsets = np.divmod(pos, self.n)
        out = np.empty(count, dtype=np.int64)
        for e in np.unique(epochs):
            sel = epochs == e
            out[sel] = self._perm(int(e))[offsets[sel]]
        return out
