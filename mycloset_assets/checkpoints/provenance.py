"""Where a checkpoint's weights come from: the published file, this project's synthesis rule, or neither.

``weights_provenance(path, entry_id)`` compares the file's sha256 with the registry's published one and, when
they differ or none is recorded, tests whether the file holds the synthesis rule's values (``synth.py``): a few
small tensors of the entry's published layout (``mycloset_assets/manifests``) are regenerated for every seed
below ``MAX_SEED`` and compared exactly with the file's. It reads those tensors only (a legacy file is read
once), so it is cheap next to loading the network.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from ..package_data import manifests_folder
from .convert import file_sha256
from .errors import CheckpointError
from .reader import read_header
from .registry import get_entry
from .synth import synth_tensor
from .tensors import read_tensors

PUBLISHED = "published"
SYNTHESIZED = "synthesized"
DIFFERENT = "different"
UNKNOWN = "unknown"
MAX_SEED = 256
"""Seeds tried when testing for the synthesis rule (the demo and the tests use small seeds)."""
PROBES = 3
MAX_PROBE_NUMEL = 4096

_WORDS = {
    PUBLISHED: "the published file: its sha256 equals the one the registry records",
    SYNTHESIZED: "synthesized by this project (synth.py's rule, seed {seed}): layout of the published file, "
    "values meaningless; outputs made with it say nothing about the real network",
    DIFFERENT: "not the published file: the registry records sha256 {published}, this file has another "
    "(re-saved, converted, fine-tuned or other weights) and does not hold synthesized values",
    UNKNOWN: "unknown: the registry records no published sha256 for {entry}, and the file does not hold "
    "synthesized values, so nothing tells whether these are the published weights",
}


@dataclass(frozen=True)
class Provenance:
    """One file's provenance: ``status`` is ``published``, ``synthesized``, ``different`` or ``unknown``;
    ``words`` says it in a sentence; ``seed`` is the synthesis seed of a synthesized file."""

    status: str
    entry: str
    sha256: str
    published_sha256: str | None
    seed: int | None
    words: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (``status``, ``entry``, ``sha256``, ``published_sha256``, ``seed``, ``words``)."""
        return asdict(self)


def weights_provenance(path: Path | str, entry_id: str, sha256: str | None = None) -> Provenance:
    """The provenance of the file at ``path``, identified as registry entry ``entry_id`` (``sha256`` when the
    caller has it already)."""
    path = Path(path)
    sha256 = sha256 or file_sha256(path)
    published = get_entry(entry_id).published.get("sha256")
    seed = None
    if published == sha256:
        status = PUBLISHED
    else:
        seed = synthesis_seed(path, entry_id)
        status = SYNTHESIZED if seed is not None else DIFFERENT if published else UNKNOWN
    words = _WORDS[status].format(seed=seed, published=published, entry=entry_id)
    return Provenance(status, entry_id, sha256, published, seed, words)


def synthesis_seed(path: Path | str, entry_id: str) -> int | None:
    """The seed with which ``synth.write_checkpoint`` wrote the file at ``path`` in entry ``entry_id``'s layout,
    or None when its values are not the synthesis rule's (or the entry has no shipped manifest)."""
    manifest_path = manifests_folder() / f"{entry_id}.json"
    if not manifest_path.is_file():
        return None
    specs = json.loads(manifest_path.read_text())["tensors"]
    try:
        header = read_header(path)
    except CheckpointError:
        return None
    names = _by_bare_name(header.tensors)
    published = _bare_names([spec["key"] for spec in specs])
    probes = [
        (index, spec, names[bare])
        for index, (spec, bare) in enumerate(zip(specs, published, strict=True))
        if bare in names and _cheap_float(spec)
    ]
    if not probes:
        return None
    chosen = [probes[round(i * (len(probes) - 1) / max(1, PROBES - 1))] for i in range(min(PROBES, len(probes)))]
    try:
        values = read_tensors(header, [name for _, _, name in chosen])
    except CheckpointError:
        return None
    index, spec, name = chosen[0]
    seed = next((s for s in range(MAX_SEED) if _rule_matches(spec, s + index, values[name])), None)
    if seed is None:
        return None
    return seed if all(_rule_matches(spec, seed + index, values[name]) for index, spec, name in chosen[1:]) else None


def _cheap_float(spec: dict[str, Any]) -> bool:
    return spec["dtype"].startswith(("float", "bfloat")) and 0 < math.prod(spec["shape"]) <= MAX_PROBE_NUMEL


def _rule_matches(spec: dict[str, Any], generator_seed: int, actual: torch.Tensor) -> bool:
    expected = synth_tensor(spec["key"], spec["shape"], spec["dtype"], torch.Generator().manual_seed(generator_seed))
    return expected.shape == actual.shape and expected.dtype == actual.dtype and torch.equal(expected, actual)


def _common_prefix(keys: list[str]) -> str:
    parts = [key.split(".")[:-1] for key in keys]
    common: list[str] = []
    for level in zip(*parts, strict=False):
        if len(set(level)) != 1:
            break
        common.append(level[0])
    return ".".join(common) + "." if common and len(keys) > 1 else ""


def _bare_names(keys: list[str]) -> list[str]:
    prefix = _common_prefix(keys)
    return [key.removeprefix(prefix) for key in keys]


def _by_bare_name(tensors: dict[str, Any]) -> dict[str, str]:
    keys = list(tensors)
    return dict(zip(_bare_names(keys), keys, strict=True))
