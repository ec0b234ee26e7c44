"""The error hierarchy: misuse raises one of these with a message that says what to do."""

from __future__ import annotations


class ScalebenchError(Exception):
    """Base class of every error scalebench raises on purpose."""


class ConfigError(ScalebenchError, ValueError):
    """A spec, argument or file is invalid: the message names the file, the key and what is accepted."""


class DeviceError(ScalebenchError, RuntimeError):
    """A device or driver call failed (CUDA, NVML)."""


class FitError(ScalebenchError, ValueError):
    """A fit was asked of data it cannot use (too few points, NaN, a single size for a 2-D law)."""


class StoreError(ScalebenchError, RuntimeError):
    """The results store is missing, unreadable, or would be made inconsistent."""


class StoreInputError(StoreError, ConfigError):
    """The folder named holds no usable store (none there, zero bytes, damaged): bad input, exit 2."""
