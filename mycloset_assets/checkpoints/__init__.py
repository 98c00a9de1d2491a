"""The checkpoint system: read headers, analyse, map keys, build and load, convert, manage versions."""

from .analysis import Analysis, analyze
from .errors import (
    CheckpointError,
    CorruptCheckpointError,
    LoadRefusedError,
    MissingCompanionError,
    NotACheckpointError,
    RegistryError,
    UnsafePickleError,
)
from .factory import LoadedModel, load_model
from .registry import Entry, get_entry, load_registry

__all__ = [
    "Analysis",
    "CheckpointError",
    "CorruptCheckpointError",
    "Entry",
    "LoadRefusedError",
    "LoadedModel",
    "MissingCompanionError",
    "NotACheckpointError",
    "RegistryError",
    "UnsafePickleError",
    "analyze",
    "get_entry",
    "load_model",
    "load_registry",
]
