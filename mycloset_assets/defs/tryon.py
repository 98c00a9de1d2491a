"""The per-photo and try-on assets: a thin shell over the engine's steps and the wrappers.

::

    person_image -> pose, human_parsing -> person_representation (CP-VTON's 22 channels, for inspection)
    garment_image -> garment_mask -> refined_garment_mask
    pair (person x garment):
        CP-VTON:  warped_garment (GMM) -> tryon_result (TOM) -> restored_result -> quality_report
        VITON-HD: vitonhd_result (segmentation generator -> GMM -> ALIAS)

Per-photo assets are partitioned by photo (``person_images`` / ``garment_images``), the try-on assets by pair
(``pairs``: person x garment, see :mod:`.partitions`); a pair asset depends on its own two photos' assets only.
Each step reads its inputs, calls the engine's function or the wrapper that ``run_virtual_try_on`` calls with
the same options (``engine.stages``: pose, parsing, garment masks; ``wrappers.tryon``: GMM, TOM, VITON-HD's
three networks), stores the outputs and adds metadata and checks; nothing here computes on its own. The network
of each step is the one the model card of its slot names (``pose_model``, ...), from the engine's pool.

Which pipelines run is decided by which complete sets of checkpoints are present: the pairs sensor asks for
``tryon_result`` when CP-VTON's cards are materialised and ``vitonhd_result`` when VITON-HD's are, both when both.

Storage (open formats): ``pose`` JSON (OpenPose-18 of everyone found and of the person used, photo pixels, the
estimator's name; BlazePose's 33 landmarks too), ``human_parsing`` PNG label ids (and the person mask beside
them), ``garment_mask`` PNG 0/255, ``person_representation`` NPZ, ``warped_garment`` NPZ (everything the GMM
stage returns), ``tryon_result`` and ``vitonhd_result`` PNG at the person photo's size.
"""

from collections.abc import Mapping, Sequence
from typing import Any

import dagster as dg
import numpy as np

from ..checkpoints import get_entry
from ..engine.errors import PersonNotFoundError
from ..engine.options import TryOnOptions
from ..engine.stages import (
    check_vitonhd_pose,
    detect_poses,
    mask_garments,
    mask_wrapper,
    parse_people,
    parsing_names,
    parsing_settings,
    person_mask_figures,
    person_masks,
    pose_estimator,
)
from ..monitoring import Monitor
from ..vision.compositing import to_uint8_image
from ..vision.drawing import draw_grid, draw_mask, draw_openpose18, draw_warp, parsing_picture, side_by_side
from ..vision.pose_agreement import keypoint_agreement
from ..wrappers.mediapipe_segmentation import SelfieSegmenter
from ..wrappers.parsing import parsing_wrapper
from ..wrappers.tryon import (
    CpVtonGmm,
    CpVtonPerson,
    CpVtonTom,
    CpVtonWarp,
    TryOnInput,
    VitonHdAlias,
    VitonHdGmm,
    VitonHdSeg,
    cpvton_person,
)
from .checks import card_problems
from .image_checks import (
    LOAD_STEP,
    GarmentMaskCheckConfig,
    ParsingCheckConfig,
    PoseCheckConfig,
    RepresentationCheckConfig,
    StepFigures,
    TryOnCheckConfig,
    WarpCheckConfig,
    check_specs,
    key_match_result,
    mask_findings,
    parsing_findings,
    plausible_result,
    pose_findings,
    representation_findings,
    runtime_result,
    tryon_findings,
    warp_findings,
)
from .images import (
    SINGLE_RUN,
    STORED,
    TRYON_GROUP,
    add_partition_metadata,
    garment_image,
    network_step,
    partition_output,
    partition_values,
    person_image,
    preview,
    store_beside,
)
from .io_managers import OpenFormatStorage, read_value
from .models import stored_cards
from .options import option
from .partitions import GARMENT_OF_PAIR, PERSON_OF_PAIR, garment_images, pairs, person_images, split_pair_key
from .pose_checks import agreement_result, agreement_spec, chosen_estimator, estimator_cards
from .refinement import refined_garment_mask
from .resources import ModelFactoryResource

MAX_SIDE = "Longer side of the working copy (pixels); null: full size."
BATCH = "Images or pairs per network forward."


class PoseConfig(PoseCheckConfig):
    """Which estimator runs and how (engine options), and the thresholds of the pose checks."""

    max_side: int | None = option("max_side", MAX_SIDE)
    pose_estimator: str = option(
        "pose_estimator", "auto, openpose or blazepose: whose keypoints are stored (auto: pose_model's estimator)."
    )
    pose_scales: list[float] | None = option("pose_scales", "OpenPose scales of box 368; null: the entry's.")


class ParsingConfig(ParsingCheckConfig):
    """How human parsing runs (engine options) and the thresholds of its checks."""

    max_side: int | None = option("max_side", MAX_SIDE)
    parsing_size: list[int] | None = option("parsing_size", "SCHP input [height, width]; null: the entry's.")
    parsing_scales: list[float] | None = option("parsing_scales", "Graphonomy scales; null: the reference's.")
    parsing_flip: bool | None = option("parsing_flip", "Flip averaging; null: the family's default.")
    batch_size: int = option("batch_size", BATCH)
    person_mask: bool = option("person_mask", "Store the selfie segmentation's person mask when its card exists.")


class GarmentMaskConfig(GarmentMaskCheckConfig):
    """How garment masks are made (engine options) and the thresholds of their checks."""

    max_side: int | None = option("max_side", MAX_SIDE)
    mask_size: list[int] | None = option("mask_size", "U2Net input [height, width]; null: the entry's.")
    mask_threshold: float = option("mask_threshold", "Saliency level of the mask (U2Net / U2Netp).")
    mask_largest_component: bool = option("mask_largest_component", "Keep only the largest connected region.")
    batch_size: int = option("batch_size", BATCH)


class WarpConfig(WarpCheckConfig):
    """How the GMM runs (engine options) and the thresholds of its checks."""

    batch_size: int = option("batch_size", BATCH)


class TryOnConfig(TryOnCheckConfig):
    """How the TOM runs (engine options) and the thresholds of its checks."""

    batch_size: int = option("batch_size", BATCH)


class VitonHdConfig(TryOnCheckConfig):
    """How VITON-HD runs (engine options) and the thresholds of its checks."""

    vitonhd_size: list[int] = option("vitonhd_size", "Working size [height, width], multiples of 128.")
    seed: int = option("seed", "Seed of the segmentation generator's and ALIAS's noise.")
    batch_size: int = option("batch_size", BATCH)


def read_partitions(storage: dg.IOManager, asset_key: dg.AssetKey, keys: Sequence[str]) -> dict[str, Any]:
    """The stored values of ``keys`` (partitions of ``asset_key``), read through the open-format IO manager."""
    if not isinstance(storage, OpenFormatStorage):
        raise dg.Failure(
            f"the try-on pairs read {asset_key.to_user_string()} through OpenFormatIOManager; "
            f"io_manager is a {type(storage).__name__}",
            allow_retries=False,
        )
    values, missing = {}, []
    for key in sorted(set(keys)):
        try:
            values[key] = read_value(storage.stem(asset_key, key))
        except FileNotFoundError:
            missing.append(key)
    if missing:
        raise dg.Failure(
            f"{asset_key.to_user_string()} is not materialised for {', '.join(missing)}: materialise it first",
            allow_retries=False,
        )
    return values


def _result(
    context: dg.AssetExecutionContext,
    values: Mapping[str, Any],
    figures: StepFigures,
    checks: list[dg.AssetCheckResult],
) -> dg.MaterializeResult:
    return dg.MaterializeResult(
        value=partition_output(context, values), metadata=figures.metadata(), check_results=checks
    )


def _model_checks(figures: StepFigures, config: Any, findings: Any) -> list[dg.AssetCheckResult]:
    return [key_match_result(figures), runtime_result(figures, config), plausible_result(findings, figures, config)]


# per person photo ------------------------------------------------------------------------------------------


def _estimator(model_factory: ModelFactoryResource, card: Mapping[str, Any], options: TryOnOptions) -> Any:
    """The engine's estimator for a pose card and the detector partner it names, if any."""
    detector = card.get("partners", {}).get("pose_detector")
    partner = model_factory.load(detector)[0] if detector is not None else None
    return pose_estimator(model_factory.load(card)[0], partner, scales=options.pose_scales)


@dg.asset(
    **network_step(person_images, "json"),
    check_specs=[
        *check_specs(
            "pose",
            "The chosen person's keypoints are a finite 18 x 3 array (ERROR otherwise) with at least "
            "min_keypoints confident keypoints (WARN otherwise: nobody, or only part of a person, was found).",
            model=True,
        ),
        agreement_spec("pose"),
    ],
)
def pose(
    context: dg.AssetExecutionContext,
    config: PoseConfig,
    person_image: Any,
    pose_model: dict[str, Any],
    model_factory: ModelFactoryResource,
    io_manager: dg.ResourceParam[dg.IOManager],
) -> dg.MaterializeResult:
    """Body keypoints of each person photo (JSON) by the estimator ``pose_estimator`` names: ``people`` (P x 18 x 3,
    everyone found, OpenPose-18 order, photo pixels), ``keypoints`` (18 x 3, the best-scoring person, the one the
    try-on uses), ``estimator``; BlazePose adds ``landmarks`` (33 x 4) and ``people_landmarks`` (P x 33 x 4).
    With both estimators present the other one runs too, for the ``estimators_agree`` check."""
    photos = partition_values(context, person_image)
    options = model_factory.options(config)
    cards = estimator_cards(pose_model, stored_cards(io_manager, ("blazepose",)).get("blazepose"))
    used = chosen_estimator(options.pose_estimator, cards)
    monitor = Monitor()
    with monitor.step(LOAD_STEP):
        estimator = _estimator(model_factory, cards[used], options)
    with monitor.step("pose"):
        found = detect_poses(estimator, list(photos.values()), options.max_side)
    other = next((name for name in cards if name != used), None)
    compared = {}
    if other is not None:
        second = detect_poses(_estimator(model_factory, cards[other], options), list(photos.values()),
                              options.max_side)  # fmt: skip
        compared = {
            key: keypoint_agreement(mine["keypoints"], theirs["keypoints"], config.agreement_alpha)
            for key, mine, theirs in zip(photos, found, second, strict=True)
        }
    poses = {
        key: {"keypoint_order": "openpose18", "estimator": used, "image_size": list(photos[key].shape[:2]), **arrays}
        for key, arrays in zip(photos, found, strict=True)
    }
    metadata = {
        key: {
            "estimator": used,
            "people": len(item["people"]),
            "confident_keypoints": int((item["keypoints"][:, 2] >= config.min_keypoint_score).sum()),
            **({"pck": round(compared[key].pck, 4)} if key in compared and compared[key].pck is not None else {}),
            "preview": preview(draw_openpose18(photos[key], item["people"]), "skeleton"),
        }
        for key, item in poses.items()
    }
    add_partition_metadata(context, io_manager, poses, metadata)
    figures = StepFigures.of(monitor, len(photos), cards[used])
    checks = _model_checks(figures, config, pose_findings(poses, config))
    agreement = agreement_result(compared, (used, other), figures, config.min_agreement, config.agreement_alpha)
    return _result(context, poses, figures, [*checks, agreement])


@dg.asset(
    **network_step(person_images, "png"),
    check_specs=check_specs(
        "human_parsing",
        "Label maps are uint8 of the photo's size with ids of the label set (ERROR otherwise); the share "
        "labelled as person lies between min_person_fraction and max_person_fraction (WARN otherwise).",
        model=True,
    ),
)
def human_parsing(
    context: dg.AssetExecutionContext,
    config: ParsingConfig,
    person_image: Any,
    parsing_model: dict[str, Any],
    model_factory: ModelFactoryResource,
    io_manager: dg.ResourceParam[dg.IOManager],
) -> dg.MaterializeResult:
    """Human parsing of each person photo: a PNG of label ids at the photo's size (LIP-20 for SCHP, CIHP-20 for
    Graphonomy; the names are in the metadata; a viewer shows the ids as near-black), and beside it
    ``<partition>.colour.png``, the classes in colour with a legend (also the preview); with a ``person_mask``
    model card, ``<partition>.person_mask.png`` (MediaPipe's selfie segmentation, 0/255) and its IoU with the
    parsing's person in the metadata."""
    photos = partition_values(context, person_image)
    entry = get_entry(parsing_model["entry"])
    options = model_factory.options(config)
    settings = {**parsing_settings(entry.family, options), "batch_size": options.batch_size}
    mask_card = stored_cards(io_manager, ("person_mask",)).get("person_mask") if options.person_mask else None
    monitor = Monitor()
    with monitor.step(LOAD_STEP):
        wrapper = model_factory.wrapper(parsing_model, parsing_wrapper, **settings)
        segmenter = model_factory.wrapper(mask_card, SelfieSegmenter) if mask_card is not None else None
    with monitor.step("human_parsing"):
        found = parse_people(wrapper, list(photos.values()), options.max_side)
        masks = person_masks(segmenter, list(photos.values())) if segmenter is not None else None
    labels = {key: arrays["parsing"] for key, arrays in zip(photos, found, strict=True)}
    person_mask = {key: item["person_mask"] for key, item in zip(photos, masks, strict=True)} if masks else {}
    names = parsing_names(entry.labels)
    metadata = {}
    for key, label_map in labels.items():
        counts = np.bincount(label_map.ravel(), minlength=len(names))
        present = {names[i]: round(int(count) / label_map.size, 4) for i, count in enumerate(counts) if count}
        picture = parsing_picture(label_map, names)
        colour = store_beside(io_manager, context.asset_key, key, "colour", picture)
        metadata[key] = {
            "label_names": ", ".join(names),
            "person_fraction": round(float(np.mean(label_map > 0)), 4),
            "classes": dg.MetadataValue.json(present),
            "preview": preview(picture, "parsing"),
            **({"colour_path": dg.MetadataValue.path(colour)} if colour else {}),
        }
        if key in person_mask:
            metadata[key].update(_person_mask_metadata(io_manager, context.asset_key, key, person_mask[key], label_map))
    add_partition_metadata(context, io_manager, labels, metadata)
    figures = StepFigures.of(monitor, len(photos), parsing_model)
    sizes = {key: photo.shape[:2] for key, photo in photos.items()}
    findings = parsing_findings(labels, sizes, len(names), config)
    return _result(context, labels, figures, _model_checks(figures, config, findings))


def _person_mask_metadata(
    storage: dg.IOManager, asset_key: dg.AssetKey, key: str, mask: np.ndarray, labels: np.ndarray
) -> dict[str, Any]:
    """Store a person mask beside the parsing; its share of the photo, IoU with the parsing's person, path."""
    path = store_beside(storage, asset_key, key, "person_mask", mask)
    figures = person_mask_figures(mask, labels)
    iou = figures["parsing_iou"]
    return {
        "person_mask_fraction": figures["person_fraction"],
        **({"person_mask_parsing_iou": iou} if iou is not None else {}),
        **({"person_mask_path": dg.MetadataValue.path(path)} if path else {}),
    }


def representation_arrays(person: CpVtonPerson) -> dict[str, np.ndarray]:
    """A CP-VTON person representation as the NPZ stores it: the pose channels, exactly -1 or 1, as int8 (a
    quarter of the bytes; ``astype(np.float32)`` gives back what the GMM reads)."""
    return {
        "person": person.person,
        "parsing": person.parsing,
        "keypoints": person.keypoints,
        "shape": person.agnostic.shape,
        "head": person.agnostic.head,
        "pose": person.agnostic.pose.astype(np.int8),
        "photo_size": np.array(person.frame.photo_size, dtype=np.int64),
    }


def representation_image(representation: Mapping[str, np.ndarray]) -> np.ndarray:
    """What the GMM sees of a person, as one RGB picture: body shape in grey, head in colour, keypoints in red."""
    canvas = np.repeat(to_uint8_image(representation["shape"])[..., None], 3, axis=2)
    head = (representation["head"] > -1).any(axis=0)
    canvas[head] = to_uint8_image(representation["head"])[head]
    return draw_mask(canvas, representation["pose"].max(axis=0) > -1, color=(255, 0, 0), alpha=0.9)


@dg.asset(
    partitions_def=person_images,
    backfill_policy=SINGLE_RUN,
    group_name=TRYON_GROUP,
    kinds={"numpy"},
    dagster_type=STORED,
    check_specs=check_specs(
        "person_representation",
        "Body shape (1), head (3) and pose (18) channels of the GMM's frame, finite, in [-1, 1] (ERROR "
        "otherwise); a body shape covering at least min_body_fraction of the frame (WARN otherwise).",
        model=False,
    ),
)
def person_representation(
    context: dg.AssetExecutionContext,
    config: RepresentationCheckConfig,
    person_image: Any,
    pose: Any,
    human_parsing: Any,
    gmm_model: dict[str, Any],
    io_manager: dg.ResourceParam[dg.IOManager],
) -> dg.MaterializeResult:
    """CP-VTON's 22-channel person representation (body shape, head, keypoint maps) at the GMM's frame, with the
    frame-size photo, parsing and keypoints it was computed from (NPZ): exactly what the GMM reads
    (``wrappers.tryon.cpvton_person``)."""
    frame = tuple(int(v) for v in get_entry(gmm_model["entry"]).preprocess["input_size"])
    photos, poses, labels = (partition_values(context, value) for value in (person_image, pose, human_parsing))
    monitor = Monitor()
    with monitor.step("person_representation"):
        representations = {
            key: representation_arrays(cpvton_person(photo, labels[key], poses[key]["keypoints"], frame))  # type: ignore[arg-type]
            for key, photo in photos.items()
        }
    metadata = {
        key: {
            "frame": f"{frame[1]} x {frame[0]}",
            "channels": 22,
            "body_fraction": round(float(np.mean(item["shape"] > 0)), 4),
            "preview": preview(side_by_side(item["person"], representation_image(item)), "person representation"),
        }
        for key, item in representations.items()
    }
    add_partition_metadata(context, io_manager, representations, metadata)
    figures = StepFigures.of(monitor, len(photos))
    return _result(
        context,
        representations,
        figures,
        [
            runtime_result(figures, config),
            plausible_result(representation_findings(representations, config), figures, config),
        ],
    )


# per garment photo -----------------------------------------------------------------------------------------


@dg.asset(
    **network_step(garment_images, "png"),
    check_specs=check_specs(
        "garment_mask",
        "Masks are 0/255 of the photo's size (ERROR otherwise) covering between min_area_fraction and "
        "max_area_fraction of the photo (WARN otherwise: no garment found, or everything taken for one).",
        model=True,
    ),
)
def garment_mask(
    context: dg.AssetExecutionContext,
    config: GarmentMaskConfig,
    garment_image: Any,
    garment_mask_model: dict[str, Any],
    model_factory: ModelFactoryResource,
    io_manager: dg.ResourceParam[dg.IOManager],
) -> dg.MaterializeResult:
    """The garment of each garment photo: a PNG mask (0/255) at the photo's size, from U2Net cloth segmentation
    (every garment class) or U2Net / U2Netp saliency."""
    photos = partition_values(context, garment_image)
    options = model_factory.options(config)
    monitor = Monitor()
    with monitor.step(LOAD_STEP):
        wrapper = model_factory.wrapper(
            garment_mask_model,
            mask_wrapper,
            size=options.mask_size,
            threshold=options.mask_threshold,
            batch_size=options.batch_size,
        )
    with monitor.step("garment_mask"):
        found = mask_garments(wrapper, list(photos.values()), options.max_side, options.mask_largest_component)
    masks = {key: arrays["garment_mask"].astype(np.uint8) * 255 for key, arrays in zip(photos, found, strict=True)}
    metadata = {
        key: {
            "area_fraction": round(float(np.mean(mask > 0)), 4),
            "preview": preview(draw_mask(photos[key], mask), "garment mask"),
        }
        for key, mask in masks.items()
    }
    add_partition_metadata(context, io_manager, masks, metadata)
    figures = StepFigures.of(monitor, len(photos), garment_mask_model)
    sizes = {key: photo.shape[:2] for key, photo in photos.items()}
    return _result(context, masks, figures, _model_checks(figures, config, mask_findings(masks, sizes, config)))


# per pair --------------------------------------------------------------------------------------------------

PERSON_SIDE = (person_image, pose, human_parsing)
GARMENT_SIDE = (garment_image, refined_garment_mask)
PAIR_DEPS = [dg.AssetDep(asset, partition_mapping=PERSON_OF_PAIR) for asset in PERSON_SIDE] + [
    dg.AssetDep(asset, partition_mapping=GARMENT_OF_PAIR) for asset in GARMENT_SIDE
]


def pair_inputs(context: dg.AssetExecutionContext, storage: dg.IOManager) -> dict[str, TryOnInput]:
    """Each pair's :class:`TryOnInput` from its own two photos' stored assets (what the engine hands the
    try-on networks): person photo, parsing and chosen keypoints; garment photo and the refined garment mask."""
    halves = {key: split_pair_key(key) for key in context.partition_keys}
    people = [person for person, _ in halves.values()]
    garments = [garment for _, garment in halves.values()]
    photos = read_partitions(storage, person_image.key, people)
    poses = read_partitions(storage, pose.key, people)
    parsings = read_partitions(storage, human_parsing.key, people)
    garment_photos = read_partitions(storage, garment_image.key, garments)
    masks = read_partitions(storage, refined_garment_mask.key, garments)
    return {
        key: TryOnInput(
            photos[person],
            parsings[person],
            np.asarray(poses[person]["keypoints"], dtype=np.float64),
            garment_photos[garment],
            np.asarray(masks[garment]) > 0,
        )
        for key, (person, garment) in halves.items()
    }


@dg.asset(
    **network_step(pairs, "numpy"),
    deps=PAIR_DEPS,
    check_specs=check_specs(
        "warped_garment",
        "A finite warp of one frame: garment H x W x 3 uint8, mask H x W in [0, 1], grid H x W x 2, 50 TPS "
        "offsets (ERROR otherwise); the warped garment covers at least min_mask_fraction (WARN otherwise).",
        model=True,
    ),
)
def warped_garment(
    context: dg.AssetExecutionContext,
    config: WarpConfig,
    gmm_model: dict[str, Any],
    model_factory: ModelFactoryResource,
    io_manager: dg.ResourceParam[dg.IOManager],
) -> dg.MaterializeResult:
    """CP-VTON's GMM for each pair (NPZ): the garment warped onto the person by a TPS (``warped_garment``,
    ``warped_mask``, ``grid``, ``theta``), the person representation and the frame-size photos it worked on."""
    inputs = pair_inputs(context, io_manager)
    options = model_factory.options(config)
    monitor = Monitor()
    with monitor.step(LOAD_STEP):
        gmm = model_factory.wrapper(gmm_model, CpVtonGmm, batch_size=options.batch_size)
    with monitor.step("warped_garment"):
        warps = dict(zip(inputs, gmm(list(inputs.values())), strict=True))
    values = {key: warp.to_arrays() for key, warp in warps.items()}
    metadata = {
        key: {
            "mask_fraction": round(float(warp.warped_mask.mean()), 4),
            "preview": preview(
                side_by_side(
                    warp.garment,
                    draw_grid(warp.grid, image=warp.warped_garment),
                    draw_warp(warp.person, warp.warped_garment, warp.warped_mask),
                ),
                "warp",
            ),
        }
        for key, warp in warps.items()
    }
    add_partition_metadata(context, io_manager, values, metadata)
    figures = StepFigures.of(monitor, len(values), gmm_model)
    return _result(context, values, figures, _model_checks(figures, config, warp_findings(values, config)))


@dg.asset(
    **network_step(pairs, "png"),
    check_specs=check_specs(
        "tryon_result",
        "The result is RGB uint8 at the person photo's size (ERROR otherwise) and not blank (WARN otherwise).",
        model=True,
    ),
)
def tryon_result(
    context: dg.AssetExecutionContext,
    config: TryOnConfig,
    warped_garment: Any,
    tom_model: dict[str, Any],
    model_factory: ModelFactoryResource,
    io_manager: dg.ResourceParam[dg.IOManager],
) -> dg.MaterializeResult:
    """CP-VTON's result (PNG at the person photo's size): the TOM renders the person from the representation and
    the warped garment and composes the two with its mask."""
    warps = {key: CpVtonWarp.from_arrays(arrays) for key, arrays in partition_values(context, warped_garment).items()}
    options = model_factory.options(config)
    monitor = Monitor()
    with monitor.step(LOAD_STEP):
        tom = model_factory.wrapper(tom_model, CpVtonTom, batch_size=options.batch_size)
    with monitor.step("tryon_result"):
        results = dict(zip(warps, tom(list(warps.values())), strict=True))
    images = {key: result.tryon_photo for key, result in results.items()}
    metadata = {
        key: {
            "width": int(images[key].shape[1]),
            "height": int(images[key].shape[0]),
            "garment_share": round(float(result.composition_mask.mean()), 4),
            "preview": preview(side_by_side(result.warp.person, result.warp.warped_garment, result.tryon), "try-on"),
        }
        for key, result in results.items()
    }
    add_partition_metadata(context, io_manager, images, metadata)
    figures = StepFigures.of(monitor, len(images), tom_model)
    sizes = {key: warp.person_frame.photo_size for key, warp in warps.items()}
    return _result(context, images, figures, _model_checks(figures, config, tryon_findings(images, sizes, config)))


@dg.asset(
    **network_step(pairs, "png"),
    deps=PAIR_DEPS,
    check_specs=check_specs(
        "vitonhd_result",
        "The result is RGB uint8 at the person photo's size (ERROR otherwise) and not blank (WARN otherwise); "
        "key_match names the first of the three networks that is not cleanly matched (the ALIAS generator's "
        "card when all are).",
        model=True,
    ),
)
def vitonhd_result(
    context: dg.AssetExecutionContext,
    config: VitonHdConfig,
    vitonhd_seg_model: dict[str, Any],
    vitonhd_gmm_model: dict[str, Any],
    vitonhd_alias_model: dict[str, Any],
    model_factory: ModelFactoryResource,
    io_manager: dg.ResourceParam[dg.IOManager],
) -> dg.MaterializeResult:
    """VITON-HD's result (PNG at the person photo's size): the segmentation generator predicts the try-on
    parsing from the parse- and image-agnostic person and the garment, the GMM warps the garment, the ALIAS
    generator renders the person; the photo keeps its own pixels outside the synthesised region."""
    inputs = pair_inputs(context, io_manager)
    options = model_factory.options(config)
    for key, item in inputs.items():
        try:
            check_vitonhd_pose(item.keypoints, str(key))
        except PersonNotFoundError as error:
            raise dg.Failure(str(error), allow_retries=False) from error
    monitor = Monitor()
    with monitor.step(LOAD_STEP):
        seg = model_factory.wrapper(
            vitonhd_seg_model, VitonHdSeg, size=options.vitonhd_size, seed=options.seed, batch_size=options.batch_size
        )
        gmm = model_factory.wrapper(vitonhd_gmm_model, VitonHdGmm, batch_size=options.batch_size)
        alias = model_factory.wrapper(
            vitonhd_alias_model, VitonHdAlias, seed=options.seed, batch_size=options.batch_size
        )
    with monitor.step("vitonhd_result"):
        results = dict(zip(inputs, alias(gmm(seg(list(inputs.values())))), strict=True))
    images = {key: result.pasted_photo for key, result in results.items()}
    metadata = {}
    for key, result in results.items():
        segmentation = result.warp.segmentation
        metadata[key] = {
            "width": int(images[key].shape[1]),
            "height": int(images[key].shape[0]),
            "synthesised_share": round(float(result.synthesised.mean()), 4),
            "preview": preview(
                side_by_side(segmentation.image_agnostic, result.warp.warped_garment, result.tryon), "VITON-HD"
            ),
        }
    add_partition_metadata(context, io_manager, images, metadata)
    cards = (vitonhd_seg_model, vitonhd_gmm_model, vitonhd_alias_model)
    checked = next((card for card in cards if card_problems(card)), vitonhd_alias_model)
    figures = StepFigures.of(monitor, len(images), checked)
    sizes = {key: item.person.shape[:2] for key, item in inputs.items()}
    return _result(context, images, figures, _model_checks(figures, config, tryon_findings(images, sizes, config)))


TRYON_ASSETS = (
    pose,
    human_parsing,
    person_representation,
    garment_mask,
    warped_garment,
    tryon_result,
    vitonhd_result,
)
"""The per-image and try-on assets (with the photos of :mod:`.images` and the masks of :mod:`.refinement`)."""
