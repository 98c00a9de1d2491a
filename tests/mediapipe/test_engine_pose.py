"""BlazePose in the engine's pose role: the real MediaPipe files beside synthesized CP-VTON networks, on the
bundled demo photo. The parsing and garment mask are given, so only pose, GMM and TOM run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mycloset_assets.checkpoints import load_model
from mycloset_assets.cli import main
from mycloset_assets.engine.models import ModelSet
from mycloset_assets.engine.steps import face_alignment_keypoints
from mycloset_assets.package_data import demo_data_folder
from mycloset_assets.pipeline import MissingModelsError, TryOnOptions, TryOnResult, run_virtual_try_on
from mycloset_assets.vision.images import load_image
from mycloset_assets.wrappers.mediapipe_face import FaceDetector, FaceResult

from .conftest import BUNDLED

NOSE, NECK, R_SHOULDER, L_SHOULDER = 0, 1, 2, 5


@pytest.fixture(scope="module")
def inputs() -> dict[str, np.ndarray]:
    person = load_image(demo_data_folder() / "astronaut.png").pixels
    garment = load_image(demo_data_folder() / "tshirt.png").pixels
    parsing = np.zeros(person.shape[:2], dtype=np.uint8)
    parsing[150:400, 150:360] = 5
    mask = garment.min(axis=2) < 250
    return {"person": person, "garment": garment, "parsing": parsing, "garment_mask": mask}


def zoo(folder: Path, files: dict[str, Path]) -> Path:
    folder.mkdir()
    for index, path in enumerate(files.values()):
        (folder / f"file{index}.bin").symlink_to(path)
    return folder


@pytest.fixture(scope="module")
def blazepose_zoo(mediapipe_models, synth_file, tmp_path_factory) -> Path:
    files = {**mediapipe_models, "cpvton_gmm": synth_file("cpvton_gmm"), "cpvton_tom": synth_file("cpvton_tom")}
    return zoo(tmp_path_factory.mktemp("blazepose") / "zoo", files)


@pytest.fixture(scope="module")
def both_zoo(mediapipe_models, synth_file, tmp_path_factory) -> Path:
    files = {**mediapipe_models, **{name: synth_file(name) for name in ("openpose_body_coco18", "cpvton_gmm",
                                                                          "cpvton_tom")}}  # fmt: skip
    return zoo(tmp_path_factory.mktemp("both") / "zoo", files)


def run(inputs: dict[str, np.ndarray], folder: Path, estimator: str = "auto") -> TryOnResult:
    options = TryOnOptions(max_side=512, quality=False, pose_estimator=estimator)
    return run_virtual_try_on(inputs["person"], inputs["garment"], models=folder, options=options, cache=False,
                              parsing=inputs["parsing"], garment_mask=inputs["garment_mask"])  # fmt: skip


def test_blazepose_alone_fills_the_pose_role_with_plausible_keypoints(inputs, blazepose_zoo):
    result = run(inputs, blazepose_zoo)
    assert result.pose_estimator == "blazepose" and result.report()["pose_estimator"] == "blazepose"
    assert result.models["pose"].entry == "mediapipe_pose_landmark_full"
    assert result.models["pose_detector"].entry == "mediapipe_pose_detection"
    assert result.people.shape == (1, 18, 3) and result.keypoints.shape == (18, 3)
    points = result.keypoints
    for part in (NOSE, NECK, R_SHOULDER, L_SHOULDER):
        assert points[part, 2] >= 0.5, part
    # The person's right shoulder is on the left of the photo; the neck lies between the shoulders, below the
    # nose, at their midpoint (BlazePose-33 -> OpenPose-18 defines it so).
    assert points[R_SHOULDER, 0] < points[NECK, 0] < points[L_SHOULDER, 0]
    assert points[NOSE, 1] < points[NECK, 1]
    np.testing.assert_allclose(points[NECK, :2], (points[R_SHOULDER, :2] + points[L_SHOULDER, :2]) / 2, atol=1e-6)
    # Within 40 px of the keypoints read off the photo by eye (demo_data/astronaut_keypoints.json; its neck is
    # the base of the neck, not the shoulders' midpoint, so it is left out).
    by_eye = np.array(json.loads((demo_data_folder() / "astronaut_keypoints.json").read_text())["keypoints"])
    for part in (NOSE, R_SHOULDER, L_SHOULDER):
        assert np.hypot(*(points[part, :2] - by_eye[part, :2])) < 40, (part, points[part], by_eye[part])
    landmarks = result.extras["pose_landmarks"]
    assert landmarks.shape == (33, 4) and np.isfinite(landmarks).all()
    # OpenPose-18's nose is BlazePose's landmark 0, in the same photo pixels.
    np.testing.assert_allclose(points[NOSE, :2], landmarks[0, :2], atol=1e-6)


def test_the_selfie_segmentation_gives_the_person_mask(inputs, blazepose_zoo):
    result = run(inputs, blazepose_zoo)
    assert result.models["person_mask"].entry == "mediapipe_selfie_segmentation"
    mask = result.extras["person_mask"]
    assert mask.shape == inputs["person"].shape[:2] and mask.dtype == np.uint8
    assert set(np.unique(mask)) == {0, 255}
    record = result.optional_steps["person_mask"]
    assert record["ran"] and record["person_fraction"] == pytest.approx(np.mean(mask > 0), abs=1e-4)
    assert 0.2 < record["person_fraction"] < 0.9, "the astronaut fills much, not all, of the portrait"
    expected_iou = np.sum((mask > 0) & (inputs["parsing"] > 0)) / np.sum((mask > 0) | (inputs["parsing"] > 0))
    assert record["parsing_iou"] == pytest.approx(expected_iou, abs=1e-4)
    nose = result.keypoints[NOSE, :2].round().astype(int)
    assert mask[nose[1], nose[0]] == 255 and mask[5, 5] == 0, "the face is inside, the top-left corner outside"
    off = run_virtual_try_on(inputs["person"], inputs["garment"], models=blazepose_zoo, cache=False,
                             options=TryOnOptions(max_side=512, quality=False, person_mask=False),
                             parsing=inputs["parsing"], garment_mask=inputs["garment_mask"])  # fmt: skip
    assert off.optional_steps["person_mask"] == {"ran": False, "reason": "switched off (person_mask=False)"}
    assert "person_mask" not in off.extras


def test_with_both_estimators_auto_takes_openpose_and_the_option_picks_each(inputs, both_zoo):
    auto = run(inputs, both_zoo)
    assert auto.pose_estimator == "openpose" and auto.models["pose"].entry == "openpose_body_coco18"
    assert "pose_detector" not in auto.models and "pose_landmarks" not in auto.extras
    openpose = run(inputs, both_zoo, "openpose")
    assert openpose.models["pose"].entry == "openpose_body_coco18"
    np.testing.assert_array_equal(openpose.people, auto.people)
    blazepose = run(inputs, both_zoo, "blazepose")
    assert blazepose.pose_estimator == "blazepose"
    assert blazepose.models["pose"].entry == "mediapipe_pose_landmark_full"
    assert blazepose.models["pose_detector"].entry == "mediapipe_pose_detection"
    assert blazepose.people.shape == (1, 18, 3)


def test_an_estimator_whose_files_are_absent_fails_naming_them(inputs, blazepose_zoo, tmp_path, synth_file):
    with pytest.raises(MissingModelsError, match=r"needs pose \(openpose_body_coco18\)"):
        run(inputs, blazepose_zoo, "openpose")
    landmark = _file(blazepose_zoo, "mediapipe_pose_landmark_full")
    files = {"landmark": landmark, "gmm": synth_file("cpvton_gmm"), "tom": synth_file("cpvton_tom")}
    landmark_only = zoo(tmp_path / "landmark", files)
    with pytest.raises(MissingModelsError) as missing:
        run(inputs, landmark_only, "blazepose")
    assert "pose (mediapipe_pose_landmark_full + mediapipe_pose_detection)" in str(missing.value)


def _file(folder: Path, entry: str) -> Path:
    return ModelSet.from_folder(folder).checkpoints[entry].path


def test_the_option_is_validated():
    with pytest.raises(ValueError, match=r"pose_estimator must be one of auto, openpose, blazepose, not 'hrnet'"):
        TryOnOptions(pose_estimator="hrnet")
    assert TryOnOptions().pose_estimator == "auto" and TryOnOptions().narrowed_roles() == {}
    assert TryOnOptions(pose_estimator="blazepose").narrowed_roles() == {"pose": ("mediapipe_pose_landmark_full",)}


def test_blazeface_eyes_and_nose_replace_the_poses_for_face_alignment():
    person = load_image(demo_data_folder() / "astronaut.png").pixels
    by_eye = np.array(json.loads((demo_data_folder() / "astronaut_keypoints.json").read_text())["keypoints"])
    faces = FaceDetector(load_model(BUNDLED["mediapipe_face_detection_short_range"])).detect(person)
    aligned, source = face_alignment_keypoints(by_eye, faces)
    assert source == "face_detection"
    for row, index in ((14, 0), (15, 1), (0, 2), (16, 4), (17, 5)):
        np.testing.assert_allclose(aligned[row], (*faces.keypoints[0][index], faces.scores[0]))
    # BlazeFace's right eye is the subject's: on the image left, as OpenPose-18's row 14; both within 12 px of the
    # eyes read off the photo by eye; the body rows are the pose's.
    assert aligned[14, 0] < aligned[15, 0]
    for row in (14, 15):
        assert np.hypot(*(aligned[row, :2] - by_eye[row, :2])) < 12, (row, aligned[row], by_eye[row])
    np.testing.assert_array_equal(aligned[1:14], by_eye[1:14])
    nobody = FaceResult(np.zeros((0, 4)), np.zeros((0, 6, 2)), np.zeros(0), None)
    unchanged, source = face_alignment_keypoints(by_eye, nobody)
    assert source == "pose" and np.array_equal(unchanged, by_eye)


def test_face_restoration_aligns_by_the_face_detector(inputs, mediapipe_models, synth_file, tmp_path):
    files = {**mediapipe_models, **{name: synth_file(name) for name in ("gfpgan_v1_4", "cpvton_gmm", "cpvton_tom")}}
    folder = zoo(tmp_path / "zoo", files)
    result = run(inputs, folder)
    assert result.models["face_detection"].entry == "mediapipe_face_detection_short_range"
    record = result.optional_steps["face_restoration"]
    assert record["ran"] and record["alignment"] == "face_detection"
    x0, y0, x1, y1 = record["box"]
    assert x0 < 197 < 246 < x1 and y0 < 105 < 128 < y1, "the box holds the eyes and nose read off the photo"


def test_try_on_command_takes_the_estimator_and_its_report_names_it(mediapipe_models, synth_file, tmp_path, capsys):
    names = ("schp_lip20", "u2netp", "cpvton_gmm", "cpvton_tom")
    folder = zoo(tmp_path / "zoo", {**mediapipe_models, **{name: synth_file(name) for name in names}})
    photos = demo_data_folder()
    argv = ["try-on", str(photos / "astronaut.png"), str(photos / "tshirt.png"), "--checkpoints", str(folder),
            "--max-side", "256", "--no-quality", "-q", "--json"]  # fmt: skip
    assert main([*argv, "-o", str(tmp_path / "out"), "--pose-estimator", "blazepose"]) == 0
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["pose_estimator"] == "blazepose"
    assert report["models"]["pose_detector"]["entry"] == "mediapipe_pose_detection"
    assert report["outputs"]["person_mask"] == "person_mask.png" and (tmp_path / "out" / "person_mask.png").is_file()
    capsys.readouterr()
    assert main([*argv, "-o", str(tmp_path / "none"), "--pose-estimator", "openpose"]) == 1
    assert "cpvton needs pose (openpose_body_coco18)" in capsys.readouterr().err
    assert not (tmp_path / "none").exists()
