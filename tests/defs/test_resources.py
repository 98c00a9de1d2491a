"""The model factory and model manager resources: configuration over the engine's model set and pool."""

import shutil
from pathlib import Path

import pytest

from mycloset_assets.checkpoints.convert import file_sha256
from mycloset_assets.defs.models import SLOTS, missing_slot_message, model_card
from mycloset_assets.defs.resources import (
    ChangedFileError,
    ModelFactoryResource,
    ModelManagerResource,
    file_report,
)
from mycloset_assets.engine.models import default_pool, model_bytes


def zoo_of(folder: Path, synth_file, files: dict[str, str]) -> Path:
    folder.mkdir()
    for entry, name in files.items():
        shutil.copy(synth_file(entry), folder / name)
    return folder


def test_slots_take_their_entries_from_the_engine_role_table(tmp_path, synth_file):
    zoo = zoo_of(tmp_path / "zoo", synth_file, {"cpvton_gmm": "g.pth", "vitonhd_gmm": "v.pth", "u2netp": "m.bin"})
    (zoo / ".partial.pth").write_bytes(b"half a download")
    factory = ModelFactoryResource(checkpoint_folder=str(zoo))
    models = factory.models()
    assert ".partial.pth" not in " ".join(models.skipped) and list(factory.files()) == ["g.pth", "m.bin", "v.pth"]
    assert model_card("gmm", models, str(zoo))["entry"] == "cpvton_gmm"
    assert model_card("vitonhd_gmm", models, str(zoo))["entry"] == "vitonhd_gmm"
    card = model_card("garment_mask", models, str(zoo))
    assert card["file"] == "m.bin" and card["sha256"] == file_sha256(zoo / "m.bin") and card["match_rate"] == 1.0
    assert card["pipeline"] is None and card["policy"] == "refuse"
    assert model_card("tom", models, str(zoo)) is None
    assert "fills 'tom': it needs cpvton_tom (cpvton does not run without it)" in missing_slot_message("tom", models)
    assert SLOTS["vitonhd_seg"].entries == ("vitonhd_seg",) and SLOTS["lpips"].pipeline is None


def test_a_model_loads_once_per_process_through_the_engine_pool(tmp_path, synth_file):
    zoo = zoo_of(tmp_path / "zoo", synth_file, {"u2netp": "whatever.bin"})
    factory = ModelFactoryResource(checkpoint_folder=str(zoo))
    card = model_card("garment_mask", factory.models(), str(zoo))
    assert factory.pool() is default_pool()
    default_pool().clear()
    loads = default_pool().loads
    loaded, cached = factory.load(card)
    again, cached_again = ModelFactoryResource(checkpoint_folder=str(zoo)).load(card)
    assert again is loaded and (cached, cached_again) == (False, True) and default_pool().loads == loads + 1
    assert loaded.entry.id == "u2netp" and not loaded.module.training
    double, _ = ModelFactoryResource(checkpoint_folder=str(zoo), dtype="float64").load(card)
    assert double is not loaded and next(double.module.parameters()).dtype.is_floating_point
    with pytest.raises(ChangedFileError, match="changed since it was chosen"):
        factory.load({**card, "sha256": "0" * 64})
    with pytest.raises(ValueError, match="policy"):
        ModelFactoryResource(checkpoint_folder=str(zoo), policy="guess").models()


def test_the_memory_budget_keeps_one_network_when_two_do_not_fit(tmp_path, synth_file):
    zoo = zoo_of(tmp_path / "zoo", synth_file, {"u2netp": "mask.pth", "cpvton_tom": "tom.pth"})
    probe = ModelFactoryResource(checkpoint_folder=str(zoo))
    cards = [model_card(slot, probe.models(), str(zoo)) for slot in ("garment_mask", "tom")]
    sizes = [model_bytes(probe.load(card)[0]) for card in cards]
    budget_mb = (max(sizes) + min(sizes) // 2) / 2**20
    factory = ModelFactoryResource(checkpoint_folder=str(zoo), memory_budget_mb=budget_mb)
    default_pool().clear()
    pool = factory.pool()
    loads, releases = pool.loads, pool.releases
    try:
        assert pool is default_pool() and pool.memory_budget == int(budget_mb * 2**20) < sum(sizes)
        for card in [*cards, *cards]:
            factory.load(card)
            assert len(pool) == 1 and pool.resident_bytes() <= pool.memory_budget
        assert (pool.loads - loads, pool.releases - releases) == (4, 3)
    finally:
        assert probe.pool().memory_budget is None, "an unbounded resource lifts the budget again"


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
