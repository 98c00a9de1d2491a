"""``restored_result`` on a real ephemeral instance: GFPGAN restores the face the stored pose shows and leaves
every pixel outside the feathered face box as ``tryon_result`` stored it; without a face or a model card the
result passes through with the reason.

The upstream values are written where the open-format IO manager keeps them: the astronaut photo as the pair's
``tryon_result``, its keypoints (``astronaut_keypoints.json``) as the person's ``pose``, and the
``face_restoration_model`` card of a synthesized GFPGAN v1.4 file.
"""

import json
from pathlib import Path

import dagster as dg
import numpy as np
import pytest
from PIL import Image

from mycloset_assets.definitions import defs
from mycloset_assets.defs.image_checks import PLAUSIBLE_CHECK
from mycloset_assets.defs.images import person_image
from mycloset_assets.defs.io_managers import OpenFormatIOManager, OpenFormatStorage, write_value
from mycloset_assets.defs.models import MODEL_ASSETS, model_card
from mycloset_assets.defs.partitions import InboxResource, pair_key
from mycloset_assets.defs.resources import ModelFactoryResource
from mycloset_assets.defs.restoration import outside_box_changes, restored_result
from mycloset_assets.defs.tryon import pose, tryon_result

DEMO = Path(__file__).parents[2] / "mycloset_assets" / "demo_data"
BLAZEFACE = Path(__file__).parents[1] / "fixtures" / "mediapipe" / "face_detection_short_range.tflite"
PERSON, GARMENT = "ann", "shirt"
PAIR = pair_key(PERSON, GARMENT)
ASSETS = list(defs.assets or [])


@pytest.fixture(scope="module")
def setup(synth_file, tmp_path_factory):
    root = tmp_path_factory.mktemp("restoration")
    (root / "zoo").mkdir()
    (root / "zoo" / "GFPGANv1.4.pth").symlink_to(synth_file("gfpgan_v1_4"))
    storage = OpenFormatStorage(root / "store")
    photo = np.array(Image.open(DEMO / "astronaut.png").convert("RGB"))
    keypoints = json.loads((DEMO / "astronaut_keypoints.json").read_text())["keypoints"]
    write_value(photo, storage.stem(tryon_result.key, PAIR))
    write_value(
        {"keypoint_order": "openpose18", "keypoints": keypoints, "people": [keypoints]}, storage.stem(pose.key, PERSON)
    )
    factory = ModelFactoryResource(checkpoint_folder=str(root / "zoo"))
    card = model_card("face_restoration", factory.models(), str(root / "zoo"))
    resources = {
        "model_factory": factory,
        "io_manager": OpenFormatIOManager(base_dir=str(root / "store")),
        "inbox": InboxResource(root=str(root / "inbox")),
    }
    return {
        "root": root,
        "storage": storage,
        "photo": photo,
        "keypoints": keypoints,
        "card": card,
        "resources": resources,
    }


def materialise(setup, config=None) -> dg.ExecuteInProcessResult:
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("person_images", [PERSON])
        instance.add_dynamic_partitions("garment_images", [GARMENT])
        return dg.materialize(
            ASSETS,
            selection=[restored_result],
            partition_key=PAIR,
            instance=instance,
            resources=setup["resources"],
            run_config={"ops": {"restored_result": {"config": config or {}}}},
        )


def stored(setup) -> np.ndarray:
    return np.array(Image.open(setup["root"] / "store" / "restored_result" / GARMENT / f"{PERSON}.png"))


def test_without_a_model_card_the_result_passes_through_with_the_reason(setup):
    result = materialise(setup)
    assert result.success and np.array_equal(stored(setup), setup["photo"])
    (event,) = result.asset_materializations_for_node("restored_result")
    assert event.metadata["face_restoration"].value == (
        "no face_restoration model card (gfpgan_v1_4): materialise face_restoration_model"
    )
    (plausible,) = [c for c in result.get_asset_check_evaluations() if c.check_name == PLAUSIBLE_CHECK]
    assert plausible.passed


@pytest.mark.slow
def test_gfpgan_restores_the_face_inside_its_box_only(setup):
    write_value(setup["card"], setup["storage"].stem(MODEL_ASSETS["face_restoration"].key))
    try:
        result = materialise(setup)
        assert result.success
        (event,) = result.asset_materializations_for_node("restored_result")
        assert event.metadata["face_restoration"].value == "ran"
        box = tuple(event.metadata["face_box"].value)
        after = stored(setup)
        assert outside_box_changes(setup["photo"], after, box) == 0
        assert not np.array_equal(after, setup["photo"])
        x0, y0, x1, y1 = box
        assert x0 < 197 < 246 < x1 and y0 < 105 < 128 < y1
        (plausible,) = [c for c in result.get_asset_check_evaluations() if c.check_name == PLAUSIBLE_CHECK]
        assert plausible.passed and plausible.metadata["restored"].value == 1

        switched_off = materialise(setup, {"face_restoration": False})
        (event,) = switched_off.asset_materializations_for_node("restored_result")
        assert event.metadata["face_restoration"].value == (
            "switched off (face_restoration: false in the run configuration)"
        )
        assert np.array_equal(stored(setup), setup["photo"])
    finally:
        setup["storage"].stem(MODEL_ASSETS["face_restoration"].key).with_suffix(".json").unlink()


def test_a_face_the_pose_does_not_show_is_a_warning(setup):
    write_value(setup["card"], setup["storage"].stem(MODEL_ASSETS["face_restoration"].key))
    keypoints = [list(point) for point in setup["keypoints"]]
    keypoints[15] = [-1, -1, 0]
    write_value(
        {"keypoint_order": "openpose18", "keypoints": keypoints, "people": [keypoints]},
        setup["storage"].stem(pose.key, PERSON),
    )
    try:
        result = materialise(setup)
        (event,) = result.asset_materializations_for_node("restored_result")
        assert (
            event.metadata["face_restoration"].value == "no face to restore: the left eye is missing from the keypoints"
        )
        (plausible,) = [c for c in result.get_asset_check_evaluations() if c.check_name == PLAUSIBLE_CHECK]
        assert not plausible.passed and plausible.severity == dg.AssetCheckSeverity.WARN
        assert np.array_equal(stored(setup), setup["photo"])
    finally:
        setup["storage"].stem(MODEL_ASSETS["face_restoration"].key).with_suffix(".json").unlink()
        write_value(
            {"keypoint_order": "openpose18", "keypoints": setup["keypoints"], "people": [setup["keypoints"]]},
            setup["storage"].stem(pose.key, PERSON),
        )


@pytest.mark.slow
def test_blazeface_aligns_the_face_the_pose_does_not_show(setup, tmp_path):
    """With a face_detection card, the eyes, nose and ears come from BlazeFace on the person photo: the face is
    restored although the stored pose lacks the left eye (which alone is a warning, above)."""
    (tmp_path / "faces").mkdir()
    (tmp_path / "faces" / "blazeface.tflite").symlink_to(BLAZEFACE)
    faces = ModelFactoryResource(checkpoint_folder=str(tmp_path / "faces"))
    detector_card = model_card("face_detection", faces.models(), str(tmp_path / "faces"))
    keypoints = [list(point) for point in setup["keypoints"]]
    keypoints[15] = [-1, -1, 0]
    written = [
        (setup["card"], setup["storage"].stem(MODEL_ASSETS["face_restoration"].key)),
        (detector_card, setup["storage"].stem(MODEL_ASSETS["face_detection"].key)),
        (setup["photo"], setup["storage"].stem(person_image.key, PERSON)),
        (
            {"keypoint_order": "openpose18", "keypoints": keypoints, "people": [keypoints]},
            setup["storage"].stem(pose.key, PERSON),
        ),
    ]
    for value, stem in written:
        write_value(value, stem)
    try:
        result = materialise(setup)
        (event,) = result.asset_materializations_for_node("restored_result")
        assert event.metadata["face_alignment"].value == "face_detection"
        assert event.metadata["face_restoration"].value == "ran"
        x0, y0, x1, y1 = event.metadata["face_box"].value
        assert x0 < 197 < 246 < x1 and y0 < 105 < 128 < y1, "the box holds the eyes marked by hand"
        assert outside_box_changes(setup["photo"], stored(setup), (x0, y0, x1, y1)) == 0
    finally:
        for stem in (setup["storage"].stem(MODEL_ASSETS[role].key) for role in ("face_restoration", "face_detection")):
            stem.with_suffix(".json").unlink()
        write_value(
            {"keypoint_order": "openpose18", "keypoints": setup["keypoints"], "people": [setup["keypoints"]]},
            setup["storage"].stem(pose.key, PERSON),
        )


def test_outside_box_changes_counts_only_pixels_outside_the_box():
    before = np.zeros((6, 8, 3), dtype=np.uint8)
    after = before.copy()
    after[2:4, 3:5] = 9
    assert outside_box_changes(before, after, (3, 2, 5, 4)) == 0
    assert outside_box_changes(before, after, (3, 2, 4, 4)) == 2
    with pytest.raises(ValueError, match="must have the result's size"):
        outside_box_changes(before, after[:5], (0, 0, 1, 1))
