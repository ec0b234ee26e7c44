"""Published architectures, with the shape and training tokens their papers give.

``params`` is the published parameter count (all weights, embeddings included: the convention of the
papers these come from and of Hoffmann et al. 2022). Training FLOPs of a preset use the PaLM formula
(Chowdhery et al. 2022, appendix B) 6·N + 12·L·T·d per token, so they come out 2–4 % above the familiar
6·N·D figures (GPT-3 175B: 3.24e23 vs 3.14e23; Chinchilla: 6.1e23 vs 5.9e23), the difference being
attention's score and value matmuls.
"""

from __future__ import annotations

from dataclasses import dataclass

from scalebench.errors import ConfigError

__all__ = ["Architecture", "ARCHITECTURES", "get_architecture", "list_architectures"]


@dataclass(frozen=True, kw_only=True)
class Architecture:
    name: str
    params: float
    n_layer: int
    d_model: int
    n_head: int
    n_kv_head: int
    d_ff: int
    vocab_size: int
    seq_len: int
    tokens: float
    mlp: str  # "gelu" (two matrices, d -> d_ff -> d) or "swiglu" (three)
    citation: str
    aliases: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.mlp not in ("gelu", "swiglu"):
            raise ConfigError(f"Architecture {self.name}: mlp must be 'gelu' or 'swiglu', got {self.mlp!r}")
        if self.d_model % self.n_head or self.n_head % self.n_kv_head:
            raise ConfigError(f"Architecture {self.name}: d_model % n_head and n_head % n_kv_head must be 0")


def _a(**kw) -> Architecture:
    return Architecture(**kw)


ARCHITECTURES: dict[str, Architecture] = {
    a.name: a
    for a in (
        _a(name="gpt3-175b", params=175e9, n_layer=96, d_model=12288, n_head=96, n_kv_head=96, d_ff=49152,
           vocab_size=50257, seq_len=2048, tokens=300e9, mlp="gelu", aliases=("gpt-3", "gpt3", "gpt-3-175b"),
           citation="Brown et al. 2020, Language Models are Few-Shot Learners, table 2.1 (300B tokens)"),
        _a(name="bert-large", params=340e6, n_layer=24, d_model=1024, n_head=16, n_kv_head=16, d_ff=4096,
           vocab_size=30522, seq_len=512, tokens=256 * 512 * 1e6, mlp="gelu", aliases=("bert",),
           citation="Devlin et al. 2019, BERT, §A.2: 1M steps of 256 sequences x 512 tokens"),
        _a(name="llama2-7b", params=6.74e9, n_layer=32, d_model=4096, n_head=32, n_kv_head=32, d_ff=11008,
           vocab_size=32000, seq_len=4096, tokens=2.0e12, mlp="swiglu", aliases=("llama-2-7b",),
           citation="Touvron et al. 2023, Llama 2, table 1 (2.0T tokens); shape from the released config"),
        _a(name="llama2-70b", params=68.98e9, n_layer=80, d_model=8192, n_head=64, n_kv_head=8, d_ff=28672,
           vocab_size=32000, seq_len=4096, tokens=2.0e12, mlp="swiglu", aliases=("llama-2-70b",),
           citation="Touvron et al. 2023, Llama 2, table 1 (2.0T tokens, GQA); shape from the released config"),
        _a(name="llama3-8b", params=8.03e9, n_layer=32, d_model=4096, n_head=32, n_kv_head=8, d_ff=14336,
           vocab_size=128256, seq_len=8192, tokens=15e12, mlp="swiglu", aliases=("llama-3-8b", "llama3.1-8b"),
           citation="Dubey et al. 2024, The Llama 3 Herd of Models, table 3 (15T tokens)"),
        _a(name="llama3-70b", params=70.55e9, n_layer=80, d_model=8192, n_head=64, n_kv_head=8, d_ff=28672,
           vocab_size=128256, seq_len=8192, tokens=15e12, mlp="swiglu", aliases=("llama-3-70b", "llama3.1-70b"),
           citation="Dubey et al. 2024, The Llama 3 Herd of Models, table 3 (15T tokens)"),
        _a(name="chinchilla-70b", params=70e9, n_layer=80, d_model=8192, n_head=64, n_kv_head=64, d_ff=32768,
           vocab_size=32000, seq_len=2048, tokens=1.4e12, mlp="gelu", aliases=("chinchilla",),
           citation="Hoffmann et al. 2022, Training Compute-Optimal LLMs, table 4 (1.4T tokens)"),
    )
}

_BY_KEY = {k: a for a in ARCHITECTURES.values() for k in (a.name, *a.aliases)}


def get_architecture(name: str) -> Architecture:
    """A preset by name or alias, case-insensitively (``"GPT-3"``, ``"llama2-70b"``)."""
    try:
        return _BY_KEY[str(name).strip().lower().replace("_", "-").replace(" ", "-")]
    except KeyError:
        raise ConfigError(f"unknown model preset {name!r}; known presets: {', '.join(ARCHITECTURES)}") from None


def list_architectures() -> list[str]:
    return list(ARCHITECTURES)
