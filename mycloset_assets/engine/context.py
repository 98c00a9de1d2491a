"""The state of one engine call, shared by its steps: options, cache, monitor, loaded networks, and the
arrays of each pair as the steps fill them in."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..checkpoints import LoadedModel
from ..engine_cache import ContentCache, content_key, freeze
from ..monitoring import Monitor, StepMetrics
from .models import Checkpoint, ModelPool, ModelSet
from .options import TryOnOptions
from .quality import QualityFigures

CACHE_VERSION = 1
"""Part of every cache key: raise it when a change of the engine changes its outputs."""

Arrays = dict[str, np.ndarray]


@dataclass
class Photo:
    """A decoded photo: pixels, their sha256 (the cache's name for them) and a name for messages."""

    image: np.ndarray
    digest: str
    name: str


@dataclass
class Item:
    """One pair's arrays as the steps fill them in; ``records`` says what each optional step did."""

    person: Photo
    garment: Photo
    keypoints: Arrays | None = None
    parsing: Arrays | None = None
    garment_mask: Arrays | None = None
    tryon: Arrays | None = None
    cached: list[str] = field(default_factory=list)
    given_mask: bool = False
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    extras: dict[str, np.ndarray] = field(default_factory=dict)
    clothing_mask: np.ndarray | None = None
    final: np.ndarray | None = None
    quality: QualityFigures | None = None
    pose_estimator: str | None = None

    def result_image(self) -> np.ndarray:
        """The try-on image as it stands: face-restored when that step ran."""
        assert self.tryon is not None
        return self.final if self.final is not None else self.tryon["tryon"]


def count(number: int, noun: str) -> str:
    """``"1 photo"``, ``"3 photos"``."""
    return f"{number} {noun}{'s' * (number != 1)}"


class RunContext:
    """One call's state: options, cache, monitor, pool, the chosen checkpoints."""

    def __init__(
        self,
        options: TryOnOptions,
        cache: ContentCache | None,
        monitor: Monitor,
        progress: Callable[[str], None] | None,
        pool: ModelPool,
    ) -> None:
        self.options = options
        self.cache = cache
        self.monitor = monitor
        self.progress = progress
        self.pool = pool
        self.steps: list[StepMetrics] = []
        self.models = ModelSet("no checkpoints", {})
        self.chosen: dict[str, Checkpoint] = {}

    @contextmanager
    def step(self, name: str, detail: str = "") -> Iterator[None]:
        """Measure one step (its metrics join ``steps``) and report it to ``progress`` as it starts."""
        if self.progress is not None:
            self.progress(f"{name}{f' ({detail})' if detail else ''}")
        handle = None
        try:
            with self.monitor.step(name) as handle:
                yield
        finally:
            if handle is not None and handle.metrics is not None:
                self.steps.append(handle.metrics)

    def wrapper(self, role: str, factory: Callable[..., Any], **settings: Any) -> Any:
        """The pool's ``factory`` wrapper around the network chosen for ``role``."""
        return self.pool.wrapper(
            self.chosen[role], self.options.device, self.options.torch_dtype, self.models, factory, **settings
        )

    def load(self, role: str) -> LoadedModel:
        """The pool's network chosen for ``role`` (for steps that combine two networks)."""
        return self.pool.load(self.chosen[role], self.options.device, self.options.torch_dtype, self.models)

    def lookup(self, keys: Sequence[str]) -> tuple[dict[str, Arrays], list[str]]:
        """Cached arrays by key, and the distinct keys that missed (in order)."""
        found: dict[str, Arrays] = {}
        missing: list[str] = []
        for key in keys:
            if key in found or key in missing:
                continue
            arrays = self.cache.get(key) if self.cache is not None else None
            if arrays is None:
                missing.append(key)
            else:
                found[key] = arrays
        return found, missing

    def store(self, key: str, arrays: Arrays) -> Arrays:
        """Keep ``arrays`` under ``key`` (read-only copies, also without a cache)."""
        return self.cache.put(key, arrays) if self.cache is not None else freeze(arrays)

    def photo_stage(
        self,
        stage: str,
        photos: dict[str, Photo],
        config: dict[str, Any],
        compute: Callable[[list[np.ndarray]], list[Arrays]],
        partners: Sequence[str] = (),
    ) -> tuple[dict[str, Arrays], set[str]]:
        """Arrays per photo digest for one per-photo stage (named as its role, its ``partners`` roles' networks
        entering the key too), computing only the cache misses, in one call."""
        model = "+".join(self.chosen[role].sha256 for role in (stage, *partners))
        keys = {
            digest: content_key(stage=stage, version=CACHE_VERSION, image=digest, model=model, config=config)
            for digest in photos
        }
        with self.step(stage, count(len(photos), "photo")):
            found, missing = self.lookup(list(keys.values()))
            if missing:
                by_key = {key: digest for digest, key in keys.items()}
                computed = compute([photos[by_key[key]].image for key in missing])
                found.update({key: self.store(key, arrays) for key, arrays in zip(missing, computed, strict=True)})
        hits = {digest for digest, key in keys.items() if key not in missing}
        return {digest: found[key] for digest, key in keys.items()}, hits
