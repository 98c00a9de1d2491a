"""``mycloset models ...``: the subcommands built by ``add_models_commands``, run through their handlers."""

from __future__ import annotations

import argparse
import json
import pickle
from pathlib import Path

import pytest

from mycloset_assets.checkpoints.convert import file_sha256
from mycloset_assets.manager_cli import add_models_commands

LIN = "lpips_alex_lin"
TRUNK = "torchvision_alexnet_features"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mycloset")
    add_models_commands(parser.add_subparsers(dest="command", required=True))
    return parser


@pytest.fixture
def models(tmp_path, capsys):
    """``models(*argv)`` -> (exit status, stdout, stderr) of ``mycloset models *argv --home HOME``."""
    parser = _parser()

    def run(*argv: str) -> tuple[int, str, str]:
        args = parser.parse_args(["models", *argv, "--home", str(tmp_path / "home")])
        status = args.run(args, parser)
        out, err = capsys.readouterr()
        return status, out, err

    return run


def test_register_update_rollback_and_tables(models, synth_file):
    first, second = synth_file(LIN, 0), synth_file(LIN, 1)
    status, out, _ = models("register", str(first), "--name", "metric", "--json")
    record = json.loads(out)
    assert status == 0 and (record["name"], record["version"], record["active"]) == ("metric", 1, True)
    assert record["sha256"] == file_sha256(first) and record["analysis"]["verdict"] == "identified"

    status, out, _ = models("update", "metric", str(second))
    assert status == 0 and out.startswith("metric v2 (lpips_alex_lin, sha256 ") and "is now active" in out
    assert "note: lpips_alex_lin also needs torchvision_alexnet_features; register it too" in out

    status, out, _ = models("versions", "metric")
    lines = out.splitlines()
    assert lines[0].split() == ["VERSION", "ACTIVE", "ENTRY", "FAMILY", "SHA256", "SIZE", "CREATED", "SOURCE"]
    assert [line.split()[:3] for line in lines[1:]] == [["1", "lpips_alex_lin", "lpips"], ["2", "*", LIN]]

    assert models("rollback", "metric")[0] == 0
    status, out, _ = models("list", "--json")
    assert [(m["name"], m["version"]) for m in json.loads(out)] == [("metric", 1)]
    status, out, _ = models("list")
    assert out.splitlines()[1].split()[:4] == ["metric", "1", "*", LIN]


def test_refusals_exit_1_with_the_reason(models, synth_file, tmp_path):
    hostile = tmp_path / "tom_final.pth"
    hostile.write_bytes(pickle.dumps({"x": print}))
    status, out, err = models("register", str(hostile), "--json")
    assert status == 1 and "'unsafe'" in err and "builtins.print" in err
    assert json.loads(out)["analysis"]["verdict"] == "unsafe"

    status, _, err = models("versions", "nothing")
    assert status == 1 and "no model named 'nothing'; registered: none" in err
    status, _, err = models("register", str(tmp_path / "absent.pth"))
    assert status == 1 and "is not a file" in err

    models("register", str(synth_file(LIN, 0)))
    models("register", str(synth_file("torchvision_alexnet_features")), "--name", "alexnet")
    status, _, err = models("remove", "alexnet", "1")
    assert status == 1 and "is needed by lpips_alex_lin v1" in err
    status, out, _ = models("remove", LIN, "1", "--json")
    assert status == 0 and json.loads(out)["active"] is False
    assert models("remove", "alexnet", "1")[0] == 0


def test_backup_verify_and_deps(models, synth_file, tmp_path):
    models("register", str(synth_file(LIN, 0)))
    status, out, _ = models("deps", "--json")
    report = json.loads(out)
    assert status == 0 and report["models"][0]["missing"] == ["torchvision_alexnet_features"]
    assert report["best"] is None and report["pipelines"]["cpvton"]["missing"]["gmm"] == ["cpvton_gmm"]
    assert report["steps"]["quality"] == {
        "step": "quality",
        "complete": False,
        "roles": {},
        "missing": {"lpips": ["lpips_alex_lin", "lpips_vgg_lin"], "clip": ["clip_vit_b32"]},
    }
    status, out, _ = models("deps")
    assert (
        "cpvton needs pose (openpose_body_coco18 or mediapipe_pose_landmark_full" in out
        and "best pipeline: none is complete" in out
    )
    assert "step quality: needs lpips (lpips_alex_lin or lpips_vgg_lin), clip (clip_vit_b32)\n" in out
    assert out.rstrip().endswith("step person_mask: needs person_mask (mediapipe_selfie_segmentation)")

    status, out, _ = models("backup", LIN, str(tmp_path / "out"))
    assert status == 0 and out.strip().endswith("lpips_alex_lin-v1.card.json")
    card = json.loads((tmp_path / "out" / "lpips_alex_lin-v1.card.json").read_text())
    assert card["sha256"] == file_sha256(tmp_path / "out" / "lpips_alex_lin-v1.pth")

    status, out, _ = models("verify")
    assert status == 0 and out.rstrip().endswith("all 1 stored file(s) match their sha256")
    stored = Path(json.loads(models("list", "--json")[1])[0]["path"])
    stored.chmod(0o644)
    stored.write_bytes(stored.read_bytes()[:-1] + b"\0")
    status, out, _ = models("verify", "--json")
    assert status == 1 and json.loads(out)["checks"][0]["status"] == "mismatch"
    status, out, _ = models("verify")
    assert status == 1 and "mismatch" in out and "1 of 1 stored file(s) damaged or missing" in out


def test_deps_names_what_each_optional_step_uses(models, synth_file):
    models("register", str(synth_file(LIN, 0)))
    models("register", str(synth_file(TRUNK)))
    report = json.loads(models("deps", "--json")[1])
    assert report["steps"]["quality"]["roles"] == {"lpips": LIN}
    assert report["steps"]["quality"]["missing"] == {"clip": ["clip_vit_b32"]}
    assert report["steps"]["face_restoration"]["missing"] == {"face_restoration": ["gfpgan_v1_4"]}
    out = models("deps")[1]
    assert f"step quality: needs clip (clip_vit_b32) (uses lpips={LIN})" in out
    assert "step mask_refinement: needs mask_refinement (sam_vit_h or sam_vit_l or sam_vit_b or mobile_sam)" in out
