"""``refined_garment_mask`` and ``clothing_mask`` on a real ephemeral instance with a synthesized MobileSAM.

The upstream values are written where the open-format IO manager keeps them: the T-shirt photo and its mask
(every non-white pixel), the astronaut photo, a coarse parsing of it (the suit as upper clothes) and its
keypoints (``astronaut_keypoints.json``), and the ``mask_refinement_model`` card.
"""

import json
from pathlib import Path

import dagster as dg
import numpy as np
import pytest
from PIL import Image

from mycloset_assets.definitions import defs
from mycloset_assets.defs.image_checks import PLAUSIBLE_CHECK
from mycloset_assets.defs.images import garment_image, person_image
from mycloset_assets.defs.io_managers import OpenFormatIOManager, OpenFormatStorage, write_value
from mycloset_assets.defs.models import MODEL_ASSETS, model_card
from mycloset_assets.defs.options import InvalidOptionsError
from mycloset_assets.defs.partitions import InboxResource
from mycloset_assets.defs.refinement import clothing_mask, refined_garment_mask
from mycloset_assets.defs.resources import ModelFactoryResource
from mycloset_assets.defs.tryon import garment_mask, human_parsing, pose
from mycloset_assets.engine.options import TryOnOptions
from mycloset_assets.vision.quality import mask_iou

DEMO = Path(__file__).parents[2] / "mycloset_assets" / "demo_data"
PERSON, GARMENT = "ann", "shirt"
ASSETS = list(defs.assets or [])


@pytest.fixture(scope="module")
def setup(synth_file, tmp_path_factory):
    root = tmp_path_factory.mktemp("refinement")
    (root / "zoo").mkdir()
    (root / "zoo" / "mobile_sam.pt").symlink_to(synth_file("mobile_sam"))
    storage = OpenFormatStorage(root / "store")
    shirt = np.array(Image.open(DEMO / "tshirt.png").convert("RGB"))
    reference = shirt.min(axis=2) < 250
    person = np.array(Image.open(DEMO / "astronaut.png").convert("RGB"))
    parsing = np.zeros(person.shape[:2], dtype=np.uint8)
    parsing[150:512, 20:365] = 5
    keypoints = json.loads((DEMO / "astronaut_keypoints.json").read_text())["keypoints"]
    write_value(shirt, storage.stem(garment_image.key, GARMENT))
    write_value(reference.astype(np.uint8) * 255, storage.stem(garment_mask.key, GARMENT))
    write_value(person, storage.stem(person_image.key, PERSON))
    write_value(parsing, storage.stem(human_parsing.key, PERSON))
    write_value(
        {"keypoint_order": "openpose18", "keypoints": keypoints, "people": [keypoints]}, storage.stem(pose.key, PERSON)
    )
    factory = ModelFactoryResource(checkpoint_folder=str(root / "zoo"))
    resources = {
        "model_factory": factory,
        "io_manager": OpenFormatIOManager(base_dir=str(root / "store")),
        "inbox": InboxResource(root=str(root / "inbox")),
    }
    card_stem = storage.stem(MODEL_ASSETS["mask_refinement"].key)
    return {
        "root": root,
        "reference": reference,
        "parsing": parsing,
        "card": model_card("mask_refinement", factory.models(), str(root / "zoo")),
        "card_stem": card_stem,
        "resources": resources,
    }


def materialise(setup, asset, partition, config=None) -> dg.ExecuteInProcessResult:
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("garment_images", [GARMENT])
        instance.add_dynamic_partitions("person_images", [PERSON])
        name = asset.key.to_user_string()
        return dg.materialize(
            ASSETS,
            selection=[asset],
            partition_key=partition,
            instance=instance,
            resources=setup["resources"],
            run_config={"ops": {name: {"config": config or {}}}},
        )


def stored(setup, asset: str, partition: str) -> np.ndarray:
    return np.array(Image.open(setup["root"] / "store" / asset / f"{partition}.png")) > 0


def event_and_check(result, asset: str):
    (event,) = result.asset_materializations_for_node(asset)
    (check,) = [c for c in result.get_asset_check_evaluations() if c.check_name == PLAUSIBLE_CHECK]
    return event.metadata, check


def test_without_a_model_card_the_masks_pass_through_with_the_reason(setup):
    result = materialise(setup, refined_garment_mask, GARMENT)
    metadata, check = event_and_check(result, "refined_garment_mask")
    assert (
        metadata["refinement"].value == "no mask_refinement model card (mobile_sam): materialise mask_refinement_model"
    )
    assert check.passed and np.array_equal(stored(setup, "refined_garment_mask", GARMENT), setup["reference"])
    result = materialise(setup, clothing_mask, PERSON)
    assert np.array_equal(stored(setup, "clothing_mask", PERSON), setup["parsing"] == 5)


@pytest.fixture
def with_card(setup):
    write_value(setup["card"], setup["card_stem"])
    yield setup
    setup["card_stem"].with_suffix(".json").unlink()


@pytest.mark.slow
def test_sams_mask_is_kept_inside_the_iou_range_and_rejected_outside(with_card):
    setup = with_card
    kept = materialise(setup, refined_garment_mask, GARMENT, {"refinement_iou": [0.0, 1.0]})
    metadata, check = event_and_check(kept, "refined_garment_mask")
    refined = stored(setup, "refined_garment_mask", GARMENT)
    assert metadata["refinement"].value == "ran" and metadata["kept"].value is True and check.passed
    assert metadata["iou"].value == pytest.approx(mask_iou(refined, setup["reference"]), abs=1e-6)

    rejected = materialise(setup, refined_garment_mask, GARMENT, {"refinement_iou": [0.999, 1.0]})
    metadata, check = event_and_check(rejected, "refined_garment_mask")
    assert metadata["kept"].value is False and metadata["iou"].value < 0.999
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert "with the garment mask is below 0.999: kept the garment mask" in check.description
    assert np.array_equal(stored(setup, "refined_garment_mask", GARMENT), setup["reference"])


@pytest.mark.slow
def test_the_clothing_mask_is_refined_with_the_torso_keypoints(with_card):
    result = materialise(with_card, clothing_mask, PERSON, {"refinement_iou": [0.0, 1.0]})
    metadata, check = event_and_check(result, "clothing_mask")
    assert metadata["refinement"].value == "ran" and metadata["kept"].value is True and check.passed
    mask = stored(with_card, "clothing_mask", PERSON)
    assert mask.shape == (512, 512)
    assert metadata["iou"].value == pytest.approx(mask_iou(mask, with_card["parsing"] == 5), abs=1e-6)
    assert metadata["sam_score"].value >= 0.0 or metadata["sam_score"].value < 0.0  # a finite float
    assert np.isfinite(metadata["sam_score"].value)


def test_the_engine_options_validate_the_run_configuration(setup):
    with pytest.raises(ValueError, match=r"refinement_iou must be a \(low, high\) range within \[0, 1\]"):
        TryOnOptions(refinement_iou=(0.8, 0.5))
    with pytest.raises(InvalidOptionsError, match=r"invalid run configuration: refinement_iou must be a \(low, high\)"):
        materialise(setup, refined_garment_mask, GARMENT, {"refinement_iou": [0.8, 0.5]})
