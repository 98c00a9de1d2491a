"""The model manager's version cards: one JSON file per registered version, from which a lost or damaged
catalogue is rebuilt.

``cards/<name>/v<version>.json`` holds the version's catalogue row (entry, family, verdict, sha256, size,
source, created time, analysis). A card is written once its version is in the catalogue and removed with the
version; the active-version pointers are not in the cards, so a rebuilt catalogue makes the newest version of
each name active.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from .analysis import analyze
from .manager_store import ContentStore, atomic_write_text

CARD_FORMAT = "mycloset-version-card/1"
_FIELDS = ("name", "version", "entry", "family", "verdict", "sha256", "size", "source", "created", "analysis")


class _Version(Protocol):
    name: str
    version: int

    def to_dict(self) -> dict[str, Any]: ...


def card_path(cards: Path, name: str, version: int) -> Path:
    """Where the card of ``name`` version ``version`` is."""
    return cards / name / f"v{version}.json"


def write_card(cards: Path, model: _Version) -> None:
    """Write ``model``'s card (atomically)."""
    row = {key: value for key, value in model.to_dict().items() if key in _FIELDS}
    atomic_write_text(card_path(cards, model.name, model.version), json.dumps({"format": CARD_FORMAT, **row}) + "\n")


def remove_card(cards: Path, model: _Version) -> None:
    """Delete ``model``'s card (and its name's folder once empty)."""
    path = card_path(cards, model.name, model.version)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    with contextlib.suppress(OSError):
        path.parent.rmdir()


def _cards(cards: Path, store: ContentStore) -> list[dict[str, Any]]:
    rows = []
    for path in sorted(cards.glob("*/v*.json")):
        try:
            card = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(card, dict) and card.get("format") == CARD_FORMAT and store.path(str(card["sha256"])).is_file():
            rows.append(card)
    return rows


def _analysed(store: ContentStore, shas: set[str], names: set[str]) -> list[dict[str, Any]]:
    """Rows for stored files without a card: analysed, registered under their entry id."""
    rows = []
    for sha in sorted(shas):
        path = store.path(sha)
        analysis = analyze(path)
        if analysis.verdict not in ("identified", "partial") or analysis.entry is None:
            continue
        name = analysis.entry if analysis.entry not in names else f"{analysis.entry}-{sha[:8]}"
        names.add(name)
        rows.append(
            {
                "name": name,
                "version": 1,
                "entry": analysis.entry,
                "family": analysis.family,
                "verdict": analysis.verdict,
                "sha256": sha,
                "size": path.stat().st_size,
                "source": str(path),
                "created": datetime.now(UTC).isoformat(timespec="seconds"),
                "analysis": analysis.to_dict(),
            }
        )
    return rows


def rebuild_catalogue(db: sqlite3.Connection, store: ContentStore, cards: Path) -> None:
    """Fill an empty catalogue from the cards of stored files, then from the stored files without a card."""
    rows = _cards(cards, store)
    rows += _analysed(store, store.shas() - {row["sha256"] for row in rows}, {row["name"] for row in rows})
    newest: dict[str, int] = {}
    for row in rows:
        newest[row["name"]] = max(newest.get(row["name"], 0), int(row["version"]))
    for name, version in newest.items():
        db.execute("INSERT INTO names (name, active, next_version) VALUES (?, ?, ?)", (name, version, version + 1))
    for row in rows:
        values = [row[key] for key in _FIELDS]
        values[-1] = json.dumps(row["analysis"])
        db.execute("INSERT INTO versions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", values)
