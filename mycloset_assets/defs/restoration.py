"""Face restoration of each try-on result, between ``tryon_result`` and ``quality_report``.

``restored_result`` (PNG per pair, the person photo's size) is the try-on result with its face restored by
GFPGAN where the person's stored pose shows the face (eyes and nose confident enough, far enough apart), aligned
by those keypoints and pasted back with a feathered mask. Where it cannot run (no ``face_restoration_model``
card, the step switched off in the run configuration, no face in the pose) the result is stored as it is and the
partition's metadata says why, so the quality report always reads the final image.

Its ``plausible`` check holds the paste-back to its promise: outside the feathered face box the restored image
equals ``tryon_result`` byte for byte (ERROR otherwise); a pair whose face was not restored is a WARN only
when the step was meant to run and found a model.
"""

from typing import Any

import dagster as dg
import numpy as np
from pydantic import Field

from ..monitoring import Monitor
from ..vision.drawing import side_by_side
from ..vision.face import FaceNotFoundError
from ..wrappers.face import FaceRestorer
from .image_checks import (
    LOAD_STEP,
    Findings,
    RuntimeCheckConfig,
    StepFigures,
    check_specs,
    plausible_result,
    runtime_result,
)
from .images import (
    GPU_POOL,
    SINGLE_RUN,
    STORED,
    TRYON_GROUP,
    add_partition_metadata,
    partition_output,
    partition_values,
    preview,
)
from .models import MODEL_ASSETS, stored_cards
from .partitions import pairs, split_pair_key
from .resources import ModelFactoryResource
from .tryon import pose, read_partitions


class RestorationConfig(RuntimeCheckConfig):
    """Whether and when GFPGAN restores a result's face, and the limits of the runtime check."""

    enabled: bool = Field(default=True, description="Restore faces when a face_restoration_model is materialised.")
    min_score: float = Field(default=0.3, description="Least pose score of each eye and the nose.")
    min_eye_distance: float = Field(default=8.0, description="Least distance between the eyes (pixels).")


def outside_box_changes(before: np.ndarray, after: np.ndarray, box: tuple[int, int, int, int]) -> int:
    """How many pixels outside ``box`` (x0, y0, x1, y1) differ between ``before`` and ``after``."""
    if before.shape != after.shape:
        raise ValueError(f"the restored image {after.shape} must have the result's size {before.shape}")
    outside = np.ones(before.shape[:2], dtype=bool)
    x0, y0, x1, y1 = box
    outside[y0:y1, x0:x1] = False
    return int(np.count_nonzero((before != after).any(axis=-1) & outside))


def restoration_findings(
    results: dict[str, np.ndarray], restored: dict[str, np.ndarray], records: dict[str, dict[str, Any]]
) -> Findings:
    """ERROR for a restored image that changed pixels outside its face box; WARN for a face a model could have
    restored but the pose did not show."""
    findings = Findings()
    for key, record in records.items():
        box = tuple(record["box"]) if record["ran"] else (0, 0, 0, 0)
        changed = outside_box_changes(results[key], restored[key], box)  # type: ignore[arg-type]
        if changed:
            findings.errors.append(f"{key}: {changed} pixels changed outside the face box {box}")
        if not record["ran"] and record.get("model"):
            findings.warnings.append(f"{key}: {record['reason']}")
    findings.figures["restored"] = sum(record["ran"] for record in records.values())
    return findings


@dg.asset(
    partitions_def=pairs,
    backfill_policy=SINGLE_RUN,
    pool=GPU_POOL,
    group_name=TRYON_GROUP,
    kinds={"pytorch", "png"},
    deps=[dg.AssetDep(pose, partition_mapping=dg.AllPartitionMapping()), MODEL_ASSETS["face_restoration"]],
    dagster_type=STORED,
    check_specs=check_specs(
        "restored_result",
        "Outside the feathered face box the image equals tryon_result byte for byte (ERROR otherwise); a face the "
        "model could not restore because the pose does not show it is a WARN.",
        model=False,
    ),
)
def restored_result(
    context: dg.AssetExecutionContext,
    config: RestorationConfig,
    tryon_result: Any,
    model_factory: ModelFactoryResource,
    io_manager: dg.ResourceParam[dg.IOManager],
) -> dg.MaterializeResult:
    """The try-on result with its face restored by GFPGAN v1.4, aligned by the person's pose keypoints (PNG at
    the person photo's size); the result unchanged where the step did not run, with the reason."""
    halves = {key: split_pair_key(key) for key in context.partition_keys}
    results = partition_values(context, tryon_result)
    poses = read_partitions(io_manager, pose.key, [person for person, _ in halves.values()])
    card = stored_cards(io_manager, ("face_restoration",)).get("face_restoration")
    monitor = Monitor()
    restorer = None
    if config.enabled and card is not None:
        with monitor.step(LOAD_STEP):
            loaded = model_factory.load_card(card)
            restorer = FaceRestorer(loaded, min_score=config.min_score, min_eye_distance=config.min_eye_distance)
    restored: dict[str, np.ndarray] = {}
    records: dict[str, dict[str, Any]] = {}
    with monitor.step("restored_result"):
        for key, (person, _) in halves.items():
            image = np.asarray(results[key])
            restored[key] = image
            if restorer is None or card is None:
                records[key] = _skipped(config)
                continue
            try:
                restoration = restorer(image, np.asarray(poses[person]["keypoints"], dtype=np.float64))
            except FaceNotFoundError as exc:
                records[key] = {"ran": False, "reason": f"no face to restore: {exc}", "model": card["entry"]}
                continue
            restored[key] = restoration.image
            records[key] = {"ran": True, "box": list(restoration.box), "model": card["entry"]}
    metadata = {
        key: {
            "face_restoration": "ran" if record["ran"] else record["reason"],
            **({"face_box": dg.MetadataValue.json(record["box"])} if record["ran"] else {}),
            "preview": preview(side_by_side(np.asarray(results[key]), restored[key]), "before and after"),
        }
        for key, record in records.items()
    }
    add_partition_metadata(context, io_manager, restored, metadata)
    figures = StepFigures.of(monitor, len(restored), card if restorer is not None else None)
    findings = restoration_findings({key: np.asarray(value) for key, value in results.items()}, restored, records)
    return dg.MaterializeResult(
        value=partition_output(context, restored),
        metadata=figures.metadata(),
        check_results=[runtime_result(figures, config), plausible_result(findings, figures, config)],
    )


def _skipped(config: RestorationConfig) -> dict[str, Any]:
    if not config.enabled:
        return {"ran": False, "reason": "switched off (enabled: false in the run configuration)"}
    return {"ran": False, "reason": "no face_restoration model card (gfpgan_v1_4): materialise face_restoration_model"}
