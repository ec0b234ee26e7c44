"""A synthetic language whose irreducible loss is known exactly: a Zipf mixture of Markov chains.

Why: on real text at CPU scale every model is far above the entropy floor, so a fitted law cannot separate
its irreducible loss E from its power laws (the quickstart's stdlib corpus: E goes to its bound). Here the
floor is reachable by small models and known, so a fit's E can be checked against the truth.

Generation (all from ``data.synthetic.seed``, float64, identical on every machine):

* K = ``sources`` transition matrices T_k over V = ``symbols`` tokens, every row ~ Dirichlet(``concentration``);
* chain k is used with probability π_k ∝ (k+1)^−s, s = ``zipf_exponent`` (a few chains are common, most rare:
  the "quanta" picture of Michaud et al. 2023, which gives power laws in both model size and data — a model
  learns the chains it has the capacity for and has seen often enough);
* a document is S+1 tokens, S = ``seq_len``: the chain's index in h header tokens — one (k) when K ≤ V,
  else two (k // V, k % V) — then S+1−h tokens, each drawn from T_k's row of the token before it (the first
  from the row of the last header token).

Each document is one training window (inputs tokens 0..S−1, targets 1..S). The Bayes predictor of target t
knows everything the model sees: with two header tokens target 1 has p(k % V | k // V) = π restricted to
that header; every chain token has T_k[x_{t−1}]. ``irreducible_loss`` is that predictor's mean loss on the held-out documents (the floor of
the eval loss the sweep reports, on the same tokens); training data is an endless stream of fresh documents
(one epoch, never repeated), drawn from (seed, run seed, step, micro-batch) so a resumed run sees the same.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

GENERATOR_VERSION = 1  # bump when the generation changes: the fingerprint and cached results move with it
ENDLESS = 2**53  # train_units of an endless stream: no run repeats a document


@dataclass(frozen=True, kw_only=True)
class SyntheticInfo:
    """What the sweep records of the source (meta ``corpus``); enough to regenerate it exactly."""

    source: str = "synthetic"
    sources: int
    symbols: int
    zipf_exponent: float
    concentration: float
    seq_len: int
    val_documents: int
    seed: int
    vocab_size: int
    train_tokens: int = ENDLESS
    val_tokens: int
    irreducible_loss: float  # nats per token: the Bayes predictor's mean loss on the held-out documents
    fingerprint: str
    version: int = GENERATOR_VERSION

    @property
    def train_units(self) -> int:
        return self.train_tokens

    @property
    def val_units(self) -> int:
        return self.val_tokens

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def description(self) -> str:
        return (f"synthetic: {self.sources} Markov chains over {self.symbols} symbols (Zipf {self.zipf_exponent:g}, "
                f"Dirichlet {self.concentration:g}), {self.val_tokens:,} held-out tokens, irreducible loss "
                f"{self.irreducible_loss:.4f} nats/token")


_NAMES = ("sources", "symbols", "zipf_exponent", "concentration", "seq_len", "val_documents", "seed")


class Source:
    """The fixed chains of one spec; ``documents(rng, n)`` draws n documents of seq_len + 1 tokens."""

    def __init__(self, *, sources: int, symbols: int, zipf_exponent: float, concentration: float, seq_len: int,
                 seed: int, **_: Any) -> None:
        rng = np.random.default_rng((seed, 0))
        self.k, self.v, self.seq_len = sources, symbols, seq_len
        self.log_t = np.log(np.maximum(rng.dirichlet(np.full(symbols, concentration), size=(sources, symbols)),
                                       1e-300))
        self.cum_t = np.cumsum(np.exp(self.log_t), axis=2)
        w = (np.arange(sources) + 1.0) ** -zipf_exponent
        self.pi = w / w.sum()
        self.header = 1 if sources <= symbols else 2  # tokens spelling the chain's index
        hi = np.arange(sources) // symbols
        self.log_lo_given_hi = np.log(self.pi) - np.log(np.bincount(hi, weights=self.pi))[hi]  # per chain

    def documents(self, rng: np.random.Generator, n: int) -> np.ndarray:
        chains = rng.choice(self.k, size=n, p=self.pi)
        doc = np.empty((n, self.seq_len + 1), dtype=np.int64)
        h = self.header
        doc[:, 0] = chains if h == 1 else chains // self.v
        doc[:, h - 1] = chains % self.v
        u = rng.random((n, self.seq_len + 1 - h))
        for t in range(h, self.seq_len + 1):
            cum = self.cum_t[chains, doc[:, t - 1]]
            doc[:, t] = np.minimum((cum < u[:, t - h, None] * cum[:, -1:]).sum(axis=1), self.v - 1)
        return doc

    def chains_of(self, doc: np.ndarray) -> np.ndarray:
        return doc[:, 0] if self.header == 1 else doc[:, 0] * self.v + doc[:, 1]

    def bayes_loss(self, doc: np.ndarray) -> np.ndarray:
        """−log p(target) of the Bayes predictor for every target (doc[:, 1:]), nats."""
        chains, h = self.chains_of(doc), self.header
        out = np.empty((len(doc), self.seq_len))
        if h == 2:
            out[:, 0] = -self.log_lo_given_hi[chains]
        prev, nxt = doc[:, h - 1:-1], doc[:, h:]
        out[:, h - 1:] = -self.log_t[chains[:, None], prev, nxt]
        return out


def _val_documents(source: Source, seed: int, n: int) -> np.ndarray:
    return source.documents(np.random.default_rng((seed, 1)), n)


def _fingerprint(source: Source, val: np.ndarray) -> str:
    h = hashlib.sha256(b"synthetic-v%d" % GENERATOR_VERSION)
    for a in (source.log_t, val):
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


def prepare(spec: Any) -> SyntheticInfo:
    args = {n: getattr(spec, n) for n in _NAMES}
    source = Source(**args)
    val = _val_documents(source, spec.seed, spec.val_documents)
    return SyntheticInfo(**args, vocab_size=spec.symbols, val_tokens=spec.val_documents * spec.seq_len,
                         irreducible_loss=float(source.bayes_loss(val).mean()), fingerprint=_fingerprint(source, val))


def check_window(info: SyntheticInfo, seq_len: int, where: str = "") -> None:
    from scalebench.errors import ConfigError

    if seq_len != info.seq_len:
        raise ConfigError(f"{where}train.seq_len = {seq_len} but data.synthetic.seq_len = {info.seq_len}: a synthetic "
                          "document is one training window; set both to the same value")


class SyntheticBatches:
    """Fresh training documents per (run seed, step, micro-batch); the fixed held-out documents for eval."""

    def __init__(self, info: SyntheticInfo, seq_len: int, batch_rows: int | None = None) -> None:
        from scalebench.errors import ConfigError

        self.batch_rows, self._step_docs = batch_rows, (None, None)
        check_window(info, seq_len)
        self.source = Source(**{n: getattr(info, n) for n in _NAMES})
        self.seed = info.seed
        self.val = _val_documents(self.source, info.seed, info.val_documents)
        if _fingerprint(self.source, self.val) != info.fingerprint:
            raise ConfigError(f"synthetic source: regenerated data has fingerprint "
                              f"{_fingerprint(self.source, self.val)}, the sweep recorded {info.fingerprint}; this "
                              "numpy draws other numbers — rerun the sweep into a new directory")

    def batch(self, seed: int, step: int, micro: int, rows: int):
        if self.batch_rows is None:
            doc = self.source.documents(np.random.default_rng((self.seed, 2, seed, step, micro)), rows)
        else:  # the step's documents drawn once; a micro-batch (of any split over ranks) is its slice
            key, docs = self._step_docs
            if key != (seed, step):
                docs = self.source.documents(np.random.default_rng((self.seed, 2, seed, step, 0)), self.batch_rows)
                self._step_docs = ((seed, step), docs)
            doc = docs[micro * rows:][:rows]
        return doc[:, :-1], doc[:, 1:]

    def eval_batches(self, eval_units: int, rows: int):
        n = max(1, min(len(self.val), int(eval_units) // self.source.seq_len))
        for i in range(0, n, rows):
            doc = self.val[i: min(n, i + rows)]
            yield doc[:, :-1], doc[:, 1:]
