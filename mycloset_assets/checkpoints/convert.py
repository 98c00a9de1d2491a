"""Canonical copies: a checkpoint's tensors under the network's own key names, as safetensors, plus a card.

The canonical copy is the fast path (header-only analysis, lazy reads, no pickle at all) and the card
says where it came from: the source's sha256, the registry entry and the full key report.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from safetensors.torch import save_file
from upath import UPath

from .analysis import best_match, inspect
from .errors import LoadRefusedError
from .keymap import entry_tables
from .registry import get_entry
from .tensors import read_tensors

CARD_FORMAT = "mycloset-canonical/1"
_CHUNK = 1 << 20


def file_sha256(path: str | os.PathLike[str] | UPath) -> str:
    """Hex sha256 of a file's bytes (a local path or an fsspec URL), read in 1 MiB chunks."""
    with UPath(path).open("rb") as handle:
        return stream_sha256(handle)


def stream_sha256(stream: BinaryIO) -> str:
    """Hex sha256 of what is left to read in an open binary file (local or fsspec), read in 1 MiB chunks."""
    digest = hashlib.sha256()
    while chunk := stream.read(_CHUNK):
        digest.update(chunk)
    return digest.hexdigest()


def card_path(destination: str | Path) -> Path:
    """Where the card of a canonical copy lives: beside it, ``.json`` instead of ``.safetensors``."""
    return Path(destination).with_suffix(".json")


def _atomic_write(target: Path, write: Any) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(handle)
    try:
        write(Path(temporary))
        with open(temporary, "rb") as written:
            os.fsync(written.fileno())
        os.replace(temporary, target)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def convert(source: str | Path, destination: str | Path) -> dict[str, Any]:
    """Write ``source``'s tensors, keyed by module names, to ``destination`` (safetensors) and its card.

    Only ``identified`` files are converted (values and dtypes unchanged). Returns the card.
    """
    source, destination = Path(source), Path(destination)
    header, analysis = inspect(source)
    if header is None or analysis.verdict != "identified":
        raise LoadRefusedError(
            analysis,
            f"{source}: only identified checkpoints are converted; it is '{analysis.verdict}': {analysis.reason}",
        )
    entry = get_entry(analysis.entry)  # type: ignore[arg-type]
    match = best_match(header.tensors, entry, entry_tables(entry.id))
    tensors = read_tensors(header, match.pairs.values())
    state = {module_key: tensors[published].contiguous() for module_key, published in match.pairs.items()}
    source_sha = file_sha256(source)
    metadata = {"format": CARD_FORMAT, "entry": entry.id, "source_sha256": source_sha}
    _atomic_write(destination, lambda path: save_file(state, str(path), metadata=metadata))
    card = {
        "format": CARD_FORMAT,
        "entry": entry.id,
        "family": entry.family,
        "description": entry.description,
        "file": destination.name,
        "sha256": file_sha256(destination),
        "tensors": len(state),
        "source": {
            "path": str(source),
            "sha256": source_sha,
            "container": analysis.container,
            "wrapper": analysis.wrapper,
            "prefix": analysis.prefix,
        },
        "analysis": analysis.to_dict(),
        "license": entry.license,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    text = json.dumps(card, indent=2)
    _atomic_write(card_path(destination), lambda path: path.write_text(text))
    return card
