"""Which checkpoint fills each role of a pipeline, and the loaded networks, kept once per process.

A :class:`ModelSet` is what a run may use: one checkpoint per registry entry, found by analysing every
file of a folder (whatever the files are called) or taken from the model manager's active versions, and the
files that cannot be used, each with its verdict and reason. Which entries fill which role is the table of
:mod:`mycloset_assets.checkpoints.pipelines`. A :class:`ModelPool` holds the loaded networks by (sha256, device,
dtype, policy) and the wrappers built on them, so a network is loaded once per process however many runs use it,
within an optional memory budget (least-recently-used networks are released to make room).

Folder analysis is header-only and sha256s are computed only for the checkpoints a run uses; both are
remembered per file (path, size, modification time, inode), so a second run over the same folder re-reads
nothing. Loading verifies zip CRCs (``load_model``).
"""

from __future__ import annotations

import functools
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import torch

from ..checkpoints import LoadedModel, analyze, get_entry, load_model
from ..checkpoints.analysis import Analysis
from ..checkpoints.convert import file_sha256
from ..checkpoints.factory import POLICIES, accepts
from ..checkpoints.manager import ModelManager
from ..checkpoints.manager_store import IntegrityError
from ..checkpoints.pipelines import (
    OPTIONAL_ROLES,
    PIPELINES,
    PREFERENCE,
    PipelineStatus,
    choose,
    describe_missing,
    partner_roles,
    pipeline_status,
    required_companions,
)
from ..checkpoints.provenance import weights_provenance
from .errors import MissingModelsError

W = TypeVar("W")
Narrowed = Mapping[str, tuple[str, ...]]
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


def file_analysis(path: Path) -> Analysis:
    """The header-only analysis of a file, remembered per (path, size, mtime, inode) for this process."""
    stamp = _stamp(path)
    with _memo_lock:
        if stamp in _analyses:
            return _analyses[stamp]
    report = analyze(path, verify=False)
    with _memo_lock:
        _analyses[stamp] = report
    return report


def is_hidden(relative: str | os.PathLike[str]) -> bool:
    """Whether a path (relative to the checkpoint folder) has a part starting with '.': dot files, partial
    downloads and atomic-write temporaries, which are never checkpoints."""
    return any(part.startswith(".") for part in Path(relative).parts)


def checkpoint_files(folder: str | os.PathLike[str]) -> dict[str, Path]:
    """The files under ``folder`` (recursively, links followed, hidden ones left out) by relative POSIX path,
    sorted; the key is stable whatever the folder is called."""
    root = Path(folder)
    if not root.is_dir():
        error = NotADirectoryError if root.exists() else FileNotFoundError
        raise error(f"{root}: the checkpoint folder does not exist or is not a folder")
    found = {}
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if not is_hidden(relative) and path.is_file():
            found[relative.as_posix()] = path
    return found


@functools.lru_cache(maxsize=256)
def _provenance_words(path: str, entry: str, sha256: str) -> str:
    return weights_provenance(path, entry, sha256).words


def provenance(checkpoint: Checkpoint) -> str:
    """In words: whether ``checkpoint``'s file is a published one, synthesized by this project, or unknown
    (remembered per file content for this process)."""
    return _provenance_words(str(checkpoint.path), checkpoint.entry, checkpoint.sha256)


@dataclass(frozen=True)
class Checkpoint:
    """One usable checkpoint: its registry entry, the file, its path as the user knows it (``shown``) and the
    load policy it needs (``reinit_head`` for a partial file with another head, else ``refuse``)."""

    entry: str
    path: Path
    shown: str
    known_sha256: str | None = None
    policy: str = "refuse"

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
    def from_folder(cls, folder: str | os.PathLike[str], policy: str = "refuse") -> ModelSet:
        """Analyse every file under ``folder`` (recursively, any names, hidden files left out: see
        :func:`checkpoint_files`). An identified file fills its entry, the first by path when there are several;
        with ``policy="reinit_head"`` a partial file that differs only by a head of another class count fills
        its entry when no identified file does (it loads with that policy). Every other file is skipped with
        the reason."""
        if policy not in POLICIES:
            raise ValueError(f"policy must be one of {POLICIES}, not {policy!r}")
        root = Path(folder)
        usable: dict[str, list[tuple[str, Path, Analysis]]] = {}
        skipped: dict[str, str] = {}
        for relative, path in checkpoint_files(root).items():
            shown = str(root / relative)
            try:
                report = file_analysis(path)
            except OSError as exc:
                skipped[shown] = f"unreadable: {exc}"
                continue
            if report.entry is None or not accepts(report, policy):
                skipped[shown] = f"{report.verdict}: {report.reason}"
            else:
                usable.setdefault(report.entry, []).append((shown, path, report))
        checkpoints: dict[str, Checkpoint] = {}
        for entry, files in usable.items():
            shown, path, report = min(files, key=lambda file: file[2].verdict != "identified")
            needs = "refuse" if report.verdict == "identified" else "reinit_head"
            checkpoints[entry] = Checkpoint(entry, path, shown, policy=needs)
            for other, _, other_report in files:
                if other != shown:
                    skipped[other] = f"{other_report.verdict}: another file of {entry} is used ({shown})"
        return cls(f"folder {root}", checkpoints, dict(sorted(skipped.items())))

    @classmethod
    def from_manager(cls, manager: ModelManager | str | os.PathLike[str] | None = None) -> ModelSet:
        """The active version of every model of the model manager (default store: ``$MYCLOSET_HOME``). Each
        stored file is checked against its sha256 first (once per file state): a damaged one is skipped with the
        reason, so what a run reports is the file it read."""
        if not isinstance(manager, ModelManager):
            manager = ModelManager(manager)
        checkpoints: dict[str, Checkpoint] = {}
        skipped: dict[str, str] = {}
        for model in manager.active():
            shown = str(model.path)
            try:
                manager.checked(model)
            except IntegrityError as exc:
                skipped[shown] = f"damaged: {exc}"
                continue
            if model.entry in checkpoints:
                kept = checkpoints[model.entry].shown
                skipped[shown] = f"identified: {model.label} is another {model.entry}; {kept} is used"
            else:
                checkpoints[model.entry] = Checkpoint(model.entry, model.path, shown, model.sha256)
        return cls(f"model manager {manager.root}", checkpoints, skipped)

    def status(
        self, pipeline: str, roles: Iterable[str] | None = None, narrowed: Narrowed | None = None
    ) -> PipelineStatus:
        """Which entry fills each role of ``pipeline`` (only ``roles`` when given) and which roles stay empty;
        ``narrowed`` replaces some roles' acceptable entries (e.g. one pose estimator)."""
        status = pipeline_status(pipeline, self.checkpoints, narrowed)
        if roles is None:
            return status
        wanted = set(roles)
        return PipelineStatus(
            pipeline,
            {role: entry for role, entry in status.roles.items() if role in wanted},
            {role: entries for role, entries in status.missing.items() if role in wanted},
            status.optional,
        )

    def best_pipeline(self, skip_roles: Iterable[str] = (), narrowed: Narrowed | None = None) -> str | None:
        """The preferred pipeline whose roles (less ``skip_roles``, which the caller fills) are all available."""
        skip = set(skip_roles)
        for pipeline in PREFERENCE:
            if self.status(pipeline, set(PIPELINES[pipeline]) - skip, narrowed).complete:
                return pipeline
        return None

    def select(
        self, pipeline: str | None, skip_roles: Iterable[str] = (), narrowed: Narrowed | None = None
    ) -> tuple[str, dict[str, Checkpoint]]:
        """The pipeline (the best complete one when None) and the checkpoint of each of its roles, less
        ``skip_roles``, and of the partner roles of the entries chosen (BlazePose's ``pose_detector``);
        ``narrowed`` replaces some roles' acceptable entries. Raises :class:`MissingModelsError` naming the
        empty roles and their entries."""
        skip = set(skip_roles)
        if pipeline is None:
            pipeline = self.best_pipeline(skip, narrowed)
            if pipeline is None:
                statuses = [self.status(name, set(PIPELINES[name]) - skip, narrowed) for name in PREFERENCE]
                missing = "; ".join(describe_missing(status) for status in statuses)
                raise MissingModelsError(
                    f"no try-on pipeline is complete in the {self.source}: {missing}{self._skipped_hint()}",
                    None,
                    {f"{s.pipeline}.{role}": entries for s in statuses for role, entries in s.missing.items()},
                    self.skipped,
                )
        if pipeline not in PIPELINES:
            raise ValueError(f"unknown pipeline {pipeline!r}; known: {', '.join(PIPELINES)}")
        status = self.status(pipeline, set(PIPELINES[pipeline]) - skip, narrowed)
        if not status.complete:
            raise MissingModelsError(
                f"the {self.source} cannot run {pipeline}: {describe_missing(status)}{self._skipped_hint()}",
                pipeline,
                status.missing,
                self.skipped,
            )
        chosen = {role: self.checkpoints[entry] for role, entry in status.roles.items()}
        for entry in status.roles.values():
            chosen.update({role: self.checkpoints[partner] for role, partner in partner_roles(entry).items()})
        return pipeline, chosen

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


_ModelKey = tuple[str, str, torch.dtype, str]


def model_bytes(loaded: LoadedModel) -> int:
    """Bytes of a loaded network's parameters and buffers, each storage counted once (tied weights)."""
    return _tensor_bytes([*loaded.module.parameters(), *loaded.module.buffers()])


def _tensor_bytes(tensors: Iterable[torch.Tensor]) -> int:
    seen: dict[tuple[str, int], int] = {}
    for tensor in tensors:
        size = tensor.numel() * tensor.element_size()
        where = (str(tensor.device), tensor.data_ptr()) if not tensor.is_meta else ("meta", id(tensor))
        seen[where] = max(seen.get(where, 0), size)
    return sum(seen.values())


def _expected_bytes(checkpoint: Checkpoint, dtype: torch.dtype) -> int:
    """What ``load_model`` will hold for ``checkpoint`` in ``dtype``: its network built on the meta device."""
    with torch.device("meta"):
        network = get_entry(checkpoint.entry).build()
    tensors = [*network.parameters(), *network.buffers()]
    floating = sum(t.numel() for t in tensors if t.is_floating_point()) * dtype.itemsize
    return floating + _tensor_bytes(t for t in tensors if not t.is_floating_point())


class ModelPool:
    """Loaded networks by (sha256, device, dtype, policy) and the wrappers built on them.

    ``memory_budget`` is the most bytes of parameters and buffers (:func:`model_bytes`) kept loaded on each
    device, each device on its own; ``None`` keeps every network. Before a network is loaded, the
    least-recently-used networks of its device are released until it fits (its size is known beforehand from
    its network built on the meta device); a network larger than the budget alone is still loaded, alone on
    its device, every other one there released. Releasing a network drops the wrappers built on it; a caller
    still holding one keeps its memory alive until it lets go. A released network is loaded again on its next
    use. Using a network or one of its wrappers makes it the most recently used.

    ``loads`` counts the networks actually read from disk (a second run over the same checkpoints adds none
    when they fit), ``releases`` those released for the budget, ``peak_resident_bytes`` the most bytes held at
    once (all devices together). Every method is thread-safe.
    """

    def __init__(self, memory_budget: int | None = None) -> None:
        self._models: OrderedDict[_ModelKey, LoadedModel] = OrderedDict()
        self._sizes: dict[_ModelKey, int] = {}
        self._wrappers: dict[tuple[Any, ...], Any] = {}
        self._lock = threading.RLock()
        self.memory_budget = _budget(memory_budget)
        self.loads = 0
        self.releases = 0
        self.peak_resident_bytes = 0

    def set_memory_budget(self, memory_budget: int | None) -> None:
        """Change the budget, releasing the least-recently-used networks that no longer fit."""
        with self._lock:
            self.memory_budget = _budget(memory_budget)
            if self.memory_budget is not None:
                for device in {key[1] for key in self._models}:
                    self._make_room(device, 0)

    def load(self, checkpoint: Checkpoint, device: str, dtype: torch.dtype, models: ModelSet) -> LoadedModel:
        """The network of ``checkpoint`` on ``device`` in ``dtype`` (loaded with the checkpoint's policy), loaded
        on first use or after a release."""
        key = _model_key(checkpoint, device, dtype)
        with self._lock:
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key]
            if self.memory_budget is not None:
                self._make_room(key[1], _expected_bytes(checkpoint, dtype))
            companions = models.companions(checkpoint.entry)
            loaded = load_model(checkpoint.path, device, dtype, policy=checkpoint.policy, companions=companions)
            self.loads += 1
            self._models[key] = loaded
            self._sizes[key] = model_bytes(loaded)
            if self.memory_budget is not None:
                self._make_room(key[1], 0)
            self.peak_resident_bytes = max(self.peak_resident_bytes, self.resident_bytes())
            return loaded

    def preload(self, checkpoints: Iterable[Checkpoint], device: str, dtype: torch.dtype, models: ModelSet) -> None:
        """Load ``checkpoints`` now, in order, instead of on first use (under a budget, the last ones that fit
        stay loaded)."""
        for checkpoint in checkpoints:
            self.load(checkpoint, device, dtype, models)

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
        settings) while the network stays loaded; setting values must be hashable."""
        model = _model_key(checkpoint, device, dtype)
        key = (model, factory, tuple(sorted(settings.items())))
        with self._lock:
            if key in self._wrappers:
                self._models.move_to_end(model)
                return self._wrappers[key]
            loaded = self.load(checkpoint, device, dtype, models)
            self._wrappers[key] = factory(loaded, **settings)
            return self._wrappers[key]

    def resident_bytes(self, device: str | torch.device | None = None) -> int:
        """Bytes of the networks loaded on ``device`` (every device when None)."""
        wanted = None if device is None else str(torch.device(device))
        with self._lock:
            return sum(size for key, size in self._sizes.items() if wanted is None or key[1] == wanted)

    def loaded(self) -> list[LoadedModel]:
        """The networks loaded now, least recently used first."""
        with self._lock:
            return list(self._models.values())

    def figures(self) -> dict[str, int | None]:
        """``loads``, ``releases``, ``budget_bytes`` and ``peak_resident_bytes``, for reports."""
        with self._lock:
            return {
                "loads": self.loads,
                "releases": self.releases,
                "budget_bytes": self.memory_budget,
                "peak_resident_bytes": self.peak_resident_bytes,
            }

    def clear(self) -> None:
        """Drop every loaded network and wrapper (not counted as releases)."""
        with self._lock:
            self._models.clear()
            self._sizes.clear()
            self._wrappers.clear()

    def __len__(self) -> int:
        return len(self._models)

    def _make_room(self, device: str, incoming: int) -> None:
        """Release the least-recently-used networks of ``device`` until ``incoming`` more bytes fit."""
        assert self.memory_budget is not None
        on_device = [key for key in self._models if key[1] == device]
        held = sum(self._sizes[key] for key in on_device)
        while held + incoming > self.memory_budget and len(on_device) > (incoming == 0):
            oldest = on_device.pop(0)
            held -= self._sizes[oldest]
            self._release(oldest)

    def _release(self, key: _ModelKey) -> None:
        del self._models[key], self._sizes[key]
        for wrapper_key in [k for k in self._wrappers if k[0] == key]:
            del self._wrappers[wrapper_key]
        self.releases += 1


def _model_key(checkpoint: Checkpoint, device: str, dtype: torch.dtype) -> _ModelKey:
    return checkpoint.sha256, str(torch.device(device)), dtype, checkpoint.policy


def _budget(memory_budget: int | None) -> int | None:
    if memory_budget is not None and (isinstance(memory_budget, bool) or not isinstance(memory_budget, int)):
        raise TypeError(f"memory_budget must be a number of bytes (int) or None, not {memory_budget!r}")
    if memory_budget is not None and memory_budget < 0:
        raise ValueError(f"memory_budget must be >= 0 bytes or None (unbounded), not {memory_budget}")
    return memory_budget


_DEFAULT_POOL = ModelPool()


def default_pool() -> ModelPool:
    """The process-wide pool the engine uses unless given another (unbounded until
    :func:`configure_default_pool` sets a budget)."""
    return _DEFAULT_POOL


def configure_default_pool(memory_budget: int | None) -> ModelPool:
    """Set the process-wide pool's memory budget (bytes per device, None = unbounded) and return the pool; the
    networks it holds stay loaded as far as the new budget allows."""
    _DEFAULT_POOL.set_memory_budget(memory_budget)
    return _DEFAULT_POOL
