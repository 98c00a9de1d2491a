"""``mycloset demo`` with MediaPipe's real models: fetched into the zoo from a wheel (BlazePose then replaces the
synthesized OpenPose), reused on the next run, and a clear line, no failure, when the package index cannot be
reached (pip pointed at a closed local port)."""

from __future__ import annotations

from mycloset_assets.checkpoints.fetch import mediapipe_members
from mycloset_assets.cli import build_parser
from mycloset_assets.demo import MEDIAPIPE_FOLDER, DemoLayout, fetch_real_models, run_demo
from mycloset_assets.engine.models import ModelSet

NAMES = sorted(member.rsplit("/", 1)[-1] for member in mediapipe_members())


def test_the_demo_fetches_the_real_models_from_a_wheel_and_leaves_out_openpose(tmp_path, capsys, mediapipe_wheel):
    home = tmp_path / "home"
    entries = ("openpose_body_coco18", "u2netp")
    assert run_demo(home, entries=entries, start=False, mediapipe=True, mediapipe_wheel=mediapipe_wheel) == 0
    printed = capsys.readouterr().out
    zoo = DemoLayout(home.resolve()).zoo
    assert f"real MediaPipe models (BlazePose pose, selfie person mask, face detection) fetched into {zoo}" in printed
    assert sorted(path.name for path in (zoo / MEDIAPIPE_FOLDER).glob("*.tflite")) == NAMES
    assert not (zoo / "openpose_body_coco18").exists() and (zoo / "u2netp").is_dir()
    assert "real MediaPipe pose, person mask and face in mediapipe/" in printed
    models = ModelSet.from_folder(zoo)
    assert models.status("cpvton").roles["pose"] == "mediapipe_pose_landmark_full"
    paths, said = fetch_real_models(zoo)
    assert said == f"real MediaPipe models: {zoo / MEDIAPIPE_FOLDER} (already there)" and len(paths) == 5


def test_offline_the_demo_says_so_and_runs_on_synthesized_weights(tmp_path, capsys, monkeypatch):
    for name, value in {"PIP_INDEX_URL": "http://127.0.0.1:9/", "PIP_RETRIES": "0", "PIP_TIMEOUT": "2",
                        "PIP_NO_CACHE_DIR": "1", "PIP_FIND_LINKS": ""}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    home = tmp_path / "home"
    paths, said = fetch_real_models(home / "zoo")
    assert paths == [] and said.startswith("real MediaPipe models not fetched, the demo runs on synthesized weights")
    assert "could not download mediapipe==0.10.21 from the package index" in said
    assert not (home / "zoo" / MEDIAPIPE_FOLDER).exists()
    assert run_demo(home, entries=("u2netp",), start=False, mediapipe=True) == 0
    printed = capsys.readouterr().out
    assert "real MediaPipe models not fetched" in printed and "synthesized weights: the pictures" in printed
    assert (home / "zoo" / "u2netp" / "u2netp.pth").is_file()


def test_the_demo_command_takes_a_wheel_or_skips_the_fetch():
    args = build_parser().parse_args(["demo", "--mediapipe-wheel", "w.whl", "--no-start"])
    assert args.mediapipe_wheel == "w.whl" and not args.no_mediapipe
    assert build_parser().parse_args(["demo", "--no-mediapipe"]).no_mediapipe
