"""The open-format IO manager: round trips of every format, refusals, safe partition paths, batch runs, and
the same on other storage locations (fsspec's ``memory://``, another local folder, a ``file://`` URL)."""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import fsspec
import numpy as np
import pytest
import torch
from upath import UPath

from mycloset_assets.defs.io_managers import (
    OpenFormatIOManager,
    OpenFormatStorage,
    PartitionValuesError,
    UnsupportedValueError,
    Weights,
    format_of,
    partition_parts,
    read_value,
    stored_path,
    write_value,
)


@dataclass
class Pose:
    keypoints: np.ndarray
    score: np.float32
    source: Path


def _rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.mark.parametrize("shape", [(5, 7), (5, 7, 3), (5, 7, 4)])
def test_png_round_trip(tmp_path, shape):
    image = _rng().integers(0, 256, shape, dtype=np.uint8)
    path = write_value(image, UPath(tmp_path) / "image")
    assert path.name == "image.png" and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    loaded = read_value(UPath(tmp_path) / "image")
    assert loaded.dtype == np.uint8 and loaded.shape == shape
    np.testing.assert_array_equal(loaded, image)


def test_json_round_trip_of_dicts_lists_and_dataclasses(tmp_path):
    report = {"verdict": "identified", "match_rate": 1.0, "missing": [], "nested": {"a": [1, 2]}, "entry": None}
    write_value(report, UPath(tmp_path) / "report")
    assert read_value(UPath(tmp_path) / "report") == report
    write_value([{"x": 1}, {"x": 2}], UPath(tmp_path) / "rows")
    assert read_value(UPath(tmp_path) / "rows") == [{"x": 1}, {"x": 2}]
    pose = Pose(np.array([[1.5, 2.0, 0.9]]), np.float32(0.5), Path("a/b.png"))
    path = write_value(pose, UPath(tmp_path) / "pose")
    assert path.suffix == ".json"
    assert read_value(UPath(tmp_path) / "pose") == {"keypoints": [[1.5, 2.0, 0.9]], "score": 0.5, "source": "a/b.png"}


def test_npz_round_trip(tmp_path):
    arrays = {"heatmaps": _rng().random((3, 4, 5)).astype(np.float32), "labels": np.arange(6, dtype=np.int64)}
    path = write_value(arrays, UPath(tmp_path) / "maps")
    assert path.suffix == ".npz"
    loaded = read_value(UPath(tmp_path) / "maps")
    assert set(loaded) == set(arrays)
    for key, array in arrays.items():
        assert loaded[key].dtype == array.dtype
        np.testing.assert_array_equal(loaded[key], array)


def test_safetensors_round_trip_keeps_dtypes_and_header_metadata(tmp_path):
    weights = {
        "conv.weight": torch.randn(4, 3, 3, 3),
        "bn.num_batches_tracked": torch.tensor(7),
        "half": torch.ones(2).half(),
    }
    write_value(weights, UPath(tmp_path) / "plain")
    loaded = read_value(UPath(tmp_path) / "plain")
    assert isinstance(loaded, dict) and loaded.metadata == {}
    for key, tensor in weights.items():
        assert loaded[key].dtype == tensor.dtype and torch.equal(loaded[key], tensor)
    write_value(Weights(weights, {"entry": "u2netp"}), UPath(tmp_path) / "card")
    assert read_value(UPath(tmp_path) / "card").metadata == {"entry": "u2netp"}


@pytest.fixture(params=["memory", "second_local_folder", "file_url"])
def elsewhere(request, memory_root, tmp_path_factory) -> UPath:
    """A store outside the usual folder: fsspec's ``memory://``, another local folder, a ``file://`` URL."""
    if request.param == "memory":
        return memory_root / "store"
    folder = tmp_path_factory.mktemp("elsewhere") / "nested" / "store"
    return UPath(folder.as_uri() if request.param == "file_url" else str(folder))


def raw_bytes(path: UPath) -> bytes:
    """A stored file's bytes read by fsspec itself, not through the IO manager."""
    with fsspec.open(str(path), "rb") as stream:
        return stream.read()


def test_every_format_round_trips_on_another_storage_location(elsewhere):
    values = {
        "mask": np.arange(12, dtype=np.uint8).reshape(3, 4),
        "report": {"verdict": "identified", "rates": [1.0, 0.5]},
        "maps": {"heatmaps": _rng().random((2, 3)).astype(np.float32)},
        "weights": Weights({"w": torch.arange(3.0), "n": torch.tensor(7)}, {"entry": "u2netp"}),
    }
    paths = {name: write_value(value, elsewhere / "asset" / name) for name, value in values.items()}
    suffixes = {"mask": "png", "report": "json", "maps": "npz", "weights": "safetensors"}
    assert {name: str(path) for name, path in paths.items()} == {
        name: f"{elsewhere}/asset/{name}.{suffix}" for name, suffix in suffixes.items()
    }
    assert sorted(path.name for path in (elsewhere / "asset").iterdir()) == sorted(
        f"{name}.{suffix}" for name, suffix in suffixes.items()
    )
    assert raw_bytes(paths["mask"])[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads(raw_bytes(paths["report"])) == values["report"]
    np.testing.assert_array_equal(read_value(elsewhere / "asset" / "mask"), values["mask"])
    assert read_value(elsewhere / "asset" / "report") == values["report"]
    np.testing.assert_array_equal(read_value(elsewhere / "asset" / "maps")["heatmaps"], values["maps"]["heatmaps"])
    weights = read_value(elsewhere / "asset" / "weights")
    assert weights.metadata == {"entry": "u2netp"} and torch.equal(weights["w"], values["weights"]["w"])
    assert weights["n"].dtype == torch.int64 and int(weights["n"]) == 7

    write_value({"replaced": True}, elsewhere / "asset" / "mask")
    assert stored_path(elsewhere / "asset" / "mask").name == "mask.json"
    assert not (elsewhere / "asset" / "mask.png").exists()


def test_assets_materialise_on_another_storage_location_with_its_paths_and_sizes(elsewhere):
    key = "alice|shirt"
    resources = {"io_manager": OpenFormatIOManager(base_dir=str(elsewhere))}
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(PAIRS.name, [key])
        first = dg.materialize([mask], instance=instance, resources=resources, partition_key=key)
        second = dg.materialize(
            [mask, area], selection=[area], instance=instance, resources=resources, partition_key=key
        )
        result = dg.materialize([mask, area, summary], selection=[summary], instance=instance, resources=resources)
    assert first.success and second.success and result.success
    stored = {
        "mask": elsewhere / "mask" / "alice" / "shirt.png",
        "area": elsewhere / "area" / "alice" / "shirt.json",
        "summary": elsewhere / "summary.json",
    }
    for run, name in ((first, "mask"), (second, "area"), (result, "summary")):
        metadata = run.asset_materializations_for_node(name)[0].metadata
        assert metadata["path"].value == str(stored[name])
        assert metadata["stored_bytes"].value == len(raw_bytes(stored[name])) > 0
    np.testing.assert_array_equal(read_value(elsewhere / "mask" / "alice" / "shirt"), np.full((2, 3), 11, np.uint8))
    assert json.loads(raw_bytes(stored["area"])) == {"area": 6, "value": 11}
    assert result.output_for_node("summary") == {"alice|shirt": 11}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (np.zeros((4, 4), dtype=np.float32), "uint8"),
        (np.zeros((4, 4), dtype=bool), "uint8"),
        (np.zeros((4, 4, 2), dtype=np.uint8), "uint8 H x W"),
        (np.zeros((0, 4), dtype=np.uint8), "uint8 H x W"),
        (torch.zeros(3), "dict of tensors"),
        (torch.nn.Linear(2, 2), "state_dict"),
        ("text", "never pickles"),
        (None, "never pickles"),
        (object(), "never pickles"),
        ({"a": np.zeros(2), "b": torch.zeros(2)}, "only tensors"),
        ({"a": np.array([object()], dtype=object)}, "pickle"),
        ({1: np.zeros(2)}, "strings"),
        ({"x": float("nan")}, "JSON"),
        ({"x": {1, 2}}, "JSON"),
        (Weights({"w": torch.zeros(1)}, {"n": 1}), "strings"),
    ],
)
def test_refuses_what_needs_pickle_or_has_no_open_format(tmp_path, value, message):
    with pytest.raises(UnsupportedValueError, match=message):
        write_value(value, UPath(tmp_path) / "value")
    assert not list(tmp_path.iterdir())


def test_a_new_format_replaces_the_old_file(tmp_path):
    stem = UPath(tmp_path) / "asset"
    write_value({"a": 1}, stem)
    write_value(np.zeros((2, 2), dtype=np.uint8), stem)
    assert [path.name for path in tmp_path.iterdir()] == ["asset.png"]
    assert stored_path(stem).suffix == ".png"
    with pytest.raises(FileNotFoundError):
        read_value(UPath(tmp_path) / "missing")


def test_partition_paths_are_safe_and_distinct():
    assert partition_parts("alice.jpg|shirt.png") == ("alice.jpg", "shirt.png")
    assert partition_parts("schp/final.pth") == ("schp%2Ffinal.pth",)
    assert partition_parts("..") == ("%2E.",)
    assert partition_parts(".hidden|..") == ("%2Ehidden", "%2E.")
    keys = ["a|b", "a/b", "a%7Cb", "a b", "a", "a|b|c", "é"]
    paths = {partition_parts(key) for key in keys}
    assert len(paths) == len(keys)
    assert all("/" not in part and part not in (".", "..") for parts in paths for part in parts)
    with pytest.raises(ValueError, match="empty"):
        partition_parts("a|")


def test_format_of_is_type_driven():
    assert format_of(np.zeros((2, 2, 3), dtype=np.uint8)) == "png"
    assert format_of({"a": np.zeros(2)}) == "npz"
    assert format_of({"a": torch.zeros(2)}) == "safetensors"
    assert format_of({}) == "json"
    assert format_of({"a": np.zeros(2), "b": 1}) == "json"


PAIRS = dg.DynamicPartitionsDefinition(name="test_pairs")


@dg.asset(partitions_def=PAIRS)
def mask(context: dg.AssetExecutionContext) -> Any:
    if context.has_partition_key:
        return np.full((2, 3), len(context.partition_key), dtype=np.uint8)
    return {key: np.full((2, 3), len(key), dtype=np.uint8) for key in context.partition_keys}


@dg.asset(partitions_def=PAIRS)
def area(mask: np.ndarray) -> dict[str, Any]:
    return {"area": int((mask > 0).sum()), "value": int(mask[0, 0])}


@dg.asset
def summary(area: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {key: value["value"] for key, value in area.items()}


@dg.asset(partitions_def=PAIRS)
def wrong() -> dict[str, Any]:
    return {"only-one": np.zeros((2, 2), dtype=np.uint8)}


def test_batch_runs_single_partitions_and_unpartitioned_readers_on_an_instance(tmp_path):
    keys = ["alice|shirt", "bob|shirt"]
    resources = {"io_manager": OpenFormatIOManager(base_dir=str(tmp_path / "store"))}
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(PAIRS.name, keys)
        batch = dg.materialize(
            [mask],
            instance=instance,
            resources=resources,
            tags={"dagster/asset_partition_range_start": keys[0], "dagster/asset_partition_range_end": keys[1]},
        )
        assert batch.success
        assert batch.asset_materializations_for_node("mask")[0].metadata["files"].value == 2
        for key in keys:
            assert dg.materialize(
                [mask, area], selection=[area], instance=instance, resources=resources, partition_key=key
            ).success
        result = dg.materialize([mask, area, summary], selection=[summary], instance=instance, resources=resources)
        assert result.success
        assert result.output_for_node("summary") == {"alice|shirt": 11, "bob|shirt": 9}
        single = dg.materialize([wrong], instance=instance, resources=resources, partition_key=keys[0])
        assert single.success
        batch_wrong = dg.materialize(
            [wrong],
            instance=instance,
            resources=resources,
            tags={"dagster/asset_partition_range_start": keys[0], "dagster/asset_partition_range_end": keys[1]},
            raise_on_error=False,
        )
        assert not batch_wrong.success
        errors = [
            event.event_specific_data.error.to_string() for event in batch_wrong.all_events if event.is_step_failure
        ]
        assert any(
            PartitionValuesError.__name__ in error and "one value per partition key" in error for error in errors
        )

    store = tmp_path / "store"
    assert (store / "mask" / "alice" / "shirt.png").is_file() and (store / "mask" / "bob" / "shirt.png").is_file()
    assert (store / "area" / "alice" / "shirt.json").is_file() and (store / "summary.json").is_file()
    assert not list(store.rglob("*.pkl")) and all(path.suffix != "" for path in store.rglob("*") if path.is_file())


def test_default_base_is_the_instance_storage_folder(tmp_path):
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        instance.add_dynamic_partitions(PAIRS.name, ["x"])
        result = dg.materialize(
            [mask], instance=instance, resources={"io_manager": OpenFormatIOManager()}, partition_key="x"
        )
        assert result.success
        assert (Path(instance.storage_directory()) / "mask" / "x.png").is_file()
    assert isinstance(OpenFormatStorage(tmp_path).base, UPath)
