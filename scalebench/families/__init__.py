"""Model families behind a registry (GPT first)."""

from scalebench.families.base import Family, get_family, list_families, register_family

__all__ = ["Family", "get_family", "list_families", "register_family"]
