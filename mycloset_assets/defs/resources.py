"""Resources: the model factory (a checkpoint folder -> the network of each role) and the model manager.

``ModelFactoryResource`` is configuration over the engine: the checkpoints come from
:class:`~mycloset_assets.engine.models.ModelSet` (files recognised by content, any names; hidden files skipped;
the same role tables and load policy as ``run_virtual_try_on``) and the networks from the engine's process-wide
:class:`~mycloset_assets.engine.models.ModelPool` (lazy, once per process per (sha256, device, dtype), released
least-recently-used first under ``memory_budget_mb``). Nothing is read at import or when the resource is
configured. Dagster's multiprocess executor starts one process per step, so steps that need a model cover many
partitions at once (single-run backfills): each model is then loaded once per run.
"""

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import dagster as dg
from pydantic import Field

from ..checkpoints import LoadedModel, analyze
from ..checkpoints.errors import CheckpointError
from ..checkpoints.manager import ModelManager, ModelVersion
from ..engine.models import Checkpoint, ModelPool, ModelSet, checkpoint_files, configure_default_pool, file_digest
from ..engine.options import TryOnOptions
from .options import engine_options

W = TypeVar("W")
MIB = 1024 * 1024


class ChangedFileError(CheckpointError):
    """A checkpoint file no longer has the sha256 it was chosen (and recorded) with."""


class ModelFactoryResource(dg.ConfigurableResource):
    """Finds the network of each role in ``checkpoint_folder`` by content and loads it once per process."""

    checkpoint_folder: str = Field(
        default="zoo",
        description="Local folder holding the checkpoint files (any names, any sub-folders); unlike the inbox and "
        "the storage it is not an fsspec URL: the networks load from local files (mount shared storage here).",
    )
    device: str = Field(default="cpu", description="Torch device the networks run on (cpu, cuda, cuda:1, mps).")
    dtype: str = Field(default="float32", description="Floating-point dtype the networks compute in.")
    policy: str = Field(
        default="refuse",
        description="'refuse' loads identified files only; 'reinit_head' also accepts a partial file whose only "
        "difference is a head of another class count (re-initialised; its key-match check fails).",
    )
    memory_budget_mb: float | None = Field(
        default=None,
        description="MiB of loaded parameters and buffers per device the process keeps; least recently used "
        "networks are released beyond it. Null: unbounded.",
    )

    def folder(self) -> Path:
        """The checkpoint folder as a path."""
        return Path(self.checkpoint_folder)

    def files(self) -> dict[str, Path]:
        """The folder's checkpoint files by partition key (relative POSIX path), hidden files left out."""
        return checkpoint_files(self.folder())

    def path_of(self, key: str) -> Path:
        """The file of one partition key; FileNotFoundError when it is gone."""
        path = self.folder() / key
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint file {key!r} is not in {self.folder().resolve()} any more")
        return path

    def models(self) -> ModelSet:
        """The checkpoints of the folder as the engine chooses them (analyses remembered per file stamp)."""
        return ModelSet.from_folder(self.folder(), policy=self.policy)

    def pool(self) -> ModelPool:
        """The engine's process-wide pool, with this resource's budget (a run process has one configuration)."""
        return configure_default_pool(None if self.memory_budget_mb is None else int(self.memory_budget_mb * MIB))

    def options(self, config: dg.Config | None = None) -> TryOnOptions:
        """The engine options of an asset's ``config`` on this factory's device and dtype."""
        return engine_options(config, self.device, self.dtype)

    def _checkpoints(self, card: Mapping[str, Any]) -> tuple[Checkpoint, ModelSet]:
        path = Path(card["path"])
        actual = file_digest(path)
        if actual != card["sha256"]:
            raise ChangedFileError(
                f"{path} changed since it was chosen (sha256 {actual[:12]}, expected {card['sha256'][:12]}); "
                f"materialise {card['role']}_model again"
            )
        checkpoint = Checkpoint(card["entry"], path, card["file"], actual, card.get("policy", "refuse"))
        known = {card["entry"]: checkpoint}
        for entry, item in card.get("companions", {}).items():
            known[entry] = Checkpoint(entry, Path(item["path"]), item["file"], file_digest(item["path"]))
        return checkpoint, ModelSet(f"the {card['role']} model card", known)

    def load(self, card: Mapping[str, Any]) -> tuple[LoadedModel, bool]:
        """The network a model card names (its file, checked against the card's sha256, and companions) and
        whether the pool already held it."""
        checkpoint, models = self._checkpoints(card)
        pool = self.pool()
        before = pool.loads
        loaded = pool.load(checkpoint, self.device, self.options().torch_dtype, models)
        return loaded, pool.loads == before

    def wrapper(self, card: Mapping[str, Any], factory: Callable[..., W], **settings: Any) -> W:
        """``factory(loaded, **settings)`` around the card's network, made once per process (the pool's)."""
        checkpoint, models = self._checkpoints(card)
        dtype = self.options().torch_dtype
        return self.pool().wrapper(checkpoint, self.device, dtype, models, factory, **settings)


class ModelManagerResource(dg.ConfigurableResource):
    """The model manager's store (registered, versioned checkpoints); ``root`` defaults to ``$MYCLOSET_HOME``
    or ``~/.mycloset``."""

    root: str | None = Field(default=None, description="Store root; default $MYCLOSET_HOME or ~/.mycloset.")

    def manager(self) -> ModelManager:
        """The manager of the configured store (opening it reads nothing until it is used)."""
        return ModelManager(self.root)

    def active(self) -> list[ModelVersion]:
        """The active version of every registered model."""
        return self.manager().active()


def file_report(key: str, path: str | os.PathLike[str]) -> dict[str, Any]:
    """The analyzer's full report of one file (``Analysis.to_dict()``) plus its ``key``, ``sha256`` and ``size``."""
    report = analyze(path).to_dict()
    report.update(key=key, sha256=file_digest(path), size=Path(path).stat().st_size)
    return report
