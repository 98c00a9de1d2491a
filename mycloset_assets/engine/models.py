"""Which checkpoint fills each role of a pipeline, and the loaded networks, kept once per process.

A :class:`ModelSet` is what a run may use: one checkpoint per registry entry, found by analysing every
file of a folder (whatever the files are called) or taken from the model manager's active versions, and the
files that cannot be used, each with its verdict and reason. Which entries fill which role is the table of
:mod:`mycloset_assets.checkpoints.pipelines`. A :class:`ModelPool` holds the loaded networks by (sha256, device, dtype)
and the wrappers built on them, so a network is loaded once per process however many runs use it.

Folder analysis is header-only and sha256s are computed only for the checkpoints a run uses; both are
remembered per file (path, size, modification time, inode), so a second run over the same folder re-reads
nothing. Loading verifies zip CRCs (``load_model``).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import torch

from ..checkpoints import LoadedModel, analyze, load_model
from ..checkpoints.analysis import Analysis
from ..checkpoints.convert import file_sha256
from ..checkpoints.manager import ModelManager
from ..checkpoints.pipelines import (
    OPTIONAL_ROLES,
    PIPELINES,
    PREFERENCE,
    PipelineStatus,
    choose,
    describe_missing,
    pipeline_status,
    required_companions,
)
from .errors import MissingModelsError

W = TypeVar("W")
_FileStamp = tuple[str, int, int, int]
_memo_lock = threading.Lock()
_analyses: dict[_FileStamp, Analysis] = {}
_digests: dict[_FileStamp, str] = {}


def _stamp(path: Path) -> _FileStamp:
    status = path.stat()
    return str(path.resolve()), status.st_size, status.st_mtime_ns, status.st_ino


def file_digest(path: str | os.PathLike[str]) -> str:
    """sha256 of a file's bytes, remembered per (path, size, mtime, inode) for this process."""
    stamp = _stamp(Path(path))
    with _memo_lock:
        if stamp in _digests:
            return _digests[stamp]
    digest = file_sha256(path)
    with _memo_lock:
        _digests[stamp] = digest
    return digest


def _analysis(path: Path) -> Analysis:
    stamp = _stamp(path)
    with _memo_lock:
        if stamp in _analyses:
            return _analyses[stamp]
    report = analyze(path, verify=False)
    with _memo_lock:
        _analyses[stamp] = report
    return report


@dataclass(frozen=True)
class Checkpoint:
    """One usable checkpoint: its registry entry, the file, and its path as the user knows it (``shown``)."""

    entry: str
    path: Path
    shown: str
    known_sha256: str | None = None

    @property
    def sha256(self) -> str:
        """The file's sha256 (from the model manager's catalogue, or hashed once per process)."""
        return self.known_sha256 or file_digest(self.path)


@dataclass(frozen=True)
class ModelSet:
    """The checkpoints a run may use (one per registry entry) and the files it cannot use.

    ``skipped`` maps a path as found (under the folder as given) to ``"verdict: reason"``. ``source`` says
    where the set came from, for messages.
    """

    source: str
    checkpoints: Mapping[str, Checkpoint]
    skipped: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_folder(cls, folder: str | os.PathLike[str]) -> ModelSet:
        """Analyse every file under ``folder`` (recursively, any names); the first file (by path) of an entry
        is used, other files of the same entry and everything not identified are skipped with the reason."""
        root = Path(folder)
        if not root.is_dir():
            raise NotADirectoryError(f"{root}: the checkpoint folder does not exist or is not a folder")
        checkpoints: dict[str, Checkpoint] = {}
        skipped: dict[str, str] = {}
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            shown = str(root / path.relative_to(root))
            try:
                report = _analysis(path)
            except OSError as exc:
                skipped[shown] = f"unreadable: {exc}"
                continue
            if report.verdict != "identified" or report.entry is None:
                skipped[shown] = f"{report.verdict}: {report.reason}"
            elif report.entry in checkpoints:
                kept = checkpoints[report.entry].shown
                skipped[shown] = f"identified: another file of {report.entry} is used ({kept})"
            else:
                checkpoints[report.entry] = Checkpoint(report.entry, path, shown)
        return cls(f"folder {root}", checkpoints, skipped)

    @classmethod
    def from_manager(cls, manager: ModelManager | str | os.PathLike[str] | None = None) -> ModelSet:
        """The active version of every model of the model manager (default store: ``$MYCLOSET_HOME``)."""
        if not isinstance(manager, ModelManager):
            manager = ModelManager(manager)
        checkpoints: dict[str, Checkpoint] = {}
        skipped: dict[str, str] = {}
        for model in manager.active():
            shown = str(model.path)
            if model.entry in checkpoints:
                kept = checkpoints[model.entry].shown
                skipped[shown] = f"identified: {model.label} is another {model.entry}; {kept} is used"
            else:
                checkpoints[model.entry] = Checkpoint(model.entry, model.path, shown, model.sha256)
        return cls(f"model manager {manager.root}", checkpoints, skipped)

    def status(self, pipeline: str, roles: Iterable[str] | None = None) -> PipelineStatus:
        """Which entry fills each role of ``pipeline`` (only ``roles`` when given) and which roles stay empty."""
        status = pipeline_status(pipeline, self.checkpoints)
        if roles is None:
            return status
        wanted = set(roles)
        return PipelineStatus(
            pipeline,
            {role: entry for role, entry in status.roles.items() if role in wanted},
            {role: entries for role, entries in status.missing.items() if role in wanted},
            status.optional,
        )

    def best_pipeline(self, skip_roles: Iterable[str] = ()) -> str | None:
        """The preferred pipeline whose roles (less ``skip_roles``, which the caller fills) are all available."""
        skip = set(skip_roles)
        for pipeline in PREFERENCE:
            if self.status(pipeline, set(PIPELINES[pipeline]) - skip).complete:
                return pipeline
        return None

    def select(self, pipeline: str | None, skip_roles: Iterable[str] = ()) -> tuple[str, dict[str, Checkpoint]]:
        """The pipeline (the best complete one when None) and the checkpoint of each of its roles, less
        ``skip_roles``; raises :class:`MissingModelsError` naming the empty roles and their entries."""
        skip = set(skip_roles)
        if pipeline is None:
            pipeline = self.best_pipeline(skip)
            if pipeline is None:
                statuses = [self.status(name, set(PIPELINES[name]) - skip) for name in PREFERENCE]
                missing = "; ".join(describe_missing(status) for status in statuses)
                raise MissingModelsError(
                    f"no try-on pipeline is complete in the {self.source}: {missing}{self._skipped_hint()}",
                    None,
                    {f"{s.pipeline}.{role}": entries for s in statuses for role, entries in s.missing.items()},
                    self.skipped,
                )
        if pipeline not in PIPELINES:
            raise ValueError(f"unknown pipeline {pipeline!r}; known: {', '.join(PIPELINES)}")
        status = self.status(pipeline, set(PIPELINES[pipeline]) - skip)
        if not status.complete:
            raise MissingModelsError(
                f"the {self.source} cannot run {pipeline}: {describe_missing(status)}{self._skipped_hint()}",
                pipeline,
                status.missing,
                self.skipped,
            )
        return pipeline, {role: self.checkpoints[entry] for role, entry in status.roles.items()}

    def optional(self, roles: Iterable[str]) -> dict[str, Checkpoint]:
        """The checkpoint of each optional role (``OPTIONAL_ROLES``) in ``roles`` that an available entry fills,
        companions included; roles no entry fills are left out."""
        chosen = {role: choose(OPTIONAL_ROLES[role], self.checkpoints) for role in roles}
        return {role: self.checkpoints[entry] for role, entry in chosen.items() if entry is not None}

    def companions(self, entry: str) -> dict[str, Path]:
        """The files of the entries ``entry`` needs beside its own (an LPIPS lin file's trunk)."""
        return {name: self.checkpoints[name].path for name in required_companions(entry) if name in self.checkpoints}

    def _skipped_hint(self) -> str:
        if not self.skipped:
            return ""
        shown = "; ".join(f"{path} ({reason})" for path, reason in list(self.skipped.items())[:5])
        more = f" and {len(self.skipped) - 5} more" if len(self.skipped) > 5 else ""
        return f" (skipped: {shown}{more})"


ModelsArgument = ModelSet | ModelManager | str | os.PathLike[str] | None


def model_set(models: ModelsArgument) -> ModelSet:
    """A ModelSet from what a caller passed: a set as is, a folder path, a manager, or None (the manager's
    default store)."""
    if isinstance(models, ModelSet):
        return models
    if isinstance(models, ModelManager) or models is None:
        return ModelSet.from_manager(models)
    return ModelSet.from_folder(models)


class ModelPool:
    """Loaded networks by (sha256, device, dtype) and wrappers built on them, for the life of the process.

    ``loads`` counts the networks actually read from disk (a second run over the same checkpoints adds none).
    """

    def __init__(self) -> None:
        self._models: dict[tuple[str, str, torch.dtype], LoadedModel] = {}
        self._wrappers: dict[tuple[Any, ...], Any] = {}
        self._lock = threading.RLock()
        self.loads = 0

    def load(self, checkpoint: Checkpoint, device: str, dtype: torch.dtype, models: ModelSet) -> LoadedModel:
        """The network of ``checkpoint`` on ``device`` in ``dtype``, loaded on first use."""
        key = (checkpoint.sha256, str(torch.device(device)), dtype)
        with self._lock:
            if key not in self._models:
                companions = models.companions(checkpoint.entry)
                self._models[key] = load_model(checkpoint.path, device, dtype, companions=companions)
                self.loads += 1
            return self._models[key]

    def wrapper(
        self,
        checkpoint: Checkpoint,
        device: str,
        dtype: torch.dtype,
        models: ModelSet,
        factory: Callable[..., W],
        **settings: Any,
    ) -> W:
        """``factory(loaded, **settings)`` for the network of ``checkpoint``, made once per (network, factory,
        settings); setting values must be hashable."""
        key = (checkpoint.sha256, str(torch.device(device)), dtype, factory, tuple(sorted(settings.items())))
        with self._lock:
            if key not in self._wrappers:
                self._wrappers[key] = factory(self.load(checkpoint, device, dtype, models), **settings)
            return self._wrappers[key]

    def loaded(self) -> list[LoadedModel]:
        """The networks loaded so far."""
        with self._lock:
            return list(self._models.values())

    def clear(self) -> None:
        """Drop every loaded network and wrapper."""
        with self._lock:
            self._models.clear()
            self._wrappers.clear()

    def __len__(self) -> int:
        return len(self._models)


_DEFAULT_POOL = ModelPool()


def default_pool() -> ModelPool:
    """The process-wide pool the engine uses unless given another."""
    return _DEFAULT_POOL
