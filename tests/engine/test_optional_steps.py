"""Mask refinement, face restoration and the quality figures inside ``run_virtual_try_on``, on synthesized
checkpoints of every optional role (MobileSAM, GFPGAN v1.4, LPIPS with its AlexNet trunk, CLIP ViT-B/32).

Synthesized OpenPose and SCHP weights find nobody, so the astronaut's keypoints (``astronaut_keypoints.json``,
read off the photo) and a coarse parsing (hair, face, the suit as upper clothes) are given; everything else is
computed.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from mycloset_assets.checkpoints.convert import file_sha256
from mycloset_assets.checkpoints.pipelines import absent_optional
from mycloset_assets.engine.outputs import QUALITY_NAME, REPORT_NAME, save_outputs
from mycloset_assets.engine.quality import METRICS
from mycloset_assets.engine_cache import ContentCache
from mycloset_assets.pipeline import ModelPool, ModelSet, TryOnOptions, run_virtual_try_on
from mycloset_assets.vision.images import load_image
from mycloset_assets.vision.quality import mask_iou
from tests.test_pipeline import CPVTON_FILES, DEMO, link_zoo

pytestmark = pytest.mark.slow

OPTIONAL_FILES = {
    "gfpgan_v1_4": "restore/GFPGANv1.4.pth",
    "mobile_sam": "sam.pt",
    "lpips_alex_lin": "metrics/alex.pth",
    "torchvision_alexnet_features": "metrics/trunk.pth",
    "clip_vit_b32": "metrics/ViT-B-32.pt",
}
OPTIONS = TryOnOptions(max_side=160, parsing_size=(128, 128), mask_size=(128, 128), quality_max_side=256)
RECORD_KEYS = {"iou", "kept", "sam_score", "reason"}


def astronaut_parsing() -> np.ndarray:
    parsing = np.zeros((512, 512), dtype=np.uint8)
    parsing[15:100, 150:300] = 2  # hair
    parsing[70:185, 170:280] = 13  # face
    parsing[150:512, 20:365] = 5  # upper clothes
    return parsing


def astronaut_keypoints() -> np.ndarray:
    return np.array(json.loads((DEMO / "astronaut_keypoints.json").read_text())["keypoints"], dtype=np.float64)


@pytest.fixture(scope="module")
def full_zoo(synth_file, tmp_path_factory):
    return link_zoo(tmp_path_factory.mktemp("optional") / "zoo", synth_file, {**CPVTON_FILES, **OPTIONAL_FILES})


@pytest.fixture(scope="module")
def full(full_zoo):
    models, pool, cache = ModelSet.from_folder(full_zoo), ModelPool(), ContentCache()
    person = load_image(DEMO / "astronaut.png").pixels
    result = run_virtual_try_on(
        person, DEMO / "tshirt.png", models=models, options=OPTIONS, keypoints=astronaut_keypoints(),
        parsing=astronaut_parsing(), cache=cache, pool=pool,
    )  # fmt: skip
    return {"models": models, "pool": pool, "cache": cache, "person": person, "result": result}


CPVTON_ROLES = ("pose", "parsing", "garment_mask", "gmm", "tom")


def test_every_optional_step_runs_and_uses_its_checkpoint(full, full_zoo):
    result = full["result"]
    assert {role: info.entry for role, info in result.models.items() if role not in CPVTON_ROLES} == {
        "mask_refinement": "mobile_sam",
        "face_restoration": "gfpgan_v1_4",
        "lpips": "lpips_alex_lin",
        "clip": "clip_vit_b32",
    }
    assert result.models["face_restoration"].path == str(full_zoo / "restore" / "GFPGANv1.4.pth")
    assert {name: record["ran"] for name, record in result.optional_steps.items()} == {
        "person_mask": False,
        "mask_refinement": True,
        "face_restoration": True,
        "quality": True,
    }
    names = [step.name for step in result.steps]
    assert names == ["inputs", "models", "garment_mask", "mask_refinement", "gmm", "tom",
                     "face_restoration", "quality"]  # fmt: skip


def test_refinement_reports_both_masks_and_keeps_the_one_the_range_allows(full):
    result = full["result"]
    record = result.optional_steps["mask_refinement"]
    assert set(record["garment"]) == RECORD_KEYS and set(record["clothing"]) == RECORD_KEYS
    for side, refined, used, reference in (
        ("garment", result.extras["sam_garment_mask"], result.garment_mask, "garment"),
        ("clothing", result.extras["sam_clothing_mask"], result.extras["clothing_mask"], "parsing"),
    ):
        info = record[side]
        assert refined.dtype == bool and refined.shape == used.shape
        assert f"with the {reference} mask" in info["reason"]
        assert info["kept"] == (0.5 <= info["iou"] <= 1.0)
        if info["kept"]:
            assert np.array_equal(used, refined)
        else:
            assert abs(mask_iou(refined, used) - info["iou"]) < 1e-6
            assert info["reason"].endswith("mask") and "below 0.5:" in info["reason"]


def test_a_range_that_admits_any_iou_keeps_mobile_sams_garment_mask(full):
    options = TryOnOptions(**{**OPTIONS.__dict__, "refinement_iou": (0.0, 1.0)})
    result = run_virtual_try_on(
        full["person"], DEMO / "tshirt.png", models=full["models"], options=options,
        keypoints=astronaut_keypoints(), parsing=astronaut_parsing(), cache=full["cache"], pool=full["pool"],
    )  # fmt: skip
    record = result.optional_steps["mask_refinement"]["garment"]
    assert record["kept"] is True and np.array_equal(result.garment_mask, result.extras["sam_garment_mask"])
    assert "mask_refinement" in result.cached  # MobileSAM's mask is cached whatever the range


def test_face_restoration_changes_only_the_feathered_face_box(full):
    result = full["result"]
    before, after = result.extras["tryon_before_restoration"], result.tryon
    x0, y0, x1, y1 = result.optional_steps["face_restoration"]["box"]
    assert 0 <= x0 < 197 < 246 < x1 <= 512 and 0 <= y0 < 105 < 128 < y1 <= 512
    outside = np.ones(before.shape[:2], dtype=bool)
    outside[y0:y1, x0:x1] = False
    assert np.array_equal(after[outside], before[outside])
    assert not np.array_equal(after[y0:y1, x0:x1], before[y0:y1, x0:x1])
    assert result.extras["restored_face"].shape == (512, 512, 3)


def test_the_quality_report_lists_every_figure_with_its_meaning_and_the_weights(full, synth_file):
    report = full["result"].quality
    assert set(report) == {"pipeline", "metrics", "skipped", "weights", "caution", "optional_steps", "steps"}
    assert set(report["metrics"]) == set(METRICS) and report["skipped"] == {}
    for name, figure in report["metrics"].items():
        assert set(figure) == {"value", "better", "range", "meaning", "model_role"}
        assert figure["better"] == METRICS[name].better and np.isfinite(figure["value"])
        low, high = figure["range"]
        assert low <= figure["value"] and (high is None or figure["value"] <= high + 1e-9)
    weights = report["weights"]
    assert weights["clip"]["sha256"] == file_sha256(synth_file("clip_vit_b32"))
    assert weights["clip"]["published_sha256"].startswith("40d36571") and weights["clip"]["matches_published"] is False
    assert weights["face_restoration"]["published_sha256"] is None
    assert weights["face_restoration"]["matches_published"] is None
    assert all(weight["provenance"].startswith("synthesized by this project") for weight in weights.values())
    assert "synthesized demo weights" in report["caution"]
    assert [step["name"] for step in report["steps"]][-1] == "quality"
    assert report["optional_steps"]["face_restoration"]["ran"] is True


def test_outputs_hold_quality_json_and_the_side_by_side_png(full, tmp_path):
    result = full["result"]
    written = save_outputs(result, tmp_path)
    assert written["quality_report"] == QUALITY_NAME and written["quality"] == "quality.png"
    assert json.loads((tmp_path / QUALITY_NAME).read_text()) == json.loads(json.dumps(result.quality))
    picture = Image.open(tmp_path / "quality.png")
    assert picture.format == "PNG" and picture.size[1] == 512  # person, garment, warp, result at the tallest height
    report = result.report(written)
    assert report["optional_steps"]["quality"]["ran"] is True and REPORT_NAME == "report.json"


def test_a_second_call_is_served_by_the_cache_without_loading_a_network(full):
    pool = ModelPool()
    again = run_virtual_try_on(
        full["person"], DEMO / "tshirt.png", models=full["models"], options=OPTIONS,
        keypoints=astronaut_keypoints(), parsing=astronaut_parsing(), cache=full["cache"], pool=pool,
    )  # fmt: skip
    assert again.cached == ("garment_mask", "mask_refinement", "tryon", "face_restoration", "quality")
    assert pool.loads == 0
    assert (
        np.array_equal(again.tryon, full["result"].tryon)
        and again.quality["metrics"] == full["result"].quality["metrics"]
    )


def test_switched_off_steps_say_so_and_load_nothing(full):
    options = TryOnOptions(
        **{**OPTIONS.__dict__, "mask_refinement": False, "face_restoration": False, "quality": False}
    )
    result = run_virtual_try_on(
        full["person"], DEMO / "tshirt.png", models=full["models"], options=options,
        keypoints=astronaut_keypoints(), parsing=astronaut_parsing(), cache=False, pool=ModelPool(),
    )  # fmt: skip
    assert result.optional_steps == {
        "person_mask": {"ran": False, "reason": absent_optional("person_mask")},
        "mask_refinement": {"ran": False, "reason": "switched off (mask_refinement=False)"},
        "face_restoration": {"ran": False, "reason": "switched off (face_restoration=False)"},
        "quality": {"ran": False, "reason": "switched off (quality=False)"},
    }
    assert result.quality is None and set(result.models) == set(CPVTON_ROLES) - {"pose", "parsing"}


def test_a_face_the_pose_does_not_show_is_not_restored(full):
    keypoints = astronaut_keypoints()
    keypoints[14] = (-1.0, -1.0, 0.0)
    result = run_virtual_try_on(
        full["person"], DEMO / "tshirt.png", models=full["models"], options=OPTIONS, keypoints=keypoints,
        parsing=astronaut_parsing(), cache=full["cache"], pool=full["pool"],
    )  # fmt: skip
    assert result.optional_steps["face_restoration"] == {
        "ran": False,
        "reason": "no face to restore: the right eye is missing from the keypoints",
    }
    assert "tryon_before_restoration" not in result.extras


def test_without_optional_checkpoints_the_steps_say_what_is_missing(synth_file, tmp_path):
    folder = link_zoo(tmp_path / "zoo", synth_file, CPVTON_FILES)
    result = run_virtual_try_on(
        DEMO / "astronaut.png", DEMO / "tshirt.png", models=folder, options=OPTIONS,
        keypoints=astronaut_keypoints(), parsing=astronaut_parsing(), cache=False,
    )  # fmt: skip
    assert result.optional_steps["mask_refinement"] == {
        "ran": False,
        "reason": "no mask_refinement checkpoint is available (sam_vit_h or sam_vit_l or sam_vit_b or mobile_sam)",
    }
    assert result.optional_steps["face_restoration"]["reason"] == (
        "no face_restoration checkpoint is available (gfpgan_v1_4)"
    )
    assert result.optional_steps["quality"] == {
        "ran": True,
        "skipped_figures": ["clip_garment_similarity", "lpips_outside_garment"],
    }
    assert set(result.quality["metrics"]) == {"ssim_outside_garment", "warp_mask_iou"}
    assert result.quality["skipped"]["lpips_outside_garment"].startswith("no lpips checkpoint is available")
