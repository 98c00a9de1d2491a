"""The quality report of a try-on result: each figure with what it measures, which way is better, and the
weights that produced it.

Regions, in the person photo's pixels: the *garment region* of the result is where the warped garment lands
(the warped mask mapped from the network frame back to the photo); the try-on may also change the person's
old clothes (the clothing mask: MobileSAM's when kept, else the parsing's upper clothes, dress and coat). What
lies outside both should come through unchanged (identity, background), which LPIPS and SSIM measure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..checkpoints import get_entry
from ..checkpoints.pipelines import absent_optional
from ..vision.compositing import Letterbox
from ..vision.drawing import side_by_side
from ..vision.quality import mask_iou, region_crop, ssim
from ..wrappers.quality import ClipSimilarity, LpipsDistance

WARP_THRESHOLD = 0.5
CAUTION = (
    "These figures are only as meaningful as the weights listed under 'weights'. A file whose sha256 matches the "
    "published one (matches_published: true) gives figures comparable with the papers'; synthesized demo weights "
    "or unverified files give numbers that describe nothing."
)


@dataclass(frozen=True)
class Metric:
    """One figure of the report: its meaning, which direction is better, its range, the role of its network."""

    meaning: str
    better: str
    range: tuple[float | None, float | None]
    role: str | None = None

    def to_dict(self, value: float) -> dict[str, Any]:
        """``{value, better, range, meaning, model_role}`` as the report lists a figure."""
        return {
            "value": value,
            "better": self.better,
            "range": list(self.range),
            "meaning": self.meaning,
            "model_role": self.role,
        }


METRICS: dict[str, Metric] = {
    "lpips_outside_garment": Metric(
        "LPIPS (v0.1 linear calibration) between the person photo and the result, averaged over the pixels "
        "outside the garment and clothing regions: 0 when identity and background are preserved",
        "lower",
        (0.0, None),
        "lpips",
    ),
    "ssim_outside_garment": Metric(
        "SSIM (11 x 11 Gaussian window, sigma 1.5, luminance) between the person photo and the result, averaged "
        "outside the garment and clothing regions: 1 when that part of the photo is unchanged",
        "higher",
        (-1.0, 1.0),
    ),
    "clip_garment_similarity": Metric(
        "cosine similarity of the CLIP ViT-B/32 image embeddings of the garment photo's garment and the result's "
        "garment region: how much the worn garment still looks like the product",
        "higher",
        (-1.0, 1.0),
        "clip",
    ),
    "warp_mask_iou": Metric(
        "IoU of the warped garment's mask and the person's clothing mask in the try-on network's frame: how well "
        "the warp covers the region the garment should occupy",
        "higher",
        (0.0, 1.0),
    ),
}


@dataclass(frozen=True)
class QualityInputs:
    """What the figures are computed from. ``person`` and ``result`` H x W x 3 uint8 (same size); ``garment``
    Hg x Wg x 3 uint8 with its ``garment_mask`` (bool); ``clothing_mask`` H x W bool (the person's clothes the
    garment replaces); ``warped_mask`` h x w float in [0, 1] in the try-on frame the person was letterboxed
    into."""

    person: np.ndarray
    garment: np.ndarray
    garment_mask: np.ndarray
    clothing_mask: np.ndarray
    warped_mask: np.ndarray
    result: np.ndarray


@dataclass(frozen=True)
class QualityFigures:
    """The computed figures by metric name and, for the others, why each was not computed."""

    values: dict[str, float]
    skipped: dict[str, str]


def garment_region(inputs: QualityInputs) -> np.ndarray:
    """H x W bool: where the warped garment lands in the person photo."""
    letterbox = Letterbox.fit(inputs.person.shape[:2], inputs.warped_mask.shape[:2])
    return letterbox.map_to_photo(inputs.warped_mask) >= WARP_THRESHOLD


def warp_iou(inputs: QualityInputs) -> float:
    """IoU of the warped mask (>= 0.5) and the clothing mask letterboxed into the try-on frame."""
    letterbox = Letterbox.fit(inputs.person.shape[:2], inputs.warped_mask.shape[:2])
    clothing = letterbox.mask_to_frame(np.asarray(inputs.clothing_mask, dtype=bool))
    return mask_iou(np.asarray(inputs.warped_mask) >= WARP_THRESHOLD, clothing)


def measure_quality(
    inputs: QualityInputs,
    lpips: LpipsDistance | None,
    clip: ClipSimilarity | None,
    lpips_max_side: int = 512,
) -> QualityFigures:
    """Every figure of :data:`METRICS` that the inputs and the given networks allow; the rest with the reason."""
    if inputs.person.shape != inputs.result.shape:
        raise ValueError(f"the result {inputs.result.shape} must have the person photo's size {inputs.person.shape}")
    values: dict[str, float] = {}
    skipped: dict[str, str] = {}
    region = garment_region(inputs)
    unchanged = ~(region | np.asarray(inputs.clothing_mask, dtype=bool))
    if not unchanged.any():
        reason = "the garment and clothing regions cover the whole photo: nothing is left to compare"
        skipped["lpips_outside_garment"] = skipped["ssim_outside_garment"] = reason
    else:
        values["ssim_outside_garment"] = ssim(inputs.person, inputs.result, region=unchanged)
        if lpips is None:
            skipped["lpips_outside_garment"] = absent_optional("lpips")
        else:
            values["lpips_outside_garment"] = lpips(
                inputs.person, inputs.result, region=unchanged, max_side=lpips_max_side
            )
    if clip is None:
        skipped["clip_garment_similarity"] = absent_optional("clip")
    elif not np.any(inputs.garment_mask):
        skipped["clip_garment_similarity"] = "the garment photo's mask is empty: there is no garment to compare"
    elif not region.any():
        skipped["clip_garment_similarity"] = "the warped garment's mask is empty: the result shows no garment"
    else:
        garment = region_crop(inputs.garment, np.asarray(inputs.garment_mask, dtype=bool))
        values["clip_garment_similarity"] = clip.similarity(garment, region_crop(inputs.result, region))
    values["warp_mask_iou"] = warp_iou(inputs)
    return QualityFigures({name: float(values[name]) for name in METRICS if name in values}, skipped)


def weight_record(role_info: Mapping[str, str]) -> dict[str, Any]:
    """``{entry, sha256, path}`` of a model with the registry's published sha256 and whether the file matches."""
    published = get_entry(role_info["entry"]).published.get("sha256")
    return {
        **dict(role_info),
        "published_sha256": published,
        "matches_published": None if published is None else published == role_info["sha256"],
    }


def quality_report(
    figures: QualityFigures,
    *,
    pipeline: str,
    models: Mapping[str, Mapping[str, str]],
    steps: Sequence[Mapping[str, Any]],
    optional_steps: Mapping[str, Mapping[str, Any]],
) -> dict[str, Any]:
    """quality.json: ``pipeline``, ``metrics`` (name -> value, better, range, meaning, model_role), ``skipped``
    (metric -> reason), ``weights`` (role -> entry, sha256, path, published_sha256, matches_published),
    ``caution``, ``optional_steps`` (what ran, what was skipped and why) and ``steps`` (time and memory)."""
    return {
        "pipeline": pipeline,
        "metrics": {name: METRICS[name].to_dict(value) for name, value in figures.values.items()},
        "skipped": dict(figures.skipped),
        "weights": {role: weight_record(info) for role, info in models.items()},
        "caution": CAUTION,
        "optional_steps": {name: dict(record) for name, record in optional_steps.items()},
        "steps": [dict(step) for step in steps],
    }


def quality_picture(person: np.ndarray, garment: np.ndarray, warped: np.ndarray, result: np.ndarray) -> np.ndarray:
    """The side-by-side PNG of a report: person, garment, warped garment (network frame), result."""
    return side_by_side(person, garment, warped, result)
