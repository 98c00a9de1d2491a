"""The inbox sensors on a temporary inbox (a local folder, or fsspec's ``memory://``) and a real (temporary)
Dagster instance."""

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import fsspec
import numpy as np
import pytest
from upath import UPath

from mycloset_assets.defs.partitions import InboxResource, image_partition_key, pair_key, person_images
from mycloset_assets.defs.resources import ModelFactoryResource
from mycloset_assets.defs.sensors import (
    GARMENT_READY,
    INBOX_FILE_TAG,
    PERSON_ASSETS,
    PERSON_READY,
    build_image_sensor,
    garment_inbox_sensor,
    pairs_sensor,
    person_inbox_sensor,
    read_pairs_csv,
)
from mycloset_assets.vision.images import encode_png, save_png


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.DagsterInstance.ephemeral() as instance:
        yield instance


@pytest.fixture
def inbox(tmp_path: Path) -> InboxResource:
    inbox = InboxResource(root=str(tmp_path / "inbox"), max_files_per_tick=16)
    inbox.folder("person").mkdir(parents=True)
    inbox.folder("garment").mkdir(parents=True)
    return inbox


def photo(path: Path, seed: int) -> Path:
    """A small distinct PNG."""
    pixels = np.random.default_rng(seed).integers(0, 256, size=(12, 8, 3), dtype=np.uint8)
    return save_png(pixels, path)


def tick(
    sensor: dg.SensorDefinition,
    instance: dg.DagsterInstance,
    inbox: InboxResource,
    cursor: str | None,
    factory: ModelFactoryResource | None = None,
) -> dg.SensorResult:
    """Evaluate one tick and apply its partition requests to the instance, as the daemon does."""
    resources: dict[str, object] = {"inbox": inbox}
    if factory is not None:
        resources["model_factory"] = factory
    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources)
    result = sensor(context)
    for request in result.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    return result


def snapshot(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


def test_new_photos_become_partitions_and_runs_keyed_by_sha256(instance, inbox):
    folder = inbox.folder("person")
    paths = [photo(folder / "ann.png", 1), photo(folder / "Bob Jones.png", 2)]
    result = tick(person_inbox_sensor, instance, inbox, None)
    digests = [hashlib.sha256(path.read_bytes()).hexdigest() for path in paths]
    assert sorted(r.run_key for r in result.run_requests) == sorted(digests)
    assert {r.partition_key for r in result.run_requests} == {image_partition_key(p) for p in paths}
    names = ("person_image", "pose", "human_parsing", "person_representation", "clothing_mask")
    chain = [dg.AssetKey(name) for name in names]
    assert all(r.asset_selection == chain for r in result.run_requests)
    assert set(instance.get_dynamic_partitions("person_images")) == {image_partition_key(p) for p in paths}
    assert instance.get_dynamic_partitions("garment_images") == []
    assert json.loads(result.cursor)["files"].keys() == {"ann.png", "Bob Jones.png"}

    again = tick(person_inbox_sensor, instance, inbox, result.cursor)
    assert again.run_requests == [] and "no new photos" in again.skip_reason.skip_message


def test_duplicate_drop_runs_once(instance, inbox):
    folder = inbox.folder("garment")
    original = photo(folder / "shirt.png", 3)
    (folder / "shirt copy.png").write_bytes(original.read_bytes())
    first = tick(garment_inbox_sensor, instance, inbox, None)
    assert len(first.run_requests) == 1
    assert instance.get_dynamic_partitions("garment_images") == [first.run_requests[0].partition_key]

    (folder / "shirt (2).png").write_bytes(original.read_bytes())
    second = tick(garment_inbox_sensor, instance, inbox, first.cursor)
    assert second.run_requests == []
    assert "shirt (2).png = shirt-" in second.skip_reason.skip_message
    assert len(instance.get_dynamic_partitions("garment_images")) == 1


def test_corrupt_and_foreign_files_are_skipped_with_the_reason_and_left_alone(instance, inbox, tmp_path):
    folder = inbox.folder("person")
    (folder / "broken.png").write_bytes(photo(tmp_path / "whole.png", 1).read_bytes()[:40])
    (folder / "notes.txt").write_text("not a photo")
    (folder / ".ann.png.part").write_bytes(b"a copy in progress")
    before = snapshot(folder)

    skipped = tick(person_inbox_sensor, instance, inbox, None)
    message = skipped.skip_reason.skip_message
    assert skipped.run_requests == [] and "2 unreadable files skipped" in message
    assert "broken.png" in message and "truncated" in message
    assert "notes.txt" in message and "not an image" in message
    assert instance.get_dynamic_partitions("person_images") == []
    assert snapshot(folder) == before

    good = photo(folder / "ann.png", 1)
    later = tick(person_inbox_sensor, instance, inbox, skipped.cursor)
    assert [r.partition_key for r in later.run_requests] == [image_partition_key(good)]
    assert json.loads(later.cursor)["files"].keys() == {"ann.png", "broken.png", "notes.txt"}
    assert snapshot(folder) == {**before, "ann.png": good.read_bytes()}


def test_a_photo_no_network_can_use_is_skipped_with_the_rule_and_not_processed(instance, inbox):
    folder = inbox.folder("person")
    save_png(np.zeros((10, 20000, 3), dtype=np.uint8), folder / "strip.png")
    skipped = tick(person_inbox_sensor, instance, inbox, None)
    message = skipped.skip_reason.skip_message
    assert skipped.run_requests == [] and "1 unreadable files skipped" in message
    assert "strip.png: " in message and "20000 x 10 pixels is 2000.0 times longer than wide" in message
    assert instance.get_dynamic_partitions("person_images") == []


def test_a_repaired_file_is_looked_at_again(instance, inbox):
    folder = inbox.folder("person")
    (folder / "ann.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    first = tick(person_inbox_sensor, instance, inbox, None)
    assert first.run_requests == [] and "ann.png" in first.skip_reason.skip_message
    repaired = photo(folder / "ann.png", 1)
    second = tick(person_inbox_sensor, instance, inbox, first.cursor)
    assert [r.partition_key for r in second.run_requests] == [image_partition_key(repaired)]


def test_work_per_tick_is_capped_and_the_rest_waits(instance, inbox):
    folder = inbox.folder("person")
    for index in range(5):
        photo(folder / f"p{index}.png", index)
    capped = InboxResource(root=inbox.root, max_files_per_tick=2)
    cursor = None
    counts = []
    for _ in range(4):
        result = tick(person_inbox_sensor, instance, capped, cursor)
        counts.append(len(result.run_requests))
        cursor = result.cursor
    assert counts == [2, 2, 1, 0]
    assert len(instance.get_dynamic_partitions("person_images")) == 5


def test_sensor_targets_are_configurable():
    sensor = build_image_sensor("person", ["person_image", "pose"], name="person_chain")
    assert sensor.name == "person_chain"

    @dg.asset(partitions_def=person_images)
    def person_image() -> None:
        return None

    @dg.asset(partitions_def=person_images, deps=[person_image])
    def pose() -> None:
        return None

    defs = dg.Definitions(assets=[person_image, pose], sensors=[sensor], resources={"inbox": InboxResource()})
    dg.Definitions.validate_loadable(defs)


def seed_images(instance: dg.DagsterInstance, inbox: InboxResource) -> dict[str, str]:
    """Two persons and a garment, added by the image sensors; returns file name -> partition key."""
    paths = [
        photo(inbox.folder("person") / "ann.png", 1),
        photo(inbox.folder("person") / "bob.jpg.png", 2),
        photo(inbox.folder("garment") / "shirt.png", 3),
    ]
    tick(person_inbox_sensor, instance, inbox, None)
    tick(garment_inbox_sensor, instance, inbox, None)
    return {path.name: image_partition_key(path) for path in paths}


def materialise(instance: dg.DagsterInstance, asset: str, partition: str) -> None:
    instance.report_runless_asset_event(dg.AssetMaterialization(asset, partition=partition))


CPVTON = ("openpose_body_coco18", "schp_lip20", "u2netp", "cpvton_gmm", "cpvton_tom")
VITONHD = ("vitonhd_seg", "vitonhd_gmm", "vitonhd_alias")


def zoo(folder: Path, synth_file, entries: tuple[str, ...]) -> ModelFactoryResource:
    """A checkpoint folder with a link to each synthesized checkpoint of ``entries``, under odd names."""
    folder.mkdir(exist_ok=True)
    for entry in entries:
        (folder / f"{entry[::-1]}.bin").symlink_to(synth_file(entry))
    return ModelFactoryResource(checkpoint_folder=str(folder))


def test_pairs_from_csv_wait_for_their_photos_then_run_once_per_complete_pipeline(
    instance, inbox, tmp_path, synth_file
):
    factory = zoo(tmp_path / "zoo", synth_file, CPVTON)
    keys = seed_images(instance, inbox)
    inbox.pairs_csv.write_text("person,garment\nann.png,shirt.png\n# a comment\n\nbob.jpg,shirt\nann.png\n")
    first = tick(pairs_sensor, instance, inbox, None, factory)
    ann_shirt = pair_key(keys["ann.png"], keys["shirt.png"])
    assert first.run_requests == []
    assert "2 pairs wanted, 2 waiting" in first.skip_reason.skip_message
    assert "runs: cpvton" in first.skip_reason.skip_message and "line 6" in first.skip_reason.skip_message

    materialise(instance, "person_representation", keys["ann.png"])
    materialise(instance, "refined_garment_mask", keys["shirt.png"])
    waiting = tick(pairs_sensor, instance, inbox, first.cursor, factory)
    assert waiting.run_requests == [], "the person's clothing_mask is not materialised yet"
    materialise(instance, "clothing_mask", keys["ann.png"])
    second = tick(pairs_sensor, instance, inbox, waiting.cursor, factory)
    assert [(r.run_key, r.partition_key) for r in second.run_requests] == [(f"cpvton:{ann_shirt}", ann_shirt)]
    assert second.run_requests[0].partition_key.keys_by_dimension == {
        "person": keys["ann.png"],
        "garment": keys["shirt.png"],
    }
    assert second.run_requests[0].asset_selection == [
        dg.AssetKey("warped_garment"),
        dg.AssetKey("tryon_result"),
        dg.AssetKey("restored_result"),
        dg.AssetKey("quality_report"),
    ]
    third = tick(pairs_sensor, instance, inbox, second.cursor, factory)
    assert third.run_requests == [] and "1 waiting" in third.skip_reason.skip_message

    factory = zoo(tmp_path / "zoo", synth_file, VITONHD)  # VITON-HD's files arrive: its runs follow
    fourth = tick(pairs_sensor, instance, inbox, third.cursor, factory)
    assert [(r.run_key, r.asset_selection) for r in fourth.run_requests] == [
        (f"vitonhd:{ann_shirt}", [dg.AssetKey("vitonhd_result")])
    ]
    assert tick(pairs_sensor, instance, inbox, fourth.cursor, factory).run_requests == []


def test_pairs_with_every_garment_by_configuration(instance, inbox, tmp_path, synth_file):
    factory = zoo(tmp_path / "zoo", synth_file, CPVTON)
    seed_images(instance, inbox)
    photo(inbox.folder("garment") / "dress.png", 4)
    tick(garment_inbox_sensor, instance, inbox, json.dumps({"files": {}}))
    every = InboxResource(root=inbox.root, pair_all_garments=True)
    result = tick(pairs_sensor, instance, every, None, factory)
    assert "4 pairs wanted, 4 waiting" in result.skip_reason.skip_message


def test_pairs_wait_for_a_complete_pipeline_and_name_unknown_photos(instance, inbox, tmp_path, synth_file):
    factory = zoo(tmp_path / "zoo", synth_file, CPVTON[:3])
    keys = seed_images(instance, inbox)
    inbox.pairs_csv.write_text("ann.png,shirt.png\ncarol.png,shirt.png\n")
    for kind, name in (("person", "ann.png"), ("garment", "shirt.png")):
        for asset in PERSON_READY if kind == "person" else GARMENT_READY:
            materialise(instance, asset.to_user_string(), keys[name])
    result = tick(pairs_sensor, instance, inbox, None, factory)
    assert result.run_requests == []
    assert "carol.png is not a known photo yet" in result.skip_reason.skip_message
    assert "runs: no pipeline (the checkpoint folder completes none)" in result.skip_reason.skip_message


def test_read_pairs_csv_without_a_file(tmp_path):
    assert read_pairs_csv(tmp_path / "pairs.csv") == ([], [])


def drop(path: UPath, data: bytes) -> bytes:
    """Write a file as another program would, through fsspec (not through the project's code)."""
    with fsspec.open(str(path), "wb") as stream:
        stream.write(data)
    return data


def png(seed: int) -> bytes:
    return encode_png(np.random.default_rng(seed).integers(0, 256, size=(12, 8, 3), dtype=np.uint8))


def test_a_memory_inbox_adds_each_photo_once_and_reports_duplicates_and_bad_files(instance, memory_root):
    inbox = InboxResource(root=str(memory_root / "inbox"))
    folder = memory_root / "inbox" / "person"
    ann = drop(folder / "ann.png", png(1))
    bob = drop(folder / "Bob Jones.png", png(2))
    digests = {name: hashlib.sha256(data).hexdigest() for name, data in (("ann.png", ann), ("Bob Jones.png", bob))}
    keys = {"ann.png": f"ann-{digests['ann.png'][:12]}", "Bob Jones.png": f"bob-jones-{digests['Bob Jones.png'][:12]}"}

    first = tick(person_inbox_sensor, instance, inbox, None)
    assert sorted((r.run_key, r.partition_key, r.tags[INBOX_FILE_TAG]) for r in first.run_requests) == sorted(
        (digests[name], keys[name], name) for name in keys
    )
    assert all(r.asset_selection == list(PERSON_ASSETS) for r in first.run_requests)
    assert sorted(instance.get_dynamic_partitions("person_images")) == sorted(keys.values())
    signatures = json.loads(first.cursor)["files"]
    created = {name: folder.fs.info(f"{folder.path}/{name}")["created"] for name in keys}
    assert signatures == {
        name: f"{len(data)}:{created[name]}" for name, data in (("ann.png", ann), ("Bob Jones.png", bob))
    }

    again = tick(person_inbox_sensor, instance, inbox, first.cursor)
    assert again.run_requests == []
    assert again.skip_reason.skip_message == f"no new photos in {memory_root}/inbox/person"

    drop(folder / "ann copy.png", ann)
    drop(folder / "broken.png", ann[:40])
    third = tick(person_inbox_sensor, instance, inbox, again.cursor)
    message = third.skip_reason.skip_message
    assert third.run_requests == []
    assert f"1 duplicates of known photos: ann copy.png = {keys['ann.png']}" in message
    assert (
        f"1 unreadable files skipped: broken.png: {memory_root}/inbox/person/broken.png: starts like a PNG" in message
    )
    assert sorted(instance.get_dynamic_partitions("person_images")) == sorted(keys.values())

    rewritten = drop(folder / "ann.png", png(3))
    fourth = tick(person_inbox_sensor, instance, inbox, third.cursor)
    sha256 = hashlib.sha256(rewritten).hexdigest()
    assert [(r.run_key, r.partition_key) for r in fourth.run_requests] == [(sha256, f"ann-{sha256[:12]}")]
    assert {name: fs_bytes(folder / name) for name in ("ann.png", "Bob Jones.png", "ann copy.png")} == {
        "ann.png": rewritten,
        "Bob Jones.png": bob,
        "ann copy.png": ann,
    }


def fs_bytes(path: UPath) -> bytes:
    with fsspec.open(str(path), "rb") as stream:
        return stream.read()


def test_pairs_csv_of_a_memory_inbox(instance, memory_root, tmp_path, synth_file):
    factory = zoo(tmp_path / "zoo", synth_file, CPVTON[:3])
    inbox = InboxResource(root=str(memory_root / "inbox"))
    drop(memory_root / "inbox" / "person" / "ann.png", png(1))
    drop(memory_root / "inbox" / "garment" / "shirt.png", png(2))
    tick(person_inbox_sensor, instance, inbox, None)
    tick(garment_inbox_sensor, instance, inbox, None)
    drop(inbox.pairs_csv, b"person,garment\nann.png,shirt.png\ncarol.png,shirt.png\nbad line\n")
    assert read_pairs_csv(str(inbox.pairs_csv)) == (
        [("ann.png", "shirt.png"), ("carol.png", "shirt.png")],
        ["pairs.csv line 4: expected 'person_file,garment_file', got ['bad line']"],
    )
    result = tick(pairs_sensor, instance, inbox, None, factory)
    message = result.skip_reason.skip_message
    assert result.run_requests == [] and message.startswith("1 pairs wanted, 1 waiting")
    assert "carol.png,shirt.png: carol.png is not a known photo yet" in message
