"""Model families behind a registry (gpt, llama, lstm, cnn, mlp; others through entry points)."""

from scalebench.families.base import Family, get_family, list_families, register_family

__all__ = ["Family", "get_family", "list_families", "register_family"]
