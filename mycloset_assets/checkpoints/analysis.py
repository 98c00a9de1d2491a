"""Analysis: a header-only read scored against every registry entry and every known signature.

The verdict says what a file is from its contents alone (never its name): ``identified``, ``partial``,
``unknown``, ``impostor``, ``corrupt``, ``unsafe`` or ``not_a_checkpoint``, with the key-match figures
behind it and one sentence a user can act on.
"""

from __future__ import annotations

import re
import zipfile
import zlib
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from functools import cache
from itertools import chain, repeat
from pathlib import Path
from typing import Any

from . import diffusion_layout
from .bounds import DEFAULT_BOUNDS, AnalysisBounds, Budget
from .errors import CorruptCheckpointError, NotACheckpointError, RegistryError, UnsafePickleError
from .keymap import COMMON_PREFIXES, KeyTable, Match, Overlap, entry_tables, match_tensors, strip_prefix
from .pickles import TensorRecord
from .reader import Header, gc_paused, read_header
from .registry import Entry, KeyRules, load_registry, registry_dir
from .signatures import signatures
from .zipdir import verify_members

VERDICTS = ("identified", "partial", "unknown", "impostor", "corrupt", "unsafe", "not_a_checkpoint")
PARTIAL_NAME_COVERAGE = 0.5
IMPOSTOR_CONFIDENCE = 0.5
IMPOSTOR_NAME_COVERAGE = 0.9
_EXAMPLES = 3


@dataclass
class Analysis:
    """What a checkpoint file is; ``to_dict()`` is the JSON object of ``mycloset analyze --json``."""

    path: str
    verdict: str
    entry: str | None
    family: str | None
    confidence: float
    container: str
    wrapper: str | None
    prefix: str | None
    tensors: int
    params: int
    matched: int
    total: int
    match_rate: float
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[dict[str, Any]] = field(default_factory=list)
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The report as the JSON object fixed by INTERFACES.md (these keys, in this order)."""
        return asdict(self)


@dataclass
class Scored:
    """One candidate (registry entry or signature) and how the file matches it."""

    id: str
    family: str
    description: str
    match: Match
    entry: Entry | None = None
    published_names: bool = True

    @property
    def rank(self) -> tuple[float, int, bool, bool]:
        """Confidence, then matched tensors, then a match under the published names (rather than the
        module's own), then registry entries before signatures."""
        return (self.match.confidence, self.match.matched, self.published_names, self.entry is not None)


def _blank(path: str, verdict: str, container: str, reason: str) -> Analysis:
    return Analysis(path, verdict, None, None, 0.0, container, None, None, 0, 0, 0, 0, 0.0, reason=reason)


def analyze(path: str | Path, *, verify: bool = True) -> Analysis:
    """Analyse one file. ``verify`` also checks every zip member's CRC (reads the data once)."""
    return inspect(path, verify=verify)[1]


def inspect(
    path: str | Path, *, verify: bool = True, bounds: AnalysisBounds = DEFAULT_BOUNDS
) -> tuple[Header | None, Analysis]:
    """The header (None when the file has none that can be used) and the analysis of ``path``.

    Whatever reading the file raises becomes a verdict with the reason (never an exception), so a batch
    always reports every file; only a folder given as ``path`` raises.
    """
    shown = str(path)
    if Path(path).is_dir():
        raise IsADirectoryError(f"{shown} is a folder, not a checkpoint file")
    with gc_paused():
        try:
            header = read_header(Path(path), bounds)
            if verify:
                _verify(header, bounds)
        except UnsafePickleError as exc:
            return None, _blank(shown, "unsafe", getattr(exc, "container", "unknown"), str(exc))
        except CorruptCheckpointError as exc:
            return None, _blank(shown, "corrupt", getattr(exc, "container", "unknown"), str(exc))
        except NotACheckpointError as exc:
            return None, _blank(shown, "not_a_checkpoint", getattr(exc, "container", "unknown"), str(exc))
        except OSError as exc:
            return None, _blank(shown, "corrupt", "unknown", f"the file cannot be read ({exc}); check its permissions")
        except RecursionError:
            return None, _blank(
                shown, "corrupt", "unknown", f"the header nests too deeply to read (bound: {bounds.depth})"
            )
        except MemoryError:
            return None, _blank(shown, "corrupt", "unknown", "reading the header ran out of memory")
        except Exception as exc:  # noqa: BLE001 - a file must never abort a batch; the reason says what failed
            return None, _blank(
                shown, "corrupt", "unknown", f"the file cannot be read ({type(exc).__name__}: {exc}); it is damaged"
            )
        return header, analyze_header(header, shown)


def _verify(header: Header, bounds: AnalysisBounds) -> None:
    """Check every zip member's CRC within ``bounds`` (each byte range read once)."""
    if header.container not in ("torch_zip", "torchscript"):
        return
    budget = Budget(header.size, bounds)
    try:
        bad = verify_members(header.path, bounds.members, budget.charge_inflated)
    except CorruptCheckpointError as exc:
        exc.container = header.container  # type: ignore[attr-defined]
        raise
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, zlib.error, NotImplementedError, RuntimeError) as exc:
        error = CorruptCheckpointError(f"the archive cannot be read through: {exc}")
        error.container = header.container  # type: ignore[attr-defined]
        raise error from exc
    if bad is not None:
        error = CorruptCheckpointError(f"member {bad} fails its CRC check: the file is damaged; download it again")
        error.container = header.container  # type: ignore[attr-defined]
        raise error


@dataclass(frozen=True, eq=False)
class Candidate:
    """Something a file may be: a registry entry (one table per naming) or a known signature."""

    id: str
    family: str
    description: str
    tables: tuple[KeyTable, ...]
    rules: KeyRules
    entry: Entry | None = None


def entry_candidates() -> tuple[Candidate, ...]:
    """Every registry entry whose network builds, as a candidate (cached per registry folder)."""
    return _entry_candidates(registry_dir())


@cache
def _entry_candidates(folder: Path) -> tuple[Candidate, ...]:
    candidates = []
    for entry in load_registry().values():
        try:
            tables = entry_tables(entry.id)
        except RegistryError:
            continue
        candidates.append(Candidate(entry.id, entry.family, entry.description, tables, entry.keys, entry))
    return tuple(candidates)


@cache
def signature_candidates() -> tuple[Candidate, ...]:
    """Every known non-zoo network, as a candidate."""
    return tuple(Candidate(s.id, s.id, s.description, (s.table,), KeyRules()) for s in signatures())


@dataclass(frozen=True)
class _NameIndex:
    """Which (candidate, table) slots expect each published name, to count overlaps in one pass."""

    slots: tuple[tuple[Candidate, KeyTable], ...]
    by_name: Mapping[str, tuple[int, ...]]
    prefixes: tuple[str | None, ...]


@cache
def _name_index(candidates: tuple[Candidate, ...]) -> _NameIndex:
    slots = tuple((candidate, table) for candidate in candidates for table in candidate.tables)
    by_name: dict[str, list[int]] = {}
    for index, (_, table) in enumerate(slots):
        for name in table.names:
            by_name.setdefault(name, []).append(index)
    declared = {c.rules.prefix for c in candidates if c.rules.prefix} - set(COMMON_PREFIXES)
    return _NameIndex(
        slots, {name: tuple(found) for name, found in by_name.items()}, (None, *COMMON_PREFIXES, *sorted(declared))
    )


def _overlaps(tensors: Mapping[str, TensorRecord], index: _NameIndex) -> list[tuple[Candidate, KeyTable, Overlap]]:
    """Each slot's best overlap with the file over the prefixes its rules allow (one pass per prefix)."""
    views = {prefix: strip_prefix(tensors, prefix) for prefix in index.prefixes}
    counts: dict[tuple[int, str | None], int] = {}
    for prefix, bare in views.items():
        slots = Counter(chain.from_iterable(map(index.by_name.get, bare or (), repeat(()))))
        counts.update(((slot, prefix), count) for slot, count in slots.items())
    found = []
    for slot in sorted({slot for slot, _ in counts}):
        candidate, table = index.slots[slot]
        allowed = (None, *COMMON_PREFIXES, candidate.rules.prefix)
        options = [(counts.get((slot, p), 0), p) for p in dict.fromkeys(allowed) if views.get(p) is not None]
        named, prefix = max(options, key=lambda option: option[0])
        if named:
            found.append((candidate, table, Overlap(named, prefix, views[prefix])))  # type: ignore[arg-type]
    return found


def score(tensors: Mapping[str, TensorRecord], candidates: tuple[Candidate, ...]) -> list[Scored]:
    """Candidates scored against ``tensors``, best first.

    A cheap name overlap bounds each candidate's confidence; full matches run in order of that bound and
    stop once no remaining candidate can reach the best confidence found, so every candidate that could
    rank first (or tie for it) is matched in full.
    """
    bounded = [
        (found.bound(table, len(tensors), candidate.rules), candidate, table, found)
        for candidate, table, found in _overlaps(tensors, _name_index(candidates))
    ]
    bounded.sort(key=lambda item: item[0], reverse=True)
    best_confidence = -1.0
    results: dict[str, Scored] = {}
    for bound, candidate, table, found in bounded:
        if bound < best_confidence:
            break
        match = match_tensors(tensors, table, candidate.rules, found)
        scored = Scored(
            candidate.id, candidate.family, candidate.description, match, candidate.entry, table is candidate.tables[0]
        )
        previous = results.get(candidate.id)
        if previous is None or scored.rank > previous.rank:
            results[candidate.id] = scored
        best_confidence = max(best_confidence, match.confidence)
    return sorted(results.values(), key=lambda s: s.rank, reverse=True)


def best_match(tensors: Mapping[str, TensorRecord], entry: Entry, tables: tuple[KeyTable, ...]) -> Match:
    """The better of the published-name and module-name comparisons of ``tensors`` with one entry."""
    matches = [match_tensors(tensors, table, entry.keys) for table in tables]
    return max(matches, key=lambda m: (m.matched, m.named))


def analyze_header(header: Header, shown: str | None = None) -> Analysis:
    """Score a header that was already read (see ``analyze``)."""
    shown = shown or str(header.path)
    tensors = header.tensors
    if not tensors:
        reason = "the file holds no tensors" + (
            f" (entries: {', '.join(header.metadata[:5])})" if header.metadata else ""
        )
        return _blank(shown, "not_a_checkpoint", header.container, reason)
    entries = score(tensors, entry_candidates())
    best = entries[0] if entries else None
    if best and _is_identified(best):
        twins = [s.id for s in entries[1:] if _is_identified(s) and s.rank == best.rank]
        reason = best.description + (f"; equal on contents to {', '.join(twins)}" if twins else "")
        return _report(header, shown, "identified", best, reason + _layout(header, best))
    impostor = next(iter(score(tensors, signature_candidates())), None)
    if impostor and _is_impostor(impostor) and (best is None or impostor.rank > best.rank):
        return _report(header, shown, "impostor", impostor, _impostor_reason(impostor, shown))
    if best and best.match.name_coverage >= PARTIAL_NAME_COVERAGE:
        return _report(header, shown, "partial", best, _partial_reason(best) + _layout(header, best))
    closest = max((s for s in (best, impostor) if s), key=lambda s: s.rank, default=None)
    hint = f"; closest: {closest.id} with {closest.match.matched}/{closest.match.total} tensors" if closest else ""
    report = _blank(
        shown,
        "unknown",
        header.container,
        f"{len(tensors)} tensors read safely, but no registry entry or known network explains them{hint}",
    )
    report.wrapper, report.tensors, report.params = header.wrapper, len(tensors), header.params
    return report


def _layout(header: Header, scored: Scored) -> str:
    """The diffusion entries' layout, parts and precision ("" for the other families)."""
    if scored.family not in diffusion_layout.DIFFUSION_FAMILIES:
        return ""
    return "; " + diffusion_layout.describe(header, scored.family)


def _is_identified(scored: Scored) -> bool:
    return scored.match.match_rate == 1.0 and not scored.match.unexpected


def _is_impostor(scored: Scored) -> bool:
    return scored.match.confidence >= IMPOSTOR_CONFIDENCE and scored.match.name_coverage >= IMPOSTOR_NAME_COVERAGE


def _report(header: Header, shown: str, verdict: str, scored: Scored, reason: str) -> Analysis:
    match = scored.match
    zoo = verdict in ("identified", "partial")
    return Analysis(
        path=shown,
        verdict=verdict,
        entry=scored.id if zoo else None,
        family=scored.family,
        confidence=round(match.confidence, 6),
        container=header.container,
        wrapper=header.wrapper,
        prefix=match.prefix,
        tensors=len(header.tensors),
        params=header.params,
        matched=match.matched,
        total=match.total,
        match_rate=round(match.match_rate, 6),
        missing=match.missing,
        unexpected=match.unexpected,
        mismatched=match.mismatched,
        reason=reason,
    )


def _examples(items: list[str]) -> str:
    shown = ", ".join(items[:_EXAMPLES])
    return shown + (", ..." if len(items) > _EXAMPLES else "")


def _partial_reason(scored: Scored) -> str:
    match = scored.match
    parts = [f"{scored.description}, but only {match.matched} of {match.total} tensors match"]
    widened = [m for m in match.mismatched if str(m["key"]).endswith("conv_in.weight")]
    if widened and len(widened[0]["file_shape"]) == 4:
        file_in, model_in = widened[0]["file_shape"][1], widened[0]["model_shape"][1]
        parts.append(
            f"{widened[0]['key']} takes {file_in} input channels instead of {model_in} (a fine-tuned network "
            "with extra inputs, e.g. a try-on UNet)"
        )
    if match.mismatched:
        first = match.mismatched[0]
        parts.append(
            f"{len(match.mismatched)} with another shape (e.g. {first['key']}: file {first['file_shape']}, "
            f"network {first['model_shape']})"
        )
    if match.missing:
        parts.append(f"{len(match.missing)} missing ({_examples(match.missing)})")
    if match.unexpected:
        parts.append(f"{len(match.unexpected)} unexpected ({_examples(match.unexpected)})")
    advice = (
        "a head with another class count or a variant not in the registry; add a registry entry for it, "
        "or load with policy='reinit_head' to re-initialise only the differing head"
        if match.mismatched and not match.missing
        else "a variant not in the registry or an incomplete file; nothing is filled in"
    )
    return "; ".join(parts) + f": {advice}"


_FAMILY_NAMES = {
    "openpose": "OpenPose",
    "hrnet": "HRNet",
    "graphonomy": "Graphonomy",
    "schp": "SCHP",
    "u2net": "U2Net",
    "deeplab": "DeepLabV3+",
    "gmm": "GMM",
    "tom": "TOM",
    "viton": "VITON-HD",
    "alias": "VITON-HD ALIAS",
    "clip": "CLIP",
    "lpips": "LPIPS",
    "sam": "SAM",
    "unet|diffusion|sd_?xl|v1-5|v2-1": "Stable Diffusion",
    "control": "ControlNet",
    "gfpgan": "GFPGAN",
}


def _impostor_reason(scored: Scored, shown: str) -> str:
    name = Path(shown).name.lower()
    claimed = next((label for token, label in _FAMILY_NAMES.items() if re.search(token, name)), None)
    head = ""
    if scored.match.mismatched:
        head = f" (with {len(scored.match.mismatched)} tensors of another shape, e.g. a re-trained head)"
    target = f"an {claimed}" if claimed and claimed[0] in "AEIOU" else f"a {claimed}" if claimed else "a"
    suffix = "checkpoint" if claimed else "checkpoint of the try-on zoo"
    return f"{scored.description}{head}, not {target} {suffix}"
