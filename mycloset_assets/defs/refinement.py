"""MobileSAM mask refinement in the graph: the garment mask the warp reads and the clothing mask the quality
report leaves out.

- ``refined_garment_mask`` (garment photos, PNG 0/255): SAM prompted with a box and points from
  ``garment_mask``; SAM's mask replaces it only when their IoU lies in the configured range.
- ``clothing_mask`` (person photos, PNG 0/255): the person's clothes a top replaces (the parsing's upper
  clothes, dress and coat), refined the same way with the torso keypoints of ``pose`` as extra prompts and the
  face as a background point.

Without a materialised ``mask_refinement_model`` card, or with ``enabled: false``, each asset stores the mask
it would refine, and its metadata says why. Either way the metadata holds SAM's mask beside the reference (the
preview), the IoU, SAM's score and the reason; the ``plausible`` check is an ERROR for a mask of the wrong size
or values and a WARN when SAM ran and its mask was rejected.
"""

from collections.abc import Callable, Mapping
from typing import Any

import dagster as dg
import numpy as np
from pydantic import Field

from ..engine.optional_steps import clothing_reference
from ..monitoring import Monitor
from ..vision.drawing import draw_mask, side_by_side
from ..vision.prompts import EmptyMaskError, SamPrompt, garment_prompt, person_clothing_prompt
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
from .partitions import garment_images, person_images
from .resources import ModelFactoryResource

ROLE = "mask_refinement"


class RefinementConfig(RuntimeCheckConfig):
    """Whether MobileSAM refines the masks and when its mask is kept."""

    enabled: bool = Field(default=True, description="Refine when a mask_refinement_model is materialised.")
    min_iou: float = Field(default=0.5, description="Least IoU of SAM's mask with the mask it refines.")
    max_iou: float = Field(default=1.0, description="Largest IoU of SAM's mask with the mask it refines.")


def refine_masks(
    refiner: MaskRefiner | None,
    photos: Mapping[str, np.ndarray],
    references: Mapping[str, np.ndarray],
    prompt_of: Callable[[str, np.ndarray], SamPrompt],
    config: RefinementConfig,
    reference_name: str,
) -> tuple[dict[str, np.ndarray], dict[str, dict[str, Any]], dict[str, np.ndarray]]:
    """Per key: the mask to store (bool), the record (``ran``, and the refinement's summary or the reason) and
    SAM's own mask where it ran. ``refiner`` None: nothing is refined (the records say why)."""
    masks, records, proposed = {}, {}, {}
    for key, reference in references.items():
        masks[key] = reference
        if refiner is None:
            records[key] = {"ran": False, "reason": _why_not(config)}
            continue
        try:
            prompt = prompt_of(key, reference)
        except EmptyMaskError as exc:
            records[key] = {"ran": False, "reason": f"not refined: {exc}"}
            continue
        refinement = refiner.refine(
            photos[key], reference, prompt, (config.min_iou, config.max_iou), reference_name=reference_name
        )
        masks[key], proposed[key] = refinement.mask, refinement.refined
        records[key] = {"ran": True, **refinement.summary()}
    return masks, records, proposed


def _why_not(config: RefinementConfig) -> str:
    if not config.enabled:
        return "switched off (enabled: false in the run configuration)"
    return "no mask_refinement model card (mobile_sam): materialise mask_refinement_model"


def refinement_findings(
    masks: Mapping[str, np.ndarray], sizes: Mapping[str, tuple[int, ...]], records: Mapping[str, dict[str, Any]]
) -> Findings:
    """ERROR for a stored mask of the wrong size or values; WARN where SAM ran and its mask was rejected."""
    findings = Findings()
    for key, mask in masks.items():
        if mask.shape != sizes[key] or mask.dtype != np.uint8 or not np.isin(mask, (0, 255)).all():
            findings.errors.append(f"{key}: {mask.dtype} {mask.shape}, expected 0/255 uint8 of {sizes[key]}")
        record = records[key]
        if record["ran"] and not record["kept"]:
            findings.warnings.append(f"{key}: {record['reason']}")
    findings.figures["refined"] = sum(bool(record.get("kept")) for record in records.values())
    return findings


def _refiner(
    monitor: Monitor, config: RefinementConfig, model_factory: ModelFactoryResource, io_manager: dg.IOManager
) -> tuple[MaskRefiner | None, dict[str, Any] | None]:
    card = stored_cards(io_manager, (ROLE,)).get(ROLE)
    if not config.enabled or card is None:
        return None, None
    with monitor.step(LOAD_STEP):
        return MaskRefiner(model_factory.load_card(card)), card


def _store(
    context: dg.AssetExecutionContext,
    io_manager: dg.IOManager,
    photos: Mapping[str, np.ndarray],
    outcome: tuple[dict[str, np.ndarray], dict[str, dict[str, Any]], dict[str, np.ndarray]],
    monitor: Monitor,
    card: dict[str, Any] | None,
    config: RefinementConfig,
) -> dg.MaterializeResult:
    masks, records, proposed = outcome
    stored = {key: mask.astype(np.uint8) * 255 for key, mask in masks.items()}
    metadata = {}
    for key, record in records.items():
        pictures = [draw_mask(photos[key], masks[key])]
        if key in proposed:
            pictures.append(draw_mask(photos[key], proposed[key], color=(0, 128, 255)))
        metadata[key] = {
            "refinement": "ran" if record["ran"] else record["reason"],
            **{name: record[name] for name in ("iou", "kept", "sam_score") if name in record},
            "area_fraction": round(float(np.mean(masks[key])), 4),
            "preview": preview(side_by_side(*pictures), "mask used, SAM's mask"),
        }
    add_partition_metadata(context, io_manager, stored, metadata)
    figures = StepFigures.of(monitor, len(stored), card)
    sizes = {key: photo.shape[:2] for key, photo in photos.items()}
    findings = refinement_findings(stored, sizes, records)
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
    partitions_def=garment_images,
    backfill_policy=SINGLE_RUN,
    pool=GPU_POOL,
    group_name=TRYON_GROUP,
    kinds={"pytorch", "png"},
    deps=[MODEL_ASSETS[ROLE]],
    dagster_type=STORED,
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
    references = {key: np.asarray(mask) > 0 for key, mask in partition_values(context, garment_mask).items()}
    monitor = Monitor()
    refiner, card = _refiner(monitor, config, model_factory, io_manager)
    with monitor.step("refined_garment_mask"):
        outcome = refine_masks(refiner, photos, references, lambda _, mask: garment_prompt(mask), config, "garment")
    return _store(context, io_manager, photos, outcome, monitor, card, config)


@dg.asset(
    partitions_def=person_images,
    backfill_policy=SINGLE_RUN,
    pool=GPU_POOL,
    group_name=TRYON_GROUP,
    kinds={"pytorch", "png"},
    deps=[MODEL_ASSETS[ROLE]],
    dagster_type=STORED,
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
    references = {key: clothing_reference(np.asarray(parsing)) for key, parsing in parsings.items()}
    monitor = Monitor()
    refiner, card = _refiner(monitor, config, model_factory, io_manager)

    def prompt(key: str, mask: np.ndarray) -> SamPrompt:
        return person_clothing_prompt(mask, np.asarray(poses[key]["keypoints"], dtype=np.float64))

    with monitor.step("clothing_mask"):
        outcome = refine_masks(refiner, photos, references, prompt, config, "parsing")
    return _store(context, io_manager, photos, outcome, monitor, card, config)
