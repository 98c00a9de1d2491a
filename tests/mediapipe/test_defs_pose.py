"""The ``pose`` asset with BlazePose on a real (ephemeral) Dagster instance, on the real MediaPipe files and the
bundled demo photo: the estimator the run configuration names runs through the engine's stage, and where
OpenPose (synthesized by the project's writer: it finds nobody) is present too, ``estimators_agree`` compares the
two and WARNs; with BlazePose alone it WARNs 'not computed'. Also the PCK function on arrays."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import pytest
from PIL import Image

from mycloset_assets.defs.checkpoints import checkpoint_analysis, register_checkpoint_files
from mycloset_assets.defs.images import person_image
from mycloset_assets.defs.io_managers import OpenFormatIOManager
from mycloset_assets.defs.models import MODEL_ASSETS
from mycloset_assets.defs.partitions import InboxResource, image_partition_key
from mycloset_assets.defs.pose_checks import AGREEMENT_CHECK
from mycloset_assets.defs.resources import ModelFactoryResource
from mycloset_assets.defs.tryon import human_parsing, pose
from mycloset_assets.package_data import demo_data_folder
from mycloset_assets.vision.pose_agreement import keypoint_agreement

pytestmark = pytest.mark.slow
MODELS = [MODEL_ASSETS[slot] for slot in ("pose", "blazepose", "parsing", "person_mask")]
ASSETS = [checkpoint_analysis, *MODELS, person_image, pose, human_parsing]
NECK, R_SHOULDER, L_SHOULDER = 1, 2, 5
SMALL = {"pose_scales": [0.25], "max_side": 256}


@dataclass
class Graph:
    store: Path
    instance: dg.DagsterInstance
    resources: dict[str, Any]
    person: str

    def materialise(self, selection: list[dg.AssetsDefinition], **config: Any) -> dg.ExecuteInProcessResult:
        names = {asset.key.to_user_string() for asset in selection}
        ops = {"pose": {"config": {**SMALL, **config}}, "human_parsing": {"config": {"parsing_size": [64, 64]}}}
        run_config = {"ops": {name: value for name, value in ops.items() if name in names}}
        partition = self.person if names & {"pose", "person_image", "human_parsing"} else None
        return dg.materialize(ASSETS, selection=[a.key for a in selection], instance=self.instance,
                              resources=self.resources, run_config=run_config, partition_key=partition,
                              raise_on_error=False)  # fmt: skip

    def stored_pose(self) -> dict[str, Any]:
        return json.loads((self.store / "pose" / f"{self.person}.json").read_text())

    def agreement(self, result: dg.ExecuteInProcessResult) -> dg.AssetCheckEvaluation:
        (evaluation,) = [e for e in result.get_asset_check_evaluations() if e.check_name == AGREEMENT_CHECK]
        return evaluation


def build(root: Path, files: dict[str, Path]) -> Iterator[Graph]:
    for index, path in enumerate(files.values()):
        (root / "zoo").mkdir(parents=True, exist_ok=True)
        (root / "zoo" / f"model{index}.bin").symlink_to(path)
    inbox = InboxResource(root=str(root / "inbox"))
    inbox.folder("person").mkdir(parents=True)
    Image.open(demo_data_folder() / "astronaut.png").convert("RGB").save(inbox.folder("person") / "astro.png")
    resources = {
        "model_factory": ModelFactoryResource(checkpoint_folder=str(root / "zoo")),
        "inbox": inbox,
        "io_manager": OpenFormatIOManager(base_dir=str(root / "store")),
    }
    with dg.instance_for_test() as instance:
        for key in register_checkpoint_files(instance, resources["model_factory"].files()):
            dg.materialize([checkpoint_analysis], instance=instance, resources=resources, partition_key=key)
        person = image_partition_key(inbox.folder("person") / "astro.png")
        instance.add_dynamic_partitions("person_images", [person])
        graph = Graph(root / "store", instance, resources, person)
        assert graph.materialise(MODELS).success
        assert graph.materialise([person_image]).success
        yield graph


@pytest.fixture(scope="module")
def both(mediapipe_models, synth_file, tmp_path_factory) -> Iterator[Graph]:
    files = {**mediapipe_models, **{name: synth_file(name) for name in ("openpose_body_coco18", "schp_lip20")}}
    yield from build(tmp_path_factory.mktemp("both"), files)


@pytest.fixture(scope="module")
def blazepose_only(mediapipe_models, tmp_path_factory) -> Iterator[Graph]:
    yield from build(tmp_path_factory.mktemp("blazepose"), dict(mediapipe_models))


def test_cards_name_each_estimator_and_blazepose_names_its_detector(both, blazepose_only):
    cards = {slot: json.loads((both.store / f"{slot}_model.json").read_text()) for slot in ("pose", "blazepose")}
    assert cards["pose"]["entry"] == "openpose_body_coco18" and cards["pose"]["partners"] == {}
    assert cards["blazepose"]["entry"] == "mediapipe_pose_landmark_full"
    detector = cards["blazepose"]["partners"]["pose_detector"]
    assert detector["entry"] == "mediapipe_pose_detection" and detector["role"] == "pose_detector"
    alone = json.loads((blazepose_only.store / "pose_model.json").read_text())
    assert alone["entry"] == "mediapipe_pose_landmark_full" and set(alone["partners"]) == {"pose_detector"}


def test_both_present_auto_runs_openpose_and_the_check_warns_that_they_disagree(both):
    result = both.materialise([pose])
    assert result.success
    assert both.stored_pose()["estimator"] == "openpose" and "landmarks" not in both.stored_pose()
    check = both.agreement(result)
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    metadata = {key: value.value for key, value in check.metadata.items()}
    assert metadata["estimator"] == "openpose" and metadata["compared_with"] == "blazepose"
    # Synthesized OpenPose finds nobody: no keypoint is shared, so there is no PCK figure at all.
    assert metadata["shared_keypoints"] == 0 and "pck" not in metadata
    assert metadata["alpha"] == 0.1 and metadata["min_agreement"] == 0.8
    assert "no keypoint found by both" in check.description


def test_the_option_runs_blazepose_and_the_check_still_compares(both):
    result = both.materialise([pose], pose_estimator="blazepose")
    assert result.success
    stored = both.stored_pose()
    assert stored["estimator"] == "blazepose" and np.asarray(stored["landmarks"]).shape == (33, 4)
    points = np.asarray(stored["keypoints"])
    assert points.shape == (18, 3) and (points[[NECK, R_SHOULDER, L_SHOULDER], 2] >= 0.5).all()
    assert points[R_SHOULDER, 0] < points[NECK, 0] < points[L_SHOULDER, 0]
    check = both.agreement(result)
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert check.metadata["estimator"].value == "blazepose" and check.metadata["compared_with"].value == "openpose"
    (materialisation,) = result.asset_materializations_for_node("pose")
    assert materialisation.metadata["estimator"].value == "blazepose"


def test_blazepose_alone_fills_pose_and_the_check_is_not_computed(blazepose_only):
    result = blazepose_only.materialise([pose])
    assert result.success and blazepose_only.stored_pose()["estimator"] == "blazepose"
    check = blazepose_only.agreement(result)
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert check.description.startswith("not computed: only blazepose is present")
    assert "pck" not in check.metadata and check.metadata["compared_with"].value == ""
    failed = blazepose_only.materialise([pose], pose_estimator="openpose")
    assert not failed.success
    (failure,) = [event for event in failed.all_events if event.is_step_failure]
    assert "pose_estimator is 'openpose' but only blazepose is present" in str(failure.event_specific_data)


def test_the_parsing_step_stores_the_person_mask_beside_the_labels(both):
    result = both.materialise([human_parsing])
    assert result.success
    stored = both.store / "human_parsing" / f"{both.person}.person_mask.png"
    mask = np.asarray(Image.open(stored))
    assert mask.shape == (512, 512) and set(np.unique(mask)) == {0, 255}
    (materialisation,) = result.asset_materializations_for_node("human_parsing")
    metadata = {key: value.value for key, value in materialisation.metadata.items()}
    assert metadata["person_mask_fraction"] == pytest.approx(np.mean(mask > 0), abs=1e-4)
    assert 0.2 < metadata["person_mask_fraction"] < 0.9 and metadata["person_mask_path"] == str(stored)
    labels = np.asarray(Image.open(both.store / "human_parsing" / f"{both.person}.png"))
    union = np.sum((mask > 0) | (labels > 0))
    assert metadata["person_mask_parsing_iou"] == pytest.approx(np.sum((mask > 0) & (labels > 0)) / union, abs=1e-4)


def test_pck_of_the_keypoints_both_found():
    first = np.full((18, 3), (-1.0, -1.0, 0.0))
    second = first.copy()
    first[:4] = [(0, 0, 0.9), (100, 0, 0.9), (0, 200, 0.9), (100, 200, 0.9)]
    second[:4] = [(5, 0, 0.8), (100, 30, 0.8), (0, 200, 0.8), (-1, -1, 0.0)]
    second[10] = (50, 50, 0.9)  # found by one estimator only: not shared
    agreement = keypoint_agreement(first, second, alpha=0.1)
    # Shared: keypoints 0-2; their box is 100 x 200 px, so positions agree within 0.1 x 200 = 20 px.
    assert agreement.shared == 3 and agreement.tolerance == pytest.approx(20.0)
    assert agreement.agreeing == 2 and agreement.pck == pytest.approx(2 / 3)
    assert keypoint_agreement(first, first).pck == 1.0
    nobody = keypoint_agreement(first, np.full((18, 3), (-1.0, -1.0, 0.0)))
    assert nobody.pck is None and nobody.shared == 0
    with pytest.raises(ValueError, match="two K x 3 arrays"):
        keypoint_agreement(first, first[:17])
