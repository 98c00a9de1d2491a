"""The photos as assets, and the conventions every per-image and try-on asset follows.

``person_image`` and ``garment_image`` decode the inbox file of each partition once (``vision.images.load_image``'s
rules: EXIF orientation applied, 16-bit, grayscale, palette and alpha converted to RGB; read by
``partitions.read_photo`` from a local folder or an fsspec URL) and store the pixels as PNG; everything
downstream reads these pixels, never the user's file again.

The conventions: a step covers one partition (a sensor's run) or many (a single-run backfill,
``BackfillPolicy.single_run()``, so each model is loaded once per batch). :func:`partition_values` turns an
input into a dict by partition key either way, and :func:`partition_output` hands the IO manager what it
expects back. Each partition's materialisation gets its own metadata (:func:`add_partition_metadata`):
the figures of that image, the path of its stored file and one preview the UI shows, 512 to 1024 pixels on
its longer side (:func:`preview`, a Markdown image with a JPEG inline: a tenth of a PNG's encoding time at that
size, and previews are only looked at; stored outputs are PNG).
"""

import base64
from collections.abc import Mapping
from typing import Any

import dagster as dg
import numpy as np
from upath import UPath

from ..monitoring import Monitor
from ..vision.drawing import preview_image
from ..vision.images import ImageError, LoadedImage, encode_jpeg
from .deployment import GPU_OP_TAGS, GPU_POOL
from .image_checks import (
    PhotoCheckConfig,
    StepFigures,
    check_specs,
    photo_findings,
    plausible_result,
    runtime_result,
)
from .io_managers import OpenFormatStorage, format_of, write_value
from .partitions import IMAGE_PARTITIONS, ImageKind, InboxImageNotFoundError, InboxResource, read_photo

SINGLE_RUN = dg.BackfillPolicy.single_run()
PREVIEW_MIN_SIDE = 512
PREVIEW_MAX_SIDE = 1024
PHOTOS_GROUP = "photos"
TRYON_GROUP = "tryon"


def _is_value(_: Any, value: Any) -> bool:
    return value is not None


STORED = dg.DagsterType(
    name="OpenFormatValue",
    type_check_fn=_is_value,
    description="A value the open-format IO manager stores as PNG, JSON or NPZ (a dict of them by partition key "
    "when a step covers several partitions).",
)


def network_step(partitions_def: dg.PartitionsDefinition, *kinds: str) -> dict[str, Any]:
    """The decorator keywords every asset that runs a network shares: its partitions as single-run backfills (each
    network loaded once per batch), the ``gpu`` pool and the queue/pod tags (``deployment.py``), the try-on
    group, and open-format storage; ``kinds`` besides ``pytorch``."""
    return {
        "partitions_def": partitions_def,
        "backfill_policy": SINGLE_RUN,
        "pool": GPU_POOL,
        "op_tags": GPU_OP_TAGS,
        "group_name": TRYON_GROUP,
        "kinds": {"pytorch", *kinds},
        "dagster_type": STORED,
    }


def partition_values(context: dg.AssetExecutionContext, value: Any) -> dict[str, Any]:
    """An input by partition key: the IO manager gives one value for a one-partition step, a dict for a range."""
    return {context.partition_key: value} if context.has_partition_key else dict(value)


def partition_output(context: dg.AssetExecutionContext, values: Mapping[str, Any]) -> Any:
    """What the IO manager stores for the step's partitions: the one value, or the dict by partition key."""
    return values[context.partition_key] if context.has_partition_key else dict(values)


def preview(image: np.ndarray, title: str) -> dg.MarkdownMetadataValue:
    """``image`` as a Markdown image with a JPEG inline (the UI shows it with the metadata), large enough to judge:
    its longer side brought within 512..1024 pixels (small pictures enlarged by pixel repetition)."""
    picture = preview_image(image, min_long_side=PREVIEW_MIN_SIDE, max_long_side=PREVIEW_MAX_SIDE)
    data = base64.b64encode(encode_jpeg(picture)).decode("ascii")
    return dg.MetadataValue.md(f"![{title}](data:image/jpeg;base64,{data})")


def stored_path(storage: dg.IOManager, asset_key: dg.AssetKey, partition: str, value: Any) -> str | None:
    """Where the open-format IO manager stores ``value`` for a partition (None under another IO manager)."""
    if not isinstance(storage, OpenFormatStorage):
        return None
    stem = storage.stem(asset_key, partition)
    return str(stem.with_name(f"{stem.name}.{format_of(value)}"))


def store_beside(
    storage: dg.IOManager, asset_key: dg.AssetKey, partition: str, suffix: str, image: np.ndarray
) -> str | None:
    """Write ``image`` as a PNG beside a partition's stored value (``<partition>.<suffix>.png``), for a person
    to open; its path, or None under another IO manager."""
    if not isinstance(storage, OpenFormatStorage):
        return None
    stem = storage.stem(asset_key, partition)
    return str(write_value(image, stem.with_name(f"{stem.name}.{suffix}")))


def add_partition_metadata(
    context: dg.AssetExecutionContext,
    storage: dg.IOManager,
    values: Mapping[str, Any],
    metadata: Mapping[str, Mapping[str, Any]],
) -> None:
    """Attach each partition's own metadata, with the path of its stored file, to its materialisation."""
    for key, value in values.items():
        path = stored_path(storage, context.asset_key, key, value)
        extra = {"path": dg.MetadataValue.path(path)} if path else {}
        context.add_asset_metadata({**metadata[key], **extra}, partition_key=key)


def _decode(inbox: InboxResource, kind: ImageKind, key: str) -> tuple[UPath, str, LoadedImage]:
    path = inbox.image_path(kind, key)
    return path, *read_photo(path)


def _photo_metadata(path: UPath, sha256: str, loaded: LoadedImage) -> dict[str, Any]:
    height, width = loaded.size
    return {
        "file": path.name,
        "sha256": sha256,
        "width": width,
        "height": height,
        "original_size": f"{loaded.original_size[1]} x {loaded.original_size[0]}",
        "orientation": loaded.orientation,
        "source_format": loaded.format or "",
        "conversions": "; ".join(loaded.conversions) or "none",
        "preview": preview(loaded.pixels, path.name),
    }


def _photo_asset(kind: ImageKind) -> dg.AssetsDefinition:
    name = f"{kind}_image"

    @dg.asset(
        name=name,
        partitions_def=IMAGE_PARTITIONS[kind],
        backfill_policy=SINGLE_RUN,
        group_name=PHOTOS_GROUP,
        kinds={"png"},
        dagster_type=STORED,
        check_specs=check_specs(
            name,
            "The photo decoded to RGB uint8 H x W x 3 (ERROR otherwise) at least min_side pixels on its shorter "
            "side (WARN otherwise).",
            model=False,
        ),
        description=f"A {kind} photo of inbox/{kind}/, decoded once (EXIF orientation applied, converted to "
        "RGB) and stored as PNG; its metadata names the file, its sha256 and what was converted.",
    )
    def photo(
        context: dg.AssetExecutionContext,
        config: PhotoCheckConfig,
        inbox: InboxResource,
        io_manager: dg.ResourceParam[dg.IOManager],
    ) -> dg.MaterializeResult:
        monitor = Monitor()
        try:
            with monitor.step(name):
                decoded = {key: _decode(inbox, kind, key) for key in context.partition_keys}
        except (InboxImageNotFoundError, ImageError, OSError) as error:
            raise dg.Failure(f"{name}: {error}", allow_retries=False) from error
        pixels = {key: loaded.pixels for key, (_, _, loaded) in decoded.items()}
        figures = StepFigures.of(monitor, len(pixels))
        add_partition_metadata(
            context, io_manager, pixels, {key: _photo_metadata(*item) for key, item in decoded.items()}
        )
        return dg.MaterializeResult(
            value=partition_output(context, pixels),
            metadata=figures.metadata(),
            check_results=[
                runtime_result(figures, config),
                plausible_result(photo_findings(pixels, config), figures, config),
            ],
        )

    return photo


person_image = _photo_asset("person")
garment_image = _photo_asset("garment")
