"""What a text corpus is, without building it: ``scalebench validate`` plans from this.

A corpus (and its tokenization) already in the cache is described by its ``meta.json``. One not built yet is
estimated from the sizes of its files, read by ``stat`` alone: bytes for the byte corpus (before
deduplication; JSON/Parquet framing included), the held-out share of the files by the path rule the build
uses (``corpus._held_out``; of the bytes for documents, which are held out one by one), and,
under a tokenizer, ``BPE_BYTES_PER_TOKEN`` bytes per token (byte-level BPEs of 1k-50k tokens measure 2.5-4.5
on code and English; ``scalebench run`` replaces the estimate with the count). The estimate's fingerprint says
``not built``, so it is never taken for a built corpus.
"""

from __future__ import annotations

from pathlib import Path

from scalebench.data.corpus import CorpusInfo

BPE_BYTES_PER_TOKEN = 3.0
NOT_BUILT = "not built"


def is_estimate(info) -> bool:
    return getattr(info, "fingerprint", "") == NOT_BUILT


def _byte_corpus(data, share: float) -> CorpusInfo | None:
    """The byte corpus from the cache, or estimated from file sizes; None where this module has no say."""
    from scalebench.data import corpus, documents, shards

    if data.source == "synthetic" or data.source.endswith(".bin") and not any(c in data.source for c in "*?["):
        return None
    if data.source != "default":
        if documents.document_files(data.source):
            files = documents.document_files(data.source)
            folder, label, by_document = documents.cache_folder(data, share, files), data.source, True
        elif shards.shard_files(data.source):
            return None  # listing shards reads headers only: the task prepares them
        else:
            files = corpus.text_source_files(Path(data.source).expanduser(), data.patterns)
            folder, label, by_document = None, data.source, False
    else:
        files = corpus.default_source_files(data.include_site_packages)
        by_document = False
        folder, label = None, "default (installed Python sources" + (
            " + site-packages)" if data.include_site_packages else ")")
    corpus.refuse_token_keys(data)  # text: the keys of token files would be ignored
    if folder is None:
        from scalebench._util import scalebench_home

        folder = scalebench_home() / "corpus" / corpus._cache_key(data, share, files)
    from scalebench.data.tokenizer import cached_meta

    built = cached_meta(folder)
    if built is not None:
        return built
    sizes = [(rel, p.stat().st_size) for rel, p in files]
    total = sum(n for _, n in sizes)
    if by_document:  # held out document by document: the share of the bytes, near enough
        val, n_val = int(total * share), 0
    elif len(sizes) == 1:  # a single file: its tail is held out, as the build does
        val, n_val = int(total * share), 1
    else:
        val = sum(n for rel, n in sizes if corpus._held_out(rel, share))
        n_val = sum(corpus._held_out(rel, share) for rel, _ in sizes)
    return CorpusInfo(source=label, path="", dtype="uint8", vocab_size=corpus.BYTE_VOCAB, train_tokens=total - val,
                      val_tokens=val, n_files=len(files), n_val_files=n_val, fingerprint=NOT_BUILT)


def describe_text_corpus(data, share: float) -> CorpusInfo | None:
    """The text corpus ``data`` names, built or estimated (module docstring); None: prepare it instead."""
    from scalebench.data import tokenizer

    info = _byte_corpus(data, share)
    if info is None or data.tokenizer == "bytes":
        return info
    if not is_estimate(info):
        built = tokenizer.cached_meta(tokenizer.cache_folder(info, data.tokenizer))
        if built is not None:
            return built
    kind, arg = tokenizer.parse(data.tokenizer)
    vocab = arg["bpe"] if kind == "bpe" else tokenizer.load_tokenizer(Path(arg).expanduser()).get_vocab_size()
    return CorpusInfo(source=info.source, path="", dtype="uint16" if vocab <= 2**16 else "uint32", vocab_size=vocab,
                      train_tokens=int(info.train_tokens / BPE_BYTES_PER_TOKEN),
                      val_tokens=int(info.val_tokens / BPE_BYTES_PER_TOKEN), n_files=info.n_files,
                      n_val_files=info.n_val_files, fingerprint=NOT_BUILT, tokenizer=tokenizer.describe(data.tokenizer),
                      val_bytes=info.val_tokens)
