"""Resources: the model factory (a checkpoint folder -> the network of each role) and the model manager.

The factory recognises files by their contents (any names), picks one file per role from the pipelines'
tables (:mod:`mycloset_assets.checkpoints.pipelines`) and loads networks lazily: nothing is read at import or when the
resource is configured, and each network is loaded at most once per process, cached by (sha256, device,
dtype). Dagster's multiprocess executor starts one process per step, so steps that need a model should
cover many partitions at once (single-run backfills): each model is then loaded once per run.
"""

import os
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field

from ..checkpoints import LoadedModel, analyze, load_model
from ..checkpoints.errors import CheckpointError
from ..checkpoints.manager import ModelManager, ModelVersion
from ..checkpoints.pipelines import (
    OPTIONAL_ROLES,
    PIPELINES,
    PREFERENCE,
    best_pipeline,
    choose,
    missing_companions,
    required_companions,
)
from ..engine.models import file_digest

POLICIES = ("refuse", "reinit_head")


class NoModelForRoleError(CheckpointError):
    """No file in the checkpoint folder can fill a role; the message names what would and what was skipped."""


class ChangedFileError(CheckpointError):
    """A checkpoint file no longer has the sha256 it was chosen (and recorded) with."""


def role_candidates() -> dict[str, tuple[str, ...]]:
    """Every role and the registry entries that can fill it, in order of preference: the roles of every
    pipeline (preferred pipeline first, so ``gmm`` lists VITON-HD's before CP-VTON's), then the optional roles."""
    table: dict[str, list[str]] = {}
    tables = [PIPELINES[pipeline] for pipeline in PREFERENCE] + [OPTIONAL_ROLES]
    for roles in tables:
        for role, entries in roles.items():
            known = table.setdefault(role, [])
            known += [entry for entry in entries if entry not in known]
    return {role: tuple(entries) for role, entries in table.items()}


def is_hidden(relative: Path) -> bool:
    """Dot files and folders (``.DS_Store``, partial downloads, atomic-write temporaries) are not checkpoints."""
    return any(part.startswith(".") for part in relative.parts)


def checkpoint_files(folder: str | os.PathLike[str]) -> dict[str, Path]:
    """The files under ``folder`` keyed by their relative POSIX path (the stable partition key), sorted."""
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"checkpoint folder {root.resolve()} does not exist")
    found = {}
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if path.is_file() and not is_hidden(relative):
            found[relative.as_posix()] = path
    return found


def file_report(key: str, path: str | os.PathLike[str]) -> dict[str, Any]:
    """The analyzer's full report of one file (``Analysis.to_dict()``) plus its ``key``, ``sha256`` and ``size``."""
    report = analyze(path).to_dict()
    report.update(key=key, sha256=file_digest(path), size=Path(path).stat().st_size)
    return report


def usable(report: Mapping[str, Any], policy: str = "refuse") -> bool:
    """Whether a file may fill a role: identified, or (policy ``reinit_head``) partial with only a
    differently shaped head and nothing missing, as ``load_model`` accepts it."""
    if report["verdict"] == "identified":
        return True
    return policy == "reinit_head" and report["verdict"] == "partial" and not report["missing"]


def skip_reason(report: Mapping[str, Any]) -> str:
    """Why a file fills no role, in the ``verdict: reason`` form of report.json's ``skipped``."""
    return f"{report['verdict']}: {report['reason']}"


@dataclass(frozen=True)
class RoleChoice:
    """The file chosen for a role, the companion files its entry needs, and the pipeline it was chosen for."""

    role: str
    entry: str
    report: Mapping[str, Any]
    companions: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    pipeline: str | None = None

    def to_card(self) -> dict[str, Any]:
        """The JSON card of the choice: file, sha256, entry, family, verdict, key-match rate, companions."""
        report = self.report
        return {
            "role": self.role,
            "entry": self.entry,
            "family": report["family"],
            "pipeline": self.pipeline,
            "file": report["key"],
            "path": report["path"],
            "sha256": report["sha256"],
            "size": report["size"],
            "verdict": report["verdict"],
            "match_rate": report["match_rate"],
            "matched": report["matched"],
            "total": report["total"],
            "container": report["container"],
            "reason": report["reason"],
            "companions": {
                entry: {"file": item["key"], "path": item["path"], "sha256": item["sha256"]}
                for entry, item in self.companions.items()
            },
        }


def choose_role(role: str, reports: Iterable[Mapping[str, Any]], policy: str = "refuse") -> RoleChoice | None:
    """The file that fills ``role`` among analysed files (first by key among files of the chosen entry).

    When the files complete a pipeline, a role of that pipeline takes that pipeline's entry (CP-VTON's GMM
    with CP-VTON's TOM); otherwise the role's entries in order of :func:`role_candidates`.
    """
    candidates = role_candidates()
    if role not in candidates:
        raise KeyError(f"unknown role {role!r}; roles: {', '.join(candidates)}")
    by_entry: dict[str, Mapping[str, Any]] = {}
    for report in sorted(reports, key=lambda item: item["key"]):
        if usable(report, policy) and report["entry"]:
            by_entry.setdefault(report["entry"], report)
    pipeline = best_pipeline(by_entry)
    acceptable = PIPELINES[pipeline][role] if pipeline and role in PIPELINES[pipeline] else candidates[role]
    entry = choose(acceptable, by_entry)
    if entry is None:
        return None
    companions = {companion: by_entry[companion] for companion in required_companions(entry)}
    return RoleChoice(role, entry, by_entry[entry], companions, pipeline)


def missing_role_message(role: str, reports: Iterable[Mapping[str, Any]], folder: str) -> str:
    """Why no file fills ``role``: the entries that would, files of those entries that lack a companion file,
    and every file that was skipped with its reason."""
    reports = list(reports)
    wanted = role_candidates()[role]
    identified = [report for report in reports if report["verdict"] == "identified"]
    present = {report["entry"] for report in identified}
    parts = [f"no file in {folder} fills role '{role}': it needs {' or '.join(wanted)}"]
    lacking = [
        f"{report['key']} ({report['entry']}) needs {' and '.join(missing)} beside it"
        for report in identified
        if report["entry"] in wanted and (missing := missing_companions(report["entry"], present))
    ]
    found = [f"{report['key']} ({report['entry']})" for report in identified]
    skipped = [f"{report['key']} ({skip_reason(report)})" for report in reports if report["verdict"] != "identified"]
    for label, items in (("", lacking), ("identified: ", found), ("skipped: ", skipped)):
        if items:
            parts.append(label + ", ".join(items))
    return "; ".join(parts)


class ModelCache:
    """Loaded networks of this process, keyed by (sha256, device, dtype, policy, companions' sha256);
    ``loads`` counts the loads actually performed per key."""

    def __init__(self) -> None:
        self._models: dict[tuple[str, ...], LoadedModel] = {}
        self._lock = threading.Lock()
        self.loads: Counter[tuple[str, ...]] = Counter()

    def get(self, key: tuple[str, ...], load: Callable[[], LoadedModel]) -> tuple[LoadedModel, bool]:
        """The cached model for ``key`` and True, or ``load()``'s model (now cached) and False."""
        with self._lock:
            if key in self._models:
                return self._models[key], True
            model = load()
            self._models[key] = model
            self.loads[key] += 1
            return model, False

    def clear(self) -> None:
        """Forget every cached model (the load counts stay)."""
        with self._lock:
            self._models.clear()


MODEL_CACHE = ModelCache()


class ModelFactoryResource(dg.ConfigurableResource):
    """Finds the network of each role in ``checkpoint_folder`` by content and loads it once per process."""

    checkpoint_folder: str = Field(
        default="zoo", description="Folder holding the checkpoint files (any names, any sub-folders)."
    )
    device: str = Field(default="cpu", description="Torch device the networks run on (cpu, cuda, cuda:1, mps).")
    dtype: str = Field(default="float32", description="Floating-point dtype the networks compute in.")
    policy: str = Field(
        default="refuse",
        description="'refuse' loads identified files only; 'reinit_head' also accepts a partial file whose only "
        "difference is a head of another class count (re-initialised; its key-match check fails).",
    )

    def folder(self) -> Path:
        """The checkpoint folder as a path."""
        return Path(self.checkpoint_folder)

    def files(self) -> dict[str, Path]:
        """The folder's checkpoint files by partition key (relative POSIX path)."""
        return checkpoint_files(self.folder())

    def path_of(self, key: str) -> Path:
        """The file of one partition key; FileNotFoundError when it is gone."""
        path = self.folder() / key
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint file {key!r} is not in {self.folder().resolve()} any more")
        return path

    def reports(self) -> list[dict[str, Any]]:
        """:func:`file_report` of every file in the folder."""
        return [file_report(key, path) for key, path in self.files().items()]

    def choose(self, role: str, reports: Iterable[Mapping[str, Any]] | None = None) -> RoleChoice:
        """The file for ``role`` among ``reports`` (default: the folder analysed now); NoModelForRoleError."""
        reports = self.reports() if reports is None else list(reports)
        choice = choose_role(role, reports, self.policy)
        if choice is None:
            raise NoModelForRoleError(missing_role_message(role, reports, str(self.folder())))
        return choice

    def load_file(
        self,
        path: str | os.PathLike[str],
        sha256: str | None = None,
        companions: Mapping[str, str | os.PathLike[str]] | None = None,
    ) -> tuple[LoadedModel, bool]:
        """The network of one file (and its companion files) and whether it came from the cache.

        ``sha256``, when given, must be the file's: a file replaced since it was chosen is refused.
        """
        if self.policy not in POLICIES:
            raise ValueError(f"policy must be one of {POLICIES}, not {self.policy!r}")
        actual = file_digest(path)
        if sha256 is not None and actual != sha256:
            raise ChangedFileError(f"{path} changed since it was chosen (sha256 {actual[:12]}, expected {sha256[:12]})")
        companions = dict(companions or {})
        key = (actual, self.device, self.dtype, self.policy) + tuple(
            f"{entry}={file_digest(companion)}" for entry, companion in sorted(companions.items())
        )

        def load() -> LoadedModel:
            return load_model(path, self.device, self.dtype, policy=self.policy, companions=companions)

        return MODEL_CACHE.get(key, load)

    def load_card(self, card: Mapping[str, Any]) -> LoadedModel:
        """The network a per-role model card names (its file, checked against its sha256, and companions)."""
        companions = {entry: item["path"] for entry, item in card.get("companions", {}).items()}
        return self.load_file(card["path"], card["sha256"], companions)[0]

    def load_role(self, role: str) -> LoadedModel:
        """The network of ``role`` from the folder as it is now."""
        return self.load_card(self.choose(role).to_card())


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
