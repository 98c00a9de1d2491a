"""MobileSAM mask refinement in the graph: the garment mask the warp reads and the clothing mask the quality
report leaves out.

- ``refined_garment_mask`` (garment photos, PNG 0/255): SAM prompted with a box and points from
  ``garment_mask``; SAM's mask replaces it only when their IoU lies in the configured range.
- ``clothing_mask`` (person photos, PNG 0/255): the person's clothes a top replaces (the parsing's upper
  clothes, dress and coat), refined the same way with the torso keypoints of ``pose`` as extra prompts and the
  face as a background point.

Both call the engine's own step (``engine.steps``: ``refine_garment_mask``, ``refine_clothing_mask``) with the
engine's options. Without a materialised ``mask_refinement_model`` card, or with ``mask_refinement: false``,
each asset stores the mask it would refine, and its metadata says why. Either way the metadata holds SAM's mask
beside the reference (the preview), the IoU, SAM's score and the reason; the ``plausible`` check is an ERROR for
a mask of the wrong size or values and a WARN when SAM ran and its mask was rejected.
"""

from collections.abc import Mapping
from typing import Any

import dagster as dg
import numpy as np

from ..engine.options import TryOnOptions
from ..engine.steps import RefinedMask, Segment, refine_clothing_mask, refine_garment_mask, segment_with
from ..monitoring import Monitor
from ..vision.drawing import draw_mask, side_by_side
from ..wrappers.sam import MaskRefiner
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
    preview,
)
from .models import MODEL_ASSETS, stored_cards
from .options import option
from .partitions import garment_images, person_images
from .resources import ModelFactoryResource

ROLE = "mask_refinement"


class RefinementConfig(RuntimeCheckConfig):
    """Whether MobileSAM refines the masks and when its mask is kept (engine options)."""

    mask_refinement: bool = option("mask_refinement", "Refine when a mask_refinement_model is materialised.")
    refinement_iou: list[float] = option(
        "refinement_iou", "[low, high]: SAM's mask is kept when its IoU with the mask it refines lies within."
    )


def refinement_findings(
    masks: Mapping[str, np.ndarray], sizes: Mapping[str, tuple[int, ...]], records: Mapping[str, RefinedMask]
) -> Findings:
    """ERROR for a stored mask of the wrong size or values; WARN where SAM ran and its mask was rejected."""
    findings = Findings()
    for key, mask in masks.items():
        if mask.shape != sizes[key] or mask.dtype != np.uint8 or not np.isin(mask, (0, 255)).all():
            findings.errors.append(f"{key}: {mask.dtype} {mask.shape}, expected 0/255 uint8 of {sizes[key]}")
        refined = records[key]
        if refined.ran and not refined.record["kept"]:
            findings.warnings.append(f"{key}: {refined.record['reason']}")
    findings.figures["refined"] = sum(bool(refined.record.get("kept")) for refined in records.values())
    return findings


def _segmenter(
    monitor: Monitor, options: TryOnOptions, model_factory: ModelFactoryResource, io_manager: dg.IOManager
) -> tuple[Segment | None, dict[str, Any] | None, str]:
    if not options.mask_refinement:
        return None, None, "switched off (mask_refinement: false in the run configuration)"
    card = stored_cards(io_manager, (ROLE,)).get(ROLE)
    if card is None:
        return None, None, "no mask_refinement model card (mobile_sam): materialise mask_refinement_model"
    with monitor.step(LOAD_STEP):
        return segment_with(model_factory.wrapper(card, MaskRefiner)), card, ""


def _store(
    context: dg.AssetExecutionContext,
    io_manager: dg.IOManager,
    photos: Mapping[str, np.ndarray],
    outcome: Mapping[str, RefinedMask],
    monitor: Monitor,
    card: dict[str, Any] | None,
    config: RefinementConfig,
) -> dg.MaterializeResult:
    stored = {key: refined.mask.astype(np.uint8) * 255 for key, refined in outcome.items()}
    metadata = {}
    for key, refined in outcome.items():
        pictures = [draw_mask(photos[key], refined.mask)]
        if refined.proposed is not None:
            pictures.append(draw_mask(photos[key], refined.proposed, color=(0, 128, 255)))
        record = refined.record
        metadata[key] = {
            "refinement": "ran" if refined.ran else record["reason"],
            **{name: record[name] for name in ("iou", "kept", "sam_score") if name in record},
            "area_fraction": round(float(np.mean(refined.mask)), 4),
            "preview": preview(side_by_side(*pictures), "mask used, SAM's mask"),
        }
    add_partition_metadata(context, io_manager, stored, metadata)
    figures = StepFigures.of(monitor, len(stored), card)
    sizes = {key: photo.shape[:2] for key, photo in photos.items()}
    findings = refinement_findings(stored, sizes, outcome)
    return dg.MaterializeResult(
        value=partition_output(context, stored),
        metadata=figures.metadata(),
        check_results=[runtime_result(figures, config), plausible_result(findings, figures, config)],
    )


PLAUSIBLE = (
    "Masks are 0/255 of the photo's size (ERROR otherwise); SAM's mask was kept wherever SAM ran (WARN when its "
    "IoU with the mask it refines fell outside the configured range)."
)


@dg.asset(
    **network_step(garment_images, "png"),
    deps=[MODEL_ASSETS[ROLE]],
    check_specs=check_specs("refined_garment_mask", PLAUSIBLE, model=False),
)
def refined_garment_mask(
    context: dg.AssetExecutionContext,
    config: RefinementConfig,
    garment_image: Any,
    garment_mask: Any,
    model_factory: ModelFactoryResource,
    io_manager: dg.ResourceParam[dg.IOManager],
) -> dg.MaterializeResult:
    """The garment mask the warp reads (PNG 0/255): MobileSAM's refinement of ``garment_mask`` where it agrees
    with it, else ``garment_mask`` itself."""
    photos = partition_values(context, garment_image)
    masks = partition_values(context, garment_mask)
    options = model_factory.options(config)
    monitor = Monitor()
    segment, card, why = _segmenter(monitor, options, model_factory, io_manager)
    with monitor.step("refined_garment_mask"):
        outcome = {
            key: refine_garment_mask(segment, photos[key], np.asarray(mask) > 0, options, why)
            for key, mask in masks.items()
        }
    return _store(context, io_manager, photos, outcome, monitor, card, config)


@dg.asset(
    **network_step(person_images, "png"),
    deps=[MODEL_ASSETS[ROLE]],
    check_specs=check_specs("clothing_mask", PLAUSIBLE, model=False),
)
def clothing_mask(
    context: dg.AssetExecutionContext,
    config: RefinementConfig,
    person_image: Any,
    human_parsing: Any,
    pose: Any,
    model_factory: ModelFactoryResource,
    io_manager: dg.ResourceParam[dg.IOManager],
) -> dg.MaterializeResult:
    """The person's clothes a try-on replaces (PNG 0/255): the parsing's upper clothes, dress and coat, refined by
    MobileSAM with the torso keypoints where SAM's mask agrees with them. The quality report compares the photo
    and the result outside it."""
    photos = partition_values(context, person_image)
    parsings, poses = partition_values(context, human_parsing), partition_values(context, pose)
    options = model_factory.options(config)
    monitor = Monitor()
    segment, card, why = _segmenter(monitor, options, model_factory, io_manager)
    with monitor.step("clothing_mask"):
        outcome = {
            key: refine_clothing_mask(
                segment, photo, np.asarray(parsings[key]), np.asarray(poses[key]["keypoints"]), options, why
            )
            for key, photo in photos.items()
        }
    return _store(context, io_manager, photos, outcome, monitor, card, config)
