"""The checkpoint side of the graph on a real (ephemeral) instance: the folder sensor, each file's analysis
with its ``identified`` check, and the canonical safetensors copies, all stored in open formats."""

import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import torch

from mycloset_assets.checkpoints import load_model
from mycloset_assets.defs.checkpoints import (
    CHECKPOINT_FILES,
    IDENTIFIED_CHECK,
    canonical_checkpoint,
    checkpoint_analysis,
    checkpoint_folder_sensor,
    register_checkpoint_files,
    scan_for_runs,
)
from mycloset_assets.defs.io_managers import OpenFormatIOManager, OpenFormatStorage, Weights, read_value, stored_path
from mycloset_assets.defs.models import MODEL_ASSETS
from mycloset_assets.defs.resources import ModelFactoryResource, ModelManagerResource

IMPOSTOR = "tom_final.pth"
FILES = {"u2netp.pth": "u2netp", "openpose/hand_pose_model.pth": "openpose_hand", "alex.pth": "lpips_alex_lin"}
CHECK_KEYS = {"verdict", "entry", "family", "match_rate", "sha256", "reason", "seconds", "cpu_seconds", "peak_rss_mb"}


@dataclass
class CheckpointSide:
    zoo: Path
    store: Path
    instance: dg.DagsterInstance
    resources: dict[str, Any]
    first_tick: dg.SensorResult
    results: dict[str, dg.ExecuteInProcessResult]


def stored(side: CheckpointSide, asset: str, key: str) -> Path:
    """The file the IO manager wrote for one partition of an asset."""
    return Path(stored_path(OpenFormatStorage(side.store).stem(dg.AssetKey(asset), key)))


@pytest.fixture(scope="module")
def side(tmp_path_factory: pytest.TempPathFactory, synth_file) -> Iterator[CheckpointSide]:
    root = tmp_path_factory.mktemp("checkpoint-side")
    zoo, store = root / "zoo", root / "store"
    for key, entry in FILES.items():
        (zoo / key).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(synth_file(entry), zoo / key)
    (zoo / IMPOSTOR).write_text("<html><body>404 Not Found</body></html>")
    resources = {
        "model_factory": ModelFactoryResource(checkpoint_folder=str(zoo)),
        "io_manager": OpenFormatIOManager(base_dir=str(store)),
    }
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(instance=instance, resources=resources)
        tick = checkpoint_folder_sensor(context)
        assert isinstance(tick, dg.SensorResult)
        for request in tick.dynamic_partitions_requests:
            register_checkpoint_files(instance, request.partition_keys)
        results = {
            request.partition_key: dg.materialize(
                [checkpoint_analysis, canonical_checkpoint],
                instance=instance,
                resources=resources,
                partition_key=request.partition_key,
            )
            for request in tick.run_requests
        }
        yield CheckpointSide(zoo, store, instance, resources, tick, results)


def test_sensor_registers_every_file_once_with_its_sha256(side):
    keys = sorted([*FILES, IMPOSTOR])
    assert sorted(request.partition_key for request in side.first_tick.run_requests) == keys
    assert sorted(side.instance.get_dynamic_partitions(CHECKPOINT_FILES.name)) == keys
    for request in side.first_tick.run_requests:
        sha256 = json.loads(stored(side, "checkpoint_analysis", request.partition_key).read_text())["sha256"]
        assert request.run_key == f"{request.partition_key}@{sha256}"
    again = checkpoint_folder_sensor(
        dg.build_sensor_context(instance=side.instance, resources=side.resources, cursor=side.first_tick.cursor)
    )
    assert not again.run_requests and "no new or changed files among 4" in again.skip_reason.skip_message


def test_a_first_tick_requests_nothing_already_analysed_and_a_changed_file_again(side):
    fresh = checkpoint_folder_sensor(dg.build_sensor_context(instance=side.instance, resources=side.resources))
    assert fresh.run_requests == [], "a new cursor (the demo's materialisations, a restarted daemon) repeats nothing"
    assert "4 already analysed with the same content" in fresh.skip_reason.skip_message
    target = side.zoo / IMPOSTOR
    original = target.read_bytes()
    try:
        target.write_text("<html><body>another 404 page</body></html>")
        changed = checkpoint_folder_sensor(
            dg.build_sensor_context(instance=side.instance, resources=side.resources, cursor=fresh.cursor)
        )
        (request,) = changed.run_requests
        assert request.partition_key == IMPOSTOR and request.run_key.startswith(f"{IMPOSTOR}@")
    finally:
        target.write_bytes(original)


def test_sensor_reruns_a_replaced_file_but_not_a_touched_one(side, tmp_path):
    files = {key: tmp_path / key.replace("/", "_") for key in [*FILES, IMPOSTOR]}
    for key, copy in files.items():
        shutil.copy2(side.zoo / key, copy)
    changed, record, _ = scan_for_runs(files, {})
    assert len(changed) == 4
    os.utime(files[IMPOSTOR], ns=(1, 1))
    assert scan_for_runs(files, record)[0] == []
    files[IMPOSTOR].write_text("<html>another error page</html>")
    (rerun,) = scan_for_runs(files, record)[0]
    assert rerun[0] == IMPOSTOR and rerun[1] != record[IMPOSTOR][2]
    assert len(scan_for_runs(files, {}, limit=2)[0]) == 2


def test_sensor_reports_vanished_files_and_a_missing_folder(side, tmp_path):
    changed, record, unreadable = scan_for_runs({"gone.pth": tmp_path / "gone.pth"}, {})
    assert changed == [] and record == {} and unreadable[0].startswith("gone.pth: ")
    missing = {"model_factory": ModelFactoryResource(checkpoint_folder=str(tmp_path / "nowhere"))}
    skipped = checkpoint_folder_sensor(dg.build_sensor_context(instance=side.instance, resources=missing))
    assert isinstance(skipped, dg.SkipReason) and "does not exist" in skipped.skip_message


def test_every_file_is_analysed_and_stored_as_json(side):
    for key, entry in FILES.items():
        path = stored(side, "checkpoint_analysis", key)
        report = json.loads(path.read_text())
        assert report["verdict"] == "identified" and report["entry"] == entry and report["key"] == key
        assert report["match_rate"] == 1.0 and report["path"] == str((side.zoo / key).resolve())
        metadata = side.results[key].asset_materializations_for_node("checkpoint_analysis")[0].metadata
        assert metadata["entry"].value == entry and metadata["sha256"].value == report["sha256"]
        assert metadata["path"].value == str(path) and metadata["format"].value == "json"
    impostor = json.loads(stored(side, "checkpoint_analysis", IMPOSTOR).read_text())
    assert impostor["verdict"] == "not_a_checkpoint" and impostor["container"] == "html"


def test_identified_check_per_file_with_its_metadata(side):
    for key, result in side.results.items():
        (evaluation,) = result.get_asset_check_evaluations()
        assert evaluation.check_name == IDENTIFIED_CHECK and evaluation.partition == key
        assert set(evaluation.metadata) >= CHECK_KEYS
        assert evaluation.severity == dg.AssetCheckSeverity.ERROR
        assert evaluation.passed == (key != IMPOSTOR)
    impostor = side.results[IMPOSTOR].get_asset_check_evaluations()[0]
    assert impostor.description.startswith("not_a_checkpoint: an HTML page")


def test_canonical_copies_are_safetensors_with_their_card(side):
    for key, entry in FILES.items():
        path = stored(side, "canonical_checkpoint", key)
        assert path.suffix == ".safetensors"
        weights = read_value(OpenFormatStorage(side.store).stem(dg.AssetKey("canonical_checkpoint"), key))
        assert isinstance(weights, Weights) and weights.metadata["entry"] == entry
        card = json.loads(weights.metadata["card"])
        assert card["tensors"] == len(weights) and card["source"]["path"] == key
        assert card["analysis"]["verdict"] == "identified" and "sha256" not in card
        if entry == "u2netp":
            state = load_model(side.zoo / key, dtype=torch.float64).module.state_dict()
            assert all(torch.equal(tensor.double(), state[name]) for name, tensor in weights.items())
        metadata = side.results[key].asset_materializations_for_node("canonical_checkpoint")[0].metadata
        assert metadata["converted"].value is True and metadata["sha256"].value == card["source"]["sha256"]
    note = json.loads(stored(side, "canonical_checkpoint", IMPOSTOR).read_text())
    assert note["converted"] is False and note["verdict"] == "not_a_checkpoint"
    assert "only identified checkpoints are converted" in note["reason"]
    assert (
        sorted(path.suffix for path in side.store.rglob("*") if path.is_file()) == [".json"] * 5 + [".safetensors"] * 3
    )


def test_definitions_load_without_loading_anything(side):
    defs = dg.Definitions(
        assets=[checkpoint_analysis, canonical_checkpoint, *MODEL_ASSETS.values()],
        sensors=[checkpoint_folder_sensor],
        resources={
            **side.resources,
            "model_manager": ModelManagerResource(root=str(side.store / "manager")),
        },
    )
    dg.Definitions.validate_loadable(defs)
    keys = defs.resolve_asset_graph().get_all_asset_keys()
    assert {dg.AssetKey("checkpoint_analysis"), dg.AssetKey("canonical_checkpoint"), dg.AssetKey("pose_model")} <= keys
    assert not (side.store / "manager").exists()
