"""Asset checks of the per-image and try-on assets: the network that ran, what the step cost, and whether the
outputs are plausible.

Every such asset declares (``check_specs``) and evaluates in its own step:

- ``key_match`` (ERROR, assets that run a network): the model card the step loaded names an identified file
  with key-match rate 1.0 and nothing re-initialised.
- ``runtime`` (WARN): wall time per item, peak RSS and device memory (where a GPU is in use) stayed within the
  configured limits.
- ``plausible``: the outputs have the right shapes, types and ranges (ERROR when not: a bug or a broken input)
  and plausible content (WARN when not: no person found, a mask that is empty or covers everything).

A single-run backfill covers many partitions in one step and Dagster takes one result per check per step, so a
check result speaks for every partition of its step: it passes when every item passes, its description names
the items that do not, and its metadata holds the step's figures (wall time, CPU time, peak RSS, device memory,
model entry, file, sha256 and key-match rate). The per-item figures and previews are on each partition's
materialisation. Thresholds are run configuration of the asset (the ``*CheckConfig`` classes).
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import dagster as dg
import numpy as np
from pydantic import Field

from ..monitoring import Monitor, StepMetrics
from .checks import KEY_MATCH_CHECK, card_problems

RUNTIME_CHECK = "runtime"
PLAUSIBLE_CHECK = "plausible"
LOAD_STEP = "load"
OPENPOSE18 = 18
TPS_PARAMETERS = 50
_SHOWN = 5


class RuntimeCheckConfig(dg.Config):
    """Limits of the ``runtime`` check (going over one is a WARN)."""

    max_seconds_per_item: float = Field(default=60.0, description="Wall time allowed per image or pair.")
    max_peak_rss_mb: float = Field(default=16384.0, description="Peak process RSS (MiB) allowed during the step.")
    max_device_peak_mb: float = Field(
        default=40960.0, description="Peak device memory (MiB) allowed during the step, where a GPU is in use."
    )


class PhotoCheckConfig(RuntimeCheckConfig):
    """Thresholds of a photo asset's checks."""

    min_side: int = Field(default=32, description="Shorter side (pixels) below which a photo is implausible.")


class PoseCheckConfig(RuntimeCheckConfig):
    """Thresholds of the pose checks."""

    min_keypoints: int = Field(default=8, description="Confident OpenPose-18 keypoints the chosen person needs.")
    min_keypoint_score: float = Field(default=0.1, description="Peak score from which a keypoint counts as confident.")
    min_agreement: float = Field(
        default=0.8, description="Least PCK between OpenPose and BlazePose where both are present (WARN below)."
    )
    agreement_alpha: float = Field(
        default=0.1, description="Two positions of a keypoint agree within this share of their bounding box's side."
    )


class ParsingCheckConfig(RuntimeCheckConfig):
    """Thresholds of the human-parsing checks."""

    min_person_fraction: float = Field(default=0.05, description="Least share of the photo labelled as person.")
    max_person_fraction: float = Field(default=0.95, description="Largest share of the photo labelled as person.")


class GarmentMaskCheckConfig(RuntimeCheckConfig):
    """Thresholds of the garment-mask checks."""

    min_area_fraction: float = Field(default=0.05, description="Least share of the photo the garment covers.")
    max_area_fraction: float = Field(default=0.95, description="Largest share of the photo the garment covers.")


class RepresentationCheckConfig(RuntimeCheckConfig):
    """Thresholds of the person-representation checks."""

    min_body_fraction: float = Field(default=0.02, description="Least share of the frame the body shape covers.")


class WarpCheckConfig(RuntimeCheckConfig):
    """Thresholds of the warped-garment checks."""

    min_mask_fraction: float = Field(default=0.02, description="Least share of the frame the warped garment covers.")


class TryOnCheckConfig(RuntimeCheckConfig):
    """Thresholds of the try-on result checks."""

    min_contrast: float = Field(default=1.0, description="Least standard deviation of the pixel values (a blank).")


@dataclass(frozen=True)
class StepFigures:
    """What a step cost over its ``items`` (images or pairs): the model load (when it ran a network) and the
    work, each measured by :class:`~mycloset_assets.monitoring.Monitor`; and the card of the model it used."""

    items: int
    compute: StepMetrics
    load: StepMetrics | None = None
    card: Mapping[str, Any] | None = None

    @classmethod
    def of(cls, monitor: Monitor, items: int, card: Mapping[str, Any] | None = None) -> "StepFigures":
        """The figures of a monitor that measured an optional ``load`` step and then one step of work."""
        loads = [step for step in monitor.steps if step.name == LOAD_STEP]
        work = [step for step in monitor.steps if step.name != LOAD_STEP]
        return cls(items, work[-1], loads[-1] if loads else None, card)

    @property
    def seconds_per_item(self) -> float:
        return self.compute.seconds / max(self.items, 1)

    @property
    def peak_rss_mb(self) -> float:
        return max(step.peak_rss_mb for step in self._steps)

    @property
    def device_peak_mb(self) -> float | None:
        peaks = [step.device_peak_mb for step in self._steps if step.device_peak_mb is not None]
        return max(peaks) if peaks else None

    @property
    def _steps(self) -> list[StepMetrics]:
        return [self.compute] if self.load is None else [self.load, self.compute]

    def metadata(self) -> dict[str, Any]:
        """Flat metadata: the work's wall and CPU time, per item, the step's peak RSS (and device memory), the
        load time, and the model's entry, file, sha256 and key-match rate."""
        metadata: dict[str, Any] = {
            "items": self.items,
            "seconds": round(self.compute.seconds, 4),
            "seconds_per_item": round(self.seconds_per_item, 4),
            "cpu_seconds": round(self.compute.cpu_seconds, 4),
            "peak_rss_mb": round(self.peak_rss_mb, 2),
        }
        if self.device_peak_mb is not None:
            metadata.update(device_peak_mb=round(self.device_peak_mb, 2), device=self.compute.device or "")
        if self.load is not None:
            metadata["load_seconds"] = round(self.load.seconds, 4)
        if self.card is not None:
            metadata.update(
                model_entry=self.card["entry"],
                model_file=self.card["file"],
                model_sha256=self.card["sha256"],
                key_match_rate=self.card["match_rate"],
            )
        return metadata


@dataclass
class Findings:
    """What the plausibility check found: ``errors`` (wrong shapes, types, ranges), ``warnings`` (implausible
    content), one line per item; ``figures`` summarise the items (e.g. the smallest mask area)."""

    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)


def check_specs(asset: str, plausible: str, *, model: bool) -> list[dg.AssetCheckSpec]:
    """The checks of one per-image or try-on asset; ``plausible`` says what its plausibility check looks at."""
    specs = [
        dg.AssetCheckSpec(
            RUNTIME_CHECK,
            asset=asset,
            description="Wall time per item, peak RSS and device memory stayed within the configured limits "
            "(WARN otherwise).",
        ),
        dg.AssetCheckSpec(PLAUSIBLE_CHECK, asset=asset, description=plausible),
    ]
    if model:
        specs.insert(
            0,
            dg.AssetCheckSpec(
                KEY_MATCH_CHECK,
                asset=asset,
                description="The network that computed this asset came from an identified file with key-match "
                "rate 1.0 and nothing re-initialised (ERROR otherwise).",
            ),
        )
    return specs


def _listed(items: Sequence[str]) -> str:
    more = f" (and {len(items) - _SHOWN} more)" if len(items) > _SHOWN else ""
    return "; ".join(items[:_SHOWN]) + more


def key_match_result(figures: StepFigures) -> dg.AssetCheckResult:
    """ERROR unless the model card names an identified file, key-match rate 1.0, nothing re-initialised."""
    card = figures.card
    if card is None:
        raise ValueError("key_match needs the card of the model the step used")
    problems = card_problems(card)
    summary = f"{card['entry']} from {card['file']} (sha256 {card['sha256'][:12]})"
    return dg.AssetCheckResult(
        check_name=KEY_MATCH_CHECK,
        passed=not problems,
        severity=dg.AssetCheckSeverity.ERROR,
        description=summary if not problems else f"{summary}: {'; '.join(problems)}",
        metadata={**figures.metadata(), "model_verdict": card["verdict"]},
    )


def runtime_result(figures: StepFigures, config: RuntimeCheckConfig) -> dg.AssetCheckResult:
    """WARN when the step went over a configured time or memory limit."""
    over = []
    if figures.seconds_per_item > config.max_seconds_per_item:
        over.append(f"{figures.seconds_per_item:.2f} s per item > {config.max_seconds_per_item:g} s")
    if figures.peak_rss_mb > config.max_peak_rss_mb:
        over.append(f"peak RSS {figures.peak_rss_mb:.0f} MiB > {config.max_peak_rss_mb:g} MiB")
    device = figures.device_peak_mb
    if device is not None and device > config.max_device_peak_mb:
        over.append(f"device memory {device:.0f} MiB > {config.max_device_peak_mb:g} MiB")
    items = f"{figures.items} item{'s' * (figures.items != 1)}"
    measured = f"{items} in {figures.compute.seconds:.2f} s, peak RSS {figures.peak_rss_mb:.0f} MiB"
    return dg.AssetCheckResult(
        check_name=RUNTIME_CHECK,
        passed=not over,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"{measured}: {'; '.join(over)}" if over else f"{measured}, within the limits",
        metadata={
            **figures.metadata(),
            "max_seconds_per_item": config.max_seconds_per_item,
            "max_peak_rss_mb": config.max_peak_rss_mb,
            "max_device_peak_mb": config.max_device_peak_mb,
        },
    )


def plausible_result(findings: Findings, figures: StepFigures, config: RuntimeCheckConfig) -> dg.AssetCheckResult:
    """ERROR when an output has a wrong shape, type or range; WARN when only its content is implausible."""
    passed = not findings.errors and not findings.warnings
    severity = dg.AssetCheckSeverity.ERROR if findings.errors else dg.AssetCheckSeverity.WARN
    parts = [f"wrong outputs: {_listed(findings.errors)}"] if findings.errors else []
    parts += [f"implausible: {_listed(findings.warnings)}"] if findings.warnings else []
    limits = {key: value for key, value in config.model_dump().items() if key not in RuntimeCheckConfig.model_fields}
    return dg.AssetCheckResult(
        check_name=PLAUSIBLE_CHECK,
        passed=passed,
        severity=severity,
        description=" | ".join(parts) or f"all {figures.items} items are plausible",
        metadata={**figures.metadata(), **findings.figures, "thresholds": dg.MetadataValue.json(limits)},
    )


def _fraction(mask: np.ndarray) -> float:
    return float(np.mean(mask)) if mask.size else 0.0


def photo_findings(photos: Mapping[str, np.ndarray], config: PhotoCheckConfig) -> Findings:
    """Decoded photos are RGB uint8 H x W x 3 (ERROR) at least ``min_side`` pixels on the shorter side (WARN)."""
    found = Findings()
    for key, photo in photos.items():
        if photo.dtype != np.uint8 or photo.ndim != 3 or photo.shape[2] != 3:
            found.errors.append(f"{key}: {photo.dtype} {photo.shape} is not RGB uint8 H x W x 3")
        elif min(photo.shape[:2]) < config.min_side:
            found.warnings.append(f"{key}: {photo.shape[1]} x {photo.shape[0]} pixels, under {config.min_side}")
    found.figures["smallest_side"] = min((min(photo.shape[:2]) for photo in photos.values()), default=0)
    return found


def pose_findings(poses: Mapping[str, Mapping[str, Any]], config: PoseCheckConfig) -> Findings:
    """The chosen person's keypoints are a finite 18 x 3 array (ERROR) with ``min_keypoints`` confident (WARN)."""
    found = Findings()
    counts = []
    for key, pose in poses.items():
        keypoints = np.asarray(pose["keypoints"], dtype=np.float64)
        if keypoints.shape != (OPENPOSE18, 3) or not np.isfinite(keypoints).all():
            found.errors.append(f"{key}: keypoints {keypoints.shape} are not a finite 18 x 3 array")
            continue
        confident = int((keypoints[:, 2] >= config.min_keypoint_score).sum())
        counts.append(confident)
        if confident < config.min_keypoints:
            people = len(pose["people"])
            found.warnings.append(f"{key}: {confident} confident keypoints of 18 ({people} people found)")
    found.figures["fewest_confident_keypoints"] = min(counts, default=0)
    return found


def parsing_findings(
    labels: Mapping[str, np.ndarray], sizes: Mapping[str, tuple[int, int]], classes: int, config: ParsingCheckConfig
) -> Findings:
    """Label maps are uint8 of the photo's size with ids of the label set (ERROR); the share labelled as person
    lies within the configured range (WARN)."""
    found = Findings()
    shares = []
    for key, label_map in labels.items():
        if label_map.dtype != np.uint8 or label_map.shape != tuple(sizes[key]):
            found.errors.append(f"{key}: labels {label_map.dtype} {label_map.shape}, photo {tuple(sizes[key])}")
            continue
        if label_map.size and int(label_map.max()) >= classes:
            found.errors.append(f"{key}: label id {int(label_map.max())} outside the {classes} classes")
            continue
        share = _fraction(label_map > 0)
        shares.append(share)
        if not config.min_person_fraction <= share <= config.max_person_fraction:
            found.warnings.append(f"{key}: {share:.1%} of the photo is labelled as person")
    found.figures.update(min_person_fraction=round(min(shares, default=0.0), 4))
    found.figures.update(max_person_fraction=round(max(shares, default=0.0), 4))
    return found


def mask_findings(
    masks: Mapping[str, np.ndarray], sizes: Mapping[str, tuple[int, int]], config: GarmentMaskCheckConfig
) -> Findings:
    """Masks are uint8 0/255 of the photo's size (ERROR) covering a share within the configured range (WARN)."""
    found = Findings()
    areas = []
    for key, mask in masks.items():
        if mask.dtype != np.uint8 or mask.shape != tuple(sizes[key]) or not np.isin(mask, (0, 255)).all():
            found.errors.append(f"{key}: mask {mask.dtype} {mask.shape} is not 0/255 of the photo's size")
            continue
        area = _fraction(mask > 0)
        areas.append(area)
        if not config.min_area_fraction <= area <= config.max_area_fraction:
            found.warnings.append(f"{key}: the garment covers {area:.1%} of the photo")
    found.figures.update(min_area_fraction=round(min(areas, default=0.0), 4))
    found.figures.update(max_area_fraction=round(max(areas, default=0.0), 4))
    return found


def representation_findings(
    representations: Mapping[str, Mapping[str, np.ndarray]], config: RepresentationCheckConfig
) -> Findings:
    """CP-VTON's representation: shape 1, head 3 and pose 18 channels of the frame's size, finite, in [-1, 1]
    (ERROR); a body shape covering at least ``min_body_fraction`` of the frame (WARN)."""
    found = Findings()
    bodies = []
    for key, representation in representations.items():
        frame = representation["parsing"].shape
        channels = {"shape": 1, "head": 3, "pose": OPENPOSE18}
        wrong = [
            f"{name} {representation[name].shape}"
            for name, count in channels.items()
            if representation[name].shape != (count, *frame)
            or not np.isfinite(representation[name]).all()
            or np.abs(representation[name]).max(initial=0.0) > 1.0
        ]
        if wrong:
            found.errors.append(f"{key}: {', '.join(wrong)} not {frame} maps in [-1, 1]")
            continue
        body = _fraction(representation["shape"] > 0)
        bodies.append(body)
        if body < config.min_body_fraction:
            found.warnings.append(f"{key}: the body shape covers {body:.1%} of the frame")
    found.figures["min_body_fraction"] = round(min(bodies, default=0.0), 4)
    return found


def warp_findings(warps: Mapping[str, Mapping[str, np.ndarray]], config: WarpCheckConfig) -> Findings:
    """The warp: garment H x W x 3 uint8, mask H x W in [0, 1], grid H x W x 2 and 50 TPS offsets, finite
    (ERROR); the warped garment covers at least ``min_mask_fraction`` of the frame (WARN)."""
    found = Findings()
    areas = []
    for key, warp in warps.items():
        garment, mask, grid, theta = (warp[name] for name in ("warped_garment", "warped_mask", "grid", "theta"))
        frame = garment.shape[:2]
        if (
            garment.dtype != np.uint8
            or garment.shape != (*frame, 3)
            or mask.shape != frame
            or grid.shape != (*frame, 2)
            or theta.shape != (TPS_PARAMETERS,)
            or not all(np.isfinite(array).all() for array in (mask, grid, theta))
            or mask.min(initial=0.0) < 0.0
            or mask.max(initial=0.0) > 1.0
        ):
            found.errors.append(
                f"{key}: garment {garment.dtype} {garment.shape}, mask {mask.shape}, grid {grid.shape}, "
                f"theta {theta.shape} are not a finite warp of one frame"
            )
            continue
        area = float(mask.mean())
        areas.append(area)
        if area < config.min_mask_fraction:
            found.warnings.append(f"{key}: the warped garment covers {area:.1%} of the frame")
    found.figures["min_mask_fraction"] = round(min(areas, default=0.0), 4)
    return found


def tryon_findings(
    images: Mapping[str, np.ndarray], sizes: Mapping[str, tuple[int, int]], config: TryOnCheckConfig
) -> Findings:
    """Results are RGB uint8 at the person photo's size (ERROR) and not blank (WARN)."""
    found = Findings()
    contrasts = []
    for key, image in images.items():
        if image.dtype != np.uint8 or image.shape != (*sizes[key], 3):
            found.errors.append(f"{key}: {image.dtype} {image.shape}, person photo {tuple(sizes[key])}")
            continue
        contrast = float(image.std())
        contrasts.append(contrast)
        if contrast < config.min_contrast:
            found.warnings.append(f"{key}: a blank image (pixel standard deviation {contrast:.2f})")
    found.figures["min_contrast"] = round(min(contrasts, default=0.0), 4)
    return found
