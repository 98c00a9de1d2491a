"""Per-role model assets and their checks on a real (ephemeral) instance, with synthesized checkpoints."""

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from mycloset_assets.checkpoints.convert import file_sha256
from mycloset_assets.defs.checkpoints import canonical_checkpoint, checkpoint_analysis, register_checkpoint_files
from mycloset_assets.defs.checks import (
    KEY_MATCH_CHECK,
    LOAD_COST_CHECK,
    ModelCheckConfig,
    key_match_result,
    load_cost_result,
)
from mycloset_assets.defs.io_managers import OpenFormatIOManager
from mycloset_assets.defs.models import MODEL_ASSETS, SLOTS, asset_name
from mycloset_assets.defs.resources import ModelFactoryResource

METADATA_KEYS = {"entry", "file", "sha256", "match_rate", "verdict", "seconds", "cpu_seconds", "peak_rss_mb"}
ALL_ASSETS = [checkpoint_analysis, canonical_checkpoint, *MODEL_ASSETS.values()]


@dataclass
class Zoo:
    folder: Path
    store: Path
    instance: dg.DagsterInstance
    resources: dict[str, Any]


@pytest.fixture(scope="module")
def zoo(tmp_path_factory: pytest.TempPathFactory, synth_file) -> Iterator[Zoo]:
    root = tmp_path_factory.mktemp("models")
    folder = root / "zoo"
    folder.mkdir()
    shutil.copy(synth_file("u2netp"), folder / "cloth_mask.pth")
    shutil.copy(synth_file("lpips_alex_lin"), folder / "alex.pth")
    (folder / "body_pose_model.pth").write_text("<!DOCTYPE html><html><body>Sign in</body></html>")
    resources = {
        "model_factory": ModelFactoryResource(checkpoint_folder=str(folder)),
        "io_manager": OpenFormatIOManager(base_dir=str(root / "store")),
    }
    with dg.instance_for_test() as instance:
        for key in register_checkpoint_files(instance, resources["model_factory"].files()):
            dg.materialize(
                ALL_ASSETS, selection=[checkpoint_analysis], instance=instance, resources=resources, partition_key=key
            )
        yield Zoo(folder, root / "store", instance, resources)


def _materialise(zoo: Zoo, roles: list[str], run_config: dict[str, Any] | None = None) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        ALL_ASSETS,
        selection=[MODEL_ASSETS[role] for role in roles],
        instance=zoo.instance,
        resources=zoo.resources,
        run_config=run_config or {},
    )


def _checks(result: dg.ExecuteInProcessResult) -> dict[tuple[str, str], dg.AssetCheckEvaluation]:
    return {(item.asset_key.to_user_string(), item.check_name): item for item in result.get_asset_check_evaluations()}


def test_every_role_has_an_asset_downstream_of_the_checkpoint_files():
    assert set(SLOTS) == {
        "pose", "parsing", "garment_mask", "gmm", "tom", "vitonhd_seg", "vitonhd_gmm", "vitonhd_alias",
        "face_restoration", "mask_refinement", "lpips", "clip", "blazepose", "person_mask",
        "face_detection",
    }  # fmt: skip
    assert SLOTS["blazepose"].entries == ("mediapipe_pose_landmark_full",)
    assert SLOTS["gmm"].entries == ("cpvton_gmm",) and SLOTS["vitonhd_gmm"].entries == ("vitonhd_gmm",)
    resources = {"model_factory": ModelFactoryResource(checkpoint_folder="zoo")}
    graph = dg.Definitions(assets=ALL_ASSETS, resources=resources).resolve_asset_graph()
    for role in SLOTS:
        node = graph.get(dg.AssetKey(asset_name(role)))
        assert node.parent_keys == {dg.AssetKey("checkpoint_analysis")}
        assert {key.name for key in node.check_keys} == {KEY_MATCH_CHECK, LOAD_COST_CHECK}
        assert MODEL_ASSETS[role].op.pool == "gpu"


def test_role_card_names_the_exact_file_and_checks_pass(zoo):
    result = _materialise(zoo, ["garment_mask"])
    assert result.success
    card = json.loads((zoo.store / "garment_mask_model.json").read_text())
    assert card["file"] == "cloth_mask.pth" and card["entry"] == "u2netp" and card["role"] == "garment_mask"
    assert card["path"] == str((zoo.folder / "cloth_mask.pth").resolve()) and card["match_rate"] == 1.0
    assert card["device"] == "cpu" and card["dtype"] == "float32" and card["parameters"] > 1_000_000
    assert card["load"]["seconds"] > 0 and card["load"]["peak_rss_mb"] > 0
    (materialization,) = result.asset_materializations_for_node("garment_mask_model")
    assert set(materialization.metadata) >= METADATA_KEYS
    assert materialization.metadata["sha256"].value == card["sha256"]
    assert materialization.tags["dagster/data_version"] == card["sha256"]
    checks = _checks(result)
    for name, severity in (
        (KEY_MATCH_CHECK, dg.AssetCheckSeverity.ERROR),
        (LOAD_COST_CHECK, dg.AssetCheckSeverity.WARN),
    ):
        evaluation = checks[("garment_mask_model", name)]
        assert evaluation.passed and evaluation.severity == severity
        assert set(evaluation.metadata) >= METADATA_KEYS
    loaded, cached = zoo.resources["model_factory"].load(card)
    assert cached
    assert loaded.entry.id == "u2netp" and file_sha256(loaded.path) == card["sha256"]
    assert _materialise(zoo, ["garment_mask"]).success
    again = json.loads((zoo.store / "garment_mask_model.json").read_text())
    assert again["cached"] is True and again["sha256"] == card["sha256"]


def test_a_role_no_file_fills_is_not_materialised_and_its_check_says_why(zoo):
    result = _materialise(zoo, ["pose", "lpips"])
    assert result.success
    assert not result.asset_materializations_for_node("pose_model")
    checks = _checks(result)
    pose = checks[("pose_model", KEY_MATCH_CHECK)]
    assert not pose.passed and pose.severity == dg.AssetCheckSeverity.WARN
    assert "fills 'pose': it needs openpose_body_coco18" in pose.description
    assert "body_pose_model.pth (not_a_checkpoint: an HTML page" in pose.description
    lpips = checks[("lpips_model", KEY_MATCH_CHECK)]
    assert "alex.pth (lpips_alex_lin) needs torchvision_alexnet_features beside it" in lpips.description
    assert checks[("pose_model", LOAD_COST_CHECK)].severity == dg.AssetCheckSeverity.WARN


def test_slow_loading_is_a_warning_with_the_configured_threshold(zoo):
    config = {"ops": {"garment_mask_model": {"config": {"max_load_seconds": 0.0}}}}
    result = _materialise(zoo, ["garment_mask"], config)
    assert result.success
    checks = _checks(result)
    cost = checks[("garment_mask_model", LOAD_COST_CHECK)]
    assert not cost.passed and cost.severity == dg.AssetCheckSeverity.WARN
    assert cost.metadata["max_load_seconds"].value == 0.0
    assert checks[("garment_mask_model", KEY_MATCH_CHECK)].passed


def _card(**changes: Any) -> dict[str, Any]:
    card = {
        "role": "parsing",
        "entry": "schp_lip20",
        "family": "schp",
        "file": "final.pth",
        "sha256": "ab" * 32,
        "verdict": "identified",
        "match_rate": 1.0,
        "matched": 10,
        "total": 10,
        "reason": "SCHP",
        "pipeline": "cpvton",
        "device": "cpu",
        "dtype": "float32",
        "cached": False,
        "reinitialised": [],
        "load": {"seconds": 2.0, "cpu_seconds": 1.5, "peak_rss_mb": 900.0, "device_peak_mb": None},
    }
    return card | changes


def test_key_match_fails_with_error_for_partial_matches_and_reinitialised_heads():
    assert key_match_result(_card()).passed
    partial = key_match_result(_card(verdict="partial", match_rate=0.9, matched=9, reinitialised=["head"]))
    assert not partial.passed and partial.severity == dg.AssetCheckSeverity.ERROR
    assert (
        "key-match rate 0.9000 (9/10 tensors)" in partial.description and "re-initialised head" in partial.description
    )
    assert partial.metadata["match_rate"].value == 0.9


def test_load_cost_thresholds():
    card = _card(load={"seconds": 2.0, "cpu_seconds": 1.5, "peak_rss_mb": 900.0, "device_peak_mb": 300.0})
    assert load_cost_result(card, ModelCheckConfig()).passed
    result = load_cost_result(card, ModelCheckConfig(max_load_seconds=1.0, max_load_peak_rss_mb=512.0))
    assert not result.passed and result.severity == dg.AssetCheckSeverity.WARN
    assert "2.00 s > 1 s" in result.description and "peak RSS 900 MiB > 512 MiB" in result.description
    assert result.metadata["device_peak_mb"].value == 300.0
