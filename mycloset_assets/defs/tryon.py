"""The per-image and try-on assets of the CP-VTON pipeline: a thin shell over the engine's steps and wrappers.

::

    person_image -> pose ------------\\
    person_image -> human_parsing ----> person_representation --\\
                         gmm_model --/                            > warped_garment (GMM) -> tryon_result (TOM)
    garment_image -> garment_mask -> refined_garment_mask ------/           gmm_model --/         tom_model --/

(``refined_garment_mask``, ``clothing_mask``, ``restored_result`` and ``quality_report``, the optional steps'
assets, live in :mod:`.refinement`, :mod:`.restoration` and :mod:`.quality`.)

Per-image assets are partitioned by photo (``person_images`` / ``garment_images``), the try-on assets by pair
(``pairs``, keys ``person|garment``). Each network step reads the JSON card of its per-role model asset
(``pose_model``, ``parsing_model``, ``garment_mask_model``, ``gmm_model``, ``tom_model``) and loads exactly that
file through the model factory (once per process), so lineage runs from every result back to the photos and the
checkpoint files. The steps are the engine's (``engine.stages``: pose, parsing, garment masks) and the
wrappers' (``wrappers.tryon``: ``CpVtonGmm``, ``CpVtonTom``); nothing here computes on its own.

Pairs and photos: Dagster has no built-in partition mapping from ``person|garment`` to the person's or the
garment's partition, and custom ``PartitionMapping`` classes are deprecated (the daemon and the UI ignore
them). The pair assets therefore declare their photo-side parents with ``AllPartitionMapping`` (the edge is in
the asset graph, the UI and the backfill order) and read exactly the partitions a pair names through the
open-format IO manager (:func:`read_partitions`). The price: Dagster's own bookkeeping takes a pair to depend on
every photo of those parents (the nightly schedule maps a pair to its two photos itself).

Storage (open formats, by the IO manager): ``pose`` JSON (OpenPose-18 keypoints of everyone found and of the
person used, photo pixels), ``human_parsing`` PNG label ids (LIP-20 / CIHP-20), ``garment_mask`` PNG 0/255,
``person_representation`` NPZ (the photo, parsing and keypoints in the GMM's 256 x 192 frame and CP-VTON's 22
channels from them), ``warped_garment`` NPZ (what the GMM stage returns), ``tryon_result`` PNG at the person
photo's size. Previews (skeleton, parsing, mask, representation, warp, result) are on each partition's
materialisation.

VITON-HD is not in the graph: when the checkpoint folder completes VITON-HD, ``gmm_model`` chooses its GMM and
these assets stop with that reason (the engine and ``mycloset try-on --pipeline vitonhd`` run it).
"""

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import dagster as dg
import numpy as np
from pydantic import Field

from ..checkpoints import LoadedModel, get_entry
from ..engine.options import TryOnOptions
from ..engine.stages import (
    detect_poses,
    mask_garments,
    mask_wrapper,
    parse_people,
    parsing_names,
    parsing_settings,
    pose_wrapper,
)
from ..monitoring import Monitor
from ..vision.agnostic import CpVtonAgnostic, cpvton_agnostic
from ..vision.compositing import Letterbox, to_uint8_image
from ..vision.drawing import draw_grid, draw_mask, draw_openpose18, draw_parsing, draw_warp, side_by_side
from ..wrappers.parsing import parsing_wrapper
from ..wrappers.tryon import CPVTON_RADIUS, CpVtonGmm, CpVtonTom, CpVtonWarp, TryOnInput
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
    GPU_POOL,
    SINGLE_RUN,
    STORED,
    TRYON_GROUP,
    add_partition_metadata,
    garment_image,
    partition_output,
    partition_values,
    preview,
)
from .io_managers import OpenFormatStorage, read_value
from .partitions import garment_images, pairs, person_images, split_pair_key
from .refinement import refined_garment_mask
from .resources import ModelFactoryResource

CPVTON_GMM = "cpvton_gmm"
CPVTON_TOM = "cpvton_tom"


class RepresentationMismatchError(RuntimeError):
    """The GMM computed another person representation than the stored ``person_representation``."""


class PoseConfig(PoseCheckConfig):
    """How OpenPose runs (the engine's options) and the thresholds of the pose checks."""

    max_side: int | None = Field(default=1024, description="Longer side of the working copy; null: full size.")
    scales: list[float] | None = Field(default=None, description="OpenPose scales of box 368; null: the entry's.")


class ParsingConfig(ParsingCheckConfig):
    """How human parsing runs (the engine's options) and the thresholds of its checks."""

    max_side: int | None = Field(default=1024, description="Longer side of the working copy; null: full size.")
    size: list[int] | None = Field(default=None, description="SCHP input [height, width]; null: the entry's.")
    scales: list[float] | None = Field(default=None, description="Graphonomy scales; null: the reference's.")
    flip: bool | None = Field(default=None, description="Flip averaging; null: the family's default.")
    batch_size: int = Field(default=8, description="Photos per network forward.")


class GarmentMaskConfig(GarmentMaskCheckConfig):
    """How garment masks are made (the engine's options) and the thresholds of their checks."""

    max_side: int | None = Field(default=1024, description="Longer side of the working copy; null: full size.")
    size: list[int] | None = Field(default=None, description="U2Net input [height, width]; null: the entry's.")
    threshold: float = Field(default=0.5, description="Saliency level of the mask (U2Net / U2Netp).")
    largest_component: bool = Field(default=True, description="Keep only the largest connected region.")
    batch_size: int = Field(default=8, description="Photos per network forward.")


class WarpConfig(WarpCheckConfig):
    """How the GMM runs and the thresholds of its checks."""

    batch_size: int = Field(default=4, description="Pairs per network forward.")


class TryOnConfig(TryOnCheckConfig):
    """How the TOM runs and the thresholds of its checks."""

    batch_size: int = Field(default=4, description="Pairs per network forward.")


def _options(model_factory: ModelFactoryResource, **settings: Any) -> TryOnOptions:
    return TryOnOptions(device=model_factory.device, dtype=model_factory.dtype, **settings)


def _floats(values: Sequence[float] | None) -> tuple[float, ...] | None:
    return tuple(values) if values else None


def _pair(values: Sequence[int] | None) -> tuple[int, int] | None:
    return (int(values[0]), int(values[1])) if values else None


def _load(monitor: Monitor, model_factory: ModelFactoryResource, card: Mapping[str, Any]) -> LoadedModel:
    with monitor.step(LOAD_STEP):
        return model_factory.load_card(card)


def require_family(card: Mapping[str, Any], family: str, asset: str) -> None:
    """Stop ``asset`` with the reason when its model card is not of ``family`` (the CP-VTON networks)."""
    if card["family"] == family:
        return
    chosen = f", chosen because the folder completes {card['pipeline']}" if card["pipeline"] else ""
    raise dg.Failure(
        f"{asset} runs CP-VTON and needs a {family} checkpoint, but the {card['role']} model is {card['entry']} "
        f"({card['file']}{chosen}). The Dagster graph runs CP-VTON only: keep only CP-VTON's files in the "
        "checkpoint folder, or run VITON-HD with `mycloset try-on --pipeline vitonhd`",
        allow_retries=False,
    )


def read_partitions(storage: dg.IOManager, asset_key: dg.AssetKey, keys: Iterable[str]) -> dict[str, Any]:
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


def _every_partition(asset: dg.AssetsDefinition) -> dg.AssetDep:
    return dg.AssetDep(asset, partition_mapping=dg.AllPartitionMapping())


def _result(
    context: dg.AssetExecutionContext,
    values: Mapping[str, Any],
    figures: StepFigures,
    checks: list[dg.AssetCheckResult],
) -> dg.MaterializeResult:
    return dg.MaterializeResult(
        value=partition_output(context, values), metadata=figures.metadata(), check_results=checks
    )


# per person photo ------------------------------------------------------------------------------------------


@dg.asset(
    partitions_def=person_images,
    backfill_policy=SINGLE_RUN,
    pool=GPU_POOL,
    group_name=TRYON_GROUP,
    kinds={"pytorch", "json"},
    dagster_type=STORED,
    check_specs=check_specs(
        "pose",
        "The chosen person's keypoints are a finite 18 x 3 array (ERROR otherwise) with at least min_keypoints "
        "confident keypoints (WARN otherwise: nobody, or only part of a person, was found).",
        model=True,
    ),
)
def pose(
    context: dg.AssetExecutionContext,
    config: PoseConfig,
    person_image: Any,
    pose_model: dict[str, Any],
    model_factory: ModelFactoryResource,
    io_manager: dg.ResourceParam[dg.IOManager],
) -> dg.MaterializeResult:
    """OpenPose body keypoints of each person photo (JSON): ``people`` (P x 18 x 3, everyone found, OpenPose-18
    order, photo pixels) and ``keypoints`` (18 x 3, the best-scoring person, the one the try-on uses)."""
    photos = partition_values(context, person_image)
    options = _options(model_factory, max_side=config.max_side, pose_scales=_floats(config.scales))
    monitor = Monitor()
    loaded = _load(monitor, model_factory, pose_model)
    with monitor.step("pose"):
        wrapper = pose_wrapper(loaded, scales=options.pose_scales)
        found = detect_poses(wrapper, list(photos.values()), options.max_side)
    poses = {
        key: {
            "keypoint_order": "openpose18",
            "image_size": list(photos[key].shape[:2]),
            "keypoints": arrays["keypoints"],
            "people": arrays["people"],
        }
        for key, arrays in zip(photos, found, strict=True)
    }
    metadata = {
        key: {
            "people": len(item["people"]),
            "confident_keypoints": int((item["keypoints"][:, 2] >= config.min_keypoint_score).sum()),
            "preview": preview(draw_openpose18(photos[key], item["people"]), "skeleton"),
        }
        for key, item in poses.items()
    }
    add_partition_metadata(context, io_manager, poses, metadata)
    figures = StepFigures.of(monitor, len(photos), pose_model)
    return _result(
        context,
        poses,
        figures,
        [
            key_match_result(figures),
            runtime_result(figures, config),
            plausible_result(pose_findings(poses, config), figures, config),
        ],
    )


@dg.asset(
    partitions_def=person_images,
    backfill_policy=SINGLE_RUN,
    pool=GPU_POOL,
    group_name=TRYON_GROUP,
    kinds={"pytorch", "png"},
    dagster_type=STORED,
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
    Graphonomy; the names are in the metadata)."""
    photos = partition_values(context, person_image)
    entry = get_entry(parsing_model["entry"])
    options = _options(
        model_factory,
        max_side=config.max_side,
        parsing_size=_pair(config.size),
        parsing_scales=_floats(config.scales),
        parsing_flip=config.flip,
        batch_size=config.batch_size,
    )
    monitor = Monitor()
    loaded = _load(monitor, model_factory, parsing_model)
    with monitor.step("human_parsing"):
        wrapper = parsing_wrapper(loaded, **parsing_settings(entry.family, options), batch_size=options.batch_size)
        found = parse_people(wrapper, list(photos.values()), options.max_side)
    labels = {key: arrays["parsing"] for key, arrays in zip(photos, found, strict=True)}
    names = parsing_names(entry.labels)
    metadata = {}
    for key, label_map in labels.items():
        counts = np.bincount(label_map.ravel(), minlength=len(names))
        present = {names[i]: round(int(count) / label_map.size, 4) for i, count in enumerate(counts) if count}
        metadata[key] = {
            "label_names": ", ".join(names),
            "person_fraction": round(float(np.mean(label_map > 0)), 4),
            "classes": dg.MetadataValue.json(present),
            "preview": preview(draw_parsing(photos[key], label_map, names), "parsing"),
        }
    add_partition_metadata(context, io_manager, labels, metadata)
    figures = StepFigures.of(monitor, len(photos), parsing_model)
    sizes = {key: photo.shape[:2] for key, photo in photos.items()}
    return _result(
        context,
        labels,
        figures,
        [
            key_match_result(figures),
            runtime_result(figures, config),
            plausible_result(parsing_findings(labels, sizes, len(names), config), figures, config),
        ],
    )


def cpvton_representation(
    photo: np.ndarray, parsing: np.ndarray, keypoints: np.ndarray, frame: tuple[int, int]
) -> dict[str, np.ndarray]:
    """CP-VTON's person representation of one photo: the photo, its parsing and keypoints letterboxed into the
    GMM's ``frame`` as the GMM stage does it, the 22 channels computed from them (``shape``, ``head``,
    ``pose``), and ``photo_size`` to map results back."""
    letterbox = Letterbox.fit(photo.shape[:2], frame)
    person = letterbox.image_to_frame(photo)
    labels = letterbox.labels_to_frame(parsing)
    points = letterbox.points_to_frame(np.asarray(keypoints, dtype=np.float64))
    agnostic = cpvton_agnostic(person, labels, points, CPVTON_RADIUS)
    return {
        "person": person,
        "parsing": labels,
        "keypoints": points,
        "shape": agnostic.shape,
        "head": agnostic.head,
        "pose": agnostic.pose,
        "photo_size": np.array(photo.shape[:2], dtype=np.int64),
    }


def _agnostic(representation: Mapping[str, np.ndarray]) -> CpVtonAgnostic:
    return CpVtonAgnostic(representation["shape"], representation["head"], representation["pose"])


def representation_image(representation: Mapping[str, np.ndarray]) -> np.ndarray:
    """What the GMM sees of a person, as one RGB picture: body shape in grey, head in colour, keypoints in red."""
    agnostic = _agnostic(representation)
    canvas = np.repeat(to_uint8_image(agnostic.shape)[..., None], 3, axis=2)
    head = (agnostic.head > -1).any(axis=0)
    canvas[head] = to_uint8_image(agnostic.head)[head]
    return draw_mask(canvas, agnostic.pose_image > -1, color=(255, 0, 0), alpha=0.9)


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
    """CP-VTON's 22-channel person representation (body shape, head, keypoint maps) at the GMM's frame, with
    the frame-size photo, parsing and keypoints it was computed from (NPZ): what the GMM and the TOM read."""
    require_family(gmm_model, CPVTON_GMM, "person_representation")
    frame = _pair(get_entry(gmm_model["entry"]).preprocess["input_size"])
    assert frame is not None
    photos, poses, labels = (partition_values(context, value) for value in (person_image, pose, human_parsing))
    monitor = Monitor()
    with monitor.step("person_representation"):
        representations = {
            key: cpvton_representation(photo, labels[key], poses[key]["keypoints"], frame)
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
    partitions_def=garment_images,
    backfill_policy=SINGLE_RUN,
    pool=GPU_POOL,
    group_name=TRYON_GROUP,
    kinds={"pytorch", "png"},
    dagster_type=STORED,
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
    options = _options(
        model_factory,
        max_side=config.max_side,
        mask_size=_pair(config.size),
        mask_threshold=config.threshold,
        mask_largest_component=config.largest_component,
        batch_size=config.batch_size,
    )
    monitor = Monitor()
    loaded = _load(monitor, model_factory, garment_mask_model)
    with monitor.step("garment_mask"):
        wrapper = mask_wrapper(
            loaded, size=options.mask_size, threshold=options.mask_threshold, batch_size=options.batch_size
        )
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
    return _result(
        context,
        masks,
        figures,
        [
            key_match_result(figures),
            runtime_result(figures, config),
            plausible_result(mask_findings(masks, sizes, config), figures, config),
        ],
    )


# per pair --------------------------------------------------------------------------------------------------


def warp_arrays(warp: CpVtonWarp) -> dict[str, np.ndarray]:
    """What the GMM stage returned, less the person representation (stored as ``person_representation``)."""
    return {
        "person": warp.person,
        "garment": warp.garment,
        "garment_mask": warp.garment_mask,
        "theta": warp.theta,
        "grid": warp.grid,
        "warped_garment": warp.warped_garment,
        "warped_mask": warp.warped_mask,
        "garment_size": np.array(warp.garment_frame.photo_size, dtype=np.int64),
    }


def cpvton_warp(stored: Mapping[str, np.ndarray], representation: Mapping[str, np.ndarray]) -> CpVtonWarp:
    """The GMM stage's result rebuilt from a stored ``warped_garment`` and the person's representation."""
    frame = representation["parsing"].shape
    person_size = tuple(int(value) for value in representation["photo_size"])
    garment_size = tuple(int(value) for value in stored["garment_size"])
    return CpVtonWarp(
        person_frame=Letterbox.fit(person_size, frame),
        garment_frame=Letterbox.fit(garment_size, frame),
        person=stored["person"],
        agnostic=_agnostic(representation),
        garment=stored["garment"],
        garment_mask=stored["garment_mask"],
        theta=stored["theta"],
        grid=stored["grid"],
        warped_garment=stored["warped_garment"],
        warped_mask=stored["warped_mask"],
    )


def _halves(keys: Sequence[str]) -> dict[str, tuple[str, str]]:
    return {key: split_pair_key(key) for key in keys}


@dg.asset(
    partitions_def=pairs,
    backfill_policy=SINGLE_RUN,
    pool=GPU_POOL,
    group_name=TRYON_GROUP,
    kinds={"pytorch", "numpy"},
    deps=[
        _every_partition(person_representation),
        _every_partition(garment_image),
        _every_partition(refined_garment_mask),
    ],
    dagster_type=STORED,
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
    ``warped_mask``, ``grid``, ``theta``) and the frame-size photos it worked on."""
    require_family(gmm_model, CPVTON_GMM, "warped_garment")
    halves = _halves(context.partition_keys)
    representations = read_partitions(io_manager, person_representation.key, [p for p, _ in halves.values()])
    garments = read_partitions(io_manager, garment_image.key, [g for _, g in halves.values()])
    masks = read_partitions(io_manager, refined_garment_mask.key, [g for _, g in halves.values()])
    inputs = []
    for person, garment in halves.values():
        rep = representations[person]
        inputs.append(TryOnInput(rep["person"], rep["parsing"], rep["keypoints"], garments[garment], masks[garment]))
    monitor = Monitor()
    loaded = _load(monitor, model_factory, gmm_model)
    with monitor.step("warped_garment"):
        warps = dict(zip(halves, CpVtonGmm(loaded, batch_size=config.batch_size)(inputs), strict=True))
    for key, warp in warps.items():
        stored = representations[halves[key][0]]
        if not np.array_equal(warp.agnostic.array(), _agnostic(stored).array()):
            raise RepresentationMismatchError(f"{key}: the GMM's person representation differs from the stored one")
    values = {key: warp_arrays(warp) for key, warp in warps.items()}
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
    return _result(
        context,
        values,
        figures,
        [
            key_match_result(figures),
            runtime_result(figures, config),
            plausible_result(warp_findings(values, config), figures, config),
        ],
    )


@dg.asset(
    partitions_def=pairs,
    backfill_policy=SINGLE_RUN,
    pool=GPU_POOL,
    group_name=TRYON_GROUP,
    kinds={"pytorch", "png"},
    deps=[_every_partition(person_representation)],
    dagster_type=STORED,
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
    """The person wearing the garment (PNG at the person photo's size): CP-VTON's TOM renders the person from
    the representation and the warped garment and composes the two with its mask."""
    require_family(tom_model, CPVTON_TOM, "tryon_result")
    halves = _halves(context.partition_keys)
    stored = partition_values(context, warped_garment)
    representations = read_partitions(io_manager, person_representation.key, [p for p, _ in halves.values()])
    warps = {key: cpvton_warp(stored[key], representations[person]) for key, (person, _) in halves.items()}
    monitor = Monitor()
    loaded = _load(monitor, model_factory, tom_model)
    with monitor.step("tryon_result"):
        results = dict(zip(warps, CpVtonTom(loaded, batch_size=config.batch_size)(list(warps.values())), strict=True))
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
    sizes = {key: tuple(int(v) for v in representations[person]["photo_size"]) for key, (person, _) in halves.items()}
    return _result(
        context,
        images,
        figures,
        [
            key_match_result(figures),
            runtime_result(figures, config),
            plausible_result(tryon_findings(images, sizes, config), figures, config),
        ],
    )


TRYON_ASSETS = (pose, human_parsing, person_representation, garment_mask, warped_garment, tryon_result)
"""The per-image and try-on assets (with ``person_image`` and ``garment_image`` of :mod:`.images`)."""
