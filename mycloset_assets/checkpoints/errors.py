"""Exception types of the checkpoint system: each names what went wrong and what a user can do."""

from __future__ import annotations


class CheckpointError(Exception):
    """Base class of every checkpoint-system error."""


class RegistryError(CheckpointError):
    """A registry YAML file is malformed or names something that does not exist."""


class UnsafePickleError(CheckpointError):
    """A pickle needs a global outside the weights-only allow-list; nothing of it was executed."""

    def __init__(self, global_name: str) -> None:
        self.global_name = global_name
        super().__init__(
            f"the pickle needs the global '{global_name}', which is outside the weights-only allow-list; "
            "it was not executed. Only load this file if you trust its source, and re-save its tensors "
            "with torch.save(model.state_dict()) or as safetensors"
        )


class CorruptCheckpointError(CheckpointError):
    """A known container that is truncated, fails its CRC, or whose header lies."""


class NotACheckpointError(CheckpointError):
    """The file holds no torch weights (empty, HTML, text, ONNX, other content)."""


class LoadRefusedError(CheckpointError):
    """load_model refuses a file whose analysis is not `identified` (or `partial` when allowed)."""

    def __init__(self, analysis: object, message: str) -> None:
        self.analysis = analysis
        super().__init__(message)


class MissingCompanionError(CheckpointError):
    """An entry needs another checkpoint (e.g. an LPIPS lin file needs its trunk) that was not given."""
