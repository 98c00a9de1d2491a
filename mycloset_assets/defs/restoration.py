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

from ..engine.steps import RestoredFace, face_alignment_keypoints, restore_face, restore_with
from ..monitoring import Monitor
from ..vision.drawing import side_by_side
from ..wrappers.face import FaceRestorer
from ..wrappers.mediapipe_face import FaceDetector
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
    add_partition_metadata,
    network_step,
    partition_output,
    partition_values,
    person_image,
    preview,
)
from .models import MODEL_ASSETS, stored_cards
from .options import option
from .partitions import PERSON_OF_PAIR, pairs, split_pair_key
from .resources import ModelFactoryResource
from .tryon import pose, read_partitions


class RestorationConfig(RuntimeCheckConfig):
    """Whether and when GFPGAN restores a result's face (engine options), and the limits of the runtime check."""

    face_restoration: bool = option("face_restoration", "Restore faces when a face_restoration_model exists.")
    face_min_score: float = option("face_min_score", "Least pose score of each eye and the nose.")
    face_min_eye_distance: float = option("face_min_eye_distance", "Least distance between the eyes (pixels).")


def outside_box_changes(before: np.ndarray, after: np.ndarray, box: tuple[int, int, int, int]) -> int:
    """How many pixels outside ``box`` (x0, y0, x1, y1) differ between ``before`` and ``after``."""
    if before.shape != after.shape:
        raise ValueError(f"the restored image {after.shape} must have the result's size {before.shape}")
    outside = np.ones(before.shape[:2], dtype=bool)
    x0, y0, x1, y1 = box
    outside[y0:y1, x0:x1] = False
    return int(np.count_nonzero((before != after).any(axis=-1) & outside))


def restoration_findings(
    results: dict[str, np.ndarray], restored: dict[str, RestoredFace], model: str | None
) -> Findings:
    """ERROR for a restored image that changed pixels outside its face box; WARN for a face a model could have
    restored but the pose did not show."""
    findings = Findings()
    for key, item in restored.items():
        box = tuple(item.record["box"]) if item.record["ran"] else (0, 0, 0, 0)
        changed = outside_box_changes(results[key], item.image, box)  # type: ignore[arg-type]
        if changed:
            findings.errors.append(f"{key}: {changed} pixels changed outside the face box {box}")
        if not item.record["ran"] and model:
            findings.warnings.append(f"{key}: {item.record['reason']}")
    findings.figures["restored"] = sum(item.record["ran"] for item in restored.values())
    return findings


@dg.asset(
    **network_step(pairs, "png"),
    deps=[
        dg.AssetDep(pose, partition_mapping=PERSON_OF_PAIR),
        dg.AssetDep(person_image, partition_mapping=PERSON_OF_PAIR),
        MODEL_ASSETS["face_restoration"],
    ],
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
    """The try-on result with its face restored by GFPGAN v1.4 (PNG at the person photo's size), aligned by the
    eyes and nose BlazeFace finds on the person photo when a ``face_detection`` model card exists, else by the
    pose keypoints; the result unchanged where the step did not run, with the reason (the engine's
    ``face_alignment_keypoints`` and ``restore_face``)."""
    halves = {key: split_pair_key(key) for key in context.partition_keys}
    results = {key: np.asarray(value) for key, value in partition_values(context, tryon_result).items()}
    poses = read_partitions(io_manager, pose.key, [person for person, _ in halves.values()])
    options = model_factory.options(config)
    card = stored_cards(io_manager, ("face_restoration",)).get("face_restoration")
    monitor = Monitor()
    restore, why = None, "switched off (face_restoration: false in the run configuration)"
    if options.face_restoration and card is None:
        why = "no face_restoration model card (gfpgan_v1_4): materialise face_restoration_model"
    elif options.face_restoration and card is not None:
        with monitor.step(LOAD_STEP):
            restorer = model_factory.wrapper(
                card,
                FaceRestorer,
                min_score=options.face_min_score,
                min_eye_distance=options.face_min_eye_distance,
            )
        restore = restore_with(restorer)
    aligned = {person: (np.asarray(poses[person]["keypoints"]), "pose") for person, _ in halves.values()}
    detector_card = stored_cards(io_manager, ("face_detection",)).get("face_detection") if restore else None
    with monitor.step("restored_result"):
        if detector_card is not None:
            detector = FaceDetector(model_factory.load(detector_card)[0])
            photos = read_partitions(io_manager, person_image.key, list(aligned))
            aligned = {person: face_alignment_keypoints(points, detector.detect(np.asarray(photos[person])))
                       for person, (points, _) in aligned.items()}  # fmt: skip
        restored = {
            key: restore_face(restore, results[key], aligned[person][0], options, why)
            for key, (person, _) in halves.items()
        }
    images = {key: item.image for key, item in restored.items()}
    metadata = {
        key: {
            "face_restoration": "ran" if item.record["ran"] else item.record["reason"],
            "face_alignment": aligned[halves[key][0]][1],
            **({"face_box": dg.MetadataValue.json(item.record["box"])} if item.record["ran"] else {}),
            "preview": preview(side_by_side(results[key], item.image), "before and after"),
        }
        for key, item in restored.items()
    }
    add_partition_metadata(context, io_manager, images, metadata)
    used = card if restore is not None else None
    figures = StepFigures.of(monitor, len(images), used)
    findings = restoration_findings(results, restored, used["entry"] if used else None)
    return dg.MaterializeResult(
        value=partition_output(context, images),
        metadata=figures.metadata(),
        check_results=[runtime_result(figures, config), plausible_result(findings, figures, config)],
    )
