"""``fetch_mediapipe`` / ``mycloset fetch mediapipe``: offline with a wheel-like zip, the clear error when the
index cannot be reached, and the real wheel."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest

from mycloset_assets.checkpoints import analyze
from mycloset_assets.checkpoints.fetch import FetchError, fetch_mediapipe, mediapipe_members
from mycloset_assets.cli import main


def _wheel(folder: Path, members: dict[str, bytes], name: str = "mediapipe-0.10.21-py3-none-any.whl") -> Path:
    path = folder / name
    with zipfile.ZipFile(path, "w") as archive:
        for member, data in members.items():
            archive.writestr(member, data)
        archive.writestr("mediapipe-0.10.21.dist-info/LICENSE", "Apache License 2.0 (test copy)\n")
    return path


def _fake_members() -> dict[str, bytes]:
    return {member: f"model {index}".encode() for index, member in enumerate(mediapipe_members())}


def test_fetch_from_a_wheel_like_zip(tmp_path: Path) -> None:
    members = _fake_members()
    wheel = _wheel(tmp_path, members)
    expected = {member: hashlib.sha256(data).hexdigest() for member, data in members.items()}
    written = fetch_mediapipe(tmp_path / "out", wheel, expected=expected)
    assert [p.name for p in written] == [
        "pose_detection.tflite",
        "pose_landmark_full.tflite",
        "selfie_segmentation.tflite",
        "face_detection_short_range.tflite",
        "face_landmark.tflite",
    ]
    for path, data in zip(written, members.values(), strict=True):
        assert path.read_bytes() == data
    notice = (tmp_path / "out" / "NOTICE").read_text()
    assert "mediapipe==0.10.21" in notice and "Apache License, Version 2.0" in notice
    assert expected["mediapipe/modules/face_landmark/face_landmark.tflite"] in notice
    assert (tmp_path / "out" / "LICENSE.mediapipe").read_text() == "Apache License 2.0 (test copy)\n"


def test_a_wheel_with_other_files_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    wheel = _wheel(tmp_path, _fake_members())
    with pytest.raises(FetchError, match="pose_detection.tflite has sha256 .* not the published 9ba9dd3d"):
        fetch_mediapipe(tmp_path / "out", wheel)
    assert not (tmp_path / "out").exists()


def test_a_wheel_without_the_models_is_refused(tmp_path: Path) -> None:
    members = _fake_members()
    members.pop("mediapipe/modules/face_landmark/face_landmark.tflite")
    with pytest.raises(FetchError, match="lacks mediapipe/modules/face_landmark/face_landmark.tflite"):
        fetch_mediapipe(tmp_path / "out", _wheel(tmp_path, members))


def test_a_file_that_is_not_a_wheel_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "mediapipe.whl"
    path.write_text("<html>rate limited</html>")
    with pytest.raises(FetchError, match="not a readable wheel"):
        fetch_mediapipe(tmp_path / "out", path)


def test_unreachable_index_says_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_FIND_LINKS", "")
    monkeypatch.setenv("PIP_EXTRA_INDEX_URL", "")
    monkeypatch.setenv("PIP_NO_CACHE_DIR", "1")
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_TIMEOUT", "2")
    assert main(["fetch", "mediapipe", str(tmp_path / "out")]) == 1
    error = capsys.readouterr().err
    assert "could not download mediapipe==0.10.21 from the package index" in error
    assert "pip download --no-deps mediapipe==0.10.21" in error and "--wheel" in error
    assert not (tmp_path / "out").exists()


def test_fetch_the_real_wheel(mediapipe_wheel: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fetch", "mediapipe", str(tmp_path / "zoo"), "--wheel", str(mediapipe_wheel)]) == 0
    printed = capsys.readouterr().out.split()
    assert len(printed) == 6 and printed[-1].endswith("NOTICE")
    expected = mediapipe_members()
    for member, sha256 in expected.items():
        path = tmp_path / "zoo" / Path(member).name
        assert hashlib.sha256(path.read_bytes()).hexdigest() == sha256
        with zipfile.ZipFile(mediapipe_wheel) as archive:
            assert path.read_bytes() == archive.read(member)
    reports = [analyze(tmp_path / "zoo" / Path(member).name) for member in expected]
    assert [(r.verdict, r.match_rate) for r in reports] == [("identified", 1.0)] * 5
    assert [r.entry for r in reports] == [
        "mediapipe_pose_detection",
        "mediapipe_pose_landmark_full",
        "mediapipe_selfie_segmentation",
        "mediapipe_face_detection_short_range",
        "mediapipe_face_landmark",
    ]
