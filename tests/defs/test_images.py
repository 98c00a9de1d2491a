"""The photo assets on a real (ephemeral) instance: inbox files -> PNG, per-partition metadata, previews, checks."""

import base64
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import pytest
from PIL import Image

from mycloset_assets.defs.image_checks import PLAUSIBLE_CHECK, RUNTIME_CHECK
from mycloset_assets.defs.images import garment_image, person_image, preview
from mycloset_assets.defs.io_managers import OpenFormatIOManager
from mycloset_assets.defs.partitions import InboxResource, image_partition_key
from mycloset_assets.vision.drawing import side_by_side
from mycloset_assets.vision.images import load_image

DEMO = Path(__file__).parents[2] / "mycloset_assets" / "demo_data"
RANGE = ("dagster/asset_partition_range_start", "dagster/asset_partition_range_end")
STEP_FIGURES = {"items", "seconds", "seconds_per_item", "cpu_seconds", "peak_rss_mb"}
PHOTO_METADATA = {"file", "sha256", "width", "height", "conversions", "orientation", "preview", "path"}
EXIF_ORIENTATION = 0x0112


@dataclass
class Photos:
    inbox: InboxResource
    store: Path
    instance: dg.DagsterInstance
    persons: list[str]
    garment: str

    @property
    def resources(self) -> dict[str, Any]:
        return {"inbox": self.inbox, "io_manager": OpenFormatIOManager(base_dir=str(self.store))}


def decode_preview(value: dg.MetadataValue) -> np.ndarray:
    """The JPEG a preview's Markdown embeds."""
    text = value.value
    assert text.startswith("![") and "](data:image/jpeg;base64," in text
    data = base64.b64decode(text.split("base64,", 1)[1].rstrip(")"))
    return np.array(Image.open(io.BytesIO(data)))


@pytest.fixture
def photos(tmp_path: Path) -> Iterator[Photos]:
    inbox = InboxResource(root=str(tmp_path / "inbox"))
    for kind in ("person", "garment"):
        inbox.folder(kind).mkdir(parents=True)
    astronaut = Image.open(DEMO / "astronaut.png").convert("RGB")
    astronaut.resize((48, 64)).save(inbox.folder("person") / "ann.png")
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = 6
    astronaut.resize((64, 48)).save(inbox.folder("person") / "Bob Side.jpg", exif=exif)
    Image.open(DEMO / "tshirt.png").convert("RGBA").resize((48, 64)).save(inbox.folder("garment") / "shirt.png")
    with dg.instance_for_test() as instance:
        persons = [image_partition_key(path) for path in sorted(inbox.folder("person").iterdir())]
        garment = image_partition_key(inbox.folder("garment") / "shirt.png")
        instance.add_dynamic_partitions("person_images", persons)
        instance.add_dynamic_partitions("garment_images", [garment])
        yield Photos(inbox, tmp_path / "store", instance, persons, garment)


def checks_of(result: dg.ExecuteInProcessResult) -> dict[tuple[str, str], dg.AssetCheckEvaluation]:
    return {(item.asset_key.to_user_string(), item.check_name): item for item in result.get_asset_check_evaluations()}


def test_a_batch_of_photos_is_decoded_once_and_stored_as_png(photos):
    result = dg.materialize(
        [person_image],
        instance=photos.instance,
        resources=photos.resources,
        tags=dict(zip(RANGE, (photos.persons[0], photos.persons[-1]), strict=True)),
    )
    assert result.success
    materialisations = {item.partition: item for item in result.asset_materializations_for_node("person_image")}
    assert set(materialisations) == set(photos.persons)
    for key, materialisation in materialisations.items():
        metadata = materialisation.metadata
        assert set(metadata) >= PHOTO_METADATA | STEP_FIGURES
        source = photos.inbox.image_path("person", key)
        stored = Path(metadata["path"].value)
        assert stored == photos.store / "person_image" / f"{key}.png" and stored.is_file()
        pixels = np.array(Image.open(stored))
        assert np.array_equal(pixels, load_image(source).pixels)
        assert (metadata["width"].value, metadata["height"].value) == (48, 64)
        assert decode_preview(metadata["preview"]).shape == (512, 384, 3), "enlarged 8 times, pixel for pixel"
        assert metadata["items"].value == 2
    rotated = materialisations[photos.persons[0]].metadata
    assert rotated["file"].value == "Bob Side.jpg" and rotated["orientation"].value == 6
    assert "exif-orientation 6" in rotated["conversions"].value
    checks = checks_of(result)
    assert set(checks) == {("person_image", RUNTIME_CHECK), ("person_image", PLAUSIBLE_CHECK)}
    for evaluation in checks.values():
        assert evaluation.passed, evaluation.description
        assert set(evaluation.metadata) >= STEP_FIGURES
    assert checks[("person_image", RUNTIME_CHECK)].severity == dg.AssetCheckSeverity.WARN


def test_one_photo_runs_alone_and_converts_alpha_on_white(photos):
    result = dg.materialize(
        [garment_image], instance=photos.instance, resources=photos.resources, partition_key=photos.garment
    )
    assert result.success
    (materialisation,) = result.asset_materializations_for_node("garment_image")
    assert "RGBA composited on white" in materialisation.metadata["conversions"].value
    assert np.array(Image.open(photos.store / "garment_image" / f"{photos.garment}.png")).shape == (64, 48, 3)


def test_a_small_photo_warns_and_a_missing_file_fails_with_the_reason(photos):
    config = {"ops": {"person_image": {"config": {"min_side": 60}}}}
    result = dg.materialize(
        [person_image],
        instance=photos.instance,
        resources=photos.resources,
        partition_key=photos.persons[1],
        run_config=config,
    )
    plausible = checks_of(result)[("person_image", PLAUSIBLE_CHECK)]
    assert not plausible.passed and plausible.severity == dg.AssetCheckSeverity.WARN
    assert "48 x 64 pixels, under 60" in plausible.description
    photos.inbox.image_path("person", photos.persons[1]).unlink()
    failed = dg.materialize(
        [person_image],
        instance=photos.instance,
        resources=photos.resources,
        partition_key=photos.persons[1],
        raise_on_error=False,
    )
    assert not failed.success
    (failure,) = [event for event in failed.all_events if event.is_step_failure]
    assert "no file in" in failure.step_failure_data.error.message


def test_previews_are_pngs_large_enough_to_judge():
    image = np.zeros((400, 300, 3), dtype=np.uint8)
    assert decode_preview(preview(image, "black")).shape == (800, 600, 3), "enlarged twice, pixel for pixel"
    assert decode_preview(preview(image[:64, :48], "small")).shape == (512, 384, 3)
    assert decode_preview(preview(np.zeros((3000, 1000, 3), dtype=np.uint8), "large")).shape == (1024, 341, 3)
    joined = side_by_side(image[:100, :50], image[:50, :50])
    assert joined.shape == (100, 50 + 4 + 100, 3)
