"""The registry of published checkpoints: one YAML file per checkpoint, read into typed entries.

Adding a published checkpoint of a known family is one YAML file in ``mycloset_assets/registry/`` (shipped as
package data) and no code (see ``docs/adding-a-network.md``). ``MYCLOSET_REGISTRY`` points elsewhere when set. An
entry whose network comes from an optional package (diffusers) also names a ``signature``: its expected tensors
stored as data (``registry/signatures/``).
"""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import torch
import yaml

from ..package_data import registry_folder
from .errors import RegistryError

REGISTRY_ENV = "MYCLOSET_REGISTRY"


@dataclass(frozen=True)
class Companion:
    """Another entry whose file provides the module keys this entry's file lacks."""

    entry: str
    renames: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class KeyRules:
    """How module keys are named in the published file (module -> published direction)."""

    wrapper: str | None = None
    prefix: str | None = None
    renames: tuple[tuple[str, str], ...] = ()
    optional: tuple[str, ...] = ("num_batches_tracked",)
    extras: tuple[str, ...] = ()
    scope: str | None = None
    requires: tuple[Companion, ...] = ()

    def is_optional(self, module_key: str) -> bool:
        """True for module keys a file may lack without counting as missing (e.g. num_batches_tracked)."""
        return any(module_key.endswith(suffix) for suffix in self.optional)

    def is_extra(self, published_key: str) -> bool:
        """True for documented published tensors the network does not use."""
        return any(re.search(pattern, published_key) for pattern in self.extras)

    def in_scope(self, module_key: str) -> bool:
        """True for module keys this entry's file provides (the rest come from companions)."""
        return self.scope is None or re.search(self.scope, module_key) is not None


@dataclass(frozen=True)
class Entry:
    """One published checkpoint: what it is, where it comes from, how to build and load it."""

    id: str
    family: str
    variant: str
    task: str
    description: str
    builder: str
    args: Mapping[str, Any]
    keys: KeyRules
    published: Mapping[str, Any] = field(default_factory=dict)
    license: str | None = None
    reference: Mapping[str, Any] = field(default_factory=dict)
    preprocess: Mapping[str, Any] = field(default_factory=dict)
    outputs: Any = None
    labels: Any = None
    keypoints: Any = None
    source: Path | None = None
    signature: Path | None = None

    def build(self) -> torch.nn.Module:
        """Construct the network with the entry's arguments (on the current default device)."""
        return resolve_builder(self.builder)(**self.args)


def resolve_builder(spec: str) -> Callable[..., torch.nn.Module]:
    """Import ``"package.module:callable"``."""
    module_name, _, attr = spec.partition(":")
    if not attr:
        raise RegistryError(f"builder {spec!r} must look like 'package.module:callable'")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise RegistryError(f"builder {spec!r} cannot be imported: {exc}") from exc


def _pairs(value: Any, where: str) -> tuple[tuple[str, str], ...]:
    pairs = tuple(tuple(pair) for pair in value or ())
    if any(len(pair) != 2 for pair in pairs):
        raise RegistryError(f"{where}: renames must be [module-key regex, published replacement] pairs")
    return pairs  # type: ignore[return-value]


def _key_rules(raw: Mapping[str, Any], where: str) -> KeyRules:
    optional = raw.get("optional")
    return KeyRules(
        wrapper=raw.get("wrapper"),
        prefix=raw.get("prefix"),
        renames=_pairs(raw.get("renames"), where),
        optional=tuple(optional) if optional is not None else KeyRules.optional,
        extras=tuple(raw.get("extras") or ()),
        scope=raw.get("scope"),
        requires=tuple(
            Companion(entry=item["entry"], renames=_pairs(item.get("renames"), where))
            for item in raw.get("requires") or ()
        ),
    )


def parse_entry(raw: Mapping[str, Any], source: Path | None = None) -> Entry:
    """Validate one YAML document and turn it into an Entry."""
    where = str(source or raw.get("id", "<entry>"))
    missing = [name for name in ("id", "family", "task", "architecture") if name not in raw]
    if missing:
        raise RegistryError(f"{where}: missing field(s) {', '.join(missing)}")
    architecture = raw["architecture"]
    if "builder" not in architecture:
        raise RegistryError(f"{where}: architecture.builder is required")
    signature = architecture.get("signature")
    if signature is not None:
        signature = (source.parent if source else Path()) / signature
    return Entry(
        id=raw["id"],
        family=raw["family"],
        variant=str(raw.get("variant", raw["id"])),
        task=raw["task"],
        description=str(raw.get("description", raw["id"])),
        builder=architecture["builder"],
        args=dict(architecture.get("args") or {}),
        keys=_key_rules(raw.get("keys") or {}, where),
        published=dict(raw.get("published") or {}),
        license=raw.get("license"),
        reference=dict(raw.get("reference") or {}),
        preprocess=dict(raw.get("preprocess") or {}),
        outputs=raw.get("outputs"),
        labels=raw.get("labels"),
        keypoints=raw.get("keypoints"),
        source=source,
        signature=signature,
    )


def registry_dir() -> Path:
    """The folder the registry is read from (absolute)."""
    return _resolved(os.environ.get(REGISTRY_ENV) or str(registry_folder()))


@cache
def _resolved(folder: str) -> Path:
    return Path(folder).resolve()


@cache
def _load(folder: Path) -> dict[str, Entry]:
    if not folder.is_dir():
        raise RegistryError(f"registry folder {folder} does not exist; set {REGISTRY_ENV} to the folder")
    entries: dict[str, Entry] = {}
    for path in sorted(folder.glob("*.yaml")):
        try:
            raw = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise RegistryError(f"{path}: not valid YAML: {exc}") from exc
        entry = parse_entry(raw, path)
        if entry.id != path.stem:
            raise RegistryError(f"{path}: id {entry.id!r} must equal the file name {path.stem!r}")
        entries[entry.id] = entry
    return entries


def load_registry() -> dict[str, Entry]:
    """Every registry entry by id (read once per process and folder)."""
    return _load(registry_dir())


def get_entry(entry_id: str) -> Entry:
    """One entry by id, with the known ids in the error when it does not exist."""
    entries = load_registry()
    if entry_id not in entries:
        raise RegistryError(f"no registry entry {entry_id!r}; known: {', '.join(sorted(entries))}")
    return entries[entry_id]
