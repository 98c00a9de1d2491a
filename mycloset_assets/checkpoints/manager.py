"""The model manager: named, versioned checkpoints in a content-addressed store with a SQLite catalogue.

Every version of a name is a row of the catalogue (registry entry, sha256, source path, analysis summary,
created time) pointing at a stored file named by its sha256; each name has an active-version pointer. A
file is analysed before it is registered (the bytes analysed are the bytes stored) and refused unless the
analysis identifies it (``partial`` only when asked). Updates add versions and keep the old ones, rollbacks
move the pointer, removal refuses a version another active model needs (an LPIPS lin file needs its trunk),
and ``verify`` re-hashes the stored files.

Writers take an exclusive ``flock`` on ``ROOT/lock`` and change the catalogue in one SQLite transaction, so
two processes never lose each other's work and a killed process leaves the catalogue as it was. The root is
the ``root`` argument, else ``$MYCLOSET_HOME``, else ``~/.mycloset``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .analysis import Analysis, analyze
from .manager_catalogue import rebuild_catalogue, remove_card, write_card
from .manager_store import (
    LOCK_TIMEOUT_S,
    ContentStore,
    IntegrityError,
    ManagerError,
    Staged,
    atomic_copy,
    atomic_write_text,
    file_lock,
    hash_file,
    stored_sha256,
)
from .pipelines import (
    PipelineStatus,
    StepStatus,
    best_pipeline,
    pipeline_statuses,
    required_companions,
    step_statuses,
)
from .registry import get_entry

HOME_ENV = "MYCLOSET_HOME"
REFUSED_VERDICTS = ("unsafe", "corrupt", "impostor", "not_a_checkpoint", "unknown")
CARD_FORMAT = "mycloset-model-card/1"
SCHEMA_VERSION = 1
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS names (
    name TEXT PRIMARY KEY,
    active INTEGER,
    next_version INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS versions (
    name TEXT NOT NULL REFERENCES names(name),
    version INTEGER NOT NULL,
    entry TEXT NOT NULL,
    family TEXT NOT NULL,
    verdict TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    source TEXT NOT NULL,
    created TEXT NOT NULL,
    analysis TEXT NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE INDEX IF NOT EXISTS versions_sha256 ON versions(sha256);
"""
_COLUMNS = "v.name, v.version, v.entry, v.family, v.verdict, v.sha256, v.size, v.source, v.created, v.analysis"
_SELECT = f"SELECT {_COLUMNS}, n.active = v.version AS active FROM versions v JOIN names n ON n.name = v.name"


class RegistrationRefusedError(ManagerError):
    """The analysis does not allow the file into the store; ``analysis`` says what it is."""

    def __init__(self, analysis: Analysis, message: str) -> None:
        self.analysis = analysis
        super().__init__(message)


class CatalogueError(ManagerError):
    """The catalogue is missing while the store holds files, or SQLite cannot read it."""


class UnknownModelError(ManagerError):
    """No model (or no such version of it) is registered under that name."""


class DuplicateModelError(ManagerError):
    """The name is already registered, or the file is already one of its versions."""


class RemovalRefusedError(ManagerError):
    """A version cannot be removed: an active model needs it, or it is the active version of its name."""

    def __init__(self, message: str, dependants: list[ModelVersion] | None = None) -> None:
        self.dependants = dependants or []
        super().__init__(message)


def default_home() -> Path:
    """The store root: ``$MYCLOSET_HOME`` when set, else ``~/.mycloset``."""
    return Path(os.environ.get(HOME_ENV) or Path.home() / ".mycloset").expanduser()


@dataclass(frozen=True)
class ModelVersion:
    """One registered version of a named model and where its stored file is."""

    name: str
    version: int
    entry: str
    family: str
    verdict: str
    sha256: str
    size: int
    source: str
    created: str
    active: bool
    analysis: dict[str, Any]
    path: Path

    @property
    def label(self) -> str:
        """``name v3`` as messages write it."""
        return f"{self.name} v{self.version}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the path as a string)."""
        return {
            "name": self.name,
            "version": self.version,
            "active": self.active,
            "entry": self.entry,
            "family": self.family,
            "verdict": self.verdict,
            "sha256": self.sha256,
            "size": self.size,
            "source": self.source,
            "created": self.created,
            "path": str(self.path),
            "analysis": self.analysis,
        }


@dataclass(frozen=True)
class Backup:
    """A version exported with its card."""

    file: Path
    card: Path
    model: ModelVersion

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"name": self.model.name, "version": self.model.version, "file": str(self.file), "card": str(self.card)}


@dataclass(frozen=True)
class FileCheck:
    """The re-hash of one version's stored file: ``ok``, ``mismatch`` (with the actual sha256) or ``missing``."""

    name: str
    version: int
    sha256: str
    status: str
    actual: str | None


@dataclass
class VerifyReport:
    """Every checked version, stored files no version names (orphans) and stale stagings; what was cleaned."""

    checks: list[FileCheck]
    orphans: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)
    cleaned: bool = False

    @property
    def ok(self) -> bool:
        """True when every stored file hashes to its sha256."""
        return all(check.status == "ok" for check in self.checks)

    @property
    def problems(self) -> list[FileCheck]:
        """The checks that failed."""
        return [check for check in self.checks if check.status != "ok"]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "ok": self.ok,
            "checks": [vars(check) for check in self.checks],
            "orphans": self.orphans,
            "stale": self.stale,
            "cleaned": self.cleaned,
        }


@dataclass(frozen=True)
class ModelDependencies:
    """What one active model needs beside its own file, and which active models provide it."""

    model: ModelVersion
    requires: tuple[str, ...]
    provided_by: dict[str, str]

    @property
    def missing(self) -> tuple[str, ...]:
        """Required entries no active model provides."""
        return tuple(entry for entry in self.requires if entry not in self.provided_by)


@dataclass(frozen=True)
class DependencyReport:
    """Companions of every active model, the completeness of every pipeline and of every optional step."""

    models: list[ModelDependencies]
    pipelines: dict[str, PipelineStatus]
    best: str | None
    steps: dict[str, StepStatus] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when no active model lacks a companion."""
        return not any(item.missing for item in self.models)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "models": [
                {
                    "name": item.model.name,
                    "version": item.model.version,
                    "entry": item.model.entry,
                    "requires": list(item.requires),
                    "provided_by": item.provided_by,
                    "missing": list(item.missing),
                }
                for item in self.models
            ],
            "pipelines": {name: status.to_dict() for name, status in self.pipelines.items()},
            "best": self.best,
            "steps": {name: status.to_dict() for name, status in self.steps.items()},
        }


def check_name(name: str) -> str:
    """A model name: letters, digits, ``_ . -``, at most 64 characters (it names backup files)."""
    if not _NAME.match(name):
        raise ValueError(f"model name {name!r} must be 1-64 letters, digits, '_', '.' or '-', starting alphanumeric")
    return name


def check_admissible(analysis: Analysis, *, allow_partial: bool = False) -> None:
    """Refuse what may not enter the store, with the analyzer's reason."""
    if analysis.verdict == "identified" or (analysis.verdict == "partial" and allow_partial):
        return
    if analysis.verdict == "partial":
        raise RegistrationRefusedError(
            analysis,
            f"{analysis.path} is only a partial match for {analysis.entry}: {analysis.reason}; "
            "register it with allow_partial (--allow-partial) to accept it as it is",
        )
    raise RegistrationRefusedError(
        analysis, f"{analysis.path} was refused: the analysis says '{analysis.verdict}': {analysis.reason}"
    )


class ModelManager:
    """Register, update, roll back, back up, verify and remove named checkpoint versions under ``root``."""

    def __init__(
        self, root: str | Path | None = None, *, lock_timeout_s: float = LOCK_TIMEOUT_S, verify_files: bool = False
    ) -> None:
        self.root = Path(root).expanduser() if root is not None else default_home()
        self.store = ContentStore(self.root)
        self.catalogue = self.root / "catalogue.sqlite"
        self.cards = self.root / "cards"
        self.lock_path = self.root / "lock"
        self.lock_timeout_s = lock_timeout_s
        self.verify_files = verify_files

    def register(self, path: str | Path, name: str | None = None, *, allow_partial: bool = False) -> ModelVersion:
        """Analyse ``path`` and store it as version 1 of ``name`` (default: its registry entry id), active."""
        return self._add(Path(path), name, allow_partial=allow_partial, new=True)

    def update(self, name: str, path: str | Path, *, allow_partial: bool = False) -> ModelVersion:
        """Store ``path`` as the next version of ``name`` and make it active; earlier versions are kept."""
        return self._add(Path(path), name, allow_partial=allow_partial, new=False)

    def active(self) -> list[ModelVersion]:
        """The active version of every name, by name (what the engine and the pipelines use). With
        ``verify_files`` every stored file is checked against its sha256 first (see ``checked``)."""
        with self._reading() as db:
            models = [self._row(row) for row in db.execute(f"{_SELECT} WHERE n.active = v.version ORDER BY v.name")]
        return [self.checked(model) for model in models] if self.verify_files else models

    def checked(self, model: ModelVersion) -> ModelVersion:
        """``model`` once its stored file is found to hash to its sha256 (hashed once per file state in a
        process); raises IntegrityError with the file's real sha256 otherwise."""
        actual = stored_sha256(model.path)
        if actual != model.sha256:
            found = f"hashes to {actual}" if actual else "is missing"
            raise IntegrityError(
                f"{model.label}: the stored file {model.path} {found}, not {model.sha256}: it was damaged. "
                f"Register the original file again (mycloset models update {model.name} FILE, or register it) "
                "or restore it from a backup; `mycloset models verify` lists every damaged file"
            )
        return model

    def versions(self, name: str) -> list[ModelVersion]:
        """Every version of ``name``, oldest first."""
        with self._reading() as db:
            return self._versions(db, name)

    def get(self, name: str, version: int | None = None) -> ModelVersion:
        """One version of ``name``: the active one by default."""
        with self._reading() as db:
            return self._get(db, name, version)

    def rollback(self, name: str, to: int | None = None) -> ModelVersion:
        """Point ``name`` at version ``to`` (default: the newest version older than the active one)."""
        with self._writing() as db:
            versions = self._versions(db, name)
            active = next(item for item in versions if item.active)
            if to is None:
                older = [item.version for item in versions if item.version < active.version]
                if not older:
                    raise UnknownModelError(f"{active.label} is the oldest version of {name}; nothing to roll back to")
                to = older[-1]
            target = self._get(db, name, to)
            db.execute("UPDATE names SET active = ? WHERE name = ?", (target.version, name))
        return replace(target, active=True)

    def remove(self, name: str, version: int) -> ModelVersion:
        """Delete one version (its stored file too when no other version shares it); refused when an active
        model needs it or when it is the active version of a name with other versions."""
        with self._locked() as db:
            with _transaction(db):
                target = self._get(db, name, version)
                if target.active:
                    dependants = self._dependants(db, target)
                    if dependants:
                        needs = ", ".join(f"{item.label} ({item.entry})" for item in dependants)
                        raise RemovalRefusedError(
                            f"{target.label} ({target.entry}) is needed by {needs}; remove or update "
                            f"{'them' if len(dependants) > 1 else 'it'} first",
                            dependants,
                        )
                    others = [item.version for item in self._versions(db, name) if item.version != version]
                    if others:
                        raise RemovalRefusedError(
                            f"{target.label} is the active version of {name}; roll back first "
                            f"(mycloset models rollback {name} --to {others[-1]})"
                        )
                    db.execute("UPDATE names SET active = NULL WHERE name = ?", (name,))
                db.execute("DELETE FROM versions WHERE name = ? AND version = ?", (name, version))
            remove_card(self.cards, target)
            if not db.execute("SELECT 1 FROM versions WHERE sha256 = ?", (target.sha256,)).fetchone():
                self.store.delete(target.sha256)
        return replace(target, active=False)

    def backup(self, name: str, destination: str | Path, version: int | None = None) -> Backup:
        """Copy a version's file (checked against its sha256) and a JSON card into ``destination``."""
        model = self.get(name, version)
        folder = Path(destination)
        stem = f"{model.name}-v{model.version}"
        file = folder / f"{stem}{Path(model.source).suffix or '.bin'}"
        card = folder / f"{stem}.card.json"
        if file.exists() and hash_file(file) != model.sha256:
            raise DuplicateModelError(f"{file} exists with other contents; back up into another folder")
        atomic_copy(model.path, file, model.sha256)
        atomic_write_text(card, json.dumps(self._card(model, file), indent=1, default=str) + "\n")
        return Backup(file, card, model)

    def verify(self, name: str | None = None, *, clean: bool = False, force: bool = False) -> VerifyReport:
        """Re-hash the stored file of every version (of ``name``); list orphaned files and stale stagings.
        ``clean`` removes stale stagings, and orphaned files too only with ``force`` (a file the catalogue
        does not know may be a model whose row was lost: ``rebuild`` restores it). Hashing takes no lock:
        versions removed meanwhile are left out."""
        models = self.versions(name) if name is not None else self._all()
        digests: dict[str, str | None] = {}
        for model in models:
            if model.sha256 not in digests:
                digests[model.sha256] = hash_file(model.path) if model.path.is_file() else None
        current = self._all()
        still = {(model.name, model.version) for model in current}
        checks = [_check(model, digests[model.sha256]) for model in models if (model.name, model.version) in still]
        report = VerifyReport(
            checks,
            orphans=sorted(self.store.shas() - {model.sha256 for model in current}),
            stale=[str(path) for path in self.store.stale_staging()],
        )
        if clean:
            self._clean(orphans=force)
            report.cleaned = True
        return report

    def rebuild(self) -> list[ModelVersion]:
        """Rebuild a missing or damaged catalogue from the store: every version card under ``cards/`` whose
        file is stored becomes a row again, and a stored file without a card is analysed and registered
        under its entry id. The newest version of each name is active. A damaged catalogue is kept beside
        as ``catalogue.sqlite.damaged``. Returns every version."""
        with file_lock(self.lock_path, self.lock_timeout_s):
            if self.catalogue.exists():
                os.replace(self.catalogue, self.catalogue.with_name("catalogue.sqlite.damaged"))
            for leftover in ("catalogue.sqlite-journal", "catalogue.sqlite-wal"):
                with contextlib.suppress(FileNotFoundError):
                    self.catalogue.with_name(leftover).unlink()
            db = _connect(str(self.catalogue))
            try:
                _migrate(db, self.catalogue)
                with _transaction(db):
                    rebuild_catalogue(db, self.store, self.cards)
            finally:
                db.close()
        return self._all()

    def dependencies(self) -> DependencyReport:
        """Which companions each active model needs and who provides them; which pipelines and optional steps
        (mask refinement, face restoration, the quality report's networks) the active models complete."""
        active = self.active()
        providers: dict[str, str] = {}
        for model in active:
            providers.setdefault(model.entry, model.label)
        models = []
        for model in active:
            requires = required_companions(model.entry)
            provided = {entry: providers[entry] for entry in requires if entry in providers}
            models.append(ModelDependencies(model, requires, provided))
        entries = [model.entry for model in active]
        return DependencyReport(models, pipeline_statuses(entries), best_pipeline(entries), step_statuses(entries))

    def _add(self, source: Path, name: str | None, *, allow_partial: bool, new: bool) -> ModelVersion:
        if not source.is_file():
            raise FileNotFoundError(f"{source} is not a file")
        if name is not None:
            check_name(name)
        check_admissible(replace(analyze(source, verify=False), path=str(source)), allow_partial=allow_partial)
        staged = self.store.stage(source)
        try:
            analysis = replace(analyze(staged.path), path=str(source))
            check_admissible(analysis, allow_partial=allow_partial)
            name = check_name(name or str(analysis.entry))
            with self._writing() as db:
                version = self._insert(db, name, staged, analysis, source, new=new)
                model = self._get(db, name, version)
        finally:
            staged.discard()
        write_card(self.cards, model)
        return model

    def _insert(
        self, db: sqlite3.Connection, name: str, staged: Staged, analysis: Analysis, source: Path, *, new: bool
    ) -> int:
        versions = self._versions(db, name, must_exist=False)
        if new and versions:
            raise DuplicateModelError(f"{name} is already registered; add a version with `update` or pick another name")
        if not new:
            if not versions:
                raise UnknownModelError(f"no model named {name!r}; register it first")
            same = next((item for item in versions if item.sha256 == staged.sha256), None)
            if same is not None:
                raise DuplicateModelError(f"{source} is already {same.label}; use rollback to make it active")
            family = versions[-1].family
            if analysis.family != family:
                raise RegistrationRefusedError(
                    analysis,
                    f"{name} holds {family} checkpoints and {source} is {analysis.family} ({analysis.entry}); "
                    "register it under another name",
                )
        db.execute("INSERT INTO names (name, active, next_version) VALUES (?, NULL, 1) ON CONFLICT DO NOTHING", (name,))
        (version,) = db.execute("SELECT next_version FROM names WHERE name = ?", (name,)).fetchone()
        self.store.commit(staged)
        summary = analysis.to_dict()
        db.execute(
            "INSERT INTO versions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                name,
                version,
                analysis.entry,
                analysis.family,
                analysis.verdict,
                staged.sha256,
                staged.size,
                str(source.resolve()),
                datetime.now(UTC).isoformat(timespec="seconds"),
                json.dumps(summary),
            ),
        )
        db.execute("UPDATE names SET active = ?, next_version = ? WHERE name = ?", (version, version + 1, name))
        return version

    def _card(self, model: ModelVersion, file: Path) -> dict[str, Any]:
        entry = get_entry(model.entry)
        return {
            "format": CARD_FORMAT,
            "name": model.name,
            "version": model.version,
            "active": model.active,
            "file": file.name,
            "sha256": model.sha256,
            "size": model.size,
            "entry": entry.id,
            "family": entry.family,
            "task": entry.task,
            "description": entry.description,
            "license": entry.license,
            "published": dict(entry.published),
            "requires": list(required_companions(entry.id)),
            "source": model.source,
            "registered": model.created,
            "exported": datetime.now(UTC).isoformat(timespec="seconds"),
            "analysis": model.analysis,
        }

    def _dependants(self, db: sqlite3.Connection, target: ModelVersion) -> list[ModelVersion]:
        active = [self._row(row) for row in db.execute(f"{_SELECT} WHERE n.active = v.version ORDER BY v.name")]
        if any(item.entry == target.entry and item.name != target.name for item in active):
            return []
        return [item for item in active if target.entry in required_companions(item.entry)]

    def _clean(self, *, orphans: bool) -> None:
        with self._locked() as db:
            registered = {row[0] for row in db.execute("SELECT sha256 FROM versions")}
            for sha in self.store.shas() - registered if orphans else ():
                self.store.delete(sha)
            self.store.clean_staging()

    def _all(self) -> list[ModelVersion]:
        with self._reading() as db:
            return [self._row(row) for row in db.execute(f"{_SELECT} ORDER BY v.name, v.version")]

    def _versions(self, db: sqlite3.Connection, name: str, *, must_exist: bool = True) -> list[ModelVersion]:
        rows = [self._row(row) for row in db.execute(f"{_SELECT} WHERE v.name = ? ORDER BY v.version", (name,))]
        if must_exist and not rows:
            known = [row[0] for row in db.execute("SELECT DISTINCT name FROM versions ORDER BY name")]
            raise UnknownModelError(f"no model named {name!r}; registered: {', '.join(known) or 'none'}")
        return rows

    def _get(self, db: sqlite3.Connection, name: str, version: int | None) -> ModelVersion:
        versions = self._versions(db, name)
        wanted = next(
            (item for item in versions if (item.active if version is None else item.version == version)), None
        )
        if wanted is None:
            listed = ", ".join(str(item.version) for item in versions)
            raise UnknownModelError(f"{name} has no version {version}; its versions are {listed}")
        return wanted

    def _row(self, row: sqlite3.Row | tuple[Any, ...]) -> ModelVersion:
        name, version, entry, family, verdict, sha, size, source, created, analysis, active = row
        return ModelVersion(
            name,
            version,
            entry,
            family,
            verdict,
            sha,
            size,
            source,
            created,
            bool(active),
            json.loads(analysis),
            self.store.path(sha),
        )

    @contextlib.contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        exists = self.catalogue.is_file()
        db = _connect(str(self.catalogue) if exists else ":memory:")
        try:
            if exists:
                self._check_catalogue(db)
            else:
                self._check_catalogue(None)
                db.executescript(_SCHEMA)
            yield db
        except sqlite3.DatabaseError as exc:
            raise self._damaged(exc) from exc
        finally:
            db.close()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[sqlite3.Connection]:
        with file_lock(self.lock_path, self.lock_timeout_s):
            db = _connect(str(self.catalogue))
            try:
                self._check_catalogue(db)
                _migrate(db, self.catalogue)
                yield db
            except sqlite3.DatabaseError as exc:
                raise self._damaged(exc) from exc
            finally:
                db.close()

    def _check_catalogue(self, db: sqlite3.Connection | None) -> None:
        """Refuse a catalogue that is missing or empty while the store holds files (re-creating it would
        lose every model), or that SQLite cannot read."""
        if db is not None:
            (schema,) = db.execute("PRAGMA user_version").fetchone()
            if schema:
                db.execute("SELECT count(*) FROM versions JOIN names USING (name)").fetchone()
                return
        stored = self.store.shas()
        if stored:
            state = "empty" if db is not None else "missing"
            raise CatalogueError(
                f"the catalogue {self.catalogue} is {state} but the store {self.root} holds {len(stored)} model "
                f"file(s); rebuild it with `mycloset models verify --rebuild --home {self.root}`"
            )

    def _damaged(self, exc: sqlite3.DatabaseError) -> CatalogueError:
        return CatalogueError(
            f"the catalogue {self.catalogue} of the store {self.root} cannot be read ({exc}); rebuild it with "
            f"`mycloset models verify --rebuild --home {self.root}` (the damaged file is kept beside it)"
        )

    @contextlib.contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        with self._locked() as db, _transaction(db):
            yield db


def _check(model: ModelVersion, actual: str | None) -> FileCheck:
    status = "missing" if actual is None else "ok" if actual == model.sha256 else "mismatch"
    return FileCheck(model.name, model.version, model.sha256, status, actual)


def _connect(target: str) -> sqlite3.Connection:
    db = sqlite3.connect(target, timeout=60, isolation_level=None)
    db.execute("PRAGMA foreign_keys = ON")
    return db


@contextlib.contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _migrate(db: sqlite3.Connection, path: Path) -> None:
    (version,) = db.execute("PRAGMA user_version").fetchone()
    if version > SCHEMA_VERSION:
        raise ManagerError(f"{path} was written by a newer mycloset (schema {version}); upgrade mycloset")
    if version < SCHEMA_VERSION:
        with _transaction(db):
            _create(db)


def _create(db: sqlite3.Connection) -> None:
    for statement in filter(str.strip, _SCHEMA.split(";")):
        db.execute(statement)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
