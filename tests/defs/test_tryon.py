"""The whole graph on a real (ephemeral) instance: synthesized CP-VTON checkpoints, two people x one garment.

Checkpoint files -> analyses -> per-role model cards -> photos -> pose, parsing, representation, garment mask ->
warped garment -> try-on result -> restored result -> quality report (with the LPIPS and CLIP cards). The person
partitions are planned by Dagster's own backfill planner (the daemon's ``build_run_requests_with_backfill_policies``)
and run as the one run it plans; so are the pairs. Synthesized weights find nobody in a photo, so content checks
may warn; every ERROR check must pass.
"""

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import pytest
from dagster._core.definitions.automation_tick_evaluation_context import build_run_requests_with_backfill_policies
from dagster._core.definitions.events import AssetKeyPartitionKey
from dagster._core.definitions.partitions.context import partition_loading_context
from PIL import Image

from mycloset_assets.defs.checkpoints import canonical_checkpoint, checkpoint_analysis, register_checkpoint_files
from mycloset_assets.defs.checks import KEY_MATCH_CHECK
from mycloset_assets.defs.image_checks import PLAUSIBLE_CHECK, RUNTIME_CHECK
from mycloset_assets.defs.images import garment_image, person_image
from mycloset_assets.defs.io_managers import OpenFormatIOManager, OpenFormatStorage
from mycloset_assets.defs.models import MODEL_ASSETS
from mycloset_assets.defs.partitions import InboxResource, image_partition_key, pair_key, split_pair_key
from mycloset_assets.defs.quality import THRESHOLDS, quality_report
from mycloset_assets.defs.refinement import clothing_mask, refined_garment_mask
from mycloset_assets.defs.resources import MODEL_CACHE, ModelFactoryResource
from mycloset_assets.defs.restoration import restored_result
from mycloset_assets.defs.tryon import (
    TRYON_ASSETS,
    garment_mask,
    human_parsing,
    person_representation,
    pose,
    read_partitions,
    require_family,
    tryon_result,
    warped_garment,
)
from mycloset_assets.pipeline import ModelSet, TryOnOptions, run_virtual_try_on_batch

DEMO = Path(__file__).parents[2] / "mycloset_assets" / "demo_data"
ZOO = {
    "openpose_body_coco18": "pose/body_pose_model.pth",
    "schp_lip20": "parsing/final.pth",
    "u2netp": "u2netp.pth",
    "cpvton_gmm": "cpvton/gmm_final.pth",
    "cpvton_tom": "cpvton/tom_final.pth",
    "lpips_alex_lin": "metrics/alex.pth",
    "torchvision_alexnet_features": "metrics/alexnet-owt-7be5be79.pth",
    "clip_vit_b32": "metrics/ViT-B-32.pt",
}
ROLES = ("pose", "parsing", "garment_mask", "gmm", "tom", "lpips", "clip")
PERSON_ASSETS = (person_image, pose, human_parsing, person_representation, clothing_mask)
PAIR_ASSETS = (warped_garment, tryon_result, restored_result, quality_report)
MINE = (person_image, garment_image, *TRYON_ASSETS, clothing_mask, refined_garment_mask, restored_result)
ALL_ASSETS = [
    checkpoint_analysis,
    canonical_checkpoint,
    *MODEL_ASSETS.values(),
    person_image,
    garment_image,
    *TRYON_ASSETS,
    clothing_mask,
    refined_garment_mask,
    restored_result,
    quality_report,
]
SMALL = {
    "pose": {"scales": [0.25], "max_side": 64},
    "human_parsing": {"size": [64, 64], "max_side": 64},
    "garment_mask": {"size": [64, 64], "max_side": 64},
}
FORMATS = {
    "person_image": "png",
    "garment_image": "png",
    "pose": "json",
    "human_parsing": "png",
    "person_representation": "npz",
    "garment_mask": "png",
    "clothing_mask": "png",
    "refined_garment_mask": "png",
    "warped_garment": "npz",
    "tryon_result": "png",
    "restored_result": "png",
    "quality_report": "json",
}
STEP_FIGURES = {"items", "seconds", "seconds_per_item", "cpu_seconds", "peak_rss_mb"}
MODEL_FIGURES = {"model_entry", "model_file", "model_sha256", "key_match_rate", "load_seconds"}
MODEL_BACKED = {"pose", "human_parsing", "garment_mask", "warped_garment", "tryon_result"}


@dataclass
class Graph:
    store: Path
    instance: dg.DagsterInstance
    persons: list[str]
    garment: str
    pairs: list[str]
    requests: dict[str, list[dg.RunRequest]]
    defs: dg.Definitions
    inbox: InboxResource
    loads_before: dict[tuple[str, ...], int]
    results: list[dg.ExecuteInProcessResult] = field(default_factory=list)

    def cards(self) -> dict[str, dict[str, Any]]:
        return {role: json.loads((self.store / f"{role}_model.json").read_text()) for role in ROLES}


def run_config(selection: Sequence[dg.AssetKey]) -> dict[str, Any]:
    names = {key.to_user_string() for key in selection}
    return {"ops": {name: {"config": config} for name, config in SMALL.items() if name in names}}


def planned(defs: dg.Definitions, assets: Sequence[dg.AssetsDefinition], keys: Sequence[str], instance):
    """The runs Dagster's backfill planner asks for to materialise ``assets`` for ``keys``."""
    wanted = [AssetKeyPartitionKey(asset.key, key) for asset in assets for key in keys]
    with partition_loading_context(dynamic_partitions_store=instance):
        return list(build_run_requests_with_backfill_policies(wanted, defs.resolve_asset_graph(), instance))


def execute(graph: Graph, request: dg.RunRequest, resources: dict[str, Any]) -> dg.ExecuteInProcessResult:
    selection = list(request.asset_selection or [])
    result = dg.materialize(
        ALL_ASSETS,
        selection=selection,
        instance=graph.instance,
        resources=resources,
        tags=dict(request.tags),
        partition_key=request.partition_key,
        run_config=run_config(selection),
    )
    graph.results.append(result)
    return result


@pytest.fixture(scope="module")
def graph(tmp_path_factory: pytest.TempPathFactory, synth_file) -> Iterator[Graph]:
    root = tmp_path_factory.mktemp("tryon")
    for entry, relative in ZOO.items():
        target = root / "zoo" / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(synth_file(entry))
    inbox = InboxResource(root=str(root / "inbox"))
    for kind in ("person", "garment"):
        inbox.folder(kind).mkdir(parents=True)
    astronaut = Image.open(DEMO / "astronaut.png").convert("RGB")
    astronaut.crop((64, 0, 448, 512)).resize((48, 64)).save(inbox.folder("person") / "ann.png")
    astronaut.resize((48, 64)).save(inbox.folder("person") / "bob.png")
    Image.open(DEMO / "tshirt.png").convert("RGB").resize((48, 64)).save(inbox.folder("garment") / "shirt.png")
    resources = {
        "model_factory": ModelFactoryResource(checkpoint_folder=str(root / "zoo")),
        "inbox": inbox,
        "io_manager": OpenFormatIOManager(base_dir=str(root / "store")),
    }
    defs = dg.Definitions(assets=ALL_ASSETS, resources=resources)
    with dg.instance_for_test() as instance:
        for key in register_checkpoint_files(instance, resources["model_factory"].files()):
            dg.materialize(ALL_ASSETS, selection=[checkpoint_analysis], instance=instance, resources=resources,
                           partition_key=key)  # fmt: skip
        MODEL_CACHE.clear()
        loads_before = dict(MODEL_CACHE.loads)
        models = dg.materialize(
            ALL_ASSETS, selection=[MODEL_ASSETS[role] for role in ROLES], instance=instance, resources=resources
        )
        assert models.success
        persons = [image_partition_key(path) for path in sorted(inbox.folder("person").iterdir())]
        garment = image_partition_key(inbox.folder("garment") / "shirt.png")
        pair_keys = [pair_key(person, garment) for person in persons]
        instance.add_dynamic_partitions("person_images", persons)
        instance.add_dynamic_partitions("garment_images", [garment])
        instance.add_dynamic_partitions("pairs", pair_keys)
        requests = {"person": planned(defs, PERSON_ASSETS, persons, instance)}
        built = Graph(root / "store", instance, persons, garment, pair_keys, requests, defs, inbox, loads_before)
        for request in requests["person"]:
            execute(built, request, resources)
        garment_steps = [garment_image.key, garment_mask.key, refined_garment_mask.key]
        execute(built, dg.RunRequest(partition_key=garment, asset_selection=garment_steps), resources)
        requests["pairs"] = planned(defs, PAIR_ASSETS, pair_keys, instance)
        for request in requests["pairs"]:
            execute(built, request, resources)
        yield built


def stored(graph: Graph, asset: str, key: str) -> Path:
    """Where the open-format IO manager keeps a partition (a pair ``p|g`` under ``p/g``)."""
    return graph.store / asset / f"{key.replace('|', '/')}.{FORMATS[asset]}"


def partitions_of(graph: Graph, asset: str) -> list[str]:
    if asset in ("person_image", "pose", "human_parsing", "person_representation", "clothing_mask"):
        return graph.persons
    return [graph.garment] if asset in ("garment_image", "garment_mask", "refined_garment_mask") else graph.pairs


def test_a_backfill_of_the_person_partitions_is_one_run(graph):
    (request,) = graph.requests["person"]
    assert set(request.asset_selection) == {asset.key for asset in PERSON_ASSETS}
    assert (request.tags["dagster/asset_partition_range_start"], request.tags["dagster/asset_partition_range_end"]) == (
        graph.persons[0],
        graph.persons[-1],
    )
    assert len(graph.requests["pairs"]) == 1
    assert all(result.success for result in graph.results)
    person_run = graph.results[0]
    for asset in PERSON_ASSETS:
        materialised = {item.partition for item in person_run.asset_materializations_for_node(asset.key.path[-1])}
        assert materialised == set(graph.persons)
    shas = {card["sha256"] for card in graph.cards().values()}
    loads = {key: count - graph.loads_before.get(key, 0) for key, count in MODEL_CACHE.loads.items()}
    loaded = {key[0]: count for key, count in loads.items() if count}
    assert loaded == dict.fromkeys(shas, 1), "each network is loaded once for the whole graph"


def test_every_asset_has_its_file_in_its_open_format(graph):
    for asset, fmt in FORMATS.items():
        for key in partitions_of(graph, asset):
            path = stored(graph, asset, key)
            assert path.is_file(), path
            if fmt == "png":
                array = np.array(Image.open(path))
                assert array.dtype == np.uint8
            elif asset == "pose":
                assert len(json.loads(path.read_text())["keypoints"]) == 18
            elif fmt == "json":
                assert set(json.loads(path.read_text())["metrics"]) == set(THRESHOLDS)
            else:
                with np.load(path, allow_pickle=False) as archive:
                    assert archive.files
    (person,) = {np.array(Image.open(graph.store / "person_image" / f"{key}.png")).shape for key in graph.persons}
    for key in graph.pairs:
        result = np.array(Image.open(stored(graph, "tryon_result", key)))
        assert result.shape == person == (64, 48, 3)
    with np.load(graph.store / "person_representation" / f"{graph.persons[0]}.npz") as archive:
        assert archive["shape"].shape == (1, 256, 192) and archive["pose"].shape == (18, 256, 192)


def test_every_check_ran_with_its_figures_and_no_error(graph):
    evaluations: dict[tuple[str, str], list[dg.AssetCheckEvaluation]] = {}
    for result in graph.results:
        for item in result.get_asset_check_evaluations():
            evaluations.setdefault((item.asset_key.to_user_string(), item.check_name), []).append(item)
    cards = {card["sha256"] for card in graph.cards().values()}
    for asset in MINE:
        name = asset.key.to_user_string()
        expected = {RUNTIME_CHECK, PLAUSIBLE_CHECK} | ({KEY_MATCH_CHECK} if name in MODEL_BACKED else set())
        assert {check.name for check in asset.check_keys} == expected
        for check in expected:
            for evaluation in evaluations[(name, check)]:
                assert set(evaluation.metadata) >= STEP_FIGURES, (name, check)
                if name in MODEL_BACKED:
                    assert set(evaluation.metadata) >= MODEL_FIGURES, (name, check)
                    assert evaluation.metadata["model_sha256"].value in cards
                    assert evaluation.metadata["key_match_rate"].value == 1.0
                assert evaluation.passed or evaluation.severity == dg.AssetCheckSeverity.WARN, evaluation.description
    for name in MODEL_BACKED:
        assert all(evaluation.passed for evaluation in evaluations[(name, KEY_MATCH_CHECK)])


def test_each_partition_has_its_own_metadata_preview_and_path(graph):
    for result in graph.results:
        for asset in MINE:
            for materialisation in result.asset_materializations_for_node(asset.key.path[-1]):
                metadata = materialisation.metadata
                assert set(metadata) >= STEP_FIGURES | {"preview", "path"}
                assert metadata["preview"].value.startswith("![")
                assert "data:image/png;base64," in metadata["preview"].value
                path = stored(graph, asset.key.to_user_string(), materialisation.partition)
                assert metadata["path"].value == str(path) and path.is_file()


def test_a_try_on_result_leads_back_to_the_photos_and_the_checkpoint_files(graph):
    asset_graph = graph.defs.resolve_asset_graph()
    seen: set[dg.AssetKey] = set()
    todo = [tryon_result.key]
    while todo:
        for parent in asset_graph.get(todo.pop()).parent_keys:
            if parent not in seen:
                seen.add(parent)
                todo.append(parent)
    names = {key.to_user_string() for key in seen}
    assert names >= {"person_image", "garment_image", "pose", "human_parsing", "garment_mask"}
    assert names >= {f"{role}_model" for role in ROLES[:5]} | {"checkpoint_analysis", "canonical_checkpoint"}
    for asset in (pose, human_parsing, garment_mask, warped_garment, tryon_result):
        assert asset.op.pool == "gpu"
    for asset in MINE:
        assert asset.backfill_policy == dg.BackfillPolicy.single_run()


def test_the_graph_computes_what_the_engine_computes(graph):
    options = TryOnOptions(max_side=64, pose_scales=(0.25,), parsing_size=(64, 64), mask_size=(64, 64))
    photos = [
        (graph.inbox.image_path("person", person), graph.inbox.image_path("garment", garment))
        for person, garment in map(split_pair_key, graph.pairs)
    ]
    models = ModelSet.from_folder(graph.store.parent / "zoo")
    engine = run_virtual_try_on_batch(photos, pipeline="cpvton", models=models, options=options, cache=False)
    for key, expected in zip(graph.pairs, engine, strict=True):
        person, garment = split_pair_key(key)
        assert json.loads(stored(graph, "pose", person).read_text())["keypoints"] == expected.keypoints.tolist()
        assert np.array_equal(np.array(Image.open(stored(graph, "human_parsing", person))), expected.parsing)
        assert np.array_equal(np.array(Image.open(stored(graph, "garment_mask", garment))) > 0, expected.garment_mask)
        refined = np.array(Image.open(stored(graph, "refined_garment_mask", garment))) > 0
        assert np.array_equal(refined, expected.garment_mask)  # no MobileSAM: the mask passes through
        clothes = np.array(Image.open(stored(graph, "clothing_mask", person))) > 0
        assert np.array_equal(clothes, expected.extras["clothing_mask"])
        with np.load(stored(graph, "warped_garment", key)) as warp:
            assert np.array_equal(warp["theta"], expected.theta)
            assert np.array_equal(warp["warped_garment"], expected.warped_garment)
        assert np.array_equal(np.array(Image.open(stored(graph, "tryon_result", key))), expected.tryon)
        assert np.array_equal(np.array(Image.open(stored(graph, "restored_result", key))), expected.tryon)
        report = json.loads(stored(graph, "quality_report", key).read_text())
        figures = {name: figure["value"] for name, figure in report["metrics"].items()}
        assert figures == pytest.approx({n: f["value"] for n, f in expected.quality["metrics"].items()}, abs=1e-6)
        assert set(figures) == set(THRESHOLDS) and report["skipped"] == {}
        assert {role: weight["sha256"] for role, weight in report["weights"].items()} == {
            role: info.sha256 for role, info in expected.models.items()
        }


def test_the_quality_report_follows_the_result_and_warns_on_doubtful_figures(graph):
    parents = {key.to_user_string() for key in graph.defs.resolve_asset_graph().get(quality_report.key).parent_keys}
    assert parents >= {
        "restored_result",
        "warped_garment",
        "person_image",
        "garment_image",
        "lpips_model",
        "clip_model",
    }
    evaluations = [
        item
        for result in graph.results
        for item in result.get_asset_check_evaluations()
        if item.asset_key == quality_report.key
    ]
    assert {item.check_name for item in evaluations} == {RUNTIME_CHECK, *THRESHOLDS}
    for item in evaluations:
        assert item.severity == dg.AssetCheckSeverity.WARN
        if item.check_name in THRESHOLDS:
            values = item.metadata["values"].value
            assert set(values) == set(graph.pairs) and "threshold" in item.metadata
    for key in graph.pairs:
        (materialisation,) = [
            m
            for result in graph.results
            for m in result.asset_materializations_for_node("quality_report")
            if m.partition == key
        ]
        assert set(materialisation.metadata) >= set(THRESHOLDS) | {"preview", "path", "not_computed"}


def test_pairs_read_exactly_their_photos_and_refuse_what_is_missing(tmp_path):
    storage = OpenFormatStorage(tmp_path)
    (tmp_path / "garment_mask").mkdir()
    Image.fromarray(np.full((4, 3), 255, dtype=np.uint8)).save(tmp_path / "garment_mask" / "g-1.png")
    assert set(read_partitions(storage, garment_mask.key, ["g-1", "g-1"])) == {"g-1"}
    with pytest.raises(dg.Failure, match="garment_mask is not materialised for g-2: materialise it first"):
        read_partitions(storage, garment_mask.key, ["g-1", "g-2"])
    with pytest.raises(dg.Failure, match="through OpenFormatIOManager"):
        read_partitions(dg.InMemoryIOManager(), garment_mask.key, ["g-1"])


def test_a_vitonhd_model_card_stops_the_cpvton_assets_with_the_reason():
    card = {"role": "gmm", "entry": "vitonhd_gmm", "family": "vitonhd_gmm", "file": "gmm.pth", "pipeline": "vitonhd"}
    with pytest.raises(dg.Failure, match="warped_garment runs CP-VTON and needs a cpvton_gmm checkpoint"):
        require_family(card, "cpvton_gmm", "warped_garment")
    require_family({**card, "family": "cpvton_gmm"}, "cpvton_gmm", "warped_garment")
