"""The quality report of each try-on pair, downstream of ``restored_result`` (the try-on result, its face
restored where that ran), and its checks.

``quality_report`` (JSON per pair, the engine's quality.json: every figure with its meaning and direction, the
weights that produced them, the step's time and memory) compares the stored person photo with the stored result
outside the garment and clothing regions (LPIPS, SSIM), the garment photo's garment with the result's garment
region (CLIP), and the warped garment's mask with the person's parsed clothes (IoU). LPIPS and CLIP use the
cards of ``lpips_model`` and ``clip_model`` when those are materialised; otherwise the report says why those
figures are missing. The side-by-side picture (person, garment, warped garment, result) is the preview.

Each figure has a WARN check whose threshold is run configuration, so the UI marks the doubtful results. A
figure a pair could not get (no checkpoint, an empty region) is never a green pass: its check fails as a WARN
whose description begins "not computed" and names the reason.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
from pydantic import Field

from ..engine.models import Checkpoint, provenance
from ..engine.quality import METRICS, QualityFigures, QualityInputs, measure_quality, quality_picture
from ..engine.quality import quality_report as report_of
from ..engine.result import ModelInfo
from ..monitoring import Monitor
from ..wrappers.quality import ClipSimilarity, LpipsDistance
from .image_checks import LOAD_STEP, RuntimeCheckConfig, StepFigures, runtime_result
from .images import (
    add_partition_metadata,
    garment_image,
    network_step,
    partition_output,
    partition_values,
    preview,
)
from .images import person_image as person_photo
from .models import MODEL_ASSETS, stored_cards
from .options import option
from .partitions import GARMENT_OF_PAIR, PERSON_OF_PAIR, pairs, split_pair_key
from .refinement import clothing_mask, refined_garment_mask
from .resources import ModelFactoryResource
from .tryon import read_partitions

WEIGHT_ROLES = ("pose", "parsing", "garment_mask", "gmm", "tom", "lpips", "clip")
PIPELINE = "cpvton"


@dataclass(frozen=True)
class Threshold:
    """Where a figure turns doubtful: ``field`` of :class:`QualityConfig`, and whether the figure must stay
    below it (``"max"``) or above it (``"min"``)."""

    field: str
    bound: str

    def passes(self, value: float, limit: float) -> bool:
        """True when ``value`` is on the good side of ``limit``."""
        return value <= limit if self.bound == "max" else value >= limit


THRESHOLDS: dict[str, Threshold] = {
    "lpips_outside_garment": Threshold("max_lpips_outside_garment", "max"),
    "ssim_outside_garment": Threshold("min_ssim_outside_garment", "min"),
    "clip_garment_similarity": Threshold("min_clip_garment_similarity", "min"),
    "warp_mask_iou": Threshold("min_warp_mask_iou", "min"),
}


class QualityConfig(RuntimeCheckConfig):
    """Where each figure of the quality report turns doubtful (a WARN), and the LPIPS working size."""

    max_lpips_outside_garment: float = Field(
        default=0.3, description="LPIPS outside the garment above which identity or background changed too much."
    )
    min_ssim_outside_garment: float = Field(
        default=0.6, description="SSIM outside the garment below which identity or background changed too much."
    )
    min_clip_garment_similarity: float = Field(
        default=0.7, description="CLIP similarity of garment and worn garment below which the garment changed."
    )
    min_warp_mask_iou: float = Field(
        default=0.5, description="IoU of warped garment and parsed clothes below which the warp missed the body."
    )
    quality_max_side: int = option("quality_max_side", "LPIPS runs on copies at most this large (pixels).")


def quality_check_specs() -> list[dg.AssetCheckSpec]:
    """The runtime check and one WARN check per figure of the report."""
    specs = [
        dg.AssetCheckSpec(
            "runtime",
            asset="quality_report",
            description="Wall time per pair, peak RSS and device memory stayed within the configured limits.",
        )
    ]
    for name, threshold in THRESHOLDS.items():
        metric = METRICS[name]
        side = "at most" if threshold.bound == "max" else "at least"
        specs.append(
            dg.AssetCheckSpec(
                name,
                asset="quality_report",
                description=f"{metric.meaning[0].upper()}{metric.meaning[1:]}. Passes when every pair's figure is "
                f"{side} {threshold.field} ({metric.better} is better); WARN otherwise.",
            )
        )
    return specs


def figure_check(
    name: str, figures: Mapping[str, QualityFigures], config: QualityConfig, step: StepFigures
) -> dg.AssetCheckResult:
    """WARN when a pair's figure is on the doubtful side of its threshold; pairs without the figure are named."""
    threshold = THRESHOLDS[name]
    limit = float(getattr(config, threshold.field))
    values = {key: item.values[name] for key, item in figures.items() if name in item.values}
    missing = {key: item.skipped[name] for key, item in figures.items() if name in item.skipped}
    doubtful = sorted(key for key, value in values.items() if not threshold.passes(value, limit))
    parts = []
    if missing:
        parts.append("not computed: " + "; ".join(f"{key} ({why})" for key, why in list(missing.items())[:5]))
    if doubtful:
        parts.append("doubtful: " + "; ".join(f"{key} {values[key]:.4f}" for key in doubtful[:5]))
    if values and not doubtful:
        parts.append(f"all {len(values)} computed figures within {threshold.bound} {limit:g}")
    return dg.AssetCheckResult(
        check_name=name,
        passed=not doubtful and not missing,
        severity=dg.AssetCheckSeverity.WARN,
        description=" | ".join(parts),
        metadata={
            **step.metadata(),
            "threshold": limit,
            "better": METRICS[name].better,
            "values": dg.MetadataValue.json({key: round(value, 6) for key, value in values.items()}),
            "worst": round(max(values.values()) if threshold.bound == "max" else min(values.values()), 6)
            if values
            else None,
        },
    )


def _weights(cards: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, str]]:
    weights = {}
    for role, card in cards.items():
        checkpoint = Checkpoint(card["entry"], Path(card["path"]), card["file"], card["sha256"])
        weights[role] = ModelInfo(card["entry"], card["sha256"], card["file"], provenance(checkpoint)).to_dict()
    return weights


@dg.asset(
    **network_step(pairs, "json"),
    deps=[dg.AssetDep(asset, partition_mapping=PERSON_OF_PAIR) for asset in (person_photo, clothing_mask)]
    + [dg.AssetDep(asset, partition_mapping=GARMENT_OF_PAIR) for asset in (garment_image, refined_garment_mask)]
    + [MODEL_ASSETS[role] for role in ("lpips", "clip")],
    check_specs=quality_check_specs(),
)
def quality_report(
    context: dg.AssetExecutionContext,
    config: QualityConfig,
    restored_result: Any,
    warped_garment: Any,
    model_factory: ModelFactoryResource,
    io_manager: dg.ResourceParam[dg.IOManager],
) -> dg.MaterializeResult:
    """How good each try-on result is (JSON): LPIPS and SSIM outside the garment, CLIP similarity of the garment,
    IoU of the warp with the parsed clothes, each with its meaning and direction, the weights that produced them
    (entry, sha256, whether it is the published file) and what the step cost."""
    halves = {key: split_pair_key(key) for key in context.partition_keys}
    results, warps = partition_values(context, restored_result), partition_values(context, warped_garment)
    people = [person for person, _ in halves.values()]
    clothes = [garment for _, garment in halves.values()]
    persons = read_partitions(io_manager, person_photo.key, people)
    clothes_masks = read_partitions(io_manager, clothing_mask.key, people)
    garments = read_partitions(io_manager, garment_image.key, clothes)
    masks = read_partitions(io_manager, refined_garment_mask.key, clothes)
    cards = stored_cards(io_manager, WEIGHT_ROLES)
    options = model_factory.options(config)
    monitor = Monitor()
    with monitor.step(LOAD_STEP):
        lpips = model_factory.wrapper(cards["lpips"], LpipsDistance) if "lpips" in cards else None
        clip = model_factory.wrapper(cards["clip"], ClipSimilarity) if "clip" in cards else None
    with monitor.step("quality_report"):
        figures = {}
        for key, (person, garment) in halves.items():
            inputs = QualityInputs(
                person=persons[person],
                garment=garments[garment],
                garment_mask=np.asarray(masks[garment]) > 0,
                clothing_mask=np.asarray(clothes_masks[person]) > 0,
                warped_mask=warps[key]["warped_mask"],
                result=results[key],
            )
            figures[key] = measure_quality(inputs, lpips, clip, options.quality_max_side)
    steps = [step.to_report() for step in monitor.steps]
    reports = {
        key: report_of(
            item,
            pipeline=PIPELINE,
            models=_weights(cards),
            steps=steps,
            optional_steps={"quality": {"ran": True, "skipped_figures": sorted(item.skipped)}},
        )
        for key, item in figures.items()
    }
    metadata = {
        key: {
            **{name: round(value, 4) for name, value in figures[key].values.items()},
            "not_computed": dg.MetadataValue.json(figures[key].skipped),
            "preview": preview(
                quality_picture(persons[person], garments[garment], warps[key]["warped_garment"], results[key]),
                "quality",
            ),
        }
        for key, (person, garment) in halves.items()
    }
    add_partition_metadata(context, io_manager, reports, metadata)
    step = StepFigures.of(monitor, len(reports))
    checks = [runtime_result(step, config)] + [figure_check(name, figures, config, step) for name in THRESHOLDS]
    return dg.MaterializeResult(
        value=partition_output(context, reports), metadata=step.metadata(), check_results=checks
    )
