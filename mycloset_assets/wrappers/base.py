"""The common shape of a complete model wrapper: an image (or a batch) in, a typed result out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Generic, TypeVar, overload

import numpy as np
import torch

from ..checkpoints import LoadedModel

ResultT = TypeVar("ResultT")


class WrongFamilyError(TypeError):
    """A wrapper was given a loaded checkpoint of a family it does not handle."""


def check_images(images: Sequence[np.ndarray]) -> None:
    """Every image must be RGB uint8 H x W x 3 (what ``vision.images.load_image`` returns)."""
    for index, image in enumerate(images):
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            described = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
            raise ValueError(
                f"image {index} must be an RGB uint8 H x W x 3 array, got {described}; "
                "pass the pixels of mycloset_assets.vision.images.load_image(...)"
            )


def check_family(loaded: LoadedModel, families: Sequence[str], wrapper: str) -> None:
    """Refuse a checkpoint whose registry family the wrapper does not handle."""
    if loaded.entry.family not in families:
        raise WrongFamilyError(
            f"{wrapper} wraps {' or '.join(families)} checkpoints, not {loaded.entry.family} ({loaded.entry.id})"
        )


class CompleteModelWrapper(ABC, Generic[ResultT]):
    """Pre-processing, the network and post-processing of one family, for RGB uint8 H x W x 3 images.

    Images come from ``mycloset_assets.vision.images.load_image`` (orientation applied, RGB uint8).
    ``wrapper(image)`` returns one result; ``wrapper([image, ...])`` returns a list, batching the network
    forward where the family allows it.
    """

    def __init__(self, loaded: LoadedModel) -> None:
        self.loaded = loaded
        self.module = loaded.module
        self.entry = loaded.entry

    @property
    def device(self) -> torch.device:
        return self.loaded.device

    @overload
    def __call__(self, images: np.ndarray) -> ResultT: ...

    @overload
    def __call__(self, images: Sequence[np.ndarray]) -> list[ResultT]: ...

    def __call__(self, images: np.ndarray | Sequence[np.ndarray]) -> ResultT | list[ResultT]:
        if isinstance(images, np.ndarray):
            return self.run_batch([images])[0]
        return self.run_batch(list(images))

    @abstractmethod
    def run_batch(self, images: list[np.ndarray]) -> list[ResultT]:
        """Results for ``images`` in order (pre-process, forward in batches, post-process)."""
