"""Data sources: the embedded default corpus, user text, and pre-tokenized .bin memmaps."""

from scalebench.data.corpus import CorpusInfo, TokenData, prepare_corpus

__all__ = ["CorpusInfo", "TokenData", "prepare_corpus"]
