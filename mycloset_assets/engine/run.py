"""``run_virtual_try_on``: photos in, a :class:`TryOnResult` out, each step measured and cached by content.

A run decodes the photos (any source ``load_image`` takes), picks the pipeline and its checkpoints (failing
before any work when one is missing), then runs pose, parsing and garment masks per distinct photo, MobileSAM
mask refinement, the try-on networks per distinct pair, GFPGAN face restoration and the quality figures (the
optional steps of :mod:`.optional_steps`: each can be switched off in the options and runs only when its
checkpoint is present; the result records which ran and why the others did not). Each stage looks its inputs
up in the content cache first: the key is the sha256 of the decoded pixels (or of the upstream arrays), the
model files' sha256s and the options the stage depends on. A batch call sends every photo (and every pair) of
a stage through the network together.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..checkpoints import get_entry
from ..checkpoints.pipelines import partner_roles, pose_estimator_of
from ..engine_cache import ContentCache, array_digest, content_key, default_cache, freeze
from ..monitoring import Monitor
from ..vision.images import ImageSource, LoadedImage, load_image
from ..wrappers.parsing import parsing_wrapper
from ..wrappers.tryon import CpVtonGmm, CpVtonTom, TryOnInput, VitonHdAlias, VitonHdGmm, VitonHdSeg
from . import optional_steps
from .context import CACHE_VERSION, Arrays, Item, Photo, RunContext, count
from .models import Checkpoint, ModelPool, ModelsArgument, default_pool, model_set, provenance
from .options import TryOnOptions
from .quality import quality_report
from .result import ModelInfo, TryOnResult
from .stages import (
    EXTRA_PREFIX,
    TRYON_ARRAYS,
    check_vitonhd_pose,
    cpvton_arrays,
    detect_poses,
    mask_garments,
    mask_wrapper,
    parse_people,
    parsing_names,
    parsing_settings,
    pose_estimator,
    vitonhd_arrays,
)

ImageInput = ImageSource | LoadedImage
TRYON_ROLES = {"cpvton": ("gmm", "tom"), "vitonhd": ("seg", "gmm", "alias")}


@dataclass(frozen=True)
class TryOnRequest:
    """One person and one garment, optionally with the pose (OpenPose-18 18 x 3 in person pixels), parsing
    (H x W LIP-20 ids) or garment mask (Hg x Wg; bool, uint8 0/255 or float in [0, 1]) already known: the
    engine then skips that step (and does not need its model)."""

    person: ImageInput
    garment: ImageInput
    keypoints: np.ndarray | None = None
    parsing: np.ndarray | None = None
    garment_mask: np.ndarray | None = None


def _decode(source: ImageInput, what: str) -> Photo:
    loaded = source if isinstance(source, LoadedImage) else load_image(source)
    name = str(source) if isinstance(source, str) or hasattr(source, "__fspath__") else f"the {what} photo"
    return Photo(loaded.pixels, array_digest(loaded.pixels), name)


def _given_keypoints(keypoints: np.ndarray) -> Arrays:
    array = np.asarray(keypoints, dtype=np.float64)
    if array.shape != (18, 3):
        raise ValueError(f"keypoints must be one person's OpenPose-18 18 x 3 (x, y, score), got {array.shape}")
    return freeze({"people": array[None], "keypoints": array})


def _given_parsing(parsing: np.ndarray, photo: Photo) -> Arrays:
    array = np.asarray(parsing)
    if array.shape != photo.image.shape[:2] or not np.issubdtype(array.dtype, np.integer):
        raise ValueError(
            f"parsing must be integer label ids of the person photo's size {photo.image.shape[:2]}, "
            f"got {array.dtype} {array.shape}"
        )
    if array.size and (array.min() < 0 or array.max() > 255):
        raise ValueError(f"parsing label ids must lie in 0..255, got {array.min()}..{array.max()}")
    return freeze({"parsing": array.astype(np.uint8)})


def _given_mask(mask: np.ndarray, photo: Photo) -> Arrays:
    array = np.asarray(mask)
    if array.shape != photo.image.shape[:2]:
        raise ValueError(f"garment_mask {array.shape} must be the garment photo's size {photo.image.shape[:2]}")
    if array.dtype == np.uint8:
        array = array >= 128
    elif np.issubdtype(array.dtype, np.floating):
        array = array >= 0.5
    elif array.dtype != bool:
        raise ValueError(f"garment_mask must be bool, uint8 (0/255) or float in [0, 1], got {array.dtype}")
    return freeze({"garment_mask": array})


def _request(pair: TryOnRequest | tuple[ImageInput, ImageInput]) -> TryOnRequest:
    if isinstance(pair, TryOnRequest):
        return pair
    if isinstance(pair, tuple) and len(pair) == 2:
        return TryOnRequest(*pair)
    raise TypeError(f"a batch takes (person, garment) pairs or TryOnRequest items, got {type(pair).__name__}")


def _pose(run: RunContext, items: list[Item]) -> None:
    photos = {item.person.digest: item.person for item in items if item.keypoints is None}
    if not photos:
        return
    partners = [role for role in partner_roles(run.chosen["pose"].entry) if role in run.chosen]

    def compute(images: list[np.ndarray]) -> list[Arrays]:
        detector = run.load("pose_detector") if partners else None
        estimator = pose_estimator(run.load("pose"), detector, scales=run.options.pose_scales)
        return detect_poses(estimator, images, run.options.max_side)

    results, hits = run.photo_stage("pose", photos, run.options.pose_config(), compute, partners)
    for item in items:
        if item.keypoints is None:
            item.keypoints = results[item.person.digest]
            item.cached += ["pose"] * (item.person.digest in hits)
            item.pose_estimator = pose_estimator_of(run.chosen["pose"].entry)
            if len(item.keypoints.get("landmarks", ())):
                item.extras["pose_landmarks"] = item.keypoints["landmarks"]


def _parsing(run: RunContext, items: list[Item]) -> None:
    photos = {item.person.digest: item.person for item in items if item.parsing is None}
    if not photos:
        return
    family = get_entry(run.chosen["parsing"].entry).family
    settings = {**parsing_settings(family, run.options), "batch_size": run.options.batch_size}

    def compute(images: list[np.ndarray]) -> list[Arrays]:
        return parse_people(run.wrapper("parsing", parsing_wrapper, **settings), images, run.options.max_side)

    results, hits = run.photo_stage("parsing", photos, run.options.parsing_config(), compute)
    for item in items:
        if item.parsing is None:
            item.parsing = results[item.person.digest]
            item.cached += ["parsing"] * (item.person.digest in hits)


def _garment_masks(run: RunContext, items: list[Item]) -> None:
    photos = {item.garment.digest: item.garment for item in items if item.garment_mask is None}
    if not photos:
        return
    options = run.options

    def compute(images: list[np.ndarray]) -> list[Arrays]:
        wrapper = run.wrapper(
            "garment_mask", mask_wrapper, size=options.mask_size, threshold=options.mask_threshold,
            batch_size=options.batch_size,
        )  # fmt: skip
        return mask_garments(wrapper, images, options.max_side, options.mask_largest_component)

    results, hits = run.photo_stage("garment_mask", photos, options.mask_config(), compute)
    for item in items:
        if item.garment_mask is None:
            item.garment_mask = results[item.garment.digest]
            item.cached += ["garment_mask"] * (item.garment.digest in hits)


def _tryon_key(run: RunContext, pipeline: str, item: Item) -> str:
    assert item.keypoints is not None and item.parsing is not None and item.garment_mask is not None
    return content_key(
        stage="tryon",
        version=CACHE_VERSION,
        pipeline=pipeline,
        person=item.person.digest,
        garment=item.garment.digest,
        keypoints=array_digest(item.keypoints["keypoints"]),
        parsing=array_digest(item.parsing["parsing"]),
        garment_mask=array_digest(item.garment_mask["garment_mask"]),
        models={role: run.chosen[role].sha256 for role in TRYON_ROLES[pipeline]},
        config=run.options.tryon_config(pipeline),
    )


def _inputs(items: list[Item]) -> list[TryOnInput]:
    inputs = []
    for item in items:
        assert item.keypoints is not None and item.parsing is not None and item.garment_mask is not None
        inputs.append(
            TryOnInput(
                item.person.image,
                item.parsing["parsing"],
                item.keypoints["keypoints"],
                item.garment.image,
                item.garment_mask["garment_mask"],
            )
        )
    return inputs


def _cpvton(run: RunContext, items: list[Item]) -> list[Arrays]:
    batch = run.options.batch_size
    with run.step("gmm", count(len(items), "pair")):
        warps = run.wrapper("gmm", CpVtonGmm, batch_size=batch)(_inputs(items))
    with run.step("tom"):
        results = run.wrapper("tom", CpVtonTom, batch_size=batch)(warps)
    return [cpvton_arrays(result) for result in results]


def _vitonhd(run: RunContext, items: list[Item]) -> list[Arrays]:
    options = run.options
    for item in items:
        assert item.keypoints is not None
        check_vitonhd_pose(item.keypoints["keypoints"], item.person.name)
    with run.step("seg", count(len(items), "pair")):
        seg = run.wrapper(
            "seg", VitonHdSeg, size=options.vitonhd_size, seed=options.seed, batch_size=options.batch_size
        )
        segmentations = seg(_inputs(items))
    with run.step("gmm"):
        warps = run.wrapper("gmm", VitonHdGmm, batch_size=options.batch_size)(segmentations)
    with run.step("alias"):
        results = run.wrapper("alias", VitonHdAlias, seed=options.seed, batch_size=options.batch_size)(warps)
    return [vitonhd_arrays(result) for result in results]


def _tryon(run: RunContext, pipeline: str, items: list[Item]) -> None:
    keys = [_tryon_key(run, pipeline, item) for item in items]
    found, missing = run.lookup(keys)
    if missing:
        first = {key: item for key, item in zip(reversed(keys), reversed(items), strict=True)}
        compute = _cpvton if pipeline == "cpvton" else _vitonhd
        computed = compute(run, [first[key] for key in missing])
        found.update({key: run.store(key, arrays) for key, arrays in zip(missing, computed, strict=True)})
    for key, item in zip(keys, items, strict=True):
        item.tryon = found[key]
        item.cached += ["tryon"] * (key not in missing)


def _notes(item: Item, pipeline_roles: dict[str, Checkpoint]) -> tuple[str, ...]:
    notes = []
    assert item.keypoints is not None and item.garment_mask is not None
    if "pose" in pipeline_roles and not len(item.keypoints["people"]):
        notes.append(f"no person was found in {item.person.name}: the try-on ran without keypoints")
    if not item.garment_mask["garment_mask"].any():
        notes.append(f"the garment mask of {item.garment.name} is empty: no garment was found")
    return tuple(notes)


def _result(run: RunContext, pipeline: str, item: Item, infos: dict[str, ModelInfo]) -> TryOnResult:
    assert item.keypoints is not None and item.parsing is not None
    assert item.garment_mask is not None and item.tryon is not None
    parsing_entry = run.chosen.get("parsing")
    labels = get_entry(parsing_entry.entry).labels if parsing_entry is not None else None
    extras = {name[len(EXTRA_PREFIX) :]: value for name, value in item.tryon.items() if name.startswith(EXTRA_PREFIX)}
    extras.update(item.extras)
    tryon = {name: item.tryon[name] for name in TRYON_ARRAYS} | {"tryon": item.result_image()}
    report = None
    if item.quality is not None:
        report = quality_report(
            item.quality,
            pipeline=pipeline,
            models={role: info.to_dict() for role, info in infos.items()},
            steps=[step.to_report() for step in run.steps],
            optional_steps=item.records,
        )
    return TryOnResult(
        pipeline=pipeline,
        person=item.person.image,
        garment=item.garment.image,
        keypoints=item.keypoints["keypoints"],
        people=item.keypoints["people"],
        parsing=item.parsing["parsing"],
        parsing_names=parsing_names(labels),
        garment_mask=item.garment_mask["garment_mask"],
        **tryon,
        extras=extras,
        models=dict(infos),
        skipped=dict(run.models.skipped),
        steps=run.steps,
        cached=tuple(item.cached),
        notes=_notes(item, run.chosen),
        optional_steps=dict(item.records),
        quality=report,
        pose_estimator=item.pose_estimator,
    )


def run_virtual_try_on_batch(
    pairs: Sequence[TryOnRequest | tuple[ImageInput, ImageInput]],
    *,
    pipeline: str | None = None,
    models: ModelsArgument = None,
    options: TryOnOptions | None = None,
    cache: ContentCache | bool = True,
    monitor: Monitor | None = None,
    progress: Callable[[str], None] | None = None,
    pool: ModelPool | None = None,
) -> list[TryOnResult]:
    """Try every (person, garment) pair on, sending each stage's photos through the networks together.

    ``pipeline``: ``"cpvton"``, ``"vitonhd"`` or None for the best one whose checkpoints are all present.
    ``models``: a checkpoint folder (files under any names), a :class:`ModelSet`, a ``ModelManager`` or
    None for the model manager's active versions. ``cache``: True for the process-wide memory cache, False
    for none, or a :class:`ContentCache` (e.g. with a folder). ``monitor`` measures the steps (thresholds,
    JSON lines); ``progress`` is called with each step's name as it starts; ``pool`` holds the loaded
    networks (the process-wide one by default). Results are in the order of ``pairs``; their ``steps`` are
    the batch's. Raises ``MissingModelsError`` before any work when a role has no checkpoint.
    """
    requests = [_request(pair) for pair in pairs]
    if not requests:
        return []
    store = default_cache() if cache is True else cache if isinstance(cache, ContentCache) else None
    run = RunContext(
        options if options is not None else TryOnOptions(),
        store,
        monitor if monitor is not None else Monitor(),
        progress,
        pool if pool is not None else default_pool(),
    )
    with run.step("inputs", count(len(requests), "pair")):
        items = []
        for request in requests:
            person, garment = _decode(request.person, "person"), _decode(request.garment, "garment")
            items.append(
                Item(
                    person,
                    garment,
                    keypoints=_given_keypoints(request.keypoints) if request.keypoints is not None else None,
                    parsing=_given_parsing(request.parsing, person) if request.parsing is not None else None,
                    garment_mask=_given_mask(request.garment_mask, garment)
                    if request.garment_mask is not None
                    else None,
                    given_mask=request.garment_mask is not None,
                )
            )
    given = [
        role
        for role, attribute in (("pose", "keypoints"), ("parsing", "parsing"), ("garment_mask", "garment_mask"))
        if all(getattr(item, attribute) is not None for item in items)
    ]
    with run.step("models"):
        run.models = model_set(models)
        chosen_pipeline, run.chosen = run.models.select(pipeline, given, run.options.narrowed_roles())
        run.chosen.update(run.models.optional(optional_steps.wanted_roles(run.options)))
        infos = {role: ModelInfo(c.entry, c.sha256, c.shown, provenance(c)) for role, c in run.chosen.items()}
    _pose(run, items)
    _parsing(run, items)
    _garment_masks(run, items)
    optional_steps.person_mask(run, items)
    optional_steps.mask_refinement(run, items)
    _tryon(run, chosen_pipeline, items)
    optional_steps.face_restoration(run, items)
    optional_steps.quality(run, items)
    return [_result(run, chosen_pipeline, item, infos) for item in items]


def run_virtual_try_on(
    person: ImageInput,
    garment: ImageInput,
    *,
    pipeline: str | None = None,
    models: ModelsArgument = None,
    options: TryOnOptions | None = None,
    cache: ContentCache | bool = True,
    keypoints: np.ndarray | None = None,
    parsing: np.ndarray | None = None,
    garment_mask: np.ndarray | None = None,
    monitor: Monitor | None = None,
    progress: Callable[[str], None] | None = None,
    pool: ModelPool | None = None,
) -> TryOnResult:
    """Try ``garment`` on ``person`` (paths, encoded bytes, PIL images, arrays or ``LoadedImage`` s).

    ``keypoints`` / ``parsing`` / ``garment_mask`` skip the step that would compute them (see
    :class:`TryOnRequest`). The other arguments are :func:`run_virtual_try_on_batch`'s.
    """
    request = TryOnRequest(person, garment, keypoints, parsing, garment_mask)
    return run_virtual_try_on_batch(
        [request],
        pipeline=pipeline,
        models=models,
        options=options,
        cache=cache,
        monitor=monitor,
        progress=progress,
        pool=pool,
    )[0]
