"""The try-on engine's errors: each names what is wrong and what to do about it."""

from __future__ import annotations

from collections.abc import Mapping


class EngineError(Exception):
    """Base class of the engine's errors."""


class MissingModelsError(EngineError):
    """A pipeline lacks checkpoints: ``missing`` maps each empty role to the registry entries that would fill it
    (``pipeline.role`` keys when no pipeline was named and none is complete); ``skipped`` the unusable files."""

    def __init__(
        self, message: str, pipeline: str | None, missing: Mapping[str, tuple[str, ...]], skipped: Mapping[str, str]
    ) -> None:
        self.pipeline = pipeline
        self.missing = dict(missing)
        self.skipped = dict(skipped)
        super().__init__(message)


class PersonNotFoundError(EngineError):
    """The pose of a person photo lacks the keypoints a pipeline needs."""
