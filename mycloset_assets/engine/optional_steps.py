"""The optional steps of a try-on run: MediaPipe's person mask and MobileSAM mask refinement (before the
try-on), GFPGAN face restoration and the quality figures (after it). Each runs when it is switched on and its
checkpoint is present, and leaves a record on every pair: ``{"ran": True, ...}`` or ``{"ran": False, "reason":
...}``.

Each step is cached by content like the others: the person mask and refinement per photo (pixels, the mask
refined, the network), restoration per result image and keypoints, figures per result and the arrays they
compare.
"""

from __future__ import annotations

import json

import numpy as np

from ..checkpoints.pipelines import OPTIONAL_STEPS, STEP_HELPERS, absent_optional
from ..engine_cache import array_digest, content_key, freeze
from ..vision.prompts import SamPrompt
from ..wrappers.face import FaceRestorer
from ..wrappers.mediapipe_face import FaceDetector
from ..wrappers.mediapipe_segmentation import SelfieSegmenter
from ..wrappers.quality import ClipSimilarity, LpipsDistance
from ..wrappers.sam import MaskRefiner
from .context import CACHE_VERSION, Item, Photo, RunContext, count
from .options import TryOnOptions
from .quality import QualityFigures, QualityInputs, measure_quality
from .stages import person_mask_figures, person_masks
from .steps import (
    RefinedMask,
    Restore,
    Segment,
    clothing_reference,
    face_alignment_keypoints,
    refine_clothing_mask,
    refine_garment_mask,
    restore_face,
)


def wanted_roles(options: TryOnOptions) -> list[str]:
    """The optional roles of the steps ``options`` switch on (``OPTIONAL_STEPS``: which roles each step reads;
    ``STEP_HELPERS``: the roles it uses when filled)."""
    steps = [step for step in OPTIONAL_STEPS if getattr(options, step)]
    return [role for step in steps for role in (*OPTIONAL_STEPS[step], *STEP_HELPERS.get(step, ()))]


def _skip(items: list[Item], step: str, reason: str) -> None:
    for item in items:
        item.records[step] = {"ran": False, "reason": reason}


def _switched_off(step: str) -> str:
    return f"switched off ({step}=False)"


def _frozen(array: np.ndarray) -> np.ndarray:
    return freeze({"array": array})["array"]


def _segmenter(run: RunContext, photo: Photo, reference: np.ndarray, hits: list[bool]) -> Segment:
    """SAM on ``photo`` through the content cache (the key names the photo, the mask refined and the network);
    ``hits`` records whether the cache answered."""

    def segment(image: np.ndarray, prompt: SamPrompt) -> tuple[np.ndarray, float]:
        key = content_key(
            stage="mask_refinement",
            version=CACHE_VERSION,
            image=photo.digest,
            reference=array_digest(reference),
            model=run.chosen["mask_refinement"].sha256,
            config=run.options.refinement_config(),
        )
        found, missing = run.lookup([key])
        if missing:
            refiner: MaskRefiner = run.wrapper("mask_refinement", MaskRefiner)  # loaded on the first miss only
            sam = refiner.segment(image, prompt)
            found[key] = run.store(key, {"mask": sam.mask, "score": np.float64(sam.score)})
        hits.append(not missing)
        return found[key]["mask"], float(found[key]["score"])

    return segment


def mask_refinement(run: RunContext, items: list[Item]) -> None:
    """Refine each garment photo's mask (the refined mask replaces it when kept, so the warp reads it) and each
    person's clothing mask (kept, it marks the clothes the quality figures leave out)."""
    if not run.options.mask_refinement:
        return _skip(items, "mask_refinement", _switched_off("mask_refinement"))
    if "mask_refinement" not in run.chosen:
        return _skip(items, "mask_refinement", absent_optional("mask_refinement"))
    with run.step("mask_refinement", count(len(items), "pair")):
        garments: dict[str, tuple[RefinedMask, bool]] = {}
        people: dict[tuple[str, str], RefinedMask] = {}
        for item in items:
            assert item.garment_mask is not None and item.parsing is not None and item.keypoints is not None
            if item.garment.digest not in garments:
                garments[item.garment.digest] = _refine_garment(run, item)
            garment, hit = garments[item.garment.digest]
            item.cached += ["mask_refinement"] * hit
            item.garment_mask = {"garment_mask": _frozen(garment.mask)}
            if garment.proposed is not None:
                item.extras["sam_garment_mask"] = garment.proposed
            person_key = (item.person.digest, array_digest(item.parsing["parsing"]))
            if person_key not in people:
                parsing = item.parsing["parsing"]
                hits: list[bool] = []
                segment = _segmenter(run, item.person, clothing_reference(parsing), hits)
                people[person_key] = refine_clothing_mask(
                    segment, item.person.image, parsing, item.keypoints["keypoints"], run.options
                )
            clothing = people[person_key]
            item.clothing_mask = _frozen(clothing.mask)
            if clothing.proposed is not None:
                item.extras["sam_clothing_mask"] = clothing.proposed
            item.records["mask_refinement"] = {"ran": True, "garment": garment.record, "clothing": clothing.record}


def person_mask(run: RunContext, items: list[Item]) -> None:
    """The person mask of each person photo (selfie segmentation, 0/255 at the photo's size) into the extras,
    with the share of the photo it covers and its IoU with the parsing's person (non-background) labels."""
    if not run.options.person_mask:
        return _skip(items, "person_mask", _switched_off("person_mask"))
    if "person_mask" not in run.chosen:
        return _skip(items, "person_mask", absent_optional("person_mask"))
    photos = {item.person.digest: item.person for item in items}

    def compute(images: list[np.ndarray]) -> list[dict[str, np.ndarray]]:
        return person_masks(run.wrapper("person_mask", SelfieSegmenter), images)

    results, hits = run.photo_stage("person_mask", photos, run.options.person_mask_config(), compute)
    for item in items:
        assert item.parsing is not None
        mask = results[item.person.digest]["person_mask"]
        item.extras["person_mask"] = mask
        item.cached += ["person_mask"] * (item.person.digest in hits)
        item.records["person_mask"] = {"ran": True, **person_mask_figures(mask, item.parsing["parsing"])}


def _refine_garment(run: RunContext, item: Item) -> tuple[RefinedMask, bool]:
    assert item.garment_mask is not None
    reference = item.garment_mask["garment_mask"]
    if item.given_mask:
        return RefinedMask(reference, {"reason": "not refined: the garment mask was given"}), False
    hits: list[bool] = []
    segment = _segmenter(run, item.garment, reference, hits)
    return refine_garment_mask(segment, item.garment.image, reference, run.options), any(hits)


def _restorer(run: RunContext, keypoints: np.ndarray, hits: list[bool]) -> Restore:
    """GFPGAN through the content cache (the key names the result image, the keypoints and the network)."""
    options = run.options

    def restore(image: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, tuple[int, int, int, int]]:
        key = content_key(
            stage="face_restoration",
            version=CACHE_VERSION,
            image=array_digest(image),
            keypoints=array_digest(keypoints),
            model=run.chosen["face_restoration"].sha256,
            config=options.face_config(),
        )
        found, missing = run.lookup([key])
        if missing:
            restorer: FaceRestorer = run.wrapper(
                "face_restoration",
                FaceRestorer,
                min_score=options.face_min_score,
                min_eye_distance=options.face_min_eye_distance,
            )
            restored = restorer(image, points)
            arrays = {"tryon": restored.image, "face": restored.restored_face, "box": np.asarray(restored.box)}
            found[key] = run.store(key, arrays)
        hits.append(not missing)
        arrays = found[key]
        return arrays["tryon"], arrays["face"], tuple(int(v) for v in arrays["box"])  # type: ignore[return-value]

    return restore


def face_restoration(run: RunContext, items: list[Item]) -> None:
    """Restore the face of each result with GFPGAN where the pose shows it; the restored image becomes the
    result and the one before is kept as ``tryon_before_restoration``."""
    options = run.options
    if not options.face_restoration:
        return _skip(items, "face_restoration", _switched_off("face_restoration"))
    if "face_restoration" not in run.chosen:
        return _skip(items, "face_restoration", absent_optional("face_restoration"))
    detector = FaceDetector(run.load("face_detection")) if "face_detection" in run.chosen else None
    with run.step("face_restoration", count(len(items), "pair")):
        for item in items:
            assert item.keypoints is not None and item.tryon is not None
            image, keypoints = item.tryon["tryon"], item.keypoints["keypoints"]
            alignment = "pose"
            if detector is not None:
                keypoints, alignment = face_alignment_keypoints(keypoints, detector.detect(item.person.image))
            hits: list[bool] = []
            restored = restore_face(_restorer(run, keypoints, hits), image, keypoints, options)
            ran = restored.record["ran"]
            item.records["face_restoration"] = {**restored.record, **({"alignment": alignment} if ran else {})}
            if restored.face is None:
                continue
            item.cached += ["face_restoration"] * any(hits)
            item.final = restored.image
            item.extras["tryon_before_restoration"] = image
            item.extras["restored_face"] = restored.face


def quality(run: RunContext, items: list[Item]) -> None:
    """The quality figures of each result (see :mod:`mycloset_assets.engine.quality`)."""
    options = run.options
    if not options.quality:
        return _skip(items, "quality", _switched_off("quality"))
    with run.step("quality", count(len(items), "pair")):
        for item in items:
            assert item.tryon is not None and item.garment_mask is not None and item.parsing is not None
            if item.clothing_mask is None:
                item.clothing_mask = _frozen(clothing_reference(item.parsing["parsing"]))
            inputs = QualityInputs(
                person=item.person.image,
                garment=item.garment.image,
                garment_mask=item.garment_mask["garment_mask"],
                clothing_mask=item.clothing_mask,
                warped_mask=item.tryon["warped_mask"],
                result=item.result_image(),
            )
            key = content_key(
                stage="quality",
                version=CACHE_VERSION,
                arrays={name: array_digest(value) for name, value in vars(inputs).items()},
                models={role: run.chosen[role].sha256 for role in ("lpips", "clip") if role in run.chosen},
                config=options.quality_config(),
            )
            found, missing = run.lookup([key])
            if missing:
                lpips = run.wrapper("lpips", LpipsDistance) if "lpips" in run.chosen else None
                clip = run.wrapper("clip", ClipSimilarity) if "clip" in run.chosen else None
                figures = measure_quality(inputs, lpips, clip, options.quality_max_side)
                text = json.dumps({"values": figures.values, "skipped": figures.skipped}).encode()
                arrays = run.store(key, {"figures": np.frombuffer(text, dtype=np.uint8)})
            else:
                arrays = found[key]
                item.cached.append("quality")
            item.quality = QualityFigures(**json.loads(arrays["figures"].tobytes()))
            item.extras["clothing_mask"] = item.clothing_mask
            item.records["quality"] = {"ran": True, "skipped_figures": sorted(item.quality.skipped)}
