"""Data tasks: what a family trains on, behind one small interface the trainer and the sweep use.

A task prepares its data once per sweep (cached, deterministic) and describes it with a frozen *info*
object (``as_dict()``, ``train_units``, ``val_units``, ``fingerprint`` and the task's specifics, which
``Family.shape_context`` reads). The sweep passes ``info.as_dict()`` to every worker, which rebuilds it with
``info_from_dict`` and opens batches: ``batch(seed, step, micro_index, rows)`` is deterministic in its
arguments (so a resumed run sees the same data) and ``eval_batches(eval_units, rows)`` walks the same
held-out rows for every run (so eval losses are comparable).

Built-in: ``text`` (token streams: the embedded corpus, text files, JSONL/Parquet documents
(``documents.py``), ``.bin`` tokens, or the synthetic language of ``scalebench/data/synthetic.py``; text is
tokenized by ``data.tokenizer``, ``tokenizer.py``). Families with other
data register their task with :func:`register_task`.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import Any, Protocol

import numpy as np

from scalebench.errors import ConfigError


class Batches(Protocol):
    def batch(self, seed: int, step: int, micro: int, rows: int) -> tuple[Any, Any]: ...
    def eval_batches(self, eval_units: int, rows: int) -> Iterator[tuple[Any, Any]]: ...


class Task(Protocol):
    name: str

    def prepare(self, data: Any, held_out_share: float) -> Any: ...
    def info_from_dict(self, d: dict[str, Any]) -> Any: ...
    def open(self, info: Any, run: Any) -> Batches: ...


class _TextBatches:
    """Token windows of the run's context length over a prepared corpus."""

    def __init__(self, info: Any, run: Any) -> None:
        from scalebench.data.corpus import TokenData
        from scalebench.data.shards import ShardData, is_shard_corpus

        self._data = ShardData(info) if is_shard_corpus(info) else TokenData(info, run.data)
        self._seq_len = run.train.seq_len
        self._rows = getattr(run, "batch_rows", None)  # one global batch a step, however split

    def batch(self, seed: int, step: int, micro: int, rows: int):
        return self._data.batch(seed, step, micro, rows, self._seq_len, batch_rows=self._rows)

    def eval_batches(self, eval_units: int, rows: int):
        return self._data.eval_batches(eval_units, self._seq_len, rows)

    def eval_bytes(self, eval_units: int) -> tuple[int, int] | None:
        """(target tokens, UTF-8 bytes they cover) over every held-out window; None where unknown."""
        from scalebench.data.tokenizer import val_token_bytes

        if hasattr(self._data, "eval_bytes"):  # shards: by the tokenizer that made them, where given
            return self._data.eval_bytes(eval_units, self._seq_len)
        per_token = val_token_bytes(self._data.info)
        if per_token is None or not hasattr(self._data, "eval_starts"):
            return None
        starts = self._data.eval_starts(eval_units, self._seq_len)
        total = sum(int(per_token[s + 1 : s + 1 + self._seq_len].sum(dtype=np.int64)) for s in starts)
        return len(starts) * self._seq_len, total


class TextTask:
    """Token streams for language models (GPT, LSTM): ``scalebench.data.corpus``."""

    name = "text"

    def prepare(self, data: Any, held_out_share: float):
        if data.source == "synthetic":  # generated, with its own held-out documents
            from scalebench.data.synthetic import prepare

            return prepare(data.synthetic)
        from scalebench.data.corpus import prepare_corpus
        from scalebench.data.documents import document_files, prepare_documents
        from scalebench.data.shards import prepare_shards, shard_files

        globbed = any(ch in data.source for ch in "*?[")
        named = data.source != "default" and (globbed or not data.source.endswith(".bin"))
        files = document_files(data.source) if named else None
        shards = shard_files(data.source) if named and not files else None
        if globbed and not files and not shards:
            raise ConfigError(f"data.source: the glob {data.source!r} matches no .jsonl, .jsonl.gz, .parquet, .bin "
                              "or .npy file")
        if shards:
            from scalebench.config import parse_tokenizer

            kind, path = parse_tokenizer(data.tokenizer)
            if kind == "bpe":
                raise ConfigError(f"data.tokenizer: {data.source!r} holds token shards, already tokenized; give the "
                                  "path of the tokenizer.json that made them (for bits per byte), or remove "
                                  "data.tokenizer")
            return prepare_shards(data, held_out_share, shards, tokenizer=path if kind == "file" else None)
        from scalebench.data.corpus import refuse_token_keys

        refuse_token_keys(data)
        info = prepare_documents(data, held_out_share, files) if files else prepare_corpus(data, held_out_share)
        if data.tokenizer != "bytes":
            from scalebench.data.tokenizer import tokenize_corpus

            info = tokenize_corpus(info, data.tokenizer)
        return info

    def info_from_dict(self, d: dict[str, Any]):
        if d.get("source") == "synthetic":
            from scalebench.data.synthetic import SyntheticInfo

            return SyntheticInfo(**d)
        from scalebench.data.corpus import CorpusInfo

        return CorpusInfo(**d)

    def verify(self, info: Any, run: Any) -> None:
        """Raise ConfigError when the run's data is no longer what the sweep recorded (checked after training)."""
        from scalebench.data.shards import is_shard_corpus

        if info.source != "synthetic" and not is_shard_corpus(info):  # generated; the user's own shards
            from scalebench.data.corpus import verify_corpus

            verify_corpus(info, run.data)

    def open(self, info: Any, run: Any):
        if info.source == "synthetic":
            from scalebench.data.synthetic import SyntheticBatches

            return SyntheticBatches(info, run.train.seq_len, getattr(run, "batch_rows", None))
        return _TextBatches(info, run)


_TASKS: dict[str, Task] = {"text": TextTask()}
# Tasks that live beside the families that use them; imported when first asked for.
_LAZY = {"images": "scalebench.data.images", "teacher": "scalebench.data.teacher"}


def register_task(task: Task) -> Task:
    _TASKS[task.name] = task
    return task


def get_task(name: str) -> Task:
    if name not in _TASKS and name in _LAZY:
        importlib.import_module(_LAZY[name])
    try:
        return _TASKS[name]
    except KeyError:
        raise ConfigError(f"unknown data task {name!r}; known tasks: {', '.join(sorted(_TASKS))}") from None

