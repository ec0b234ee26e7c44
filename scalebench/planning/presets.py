"""Published architectures, with the shape and training tokens their papers give.

Mixture-of-experts presets (``deepseek-v3``, ``mixtral-8x7b``) carry ``params_active`` (the parameters one
token passes through: FLOPs come from these) beside ``params`` (all weights: memory comes from these), the
routed experts' total ``expert_params`` (sharded by expert parallelism), ``n_experts`` routed experts of
width ``d_ff_expert`` with ``top_k`` chosen per token, and ``n_shared_experts`` always-on experts.
``head_dim`` defaults to d_model / n_head (PaLM and DeepSeek-V3 differ); ``kv_cache_dim`` is the elements
cached per token and layer when it is not 2·n_kv_head·head_dim (DeepSeek's multi-head latent attention
caches one 512-wide latent plus a 64-wide RoPE key: 576).

``params`` is the published parameter count (all weights, embeddings included: the convention of the
papers these come from and of Hoffmann et al. 2022). Training FLOPs of a preset use the PaLM formula
(Chowdhery et al. 2022, appendix B) 6·N + 12·L·T·d per token, so they come out 2–4 % above the familiar
6·N·D figures (GPT-3 175B: 3.24e23 vs 3.14e23; Chinchilla: 6.1e23 vs 5.9e23), the difference being
attention's score and value matmuls.

A preset with a ``family`` (the dense Llama presets: ``family = "llama"``) is that family's shape, and its
counts are the family's, one definition for both: ``params_exact`` is the family's ``params_total`` of the
shape (every weight, counted, where ``params`` is the paper's rounding), and ``flops_per_token`` the family's
``6·N_matmul + 12·L·T·H·q``, whose N leaves out the untied token embedding (a lookup, not a matmul; 2 % of
Llama 2 7B's 6·N, 6.5 % of Llama 3 8B's with its 128k vocabulary) and the norm weights, as
``FlopCounterMode`` does. The presets without a family keep 6·N over every weight (their embeddings are
tied to the output head, a matmul, except the two mixtures of experts, whose published active counts
include their untied embeddings).
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
    tokens: float | None  # None where the paper publishes no token count (Mixtral)
    mlp: str  # "gelu" (two matrices, d -> d_ff -> d) or "swiglu" (three)
    citation: str
    aliases: tuple[str, ...] = ()
    head_dim: int | None = None
    kv_cache_dim: int | None = None
    params_active: float | None = None
    expert_params: float = 0.0
    n_experts: int = 0
    top_k: int = 0
    n_shared_experts: int = 0
    d_ff_expert: int | None = None
    family: str | None = None  # the scalebench family that builds this shape: its counts and FLOPs hold

    def __post_init__(self) -> None:
        if self.mlp not in ("gelu", "swiglu"):
            raise ConfigError(f"Architecture {self.name}: mlp must be 'gelu' or 'swiglu', got {self.mlp!r}")
        if self.n_head % self.n_kv_head or (self.head_dim is None and self.d_model % self.n_head):
            raise ConfigError(f"Architecture {self.name}: n_head % n_kv_head (and d_model % n_head without head_dim) must be 0")
        if self.n_experts and not (0 < self.top_k <= self.n_experts and self.expert_params > 0 and self.params_active):
            raise ConfigError(f"Architecture {self.name}: a mixture of experts needs 0 < top_k <= n_experts, "
                              "expert_params and params_active")

    @property
    def attention_dim(self) -> int:
        """n_head · head_dim: the width of the attention score/value matmuls (PaLM's H·Q)."""
        return self.n_head * (self.head_dim or self.d_model // self.n_head)

    @property
    def active(self) -> float:
        return self.params_active or self.params

    @property
    def mlp_width_active(self) -> int:
        """MLP width one token passes through (for activation memory): routed top-k plus shared experts."""
        if not self.n_experts:
            return self.d_ff
        return int((self.d_ff_expert or self.d_ff) * (self.top_k + self.n_shared_experts))

    def shape(self, seq_len: int | None = None):
        """The family's shape of this preset (``None`` without a family), at ``seq_len`` or the preset's."""
        if self.family is None:
            return None
        from scalebench.families import get_family

        return get_family(self.family).make_shape(
            n_layer=self.n_layer, d_model=self.d_model, n_head=self.n_head, n_kv_head=self.n_kv_head,
            d_ff=self.d_ff, vocab_size=self.vocab_size, seq_len=int(seq_len or self.seq_len))

    @property
    def params_exact(self) -> float:
        """Every weight: the family's count of the shape where the preset has a family, else ``params``."""
        if self.family is None:
            return self.params
        from scalebench.families import get_family

        return float(get_family(self.family).params_total(self.shape()))

    def flops_per_token(self, seq_len: int | None = None) -> float:
        """Training FLOPs per token: the family's where the preset has one, else 6·N_active + 12·L·T·(H·Q)
        (PaLM appendix B, active parameters for MoE)."""
        if self.family is not None:
            from scalebench.families import get_family

            return float(get_family(self.family).flops_per_token(self.shape(seq_len)))
        return 6.0 * self.active + 12.0 * self.n_layer * (seq_len or self.seq_len) * self.attention_dim

    def kv_elements_per_token(self) -> int:
        """Cached elements per token over all layers (K and V, or the MLA latent)."""
        per_layer = self.kv_cache_dim or 2 * self.n_kv_head * (self.head_dim or self.d_model // self.n_head)
        return int(self.n_layer * per_layer)


def _a(**kw) -> Architecture:
    return Architecture(**kw)


def _llama(**kw) -> Architecture:
    """A dense Llama: the llama family's shape (RMSNorm, RoPE, SwiGLU, GQA, untied embeddings)."""
    return Architecture(family="llama", **kw)


ARCHITECTURES: dict[str, Architecture] = {
    a.name: a
    for a in (
        _a(name="gpt3-175b", params=175e9, n_layer=96, d_model=12288, n_head=96, n_kv_head=96, d_ff=49152,
           vocab_size=50257, seq_len=2048, tokens=300e9, mlp="gelu", aliases=("gpt-3", "gpt3", "gpt-3-175b"),
           citation="Brown et al. 2020, Language Models are Few-Shot Learners, table 2.1 (300B tokens)"),
        _a(name="bert-large", params=340e6, n_layer=24, d_model=1024, n_head=16, n_kv_head=16, d_ff=4096,
           vocab_size=30522, seq_len=512, tokens=256 * 512 * 1e6, mlp="gelu", aliases=("bert",),
           citation="Devlin et al. 2019, BERT, §A.2: 1M steps of 256 sequences x 512 tokens"),
        _llama(name="llama2-7b", params=6.74e9, n_layer=32, d_model=4096, n_head=32, n_kv_head=32, d_ff=11008,
           vocab_size=32000, seq_len=4096, tokens=2.0e12, mlp="swiglu", aliases=("llama-2-7b",),
           citation="Touvron et al. 2023, Llama 2, table 1 (2.0T tokens); shape from the released config"),
        _llama(name="llama2-70b", params=68.98e9, n_layer=80, d_model=8192, n_head=64, n_kv_head=8, d_ff=28672,
           vocab_size=32000, seq_len=4096, tokens=2.0e12, mlp="swiglu", aliases=("llama-2-70b",),
           citation="Touvron et al. 2023, Llama 2, table 1 (2.0T tokens, GQA); shape from the released config"),
        _llama(name="llama3-8b", params=8.03e9, n_layer=32, d_model=4096, n_head=32, n_kv_head=8, d_ff=14336,
           vocab_size=128256, seq_len=8192, tokens=15e12, mlp="swiglu", aliases=("llama-3-8b", "llama3.1-8b"),
           citation="Dubey et al. 2024, The Llama 3 Herd of Models, table 3 (15T tokens)"),
        _llama(name="llama3-70b", params=70.55e9, n_layer=80, d_model=8192, n_head=64, n_kv_head=8, d_ff=28672,
           vocab_size=128256, seq_len=8192, tokens=15e12, mlp="swiglu", aliases=("llama-3-70b", "llama3.1-70b"),
           citation="Dubey et al. 2024, The Llama 3 Herd of Models, table 3 (15T tokens)"),
        _a(name="chinchilla-70b", params=70e9, n_layer=80, d_model=8192, n_head=64, n_kv_head=64, d_ff=32768,
           vocab_size=32000, seq_len=2048, tokens=1.4e12, mlp="gelu", aliases=("chinchilla",),
           citation="Hoffmann et al. 2022, Training Compute-Optimal LLMs, table 4 (1.4T tokens)"),
        _llama(name="llama-7b", params=6.7e9, n_layer=32, d_model=4096, n_head=32, n_kv_head=32, d_ff=11008,
           vocab_size=32000, seq_len=2048, tokens=1.0e12, mlp="swiglu", aliases=("llama1-7b",),
           citation="Touvron et al. 2023, LLaMA, table 2 (6.7B, 1.0T tokens); FFN width from the released weights"),
        _llama(name="llama-13b", params=13.0e9, n_layer=40, d_model=5120, n_head=40, n_kv_head=40, d_ff=13824,
           vocab_size=32000, seq_len=2048, tokens=1.0e12, mlp="swiglu", aliases=("llama1-13b",),
           citation="Touvron et al. 2023, LLaMA, table 2 (13.0B, 1.0T tokens)"),
        _llama(name="llama-33b", params=32.5e9, n_layer=60, d_model=6656, n_head=52, n_kv_head=52, d_ff=17920,
           vocab_size=32000, seq_len=2048, tokens=1.4e12, mlp="swiglu", aliases=("llama1-33b", "llama-30b"),
           citation="Touvron et al. 2023, LLaMA, table 2 (32.5B, 1.4T tokens)"),
        _llama(name="llama-65b", params=65.2e9, n_layer=80, d_model=8192, n_head=64, n_kv_head=64, d_ff=22016,
           vocab_size=32000, seq_len=2048, tokens=1.4e12, mlp="swiglu", aliases=("llama1-65b",),
           citation="Touvron et al. 2023, LLaMA, table 2 (65.2B, 1.4T tokens)"),
        _llama(name="llama2-13b", params=13.0e9, n_layer=40, d_model=5120, n_head=40, n_kv_head=40, d_ff=13824,
           vocab_size=32000, seq_len=4096, tokens=2.0e12, mlp="swiglu", aliases=("llama-2-13b",),
           citation="Touvron et al. 2023, Llama 2, table 1 (2.0T tokens); shape from the released config"),
        _llama(name="llama2-34b", params=33.7e9, n_layer=48, d_model=8192, n_head=64, n_kv_head=8, d_ff=22016,
           vocab_size=32000, seq_len=4096, tokens=2.0e12, mlp="swiglu", aliases=("llama-2-34b",),
           citation="Touvron et al. 2023, Llama 2, table 1 (2.0T tokens, GQA; weights unreleased): shape of "
                    "Code Llama 34B, which starts from it (Roziere et al. 2023)"),
        _llama(name="llama3-405b", params=405e9, n_layer=126, d_model=16384, n_head=128, n_kv_head=8, d_ff=53248,
           vocab_size=128256, seq_len=8192, tokens=15.6e12, mlp="swiglu", aliases=("llama-3-405b", "llama3.1-405b"),
           citation="Dubey et al. 2024, The Llama 3 Herd of Models, table 3 and section 3.1 (15.6T tokens)"),
        _a(name="bloom-176b", params=176.247e9, n_layer=70, d_model=14336, n_head=112, n_kv_head=112,
           d_ff=57344, vocab_size=250680, seq_len=2048, tokens=366e9, mlp="gelu", aliases=("bloom",),
           citation="BigScience 2022, BLOOM (arXiv:2211.05100), table 3 and section 3.5 (366B tokens)"),
        _a(name="bloomberggpt-50b", params=50.6e9, n_layer=70, d_model=7680, n_head=40, n_kv_head=40, d_ff=30720,
           vocab_size=131072, seq_len=2048, tokens=569e9, mlp="gelu", aliases=("bloomberggpt",),
           citation="Wu et al. 2023, BloombergGPT (arXiv:2303.17564), sections 3.2-3.3 and 4: 70 layers, 40 heads "
                    "of 192 (D = 7680), 50.6B parameters, 2,048-token sequences, vocabulary 2^17, 569B tokens"),
        _a(name="gopher-280b", params=280e9, n_layer=80, d_model=16384, n_head=128, n_kv_head=128, d_ff=65536,
           vocab_size=32000, seq_len=2048, tokens=300e9, mlp="gelu", aliases=("gopher",),
           citation="Rae et al. 2021, Gopher (arXiv:2112.11446), table 1 (80 layers, 128 heads of 128, d 16384, "
                    "280B with relative-position projections) and section 3 (2048-token context, 32K vocabulary, "
                    "300B tokens)"),
        _a(name="palm-540b", params=540.35e9, n_layer=118, d_model=18432, n_head=48, n_kv_head=1, head_dim=256,
           d_ff=73728, vocab_size=256000, seq_len=2048, tokens=780e9, mlp="swiglu", aliases=("palm",),
           citation="Chowdhery et al. 2022, PaLM, table 1 (118 layers, d 18432, 48 heads of 256, multi-query) "
                    "and section 3 (780B tokens)"),
        _a(name="deepseek-v3", params=671e9, params_active=37e9, n_layer=61, d_model=7168, n_head=128,
           n_kv_head=128, head_dim=128, kv_cache_dim=576, d_ff=18432, d_ff_expert=2048, n_experts=256, top_k=8,
           n_shared_experts=1, expert_params=58 * 256 * 3 * 7168 * 2048, vocab_size=129280, seq_len=4096,
           tokens=14.8e12, mlp="swiglu", aliases=("deepseek-v3-671b",),
           citation="DeepSeek-AI 2024, DeepSeek-V3 Technical Report (arXiv:2412.19437), sections 4.2 and 4.3: 671B "
                    "total, 37B active, 61 layers (3 dense), 256 routed experts of width 2048 with 8 active plus "
                    "one shared, MLA cache 512 + 64 per layer, 14.8T tokens at 4K context"),
        _a(name="mixtral-8x7b", params=46.7e9, params_active=12.9e9, n_layer=32, d_model=4096, n_head=32,
           n_kv_head=8, d_ff=14336, d_ff_expert=14336, n_experts=8, top_k=2, expert_params=32 * 8 * 3 * 4096 * 14336,
           vocab_size=32000, seq_len=32768, tokens=None, mlp="swiglu", aliases=("mixtral",),
           citation="Jiang et al. 2024, Mixtral of Experts (arXiv:2401.04088), table 1: 46.7B total, 12.9B active, "
                    "8 experts, top-2, 32K context; training tokens unpublished"),
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
