"""The teacher–student task: a fixed random teacher network labels Gaussian inputs; its Bayes loss is exact.

Generation (all from ``data.teacher.seed``, in float64, identical on every machine):

* inputs x ~ N(0, I_d), d = ``input_dim``, a training set of ``train_samples`` and a held-out set of
  ``val_samples`` drawn from separate streams;
* the teacher: ``layers`` tanh layers of width ``hidden`` (weights N(0, 1/fan_in), biases N(0, 0.1²))
  and a linear read-out to K = ``num_classes`` logits, standardised (per-class mean removed, divided by
  one overall standard deviation, both measured on a fixed calibration draw) and divided by
  ``temperature``;
* the label distribution p(·|x) = (1 − ε)·softmax(logits) + ε/K, ε = ``label_noise``; each training
  label is one draw from it, fixed for the data set (a finite, noisy training set).

The Bayes (irreducible) loss. No predictor q can beat the teacher in expected cross-entropy:
E_y~p[−log q(y|x)] = H(p(·|x)) + KL(p‖q) ≥ H(p(·|x)). The held-out loss is evaluated against the
teacher's distribution itself (soft targets: Σ_k p_k·(−log q_k), the expectation over label draws,
without their sampling noise), so for a held-out set X

    eval_loss = mean_{x∈X} H(p(·|x)) + mean_{x∈X} KL(p(·|x) ‖ q(·|x))  ≥  irreducible_loss,

with ``irreducible_loss = mean_{x∈X} H(p(·|x))`` computed in closed form per sample and averaged over the
whole held-out set (``val_samples``; evaluate with ``eval.eval_tokens >= val_samples`` so the evaluated
set is that set). The gap eval_loss − irreducible_loss is the student's mean KL from the teacher, ≥ 0.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

GENERATOR_VERSION = 1  # bump when the generation changes: the fingerprint and cached results move with it
_CALIBRATION_SAMPLES = 8192


@dataclass(frozen=True, kw_only=True)
class TeacherInfo:
    """What the sweep records of the task (meta ``corpus``); enough to regenerate it exactly."""

    task: str = "teacher"
    source: str = "teacher"
    input_dim: int
    num_classes: int
    hidden: int
    layers: int
    temperature: float
    label_noise: float
    seed: int
    train_units: int
    val_units: int
    irreducible_loss: float  # nats per sample: the mean teacher entropy over the held-out set
    train_entropy: float  # the same over the training inputs (the floor of the training loss)
    fingerprint: str
    version: int = GENERATOR_VERSION

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def description(self) -> str:
        return (f"teacher–student: {self.train_units:,} train / {self.val_units:,} held-out samples, "
                f"{self.input_dim} inputs, {self.num_classes} classes, irreducible loss "
                f"{self.irreducible_loss:.4f} nats")


def _teacher_weights(spec_seed: int, d: int, hidden: int, layers: int, k: int):
    rng = np.random.default_rng((spec_seed, 0))
    dims = [d] + [hidden] * layers
    ws = [(rng.normal(0, 1 / np.sqrt(a), (a, b)), rng.normal(0, 0.1, b)) for a, b in zip(dims[:-1], dims[1:], strict=True)]
    return ws, rng.normal(0, 1 / np.sqrt(hidden), (hidden, k))


def _raw_logits(x: np.ndarray, weights) -> np.ndarray:
    hidden, read_out = weights
    h = x.astype(np.float64)
    for w, b in hidden:
        h = np.tanh(h @ w + b)
    return h @ read_out


class Teacher:
    """The fixed teacher of one spec: ``log_probs(x)`` is log p(·|x) in float64."""

    def __init__(self, *, input_dim: int, num_classes: int, hidden: int, layers: int, temperature: float,
                 label_noise: float, seed: int) -> None:
        self.k, self.eps, self.temperature = num_classes, label_noise, temperature
        self.weights = _teacher_weights(seed, input_dim, hidden, layers, num_classes)
        calib = np.random.default_rng((seed, 3)).standard_normal((_CALIBRATION_SAMPLES, input_dim))
        raw = _raw_logits(calib, self.weights)
        self.mean, self.scale = raw.mean(axis=0), raw.std()

    def log_probs(self, x: np.ndarray) -> np.ndarray:
        z = (_raw_logits(x, self.weights) - self.mean) / (self.scale * self.temperature)
        z -= z.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        if self.eps:
            logp = np.logaddexp(np.log1p(-self.eps) + logp, np.log(self.eps / self.k))
        return logp


def entropy(logp: np.ndarray) -> np.ndarray:
    """H(p) per row from log-probabilities (0·log 0 = 0)."""
    p = np.exp(logp)
    return -(p * np.where(p > 0, logp, 0.0)).sum(axis=1)


def sample_labels(logp: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One draw per row by inverting the cumulative distribution."""
    cdf = np.cumsum(np.exp(logp), axis=1)
    u = rng.random(len(logp))[:, None] * cdf[:, -1:]
    return np.minimum((cdf < u).sum(axis=1), logp.shape[1] - 1).astype(np.int64)


@dataclass(frozen=True)
class TeacherData:
    x_train: np.ndarray  # float32 (n, d)
    y_train: np.ndarray  # int64 (n,)
    x_val: np.ndarray  # float32 (m, d)
    p_val: np.ndarray  # float32 (m, K): the teacher's distribution, the held-out targets
    irreducible_loss: float
    train_entropy: float


def generate(*, input_dim: int, num_classes: int, hidden: int, layers: int, temperature: float,
             label_noise: float, seed: int, train_samples: int, val_samples: int) -> TeacherData:
    teacher = Teacher(input_dim=input_dim, num_classes=num_classes, hidden=hidden, layers=layers,
                      temperature=temperature, label_noise=label_noise, seed=seed)
    x_train = np.random.default_rng((seed, 1)).standard_normal((train_samples, input_dim)).astype(np.float32)
    x_val = np.random.default_rng((seed, 4)).standard_normal((val_samples, input_dim)).astype(np.float32)
    logp_train, logp_val = teacher.log_probs(x_train), teacher.log_probs(x_val)
    y_train = sample_labels(logp_train, np.random.default_rng((seed, 2)))
    return TeacherData(x_train=x_train, y_train=y_train, x_val=x_val, p_val=np.exp(logp_val).astype(np.float32),
                       irreducible_loss=float(entropy(logp_val).mean()),
                       train_entropy=float(entropy(logp_train).mean()))


def _generation_args(info_or_spec: Any) -> dict[str, Any]:
    names = ("input_dim", "num_classes", "hidden", "layers", "temperature", "label_noise", "seed")
    return {n: getattr(info_or_spec, n) for n in names}


def _fingerprint(d: TeacherData) -> str:
    h = hashlib.sha256(b"teacher-v%d" % GENERATOR_VERSION)
    for a in (d.x_train, d.y_train, d.x_val, d.p_val):
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


class TeacherBatches:
    """Training batches without replacement (``EpochSampler``); held-out batches with soft targets."""

    def __init__(self, data: TeacherData, batch_rows: int) -> None:
        from scalebench.data.samples import EpochSampler

        self.data, self.batch_rows = data, batch_rows
        self._sampler_cls, self._samplers = EpochSampler, {}

    def batch(self, seed: int, step: int, micro_index: int, rows: int):
        sampler = self._samplers.get(seed)
        if sampler is None:
            sampler = self._samplers[seed] = self._sampler_cls(len(self.data.y_train), seed)
        idx = sampler.indices(step * self.batch_rows + micro_index * rows, rows)
        return self.data.x_train[idx], self.data.y_train[idx]

    def eval_batches(self, eval_units: int, rows: int):
        n = min(int(eval_units), len(self.data.x_val))
        for i in range(0, n, rows):
            j = min(n, i + rows)
            yield self.data.x_val[i:j], self.data.p_val[i:j]


class TeacherTask:
    """The ``teacher`` data task (registered in the task registry)."""

    name = "teacher"
    full_batch = True  # gd can take the whole training set as its batch

    def prepare(self, data: Any, held_out_share: float) -> TeacherInfo:  # noqa: ARG002 - its own val set
        t = data.teacher
        d = generate(**_generation_args(t), train_samples=t.train_samples, val_samples=t.val_samples)
        return TeacherInfo(**_generation_args(t), train_units=t.train_samples, val_units=t.val_samples,
                           irreducible_loss=d.irreducible_loss, train_entropy=d.train_entropy,
                           fingerprint=_fingerprint(d))

    def info_from_dict(self, d: dict[str, Any]) -> TeacherInfo:
        return TeacherInfo(**d)

    def open(self, info: TeacherInfo, run: Any) -> TeacherBatches:
        d = generate(**_generation_args(info), train_samples=info.train_units, val_samples=info.val_units)
        if _fingerprint(d) != info.fingerprint:  # another numpy's generator stream, or a changed generator
            from scalebench.errors import ConfigError

            raise ConfigError(f"teacher task: regenerated data has fingerprint {_fingerprint(d)}, the sweep "
                              f"recorded {info.fingerprint}; this numpy draws other numbers — rerun the sweep "
                              "into a new directory")
        return TeacherBatches(d, run.batch_rows)


def _register() -> None:
    from scalebench.data.tasks import register_task

    register_task(TeacherTask())


_register()
