"""Checkpoint files as Dagster partitions: each file's analysis, its canonical safetensors copy, and the
sensor that registers the files of the checkpoint folder.

One dynamic partition per file, keyed by its path relative to the model factory's ``checkpoint_folder``
(stable across content updates: a replaced file re-runs its partition, and the history shows both sha256s).
"""

import json
import tempfile
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import dagster as dg
from safetensors.torch import load_file

from ..checkpoints.convert import convert
from ..engine.models import file_digest
from ..monitoring import Monitor
from .io_managers import Weights
from .resources import ChangedFileError, ModelFactoryResource, file_report

CHECKPOINT_FILES = dg.DynamicPartitionsDefinition(name="checkpoint_files")
IDENTIFIED_CHECK = "identified"
MAX_FILES_PER_TICK = 8
ANALYSIS_KEYS = ("verdict", "entry", "family", "match_rate", "confidence", "container", "tensors", "params")
CHECKPOINT_REPORT = dg.PythonObjectDagsterType(dict, name="CheckpointReport", description="A file's analysis (JSON).")

# Per-partition check results (``partitions_def`` on a check spec) are a preview feature of Dagster 1.13; they
# are what a per-file verdict needs (an unpartitioned check would show only the latest file's result).
with warnings.catch_warnings():
    warnings.simplefilter("ignore", dg.PreviewWarning)
    IDENTIFIED_SPEC = dg.AssetCheckSpec(
        IDENTIFIED_CHECK,
        asset="checkpoint_analysis",
        partitions_def=CHECKPOINT_FILES,
        description="The file is a checkpoint of the try-on zoo with every tensor matched (key-match rate 1.0); "
        "an impostor, a partial match, a broken, unsafe or non-checkpoint file fails with severity ERROR.",
    )


def analysis_metadata(report: Mapping[str, Any]) -> dict[str, Any]:
    """Flat metadata of a file report: the analysis figures, file, sha256 and the reason."""
    metadata = {key: "" if report[key] is None else report[key] for key in ANALYSIS_KEYS}
    metadata.update(file=report["key"], sha256=report["sha256"], size=report["size"], reason=report["reason"])
    return metadata


def identified_result(report: Mapping[str, Any], measured: Mapping[str, Any]) -> dg.AssetCheckResult:
    """The ``identified`` check of one file: passed only for an identified file with key-match rate 1.0."""
    passed = report["verdict"] == "identified" and report["match_rate"] == 1.0
    return dg.AssetCheckResult(
        check_name=IDENTIFIED_CHECK,
        passed=passed,
        severity=dg.AssetCheckSeverity.ERROR,
        description=f"{report['verdict']}: {report['reason']}",
        metadata={**analysis_metadata(report), **measured},
    )


def _file_of(model_factory: ModelFactoryResource, key: str) -> Path:
    try:
        return model_factory.path_of(key)
    except FileNotFoundError as error:
        raise dg.Failure(str(error), allow_retries=False) from error


@dg.asset(
    partitions_def=CHECKPOINT_FILES,
    group_name="checkpoints",
    kinds={"pytorch"},
    check_specs=[IDENTIFIED_SPEC],
    dagster_type=CHECKPOINT_REPORT,
)
def checkpoint_analysis(context: dg.AssetExecutionContext, model_factory: ModelFactoryResource) -> dg.MaterializeResult:
    """The analyzer's full report of one checkpoint file (stored as JSON): verdict, registry entry, family,
    key-match figures, missing / unexpected / mismatched keys, the reason, and the file's sha256."""
    key = context.partition_key
    path = _file_of(model_factory, key)
    with Monitor().step("analysis") as measurement:
        report = file_report(key, path.resolve())
    assert measurement.metrics is not None
    measured = measurement.metrics.to_metadata()
    context.log.info(f"{key}: {report['verdict']} {report['entry'] or ''} ({report['reason']})")
    return dg.MaterializeResult(
        value=report,
        metadata={**analysis_metadata(report), **measured},
        check_results=[identified_result(report, measured)],
        data_version=dg.DataVersion(report["sha256"]),
    )


def _card_metadata(card: Mapping[str, Any]) -> dict[str, str]:
    """The card as safetensors header strings: the source's identity flat, the whole card as JSON."""
    return {
        "format": str(card["format"]),
        "entry": str(card["entry"]),
        "family": str(card["family"]),
        "source_sha256": str(card["source"]["sha256"]),
        "card": json.dumps(card),
    }


@dg.asset(partitions_def=CHECKPOINT_FILES, group_name="checkpoints", kinds={"pytorch", "safetensors"})
def canonical_checkpoint(
    context: dg.AssetExecutionContext, checkpoint_analysis: dict[str, Any], model_factory: ModelFactoryResource
) -> dg.MaterializeResult:
    """The canonical copy of an identified file: its tensors under the network's own key names, as
    safetensors, with the conversion card (source sha256, registry entry, key report) in the file's header.
    A file that is not identified gets a JSON note instead, saying why it has no canonical copy."""
    report = checkpoint_analysis
    if report["verdict"] != "identified":
        note = {"converted": False, "file": report["key"], "sha256": report["sha256"], "verdict": report["verdict"]}
        note["reason"] = f"only identified checkpoints are converted: {report['reason']}"
        context.log.warning(f"{report['key']}: no canonical copy ({report['verdict']})")
        return dg.MaterializeResult(value=note, metadata=note)
    path = _file_of(model_factory, report["key"])
    with tempfile.TemporaryDirectory(prefix="mycloset-canonical-") as folder, Monitor().step("convert") as measurement:
        card = convert(path, Path(folder) / "canonical.safetensors")
        if card["source"]["sha256"] != report["sha256"]:
            raise ChangedFileError(
                f"{report['key']} changed since its analysis (sha256 {card['source']['sha256'][:12]}, analysed "
                f"{report['sha256'][:12]}); materialise checkpoint_analysis for it again"
            )
        tensors = load_file(str(Path(folder) / "canonical.safetensors"))
    assert measurement.metrics is not None
    card = {key: value for key, value in card.items() if key not in ("file", "sha256")}
    card["source"]["path"] = report["key"]
    return dg.MaterializeResult(
        value=Weights(tensors, _card_metadata(card)),
        metadata={
            "converted": True,
            "entry": card["entry"],
            "family": card["family"],
            "tensors": card["tensors"],
            "file": report["key"],
            "sha256": report["sha256"],
            "card": dg.MetadataValue.json(card),
            **measurement.metrics.to_metadata(),
        },
        data_version=dg.DataVersion(report["sha256"]),
    )


def _fingerprint(path: Path) -> list[int]:
    stat = path.stat()
    return [stat.st_size, stat.st_mtime_ns]


def scan_for_runs(
    files: Mapping[str, Path], seen: Mapping[str, list[Any]], limit: int = MAX_FILES_PER_TICK
) -> tuple[list[tuple[str, str]], dict[str, list[Any]], list[str]]:
    """The files that are new or changed since ``seen`` (key -> [size, mtime_ns, sha256]), at most ``limit``,
    as (key, sha256) pairs; the updated record; and the unreadable files with the reason. A file that is
    only touched (same sha256) is recorded, not re-run. Files that are gone leave the record."""
    record = {key: list(value) for key, value in seen.items() if key in files}
    changed: list[tuple[str, str]] = []
    unreadable: list[str] = []
    for key, path in files.items():
        if len(changed) >= limit:
            break
        try:
            fingerprint = _fingerprint(path)
            if record.get(key, [None, None])[:2] == fingerprint:
                continue
            sha256 = file_digest(path)
        except OSError as error:
            unreadable.append(f"{key}: {error.strerror or error}")
            continue
        if record.get(key, [None, None, None])[2] != sha256:
            changed.append((key, sha256))
        record[key] = [*fingerprint, sha256]
    return changed, record, unreadable


@dg.sensor(
    asset_selection=[checkpoint_analysis],
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Watches the model factory's checkpoint folder: registers a partition per new file and requests "
    "its analysis when that content has none yet (run_key = file and sha256; at most "
    f"{MAX_FILES_PER_TICK} per tick). Canonical safetensors copies are made only when asked for "
    "(materialise canonical_checkpoint): they would double the weights on disk.",
)
def checkpoint_folder_sensor(
    context: dg.SensorEvaluationContext, model_factory: ModelFactoryResource
) -> dg.SensorResult | dg.SkipReason:
    """New and changed checkpoint files -> dynamic partitions and runs; a file whose content is already analysed
    (the demo materialised it, another sensor cursor saw it) is only recorded, also on the first tick."""
    try:
        files = model_factory.files()
    except FileNotFoundError as error:
        return dg.SkipReason(str(error))
    changed, record, unreadable = scan_for_runs(files, json.loads(context.cursor) if context.cursor else {})
    for problem in unreadable:
        context.log.warning(f"skipped unreadable checkpoint file {problem}")
    known = set(context.instance.get_dynamic_partitions(CHECKPOINT_FILES.name))
    new = [key for key, _ in changed if key not in known]
    todo = [(key, sha256) for key, sha256 in changed if analysed_sha256(context.instance, key) != sha256]
    requests = [dg.RunRequest(partition_key=key, run_key=f"{key}@{sha256}") for key, sha256 in todo]
    if not requests:
        reason = f"no new or changed files among {len(files)} in {model_factory.checkpoint_folder}"
        if changed:
            reason += f" ({len(changed)} already analysed with the same content)"
        return dg.SensorResult(
            skip_reason=reason + (f"; unreadable: {'; '.join(unreadable)}" if unreadable else ""),
            cursor=json.dumps(record),
            dynamic_partitions_requests=[CHECKPOINT_FILES.build_add_request(new)] if new else [],
        )
    return dg.SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=[CHECKPOINT_FILES.build_add_request(new)] if new else [],
        cursor=json.dumps(record),
    )


def analysed_sha256(instance: dg.DagsterInstance, key: str) -> str | None:
    """The sha256 the latest ``checkpoint_analysis`` of partition ``key`` recorded (None: never analysed)."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=checkpoint_analysis.key, asset_partitions=[key]), limit=1
    ).records
    if not records or records[0].asset_materialization is None:
        return None
    value = records[0].asset_materialization.metadata.get("sha256")
    return None if value is None else str(value.value)


def register_checkpoint_files(instance: dg.DagsterInstance, keys: Iterable[str]) -> list[str]:
    """Add the partitions of ``keys`` that the instance does not know yet; returns those added."""
    known = set(instance.get_dynamic_partitions(CHECKPOINT_FILES.name))
    new = [key for key in keys if key not in known]
    if new:
        instance.add_dynamic_partitions(CHECKPOINT_FILES.name, new)
    return new
