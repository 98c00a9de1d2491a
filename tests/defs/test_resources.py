"""The model factory and model manager resources: role choice by content, lazy loading, once per process."""

import shutil
from typing import Any

import pytest

from mycloset_assets.checkpoints.convert import file_sha256
from mycloset_assets.checkpoints.pipelines import OPTIONAL_ROLES, PIPELINES
from mycloset_assets.defs.resources import (
    MODEL_CACHE,
    ChangedFileError,
    ModelFactoryResource,
    ModelManagerResource,
    NoModelForRoleError,
    checkpoint_files,
    choose_role,
    file_report,
    missing_role_message,
    role_candidates,
)


def report(key: str, entry: str | None, verdict: str = "identified", **extra: Any) -> dict[str, Any]:
    """A file report as checkpoint_analysis stores it (only the fields the role choice reads matter)."""
    base = {
        "key": key,
        "path": f"/zoo/{key}",
        "sha256": f"sha-{key}",
        "size": 1,
        "verdict": verdict,
        "entry": entry,
        "family": entry,
        "match_rate": 1.0 if verdict == "identified" else 0.5,
        "matched": 1,
        "total": 1,
        "container": "torch_zip",
        "reason": f"{verdict} {entry}",
        "missing": [],
        "mismatched": [],
    }
    return base | extra


CPVTON = ["openpose_body_coco18", "schp_lip20", "u2netp", "cpvton_gmm", "cpvton_tom"]


def test_role_table_comes_from_the_pipelines():
    table = role_candidates()
    for roles in [*PIPELINES.values(), OPTIONAL_ROLES]:
        for role, entries in roles.items():
            assert set(entries) <= set(table[role])
    assert table["gmm"] == ("vitonhd_gmm", "cpvton_gmm")
    assert table["garment_mask"] == ("u2net_cloth_seg4", "u2net", "u2netp")
    assert {"pose", "parsing", "garment_mask", "gmm", "tom", "seg", "alias", "lpips", "clip"} <= set(table)


def test_choice_follows_preference_and_the_complete_pipeline():
    reports = [report(f"{entry}.pth", entry) for entry in CPVTON]
    choice = choose_role("gmm", reports)
    assert choice is not None and choice.entry == "cpvton_gmm" and choice.pipeline == "cpvton"
    assert choose_role("garment_mask", reports).entry == "u2netp"
    reports.append(report("cloth.pth", "u2net_cloth_seg4"))
    assert choose_role("garment_mask", reports).entry == "u2net_cloth_seg4"
    vitonhd = [report(f"{entry}.pth", entry) for entry in ("vitonhd_seg", "vitonhd_gmm", "vitonhd_alias")]
    assert choose_role("gmm", reports + vitonhd).entry == "vitonhd_gmm"
    assert choose_role("gmm", [report("g.pth", "cpvton_gmm"), report("v.pth", "vitonhd_gmm")]).entry == "vitonhd_gmm"
    assert choose_role("seg", reports) is None


def test_choice_skips_what_is_not_identified_and_takes_the_first_file_of_an_entry():
    reports = [
        report("b.pth", "u2netp"),
        report("a.pth", "u2netp"),
        report("openpose.pth", None, "impostor", family="torchvision:resnet50"),
        report("tom_final.pth", None, "not_a_checkpoint"),
    ]
    assert choose_role("garment_mask", reports).report["key"] == "a.pth"
    assert choose_role("pose", reports) is None
    message = missing_role_message("pose", reports, "zoo")
    assert "needs openpose_body_coco18" in message and "openpose.pth (impostor:" in message
    assert "a.pth (u2netp)" in message and "tom_final.pth (not_a_checkpoint:" in message
    with pytest.raises(KeyError, match="unknown role"):
        choose_role("nonsense", reports)


def test_companions_and_partial_files_under_the_policies():
    lin = report("alex.pth", "lpips_alex_lin")
    assert choose_role("lpips", [lin]) is None
    choice = choose_role("lpips", [lin, report("alexnet.pth", "torchvision_alexnet_features")])
    assert choice.companions["torchvision_alexnet_features"]["key"] == "alexnet.pth"
    assert choice.to_card()["companions"]["torchvision_alexnet_features"]["sha256"] == "sha-alexnet.pth"
    head = report("schp.pth", "schp_lip20", "partial", mismatched=[{"key": "head"}])
    assert choose_role("parsing", [head]) is None
    assert choose_role("parsing", [head], policy="reinit_head").entry == "schp_lip20"
    hollow = report("schp.pth", "schp_lip20", "partial", missing=["layer1.weight"])
    assert choose_role("parsing", [hollow], policy="reinit_head") is None


def test_checkpoint_files_are_keyed_by_relative_path_without_hidden_files(tmp_path):
    (tmp_path / "schp").mkdir()
    (tmp_path / "schp" / "final.pth").write_bytes(b"x")
    (tmp_path / "a b.pth").write_bytes(b"x")
    (tmp_path / ".DS_Store").write_bytes(b"x")
    (tmp_path / ".cache").mkdir()
    (tmp_path / ".cache" / "part.pth").write_bytes(b"x")
    assert list(checkpoint_files(tmp_path)) == ["a b.pth", "schp/final.pth"]
    with pytest.raises(FileNotFoundError, match="does not exist"):
        checkpoint_files(tmp_path / "missing")


def test_nothing_is_read_when_the_resource_is_configured(tmp_path):
    factory = ModelFactoryResource(checkpoint_folder=str(tmp_path / "not-yet"))
    with pytest.raises(FileNotFoundError):
        factory.files()
    with pytest.raises(ValueError, match="policy"):
        ModelFactoryResource(checkpoint_folder=str(tmp_path), policy="guess").load_file(__file__)


def test_a_model_loads_once_per_process_and_configuration(tmp_path, synth_file):
    zoo = tmp_path / "zoo"
    zoo.mkdir()
    shutil.copy(synth_file("u2netp"), zoo / "whatever.bin")
    (zoo / "tom_final.pth").write_text("<html><body>error</body></html>")
    sha = file_sha256(zoo / "whatever.bin")
    MODEL_CACHE.clear()
    before = MODEL_CACHE.loads[(sha, "cpu", "float32", "refuse")]
    first = ModelFactoryResource(checkpoint_folder=str(zoo))
    loaded = first.load_role("garment_mask")
    again = ModelFactoryResource(checkpoint_folder=str(zoo)).load_role("garment_mask")
    card = first.choose("garment_mask").to_card()
    assert again is loaded and first.load_card(card) is loaded
    assert MODEL_CACHE.loads[(sha, "cpu", "float32", "refuse")] == before + 1
    assert loaded.entry.id == "u2netp" and not loaded.module.training
    double = ModelFactoryResource(checkpoint_folder=str(zoo), dtype="float64").load_role("garment_mask")
    assert double is not loaded and next(double.module.parameters()).dtype.is_floating_point
    assert MODEL_CACHE.loads[(sha, "cpu", "float64", "refuse")] >= 1
    assert card["file"] == "whatever.bin" and card["sha256"] == sha and card["match_rate"] == 1.0
    with pytest.raises(ChangedFileError):
        first.load_file(zoo / "whatever.bin", sha256="0" * 64)
    with pytest.raises(NoModelForRoleError, match=r"tom_final.pth \(not_a_checkpoint"):
        first.load_role("pose")


def test_file_report_is_the_analysis_plus_identity(synth_file):
    path = synth_file("u2netp")
    got = file_report("u2netp.pth", path)
    assert got["verdict"] == "identified" and got["entry"] == "u2netp" and got["key"] == "u2netp.pth"
    assert got["sha256"] == file_sha256(path) and got["size"] == path.stat().st_size
    assert {"missing", "unexpected", "mismatched", "reason", "match_rate", "container"} <= set(got)


def test_model_manager_resource_wraps_the_store(tmp_path, synth_file):
    resource = ModelManagerResource(root=str(tmp_path / "store"))
    assert resource.manager().root == tmp_path / "store"
    assert resource.active() == []
    resource.manager().register(synth_file("u2netp"))
    assert [(model.name, model.entry, model.active) for model in resource.active()] == [("u2netp", "u2netp", True)]
