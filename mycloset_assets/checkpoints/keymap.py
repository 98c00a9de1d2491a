"""Key mapping between a network's state dict and a published file: names, shapes, dtype classes.

An entry's expected tensors come from building its network on the meta device; its key rules turn each
module key into the name it carries in the published file (renames, then scope). A file's keys are
compared in that published space after unwrapping and stripping the prefix the file actually carries.
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import torch

from .errors import RegistryError
from .pickles import TensorRecord
from .registry import Entry, KeyRules, get_entry, registry_dir

COMMON_PREFIXES = ("module.",)


def dtype_class(dtype: torch.dtype) -> str:
    """The dtype class compared when matching: floating, complex, bool or integer."""
    if dtype.is_floating_point:
        return "floating"
    if dtype.is_complex:
        return "complex"
    if dtype is torch.bool:
        return "bool"
    return "integer"


@dataclass(frozen=True)
class Expected:
    """A tensor the network expects: its module key, shape and dtype."""

    module_key: str
    shape: tuple[int, ...]
    dtype: torch.dtype


@dataclass(frozen=True)
class KeyTable:
    """An entry's (or signature's) expected tensors, keyed by their published names."""

    tensors: Mapping[str, Expected]
    optional: frozenset[str] = frozenset()
    names: frozenset[str] = frozenset()


def rename(key: str, renames: Iterable[tuple[str, str]]) -> str:
    """Apply the first matching ``(regex, replacement)`` rule to ``key``."""
    for pattern, replacement in renames:
        if re.search(pattern, key):
            return re.sub(pattern, replacement, key, count=1)
    return key


def table_from_module(
    module: torch.nn.Module, rules: KeyRules | None = None, keep: Callable[[str], bool] | None = None
) -> KeyTable:
    """The published-name table of ``module``'s state dict under ``rules``."""
    rules = rules or KeyRules()
    tensors: dict[str, Expected] = {}
    optional: set[str] = set()
    for module_key, tensor in module.state_dict().items():
        if keep is not None and not keep(module_key):
            continue
        name = rename(module_key, rules.renames)
        tensors[name] = Expected(module_key, tuple(tensor.shape), tensor.dtype)
        if rules.is_optional(module_key):
            optional.add(name)
    return KeyTable(tensors, frozenset(optional), frozenset(tensors))


def entry_tables(entry_id: str) -> tuple[KeyTable, ...]:
    """``entry_id``'s expected tensors under their published names and, when the key rules rename them,
    under the module's own names (a file re-saved from the module's state dict). Built on the meta device
    and cached for the process and registry folder."""
    return _entry_tables(registry_dir(), entry_id)


@cache
def _entry_tables(folder: Path, entry_id: str) -> tuple[KeyTable, ...]:
    entry = get_entry(entry_id)
    if entry.signature is not None:
        return stored_tables(entry)
    network = build_on_meta(entry)
    published = table_from_module(network, entry.keys, entry.keys.in_scope)
    if not entry.keys.renames:
        return (published,)
    own = KeyRules(optional=entry.keys.optional, extras=entry.keys.extras, scope=entry.keys.scope)
    return published, table_from_module(network, own, entry.keys.in_scope)


def stored_tables(entry: Entry) -> tuple[KeyTable, ...]:
    """The tables of an entry whose expected tensors are stored as data (``architecture.signature``, written by
    ``scripts/build_diffusion_signatures.py``): the module's own names first, then each published layout's."""
    path = entry.signature
    try:
        data = json.loads(gzip.decompress(path.read_bytes()))  # type: ignore[union-attr]
        tensors = {
            key: Expected(key, tuple(shape), getattr(torch, dtype)) for key, (shape, dtype) in data["tensors"].items()
        }
        layouts = [{published: tensors[key] for key, published in names.items()} for names in data["layouts"].values()]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise RegistryError(f"{entry.id}: signature {path} cannot be read ({exc}); rebuild it") from exc
    return tuple(
        KeyTable(
            table,
            frozenset(name for name, spec in table.items() if entry.keys.is_optional(spec.module_key)),
            frozenset(table),
        )
        for table in (tensors, *layouts)
    )


def build_on_meta(entry: Entry) -> torch.nn.Module:
    """The entry's network with meta tensors: structure, names, shapes and dtypes, no memory."""
    with torch.device("meta"):
        return entry.build()


@dataclass
class Match:
    """How a file's tensors compare with one table (the analysis report's key figures)."""

    prefix: str | None
    matched: int
    total: int
    missing: list[str]
    unexpected: list[str]
    mismatched: list[dict[str, object]]
    extras: list[str] = field(default_factory=list)
    named: int = 0
    pairs: dict[str, str] = field(default_factory=dict)

    @property
    def confidence(self) -> float:
        denominator = self.total + len(self.unexpected)
        return self.matched / denominator if denominator else 0.0

    @property
    def match_rate(self) -> float:
        return self.matched / self.total if self.total else 0.0

    @property
    def name_coverage(self) -> float:
        """Share of expected tensors whose names are present, whatever their shapes."""
        return self.named / self.total if self.total else 0.0


def strip_prefix(keys: Iterable[str], prefix: str | None) -> dict[str, str] | None:
    """``{bare key: published key}`` when every key carries ``prefix``; None when one does not."""
    keys = list(keys)
    if not prefix:
        return {key: key for key in keys}
    if not keys or not all(key.startswith(prefix) for key in keys):
        return None
    return {key[len(prefix) :]: key for key in keys}


@dataclass(frozen=True)
class Overlap:
    """How many of a table's names a file holds under its best prefix: a cheap bound before matching."""

    named: int
    prefix: str | None
    bare: Mapping[str, str]

    def bound(self, table: KeyTable, file_tensors: int, rules: KeyRules | None = None) -> float:
        """An upper bound of the confidence a full match can reach (documented extras never count against it)."""
        extras = count_extras(self.bare, rules.extras) if rules and rules.extras else 0
        denominator = len(table.names) - len(table.optional) + file_tensors - self.named - extras
        return min(1.0, self.named / denominator) if denominator > 0 else 0.0


@cache
def _extras_pattern(extras: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{pattern})" for pattern in extras))


def count_extras(names: Iterable[str], extras: tuple[str, ...]) -> int:
    """How many of ``names`` are documented extras (at most; a name the table expects is never one)."""
    search = _extras_pattern(extras).search
    return sum(1 for name in names if search(name))


def overlap(
    tensors: Mapping[str, TensorRecord],
    table: KeyTable,
    rules: KeyRules | None = None,
    views: dict[str | None, dict[str, str] | None] | None = None,
) -> Overlap:
    """The prefix (none, ``module.`` or the entry's own) under which the file holds most of ``table``.

    ``views`` caches the file's keys with each prefix stripped, when one file meets many tables.
    """
    rules = rules or KeyRules()
    views = {} if views is None else views
    prefixes: list[str | None] = [None, *COMMON_PREFIXES]
    if rules.prefix and rules.prefix not in prefixes:
        prefixes.append(rules.prefix)
    best = Overlap(-1, None, {})
    for prefix in prefixes:
        if prefix not in views:
            views[prefix] = strip_prefix(tensors, prefix)
        bare = views[prefix]
        if bare is None:
            continue
        named = len(table.names & bare.keys())
        if named > best.named:
            best = Overlap(named, prefix, bare)
    return best


def match_tensors(
    tensors: Mapping[str, TensorRecord],
    table: KeyTable,
    rules: KeyRules | None = None,
    found: Overlap | None = None,
) -> Match:
    """Compare ``tensors`` (published keys) with ``table`` under the prefix a re-saved file carries."""
    rules = rules or KeyRules()
    found = found or overlap(tensors, table, rules)
    return _match_bare(found.bare, tensors, table, rules, found.prefix)


def _match_bare(
    bare: Mapping[str, str],
    tensors: Mapping[str, TensorRecord],
    table: KeyTable,
    rules: KeyRules,
    prefix: str | None,
) -> Match:
    matched = named = 0
    missing: list[str] = []
    mismatched: list[dict[str, object]] = []
    pairs: dict[str, str] = {}
    optional_absent = 0
    for name, spec in table.tensors.items():
        published = bare.get(name)
        if published is None:
            if name in table.optional:
                optional_absent += 1
            else:
                missing.append(spec.module_key)
            continue
        named += 1
        record = tensors[published]
        if record.shape == spec.shape and dtype_class(record.dtype) == dtype_class(spec.dtype):
            matched += 1
            pairs[spec.module_key] = published
        else:
            mismatched.append(
                {
                    "key": spec.module_key,
                    "file_shape": list(record.shape),
                    "model_shape": list(spec.shape),
                    "file_dtype": str(record.dtype).removeprefix("torch."),
                    "model_dtype": str(spec.dtype).removeprefix("torch."),
                }
            )
    unused = [(name, published) for name, published in bare.items() if name not in table.names]
    extras = [published for name, published in unused if rules.extras and rules.is_extra(name)]
    unexpected = [published for name, published in unused if not (rules.extras and rules.is_extra(name))]
    return Match(
        prefix=prefix,
        matched=matched,
        total=len(table.tensors) - optional_absent,
        missing=missing,
        unexpected=unexpected,
        mismatched=mismatched,
        extras=extras,
        named=named,
        pairs=pairs,
    )
