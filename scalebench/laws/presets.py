"""Published scaling laws as ready `FitResult`s (no data; they predict and give the frontier).

* ``chinchilla`` — Hoffmann et al. 2022, "Training Compute-Optimal Large Language Models", Approach 3
  (eq. 10): E = 1.69, A = 406.4, B = 410.7, α = 0.34, β = 0.28 (MassiveText, SentencePiece tokens).
* ``chinchilla-epoch`` — Besiroglu, Erdil, Barnett & You 2024, "Chinchilla Scaling: A replication
  attempt" (Epoch AI), refit of the same data reconstructed from Hoffmann et al.'s figure 4:
  E = 1.8172, A = 482.01, B = 2085.43, α = 0.3478, β = 0.3658.
* ``kaplan`` — Kaplan et al. 2020, "Scaling Laws for Neural Language Models", eq. 1.5 and table 2:
  α_N = 0.076, α_D = 0.103, N_c = 6.4e13, D_c = 1.8e13 (non-embedding parameters, WebText2 BPE tokens,
  early-stopped loss; not a compute-optimal-training law, so its frontier is indicative only).

Losses are in nats per token of each paper's own tokenizer and data: compare shapes and exponents, not
absolute losses, with your own runs.
"""

from __future__ import annotations

from types import MappingProxyType

from scalebench.errors import ConfigError
from scalebench.laws.result import FitResult

PRESETS = MappingProxyType(
    {
        "chinchilla": {
            "law": "chinchilla",
            "params": {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28},
            "citation": "Hoffmann et al. 2022, Training Compute-Optimal Large Language Models, Approach 3 (eq. 10)",
        },
        "chinchilla-epoch": {
            "law": "chinchilla",
            "params": {"E": 1.8172, "A": 482.01, "B": 2085.43, "alpha": 0.3478, "beta": 0.3658},
            "citation": "Besiroglu, Erdil, Barnett & You 2024, Chinchilla Scaling: A replication attempt (Epoch AI)",
        },
        "kaplan": {
            "law": "kaplan-joint",
            "params": {"N_c": 6.4e13, "D_c": 1.8e13, "alpha_N": 0.076, "alpha_D": 0.103},
            "citation": "Kaplan et al. 2020, Scaling Laws for Neural Language Models, eq. 1.5 and table 2",
        },
    }
)


def list_presets() -> list[str]:
    """Names accepted by :func:`get_preset`."""
    return sorted(PRESETS)


def get_preset(name: str) -> FitResult:
    """The published law called ``name`` (case-insensitive) as a `FitResult`."""
    spec = PRESETS.get(str(name).strip().lower())
    if spec is None:
        raise ConfigError(f"unknown scaling-law preset {name!r}; known presets: {', '.join(list_presets())}")
    return FitResult.from_params(
        spec["law"],
        spec["params"],
        source=f"preset:{name.strip().lower()}",
        metadata={"citation": spec["citation"]},
    )
