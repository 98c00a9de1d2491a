"""``mycloset try-on``: through ``add_tryon_command`` in this process, and through ``mycloset`` in a subprocess.

The checkpoint folder is test_pipeline's: synthesized files under odd names, an ImageNet ResNet-18 named
``openpose.pth`` and an HTML page named ``tom_final.pth``. The person photo is a JPEG stored landscape with
EXIF orientation 6, so the result must come out portrait, as a viewer shows the photo.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mycloset_assets.checkpoints.pipelines import absent_optional
from mycloset_assets.tryon_cli import add_tryon_command
from mycloset_assets.vision.images import EXIF_ORIENTATION_TAG, load_image
from tests.test_pipeline import CPVTON_FILES, DEMO, add_impostors, link_zoo

REPORT_KEYS = {"pipeline", "pose_estimator", "models", "steps", "skipped", "outputs", "optional_steps", "pool"}
POOL_KEYS = {"loads", "releases", "budget_bytes", "peak_resident_bytes"}
STEP_KEYS = {"name", "seconds", "cpu_seconds", "peak_rss_mb"}
CPVTON_STEPS = ["inputs", "models", "pose", "parsing", "garment_mask", "gmm", "tom", "quality", "outputs"]
PICTURES = {
    "tryon", "pose", "parsing", "garment_mask", "agnostic", "warped_garment", "warped_mask", "warp_grid", "rendered",
    "composition_mask", "clothing_mask", "quality",
}  # fmt: skip


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="mycloset")
    add_tryon_command(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.run(args, parser)


@pytest.fixture(scope="module")
def zoo(synth_file, tmp_path_factory) -> Path:
    folder = link_zoo(tmp_path_factory.mktemp("cli") / "zoo", synth_file, CPVTON_FILES)
    add_impostors(folder)
    return folder


@pytest.fixture(scope="module")
def rotated_person(tmp_path_factory) -> Path:
    """A JPEG stored 200 wide x 150 tall whose EXIF orientation 6 shows it 150 wide x 200 tall."""
    path = tmp_path_factory.mktemp("photos") / "person.jpg"
    stored = Image.open(DEMO / "astronaut.png").convert("RGB").rotate(90, expand=True).resize((200, 150))
    exif = Image.Exif()
    exif[EXIF_ORIENTATION_TAG] = 6
    stored.save(path, format="JPEG", quality=95, exif=exif)
    return path


@pytest.fixture(scope="module")
def first_run(zoo, rotated_person, tmp_path_factory) -> dict:
    """One try-on with --json, its disk cache kept for the later runs."""
    root = tmp_path_factory.mktemp("first")
    out, cache = root / "out", root / "cache"
    argv = ["try-on", str(rotated_person), str(DEMO / "tshirt.png"), "-o", str(out), "--checkpoints", str(zoo)]
    argv += ["--max-side", "160", "--cache", str(cache), "--json"]
    captured = run_captured(argv)
    return {"argv": argv, "out": out, "cache": cache, **captured}


def run_captured(argv: list[str]) -> dict:
    """The command's exit status and what it printed on stdout and stderr."""
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        status = run_cli(argv)
    return {"status": status, "stdout": stdout.getvalue(), "stderr": stderr.getvalue()}


def test_try_on_writes_the_result_the_intermediates_and_the_report(first_run, zoo, rotated_person):
    assert first_run["status"] == 0, first_run["stderr"]
    out = first_run["out"]
    report = json.loads((out / "report.json").read_text())
    assert json.loads(first_run["stdout"]) == report
    assert set(report) == REPORT_KEYS and report["pipeline"] == "cpvton" and report["pose_estimator"] == "openpose"
    assert set(report["pool"]) == POOL_KEYS and report["pool"]["budget_bytes"] is None
    assert {role: model["entry"] for role, model in report["models"].items()} == {
        "pose": "openpose_body_coco18", "parsing": "schp_lip20", "garment_mask": "u2netp", "gmm": "cpvton_gmm",
        "tom": "cpvton_tom",
    }  # fmt: skip
    assert report["models"]["parsing"]["path"] == str(zoo / "b" / "weights (1).bin")
    assert all(
        len(model["sha256"]) == 64
        and set(model) == {"entry", "sha256", "path", "provenance"}
        and model["provenance"].startswith("synthesized by this project")
        for model in report["models"].values()
    )
    assert set(report["skipped"]) == {str(zoo / "openpose.pth"), str(zoo / "tom_final.pth")}
    assert report["skipped"][str(zoo / "openpose.pth")].startswith("impostor: torchvision resnet18 ImageNet classifier")
    assert report["skipped"][str(zoo / "tom_final.pth")].startswith("not_a_checkpoint: ")
    assert [step["name"] for step in report["steps"]] == CPVTON_STEPS
    for step in report["steps"]:
        assert set(step) == STEP_KEYS and step["seconds"] >= 0 and step["peak_rss_mb"] > 0
    assert report["outputs"] == {**{name: f"{name}.png" for name in PICTURES}, "quality_report": "quality.json"}
    assert report["optional_steps"]["face_restoration"] == {
        "ran": False,
        "reason": "no face_restoration checkpoint is available (gfpgan_v1_4)",
    }
    quality = json.loads((out / "quality.json").read_text())
    assert set(quality["metrics"]) == {"ssim_outside_garment", "warp_mask_iou"}
    assert set(quality["skipped"]) == {"lpips_outside_garment", "clip_garment_similarity"}
    assert quality["weights"]["tom"]["sha256"] == report["models"]["tom"]["sha256"]
    display = load_image(rotated_person)
    assert display.size == (200, 150) and display.orientation == 6
    pictures = {name: file for name, file in report["outputs"].items() if file.endswith(".png")}
    sizes = {name: Image.open(out / file).size for name, file in pictures.items()}
    assert sizes["tryon"] == sizes["pose"] == (150, 200)  # PIL sizes are (width, height): portrait, as displayed
    assert sizes["garment_mask"] == (192, 256) and sizes["warped_garment"] == sizes["rendered"] == (192, 256)
    assert np.unique(np.asarray(Image.open(out / "garment_mask.png"))).tolist() in ([0, 255], [0], [255])
    assert "] pose (1 photo)" in first_run["stderr"] and "] outputs" in first_run["stderr"]


def test_the_readable_summary_and_a_cached_rerun(first_run, tmp_path):
    argv = [a for a in first_run["argv"] if a != "--json"]
    argv[argv.index("-o") + 1] = str(tmp_path / "again")
    run = run_captured(argv)
    assert run["status"] == 0, run["stderr"]
    lines = run["stdout"].splitlines()
    assert lines[0] == "pipeline: cpvton"
    assert any(line.split()[:2] == ["gmm", "cpvton_gmm"] for line in lines)
    assert any(line.startswith("SKIPPED") for line in lines)
    assert any(line.startswith("note: no person was found") for line in lines)
    assert any(line.split()[:3] == ["mask_refinement", "no", "no"] for line in lines)
    table = lines[lines.index(next(line for line in lines if line.startswith("QUALITY"))) + 1 :]
    figures = {line.split()[0]: line.split()[1:3] for line in table[: table.index("")]}
    assert figures["ssim_outside_garment"][1] == "higher" and 0 < float(figures["ssim_outside_garment"][0]) <= 1
    assert figures["lpips_outside_garment"] == ["-", "not"]
    assert lines[-2].startswith("wrote 12 images, report.json and quality.json to ")
    report = json.loads((tmp_path / "again" / "report.json").read_text())
    assert [step["name"] for step in report["steps"]] == [
        "inputs",
        "models",
        "pose",
        "parsing",
        "garment_mask",
        "quality",
        "outputs",
    ]
    first = first_run["out"] / "tryon.png"
    assert np.array_equal(np.asarray(Image.open(tmp_path / "again" / "tryon.png")), np.asarray(Image.open(first)))


def test_optional_steps_can_be_switched_off(first_run, tmp_path):
    argv = [a for a in first_run["argv"] if a != "--cache" and a != str(first_run["cache"])]
    argv[argv.index("-o") + 1] = str(tmp_path / "plain")
    run = run_captured([*argv, "--no-quality", "--no-face-restoration", "--no-mask-refinement"])
    assert run["status"] == 0, run["stderr"]
    report = json.loads(run["stdout"])
    assert report["optional_steps"] == {
        "person_mask": {"ran": False, "reason": absent_optional("person_mask")},
        **{
            name: {"ran": False, "reason": f"switched off ({name}=False)"}
            for name in ("mask_refinement", "face_restoration", "quality")
        },
    }
    assert "quality_report" not in report["outputs"] and not (tmp_path / "plain" / "quality.json").exists()


def test_a_pool_budget_smaller_than_any_network_loads_each_alone(first_run, tmp_path):
    argv = [a for a in first_run["argv"] if a != "--cache" and a != str(first_run["cache"])]
    argv[argv.index("-o") + 1] = str(tmp_path / "bounded")
    run = run_captured([*argv, "--cache", str(tmp_path / "cache"), "--no-quality", "--pool-budget-mb", "1"])
    assert run["status"] == 0, run["stderr"]
    pool = json.loads(run["stdout"])["pool"]
    assert (pool["loads"], pool["releases"], pool["budget_bytes"]) == (5, 4, 2**20)
    assert pool["peak_resident_bytes"] > 2**20  # the largest network, alone
    bounded = np.asarray(Image.open(tmp_path / "bounded" / "tryon.png"))
    assert np.array_equal(bounded, np.asarray(Image.open(first_run["out"] / "tryon.png")))


def test_missing_checkpoints_are_named_and_exit_1(tmp_path, synth_file, rotated_person):
    folder = link_zoo(tmp_path / "partial", synth_file, {"cpvton_gmm": "g.pth", "cpvton_tom": "t.pth"})
    argv = ["try-on", str(rotated_person), str(DEMO / "tshirt.png"), "-o", str(tmp_path / "out"), "--checkpoints"]
    run = run_captured([*argv, str(folder), "--pipeline", "cpvton", "--json"])
    assert run["status"] == 1
    assert "mycloset: error: the folder" in run["stderr"] and "cannot run cpvton: cpvton needs pose" in run["stderr"]
    error = json.loads(run["stdout"])
    assert error["missing"] == {
        "pose": ["openpose_body_coco18", "mediapipe_pose_landmark_full"],
        "parsing": ["schp_lip20", "graphonomy_cihp20"],
        "garment_mask": ["u2net_cloth_seg4", "u2net", "u2netp"],
    }  # fmt: skip
    assert not (tmp_path / "out").exists()


def test_usage_errors_exit_2(tmp_path, rotated_person, capsys):
    with pytest.raises(SystemExit) as missing_photo:
        run_cli(["try-on", str(tmp_path / "nobody.jpg"), str(DEMO / "tshirt.png"), "-o", str(tmp_path)])
    assert missing_photo.value.code == 2 and "PERSON" in capsys.readouterr().err
    with pytest.raises(SystemExit) as not_a_folder:
        run_cli(["try-on", str(rotated_person), str(DEMO / "tshirt.png"), "-o", str(tmp_path), "--checkpoints", "x"])
    assert not_a_folder.value.code == 2 and "--checkpoints x is not a folder" in capsys.readouterr().err
    with pytest.raises(SystemExit) as bad_pipeline:
        run_cli(["try-on", str(rotated_person), str(DEMO / "tshirt.png"), "-o", str(tmp_path), "--pipeline", "x"])
    assert bad_pipeline.value.code == 2
    with pytest.raises(SystemExit) as bad_budget:
        run_cli(
            ["try-on", str(rotated_person), str(DEMO / "tshirt.png"), "-o", str(tmp_path), "--pool-budget-mb", "-1"]
        )
    assert bad_budget.value.code == 2 and "--pool-budget-mb must be >= 0, not -1" in capsys.readouterr().err


def test_the_mycloset_command_runs_try_on_in_a_subprocess(first_run, tmp_path):
    argv = list(first_run["argv"])
    argv[argv.index("-o") + 1] = str(tmp_path / "sub")
    code = "import sys; from mycloset_assets.cli import main; sys.exit(main(sys.argv[1:]))"
    done = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report == json.loads((tmp_path / "sub" / "report.json").read_text())
    assert report["pool"]["loads"] == 0  # every step is a cache hit: no network is loaded (lazy loading)
    assert report["models"] == json.loads((first_run["out"] / "report.json").read_text())["models"]
    tryon = np.asarray(Image.open(tmp_path / "sub" / "tryon.png"))
    assert np.array_equal(tryon, np.asarray(Image.open(first_run["out"] / "tryon.png")))
