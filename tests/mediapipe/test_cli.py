"""``mycloset pose`` and ``mycloset person-mask`` on a folder of checkpoints recognised by content."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mycloset_assets.cli import main

from .conftest import ASTRONAUT, BUNDLED


@pytest.fixture(scope="module")
def zoo(mediapipe_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The five files under names that say nothing, plus a text file."""
    folder = tmp_path_factory.mktemp("zoo")
    for index, path in enumerate(mediapipe_models.values()):
        shutil.copy(path, folder / f"model_{index}.bin")
    (folder / "README.txt").write_text("downloaded models\n")
    return folder


def test_pose_json(zoo: Path, capsys: pytest.CaptureFixture[str], solution: dict) -> None:
    assert main(["pose", str(ASTRONAUT), "--checkpoints", str(zoo), "--json"]) == 0
    (item,) = json.loads(capsys.readouterr().out)
    assert list(item) == ["path", "entry", "people"]
    assert item["path"] == str(ASTRONAUT) and item["entry"] == "mediapipe_pose_landmark_full"
    (person,) = item["people"]
    assert list(person) == ["openpose18", "coco17", "landmarks", "score"]
    openpose, coco, landmarks = (np.array(person[k]) for k in ("openpose18", "coco17", "landmarks"))
    assert openpose.shape == (18, 3) and coco.shape == (17, 3) and landmarks.shape == (33, 3)
    reference = solution["astronaut/pose"]
    visible = reference[:, 3] > 0.5
    assert np.median(np.hypot(*(landmarks[:, :2] - reference[:, :2]).T)[visible]) < 1.0
    assert np.allclose(openpose[1, :2], (landmarks[11, :2] + landmarks[12, :2]) / 2, atol=2e-3)
    assert 0.5 <= person["score"] <= 1.0


def test_pose_with_openpose_estimator_missing(zoo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["pose", str(ASTRONAUT), "--checkpoints", str(zoo), "--estimator", "openpose_body_coco18", "--json"])
    assert code == 1
    assert "has no identified openpose_body_coco18" in capsys.readouterr().err


def test_person_mask_from_the_bundled_selfie_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], solution: dict
) -> None:
    zoo = tmp_path / "zoo"
    zoo.mkdir()
    shutil.copy(BUNDLED["mediapipe_selfie_segmentation"], zoo / "weights.dat")
    out = tmp_path / "masks"
    assert main(["person-mask", str(ASTRONAUT), "--checkpoints", str(zoo), "-o", str(out)]) == 0
    assert capsys.readouterr().out.split() == [str(out / "astronaut.png")]
    mask = np.asarray(Image.open(out / "astronaut.png"))
    assert mask.shape == (512, 512) and set(np.unique(mask)) == {0, 255}
    reference = solution["astronaut/selfie"] > 127
    assert ((mask > 0) & reference).sum() / ((mask > 0) | reference).sum() >= 0.995


def test_person_mask_without_models_says_what_to_do(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "zoo").mkdir()
    code = main(["person-mask", str(ASTRONAUT), "--checkpoints", str(tmp_path / "zoo"), "-o", str(tmp_path / "o")])
    assert code == 1
    assert "mycloset fetch mediapipe" in capsys.readouterr().err


@pytest.mark.slow
def test_pose_json_with_openpose(synth_file, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The same JSON from OpenPose (synthesized weights: the people found are meaningless, the format is not)."""
    zoo = tmp_path / "zoo"
    zoo.mkdir()
    (zoo / "body.pth").symlink_to(synth_file("openpose_body_coco18"))
    small = tmp_path / "small.png"
    Image.open(ASTRONAUT).resize((128, 128)).save(small)
    assert main(["pose", str(small), "--checkpoints", str(zoo), "--json"]) == 0
    (item,) = json.loads(capsys.readouterr().out)
    assert item["entry"] == "openpose_body_coco18"
    scores = [person["score"] for person in item["people"]]
    assert scores == sorted(scores, reverse=True)
    for person in item["people"]:
        assert list(person) == ["openpose18", "coco17", "score"]
        assert np.array(person["openpose18"]).shape == (18, 3) and np.array(person["coco17"]).shape == (17, 3)
