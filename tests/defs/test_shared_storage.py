"""The person side of the graph with the inbox and the store on fsspec's ``memory://`` (as on an object store):
the sensor adds the photos, one ranged run materialises photos, poses and parsings, and every stored file is
byte for byte what the same run stores with a local inbox and a local store. Checkpoints are synthesized (the
checkpoint folder stays local: the networks load from local files)."""

import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import fsspec
import numpy as np
import pytest
from PIL import Image
from upath import UPath

from mycloset_assets.defs.checkpoints import checkpoint_analysis, register_checkpoint_files
from mycloset_assets.defs.images import person_image
from mycloset_assets.defs.io_managers import OpenFormatIOManager
from mycloset_assets.defs.models import MODEL_ASSETS
from mycloset_assets.defs.partitions import InboxResource
from mycloset_assets.defs.resources import ModelFactoryResource
from mycloset_assets.defs.sensors import person_inbox_sensor
from mycloset_assets.defs.tryon import human_parsing, pose
from mycloset_assets.vision.images import load_image

pytestmark = pytest.mark.slow

DEMO = Path(__file__).parents[2] / "mycloset_assets" / "demo_data"
ZOO = {"openpose_body_coco18": "pose/body_pose_model.pth", "schp_lip20": "parsing/final.pth"}
ASSETS = [checkpoint_analysis, MODEL_ASSETS["pose"], MODEL_ASSETS["parsing"], person_image, pose, human_parsing]
SMALL = {"pose": {"pose_scales": [0.25], "max_side": 64}, "human_parsing": {"parsing_size": [64, 64], "max_side": 64}}
RANGE = ("dagster/asset_partition_range_start", "dagster/asset_partition_range_end")


@dataclass
class Materialised:
    store: UPath
    keys: list[str]
    photos: dict[str, bytes]
    result: dg.ExecuteInProcessResult


def photo_bytes(box: tuple[int, int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.open(DEMO / "astronaut.png").convert("RGB").crop(box).resize((48, 64)).save(buffer, format="PNG")
    return buffer.getvalue()


def materialise_person_side(root: UPath, zoo: Path) -> Materialised:
    """Drop two photos into ``root/inbox`` through fsspec, let the sensor add them, then run the person side for
    both in one ranged run with the store at ``root/store``."""
    photos = {"ann.png": photo_bytes((64, 0, 448, 512)), "bob.png": photo_bytes((0, 0, 512, 512))}
    for name, data in photos.items():
        with fsspec.open(str(root / "inbox" / "person" / name), "wb") as stream:
            stream.write(data)
    resources = {
        "model_factory": ModelFactoryResource(checkpoint_folder=str(zoo)),
        "inbox": InboxResource(root=str(root / "inbox")),
        "io_manager": OpenFormatIOManager(base_dir=str(root / "store")),
    }
    with dg.instance_for_test() as instance:
        tick = person_inbox_sensor(dg.build_sensor_context(instance=instance, resources=resources))
        for request in tick.dynamic_partitions_requests:
            instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
        keys = sorted(instance.get_dynamic_partitions("person_images"))
        assert sorted(r.partition_key for r in tick.run_requests) == keys and len(keys) == 2
        for key in register_checkpoint_files(instance, resources["model_factory"].files()):
            dg.materialize([checkpoint_analysis], instance=instance, resources=resources, partition_key=key)
        assert dg.materialize(ASSETS, selection=ASSETS[1:3], instance=instance, resources=resources).success
        result = dg.materialize(
            ASSETS,
            selection=[person_image, pose, human_parsing],
            instance=instance,
            resources=resources,
            run_config={"ops": {name: {"config": config} for name, config in SMALL.items()}},
            tags=dict(zip(RANGE, keys, strict=True)),
        )
    assert result.success
    return Materialised(root / "store", keys, photos, result)


def stored_files(store: UPath) -> dict[str, bytes]:
    """Every stored file by its path under ``store``, read by fsspec itself."""
    fs = store.fs
    base = store.path.rstrip("/")
    return {name[len(base) + 1 :]: fs.cat_file(name) for name in fs.find(base)}


@pytest.fixture(scope="module")
def zoo(tmp_path_factory: pytest.TempPathFactory, synth_file) -> Path:
    folder = tmp_path_factory.mktemp("shared") / "zoo"
    for entry, relative in ZOO.items():
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        (folder / relative).symlink_to(synth_file(entry))
    return folder


@pytest.fixture
def on_memory(memory_root: UPath, zoo: Path) -> Iterator[Materialised]:
    yield materialise_person_side(memory_root, zoo)


def test_the_person_side_runs_with_inbox_and_store_in_memory(on_memory, tmp_path, zoo):
    memory = on_memory
    files = stored_files(memory.store)
    expected = {
        f"{asset}/{key}.{suffix}"
        for key in memory.keys
        for asset, suffix in (("person_image", "png"), ("pose", "json"), ("human_parsing", "png"))
    } | {f"human_parsing/{key}.colour.png" for key in memory.keys}
    assert expected <= set(files)
    assert {name.split("/")[0] for name in files} == {
        "checkpoint_analysis",
        "pose_model.json",
        "parsing_model.json",
        "person_image",
        "pose",
        "human_parsing",
    }
    names = {key: name for name in memory.photos for key in memory.keys if key.startswith(Path(name).stem)}
    for key, name in names.items():
        stored = np.array(Image.open(io.BytesIO(files[f"person_image/{key}.png"])))
        np.testing.assert_array_equal(stored, load_image(memory.photos[name]).pixels)
        parsing = np.array(Image.open(io.BytesIO(files[f"human_parsing/{key}.png"])))
        assert parsing.shape == (64, 48) and parsing.dtype == np.uint8 and parsing.max() < 20
    for node in ("person_image", "pose", "human_parsing"):
        paths = {
            event.partition: event.metadata["path"].value
            for event in memory.result.asset_materializations_for_node(node)
        }
        suffix = "json" if node == "pose" else "png"
        assert paths == {key: f"{memory.store}/{node}/{key}.{suffix}" for key in memory.keys}

    local = materialise_person_side(UPath(tmp_path), zoo)
    assert local.keys == memory.keys
    assert stored_files(local.store).keys() == files.keys()
    results = ("person_image/", "pose/", "human_parsing/")
    assert {n: b for n, b in stored_files(local.store).items() if n.startswith(results)} == {
        n: b for n, b in files.items() if n.startswith(results)
    }
