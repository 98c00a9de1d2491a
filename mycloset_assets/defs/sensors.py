"""The inbox sensors: new photos become partitions and runs, and pairs of them become try-on partitions and runs.

``person_inbox_sensor`` and ``garment_inbox_sensor`` watch ``inbox/person/`` and ``inbox/garment/`` (a local
folder or an fsspec URL). Each tick looks at the files that are new or changed since the cursor (a JSON map of
file name -> :func:`file_signature`), at most ``max_files_per_tick`` of them: a file whose bytes are already a
partition is a duplicate (same photo under another name), an unreadable file is skipped with the loader's
reason, and every other photo becomes a dynamic partition and a run whose ``run_key`` is its sha256, so a photo
dropped twice runs once. The sensors only read: a user's file is never moved, changed or deleted.

``pairs_sensor`` requests a try-on run for each (person, garment) pair listed in ``inbox/pairs.csv`` (or every
person with every garment when ``pair_all_garments`` is set) once both photos' assets are materialised, for
each pipeline whose checkpoints the model factory's folder completes (the engine's role table): CP-VTON's
``warped_garment -> tryon_result -> restored_result -> quality_report``, VITON-HD's ``vitonhd_result``. A pair
is requested once per pipeline (the cursor remembers which), so a pipeline whose files arrive later still runs
for the pairs asked for before.

The defaults run each photo's whole chain: ``person_image -> pose -> human_parsing -> person_representation,
clothing_mask``, ``garment_image -> garment_mask -> refined_garment_mask``; the builders take others.
"""

import csv
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
from upath import UPath

from ..checkpoints.pipelines import PREFERENCE
from ..vision.images import ImageError
from .partitions import (
    IMAGE_PARTITIONS,
    SHORT_HASH,
    ImageKind,
    InboxResource,
    image_partition_key,
    inbox_files,
    pair_key,
    read_photo,
    sanitise_stem,
    short_hash,
    split_pair_key,
)
from .resources import ModelFactoryResource

PERSON_ASSETS = tuple(
    dg.AssetKey(name) for name in ("person_image", "pose", "human_parsing", "person_representation", "clothing_mask")
)
GARMENT_ASSETS = tuple(dg.AssetKey(name) for name in ("garment_image", "garment_mask", "refined_garment_mask"))
PAIR_ASSETS: dict[str, tuple[dg.AssetKey, ...]] = {
    "cpvton": tuple(
        dg.AssetKey(name) for name in ("warped_garment", "tryon_result", "restored_result", "quality_report")
    ),
    "vitonhd": (dg.AssetKey("vitonhd_result"),),
}
PERSON_READY = (dg.AssetKey("person_representation"), dg.AssetKey("clothing_mask"))
GARMENT_READY = (dg.AssetKey("refined_garment_mask"),)
INBOX_FILE_TAG = "mycloset/inbox_file"
VERSION_FIELDS = ("ETag", "etag", "md5Hash", "crc32c", "checksum", "mtime", "LastModified", "updated", "created")
"""``info()`` fields that identify a version of a file on an fsspec filesystem, most specific first."""
_REPORTED = 5


@dataclass
class InboxScan:
    """What one tick found in an inbox folder.

    ``added``: (file, sha256, partition key) of new photos; ``duplicates``: (file, existing key);
    ``unreadable``: (file, reason); ``files``: the cursor's file signatures after the tick; ``deferred``:
    changed files left for later ticks by the cap.
    """

    added: list[tuple[UPath, str, str]] = field(default_factory=list)
    duplicates: list[tuple[UPath, str]] = field(default_factory=list)
    unreadable: list[tuple[UPath, str]] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)
    deferred: int = 0


def file_signature(path: UPath) -> str:
    """``size:version``: changes whenever a file is replaced or rewritten.

    A local file's version is its mtime in nanoseconds. Another filesystem's is the first field of its
    ``info()`` in :data:`VERSION_FIELDS` (an object store's ETag or checksum, else a modification or creation
    time; ``memory://`` gives ``created``), else the filesystem's own ``checksum()`` of that info.
    """
    if isinstance(path, Path):
        stat = path.stat()
        return f"{stat.st_size}:{stat.st_mtime_ns}"
    info = path.fs.info(path.path)
    version = next((info[name] for name in VERSION_FIELDS if info.get(name) is not None), None)
    return f"{info.get('size')}:{path.fs.checksum(path.path) if version is None else version}"


def scan_inbox(folder: UPath, seen: dict[str, str], known: dict[str, str], limit: int) -> InboxScan:
    """Examine the files of ``folder`` that are new or changed since ``seen`` (name -> signature), at most ``limit``.

    ``known`` maps a short hash to the partition key holding those bytes already; it is updated in place.
    """
    scan = InboxScan()
    present = {path.name: path for path in inbox_files(folder)}
    scan.files = {name: signature for name, signature in seen.items() if name in present}
    for name, path in present.items():
        try:
            signature = file_signature(path)
        except FileNotFoundError:
            continue
        if scan.files.get(name) == signature:
            continue
        if len(scan.added) + len(scan.duplicates) + len(scan.unreadable) >= limit:
            scan.deferred += 1
            continue
        _examine(path, scan, known)
        scan.files[name] = signature
    return scan


def _examine(path: UPath, scan: InboxScan, known: dict[str, str]) -> None:
    try:
        sha256, _ = read_photo(path)
    except (ImageError, OSError) as error:
        scan.unreadable.append((path, str(error)))
        return
    existing = known.get(sha256[:SHORT_HASH])
    if existing is not None:
        scan.duplicates.append((path, existing))
        return
    key = image_partition_key(path, sha256)
    known[short_hash(key)] = key
    scan.added.append((path, sha256, key))


def _load_cursor(cursor: str | None) -> dict[str, Any]:
    if not cursor:
        return {}
    try:
        value = json.loads(cursor)
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _summary(items: Sequence[str], what: str) -> str:
    shown = "; ".join(items[:_REPORTED])
    more = f" (and {len(items) - _REPORTED} more)" if len(items) > _REPORTED else ""
    return f"{len(items)} {what}: {shown}{more}"


def build_image_sensor(
    kind: ImageKind,
    asset_keys: Iterable[dg.AssetKey | str],
    *,
    name: str | None = None,
    minimum_interval_seconds: int = 30,
    default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.RUNNING,
) -> dg.SensorDefinition:
    """A sensor adding each new photo of ``inbox/KIND/`` as a partition and materialising ``asset_keys`` for it."""
    partitions_def = IMAGE_PARTITIONS[kind]
    keys = [dg.AssetKey.from_coercible(key) for key in asset_keys]

    @dg.sensor(
        name=name or f"{kind}_inbox_sensor",
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        target=dg.AssetSelection.assets(*keys),
        description=f"Adds each new photo of inbox/{kind}/ to '{partitions_def.name}' and materialises it once.",
    )
    def _sensor(context: dg.SensorEvaluationContext, inbox: InboxResource) -> dg.SensorResult:
        folder = inbox.folder(kind)
        seen = _load_cursor(context.cursor).get("files", {})
        known = {short_hash(key): key for key in context.instance.get_dynamic_partitions(partitions_def.name)}
        scan = scan_inbox(folder, seen, known, inbox.max_files_per_tick)
        for path, reason in scan.unreadable:
            context.log.warning(f"skipped {path.name}: {reason}")
        for path, key in scan.duplicates:
            context.log.info(f"{path.name} holds the same bytes as partition {key}: not added again")
        requests = [
            dg.RunRequest(
                run_key=sha256,
                partition_key=key,
                asset_selection=keys,
                tags={INBOX_FILE_TAG: path.name},
            )
            for path, sha256, key in scan.added
        ]
        cursor = json.dumps({"files": scan.files}, sort_keys=True)
        added = [key for _, _, key in scan.added]
        return dg.SensorResult(
            run_requests=requests,
            dynamic_partitions_requests=[partitions_def.build_add_request(added)] if added else [],
            cursor=cursor,
            skip_reason=None if requests else dg.SkipReason(_skip_message(folder, scan)),
        )

    return _sensor


def _skip_message(folder: UPath, scan: InboxScan) -> str:
    parts = []
    if scan.unreadable:
        parts.append(
            _summary([f"{path.name}: {reason}" for path, reason in scan.unreadable], "unreadable files skipped")
        )
    if scan.duplicates:
        parts.append(_summary([f"{path.name} = {key}" for path, key in scan.duplicates], "duplicates of known photos"))
    if scan.deferred:
        parts.append(f"{scan.deferred} files left for the next tick")
    return "; ".join(parts) or f"no new photos in {folder}"


def read_pairs_csv(path: str | os.PathLike[str] | UPath) -> tuple[list[tuple[str, str]], list[str]]:
    """``(person, garment)`` file names from ``pairs.csv`` (a local path or an fsspec URL) and the problems of
    bad lines.

    Empty lines, ``#`` comments and a ``person,garment`` header are ignored.
    """
    path = UPath(path)
    if not path.is_file():
        return [], []
    rows: list[tuple[str, str]] = []
    problems: list[str] = []
    with path.open(newline="", encoding="utf-8", errors="replace") as stream:
        for number, row in enumerate(csv.reader(stream), start=1):
            cells = [cell.strip() for cell in row]
            if not any(cells) or cells[0].startswith("#"):
                continue
            if [cell.lower() for cell in cells] == ["person", "garment"]:
                continue
            if len(cells) != 2 or not all(cells):
                problems.append(f"{path.name} line {number}: expected 'person_file,garment_file', got {row!r}")
                continue
            rows.append((cells[0], cells[1]))
    return rows, problems


def latest_key_for_name(name: str, keys: Sequence[str]) -> str | None:
    """The newest partition key added for a file name (or a stem without its extension): last in order."""
    for slug in (sanitise_stem(Path(name).stem), sanitise_stem(name)):
        matches = [key for key in keys if key.rpartition("-")[0] == slug]
        if matches:
            return matches[-1]
    return None


def wanted_pairs(
    inbox: InboxResource, persons: Sequence[str], garments: Sequence[str]
) -> tuple[list[dg.MultiPartitionKey], list[str]]:
    """The pair keys the inbox asks for among the known partitions, and why some lines name no pair yet."""
    if inbox.pair_all_garments:
        return [pair_key(person, garment) for person in persons for garment in garments], []
    rows, problems = read_pairs_csv(inbox.pairs_csv)
    wanted: list[dg.MultiPartitionKey] = []
    for person_name, garment_name in rows:
        person = latest_key_for_name(person_name, persons)
        garment = latest_key_for_name(garment_name, garments)
        if person is None or garment is None:
            missing = person_name if person is None else garment_name
            problems.append(f"{person_name},{garment_name}: {missing} is not a known photo yet")
            continue
        wanted.append(pair_key(person, garment))
    return wanted, problems


def build_pairs_sensor(
    asset_keys: Mapping[str, Iterable[dg.AssetKey | str]] = PAIR_ASSETS,
    *,
    person_ready: Iterable[dg.AssetKey | str] = PERSON_READY,
    garment_ready: Iterable[dg.AssetKey | str] = GARMENT_READY,
    name: str = "pairs_sensor",
    minimum_interval_seconds: int = 30,
    default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.RUNNING,
) -> dg.SensorDefinition:
    """A sensor materialising ``asset_keys[pipeline]`` for each inbox pair and each complete pipeline once its
    person's ``person_ready`` and its garment's ``garment_ready`` assets are materialised."""
    keys = {
        pipeline: [dg.AssetKey.from_coercible(key) for key in selection] for pipeline, selection in asset_keys.items()
    }
    person_keys = [dg.AssetKey.from_coercible(key) for key in person_ready]
    garment_keys = [dg.AssetKey.from_coercible(key) for key in garment_ready]

    @dg.sensor(
        name=name,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        target=dg.AssetSelection.assets(*(key for selection in keys.values() for key in selection)),
        description="Runs the try-on pairs of inbox/pairs.csv (or every person x garment) once per complete pipeline.",
    )
    def _sensor(
        context: dg.SensorEvaluationContext, inbox: InboxResource, model_factory: ModelFactoryResource
    ) -> dg.SensorResult:
        instance = context.instance
        requested = set(_load_cursor(context.cursor).get("requested", []))
        models = model_factory.models()
        pipelines = [pipeline for pipeline in PREFERENCE if pipeline in keys and models.status(pipeline).complete]
        persons = instance.get_dynamic_partitions(IMAGE_PARTITIONS["person"].name)
        garments = instance.get_dynamic_partitions(IMAGE_PARTITIONS["garment"].name)
        wanted, problems = wanted_pairs(inbox, persons, garments)
        for problem in problems:
            context.log.info(problem)
        ready_persons = _materialised_everywhere(instance, person_keys)
        ready_garments = _materialised_everywhere(instance, garment_keys)
        requests: list[dg.RunRequest] = []
        waiting = 0
        for key in dict.fromkeys(wanted):
            person, garment = split_pair_key(key)
            if not (_ready(person, ready_persons) and _ready(garment, ready_garments)):
                waiting += 1
                continue
            for pipeline in pipelines:
                marker = f"{pipeline}:{key}"
                if marker in requested or len(requests) >= inbox.max_files_per_tick:
                    continue
                requests.append(dg.RunRequest(run_key=marker, partition_key=key, asset_selection=keys[pipeline]))
                requested.add(marker)
        cursor = json.dumps({"requested": sorted(requested)})
        complete = ", ".join(pipelines) or "no pipeline (the checkpoint folder completes none)"
        message = f"{len(wanted)} pairs wanted, {waiting} waiting for their photos' assets; runs: {complete}" + (
            f"; {_summary(problems, 'pairs.csv lines not paired yet')}" if problems else ""
        )
        return dg.SensorResult(
            run_requests=requests,
            cursor=cursor,
            skip_reason=None if requests else dg.SkipReason(message),
        )

    return _sensor


def _materialised_everywhere(instance: dg.DagsterInstance, asset_keys: Sequence[dg.AssetKey]) -> set[str] | None:
    """The partitions every one of ``asset_keys`` has been materialised for; None when there is no key to wait on."""
    partitions: set[str] | None = None
    for key in asset_keys:
        done = instance.get_materialized_partitions(key)
        partitions = done if partitions is None else partitions & done
    return partitions


def _ready(partition: str, ready: set[str] | None) -> bool:
    return ready is None or partition in ready


person_inbox_sensor = build_image_sensor("person", PERSON_ASSETS)
garment_inbox_sensor = build_image_sensor("garment", GARMENT_ASSETS)
pairs_sensor = build_pairs_sensor()
