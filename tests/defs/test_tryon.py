"""The whole graph on a real (ephemeral) instance: synthesized CP-VTON and VITON-HD checkpoints, three people, one
garment.

Checkpoint files -> analyses -> model cards -> photos -> pose, parsing, representation, garment mask -> CP-VTON's
warped garment, try-on result, restored result and quality report, and VITON-HD's result. Two people run through
OpenPose in one ranged run (a single-run backfill); synthesized OpenPose weights find nobody, so the third person's
pose is given (materialised by a stand-in asset with the same key, as a user's own annotation would be) so that
VITON-HD, which needs the neck, shoulders and hips, can run. Content checks may warn; every ERROR check must pass.
"""

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import pytest
from PIL import Image

from mycloset_assets.definitions import defs
from mycloset_assets.defs.checkpoints import canonical_checkpoint, checkpoint_analysis, register_checkpoint_files
from mycloset_assets.defs.checks import KEY_MATCH_CHECK
from mycloset_assets.defs.image_checks import PLAUSIBLE_CHECK, RUNTIME_CHECK
from mycloset_assets.defs.images import STORED, garment_image, person_image
from mycloset_assets.defs.io_managers import OpenFormatIOManager, OpenFormatStorage
from mycloset_assets.defs.models import MODEL_ASSETS
from mycloset_assets.defs.partitions import InboxResource, image_partition_key, pair_key, person_images
from mycloset_assets.defs.pose_checks import AGREEMENT_CHECK
from mycloset_assets.defs.quality import THRESHOLDS, quality_report
from mycloset_assets.defs.refinement import clothing_mask, refined_garment_mask
from mycloset_assets.defs.resources import ModelFactoryResource
from mycloset_assets.defs.restoration import restored_result
from mycloset_assets.defs.tryon import (
    TRYON_ASSETS,
    garment_mask,
    human_parsing,
    person_representation,
    pose,
    read_partitions,
    tryon_result,
    vitonhd_result,
    warped_garment,
)
from mycloset_assets.engine.models import default_pool
from mycloset_assets.pipeline import ModelSet, TryOnOptions, run_virtual_try_on
from mycloset_assets.vision.images import load_image

pytestmark = pytest.mark.slow
DEMO = Path(__file__).parents[2] / "mycloset_assets" / "demo_data"
ZOO = {
    "openpose_body_coco18": "pose/body_pose_model.pth",
    "schp_lip20": "parsing/final.pth",
    "u2netp": "u2netp.pth",
    "cpvton_gmm": "cpvton/gmm_final.pth",
    "cpvton_tom": "cpvton/tom_final.pth",
    "vitonhd_seg": "vitonhd/seg_final.pth",
    "vitonhd_gmm": "vitonhd/gmm_final.pth",
    "vitonhd_alias": "vitonhd/alias_final.pth",
    "lpips_alex_lin": "metrics/alex.pth",
    "torchvision_alexnet_features": "metrics/alexnet-owt-7be5be79.pth",
    "clip_vit_b32": "metrics/ViT-B-32.pt",
}
SLOTS = (
    "pose",
    "parsing",
    "garment_mask",
    "gmm",
    "tom",
    "vitonhd_seg",
    "vitonhd_gmm",
    "vitonhd_alias",
    "lpips",
    "clip",
)
PERSON_ASSETS = (person_image, pose, human_parsing, person_representation, clothing_mask)
CPVTON_PAIR = (warped_garment, tryon_result, restored_result, quality_report)
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
    "pose": {"pose_scales": [0.25], "max_side": 64},
    "human_parsing": {"parsing_size": [64, 64], "max_side": 64},
    "garment_mask": {"mask_size": [64, 64], "max_side": 64},
    "vitonhd_result": {"vitonhd_size": [256, 128]},
}
OPTIONS = TryOnOptions(
    max_side=64, pose_scales=(0.25,), parsing_size=(64, 64), mask_size=(64, 64), vitonhd_size=(256, 128)
)
"""The engine options equal to ``SMALL``."""
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
    "vitonhd_result": "png",
}
STEP_FIGURES = {"items", "seconds", "seconds_per_item", "cpu_seconds", "peak_rss_mb"}
MODEL_FIGURES = {"model_entry", "model_file", "model_sha256", "key_match_rate", "load_seconds"}
MODEL_BACKED = {"pose", "human_parsing", "garment_mask", "warped_garment", "tryon_result", "vitonhd_result"}
RANGE = ("dagster/asset_partition_range_start", "dagster/asset_partition_range_end")
HD_KEYPOINTS = {
    0: (200, 120), 1: (200, 200), 2: (124, 210), 3: (94, 300), 4: (84, 400), 5: (274, 210), 6: (304, 300),
    7: (314, 400), 8: (144, 420), 11: (254, 420), 14: (190, 110), 15: (210, 110),
}  # fmt: skip
"""A person's OpenPose-18 keypoints in the astronaut photo cropped to columns 56..456 (512 x 400)."""
HD_SCALE = 0.25


@dataclass
class Graph:
    root: Path
    store: Path
    instance: dg.DagsterInstance
    persons: list[str]
    hd_person: str
    garment: str
    inbox: InboxResource
    hd_keypoints: np.ndarray
    loads: int
    results: list[dg.ExecuteInProcessResult] = field(default_factory=list)

    def cards(self) -> dict[str, dict[str, Any]]:
        return {slot: json.loads((self.store / f"{slot}_model.json").read_text()) for slot in SLOTS}

    @property
    def pairs(self) -> list[dg.MultiPartitionKey]:
        return [pair_key(person, self.garment) for person in self.persons]

    @property
    def hd_pair(self) -> dg.MultiPartitionKey:
        return pair_key(self.hd_person, self.garment)


def run_config(selection: Sequence[dg.AssetKey]) -> dict[str, Any]:
    names = {key.to_user_string() for key in selection}
    return {"ops": {name: {"config": config} for name, config in SMALL.items() if name in names}}


def given_pose(keypoints: np.ndarray, size: tuple[int, int]) -> dg.AssetsDefinition:
    """A stand-in for ``pose`` storing known keypoints (a user's annotation) for a person partition."""

    @dg.asset(name="pose", partitions_def=person_images, dagster_type=STORED)
    def annotated_pose() -> dict[str, Any]:
        return {
            "keypoint_order": "openpose18",
            "image_size": list(size),
            "keypoints": keypoints,
            "people": keypoints[None],
        }

    return annotated_pose


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
    astronaut.crop((56, 0, 456, 512)).resize((100, 128)).save(inbox.folder("person") / "hd.png")
    Image.open(DEMO / "tshirt.png").convert("RGB").resize((48, 64)).save(inbox.folder("garment") / "shirt.png")
    keypoints = np.full((18, 3), (-1.0, -1.0, 0.0))
    for index, (x, y) in HD_KEYPOINTS.items():
        keypoints[index] = ((x + 0.5) * HD_SCALE - 0.5, (y + 0.5) * HD_SCALE - 0.5, 0.9)
    resources = {
        "model_factory": ModelFactoryResource(checkpoint_folder=str(root / "zoo")),
        "inbox": inbox,
        "io_manager": OpenFormatIOManager(base_dir=str(root / "store")),
    }

    with dg.instance_for_test() as instance:

        def materialise(selection, **kwargs: Any) -> dg.ExecuteInProcessResult:
            keys = [asset.key for asset in selection]
            result = dg.materialize(
                ALL_ASSETS,
                selection=keys,
                instance=instance,
                resources=resources,
                run_config=run_config(keys),
                **kwargs,
            )
            built.results.append(result)
            assert result.success
            return result

        for key in register_checkpoint_files(instance, resources["model_factory"].files()):
            dg.materialize([checkpoint_analysis], instance=instance, resources=resources, partition_key=key)
        default_pool().clear()
        persons = [image_partition_key(inbox.folder("person") / name) for name in ("ann.png", "bob.png")]
        hd = image_partition_key(inbox.folder("person") / "hd.png")
        garment = image_partition_key(inbox.folder("garment") / "shirt.png")
        instance.add_dynamic_partitions("person_images", [*persons, hd])
        instance.add_dynamic_partitions("garment_images", [garment])
        built = Graph(root, root / "store", instance, persons, hd, garment, inbox, keypoints, default_pool().loads)
        materialise([MODEL_ASSETS[slot] for slot in SLOTS])
        materialise(PERSON_ASSETS, tags=dict(zip(RANGE, (persons[0], persons[-1]), strict=True)))
        materialise([garment_image, garment_mask, refined_garment_mask], partition_key=garment)
        materialise([person_image], partition_key=hd)
        dg.materialize([given_pose(keypoints, (128, 100))], instance=instance, resources=resources, partition_key=hd)
        materialise([human_parsing, person_representation, clothing_mask], partition_key=hd)
        for key in built.pairs:
            materialise(CPVTON_PAIR, partition_key=key)
        materialise([vitonhd_result, *CPVTON_PAIR], partition_key=built.hd_pair)
        yield built


def stored(graph: Graph, asset: str, key: str) -> Path:
    """Where the open-format IO manager keeps a partition (a pair ``garment|person`` under ``garment/person``)."""
    return graph.store / asset / f"{str(key).replace('|', '/')}.{FORMATS[asset]}"


def test_the_person_backfill_is_one_run_and_each_network_loads_once(graph):
    person_run = graph.results[1]
    for asset in PERSON_ASSETS:
        materialised = {item.partition for item in person_run.asset_materializations_for_node(asset.key.path[-1])}
        assert materialised == set(graph.persons)
    networks = {card["sha256"] for card in graph.cards().values()}
    networks.add(graph.cards()["lpips"]["companions"]["torchvision_alexnet_features"]["sha256"])
    assert default_pool().loads - graph.loads == len(networks) - 1, "each network once (the trunk inside LPIPS)"


def test_every_asset_has_its_file_in_its_open_format(graph):
    for key in graph.persons:
        for asset in ("person_image", "pose", "human_parsing", "person_representation", "clothing_mask"):
            assert stored(graph, asset, key).is_file()
        labels = np.array(Image.open(stored(graph, "human_parsing", key)))
        colour = np.array(Image.open(graph.store / "human_parsing" / f"{key}.colour.png"))
        assert labels.ndim == 2 and colour.ndim == 3 and colour.shape[0] >= 512, "ids, and beside them colours"
    for asset in ("garment_image", "garment_mask", "refined_garment_mask"):
        assert stored(graph, asset, graph.garment).is_file()
    for key in [*graph.pairs, graph.hd_pair]:
        for asset in ("warped_garment", "tryon_result", "restored_result", "quality_report"):
            assert stored(graph, asset, key).is_file(), (asset, key)
        result = np.array(Image.open(stored(graph, "tryon_result", key)))
        person = np.array(Image.open(stored(graph, "person_image", str(key).split("|")[1])))
        assert result.shape == person.shape and result.dtype == np.uint8
    hd = np.array(Image.open(stored(graph, "vitonhd_result", graph.hd_pair)))
    assert hd.shape == (128, 100, 3)
    assert not stored(graph, "vitonhd_result", graph.pairs[0]).exists(), "only the requested pairs run"
    with np.load(stored(graph, "person_representation", graph.persons[0])) as archive:
        assert archive["shape"].shape == (1, 256, 192) and archive["pose"].shape == (18, 256, 192)
        assert archive["pose"].dtype == np.int8 and set(np.unique(archive["pose"])) <= {-1, 1}


def test_every_check_ran_with_its_figures_and_no_error(graph):
    evaluations: dict[tuple[str, str], list[dg.AssetCheckEvaluation]] = {}
    for result in graph.results:
        for item in result.get_asset_check_evaluations():
            evaluations.setdefault((item.asset_key.to_user_string(), item.check_name), []).append(item)
    cards = {card["sha256"] for card in graph.cards().values()}
    for asset in MINE:
        name = asset.key.to_user_string()
        expected = {RUNTIME_CHECK, PLAUSIBLE_CHECK} | ({KEY_MATCH_CHECK} if name in MODEL_BACKED else set())
        expected |= {AGREEMENT_CHECK} if name == "pose" else set()
        assert {check.name for check in asset.check_keys} == expected
        for check in expected:
            assert evaluations[(name, check)], (name, check)
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
                assert "data:image/jpeg;base64," in metadata["preview"].value
                path = stored(graph, asset.key.to_user_string(), materialisation.partition)
                assert metadata["path"].value == str(path) and path.is_file()


def test_a_pair_depends_on_its_own_two_photos_and_the_checkpoint_files(graph):
    asset_graph = defs.resolve_asset_graph()
    seen: set[dg.AssetKey] = set()
    todo = [tryon_result.key, vitonhd_result.key]
    while todo:
        for parent in asset_graph.get(todo.pop()).parent_keys:
            if parent not in seen:
                seen.add(parent)
                todo.append(parent)
    names = {key.to_user_string() for key in seen}
    assert names >= {"person_image", "garment_image", "pose", "human_parsing", "garment_mask", "refined_garment_mask"}
    assert names >= {f"{slot}_model" for slot in SLOTS[:8]} | {"checkpoint_analysis"}
    for asset in (warped_garment, vitonhd_result, quality_report, restored_result):
        for dep in asset.specs_by_key[asset.key].deps:
            if dep.asset_key.to_user_string() in ("person_image", "pose", "human_parsing", "clothing_mask"):
                assert dep.partition_mapping.partition_dimension_name == "person", (asset.key, dep)
            elif dep.asset_key.to_user_string() in ("garment_image", "refined_garment_mask"):
                assert dep.partition_mapping.partition_dimension_name == "garment", (asset.key, dep)
    for asset in (pose, human_parsing, garment_mask, warped_garment, tryon_result, vitonhd_result):
        assert asset.op.pool == "gpu"
    for asset in MINE:
        assert asset.backfill_policy == dg.BackfillPolicy.single_run()


def test_the_graph_computes_what_the_engine_computes_for_cpvton(graph):
    models = ModelSet.from_folder(graph.root / "zoo")
    for key, person in zip(graph.pairs, graph.persons, strict=True):
        expected = run_virtual_try_on(
            graph.inbox.image_path("person", person),
            graph.inbox.image_path("garment", graph.garment),
            pipeline="cpvton",
            models=models,
            options=OPTIONS,
            cache=False,
        )
        assert json.loads(stored(graph, "pose", person).read_text())["keypoints"] == expected.keypoints.tolist()
        assert np.array_equal(np.array(Image.open(stored(graph, "human_parsing", person))), expected.parsing)
        mask = np.array(Image.open(stored(graph, "garment_mask", graph.garment))) > 0
        assert np.array_equal(mask, expected.garment_mask)
        refined = np.array(Image.open(stored(graph, "refined_garment_mask", graph.garment))) > 0
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


def test_the_graph_computes_what_the_engine_computes_for_vitonhd(graph):
    photo = load_image(graph.inbox.image_path("person", graph.hd_person)).pixels
    expected = run_virtual_try_on(
        photo,
        graph.inbox.image_path("garment", graph.garment),
        pipeline="vitonhd",
        models=ModelSet.from_folder(graph.root / "zoo"),
        options=OPTIONS,
        keypoints=graph.hd_keypoints,
        cache=False,
    )
    assert expected.pipeline == "vitonhd" and expected.tryon.shape == (128, 100, 3)
    assert np.array_equal(np.array(Image.open(stored(graph, "vitonhd_result", graph.hd_pair))), expected.tryon)
    cpvton = run_virtual_try_on(
        photo,
        graph.inbox.image_path("garment", graph.garment),
        pipeline="cpvton",
        models=ModelSet.from_folder(graph.root / "zoo"),
        options=OPTIONS,
        keypoints=graph.hd_keypoints,
        cache=False,
    )
    assert np.array_equal(np.array(Image.open(stored(graph, "tryon_result", graph.hd_pair))), cpvton.tryon)
    assert not np.array_equal(expected.tryon, cpvton.tryon), "both pipelines ran, each its own way"


def test_the_quality_report_warns_on_doubtful_figures_and_names_the_weights(graph):
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
            assert "not computed" not in item.description and "threshold" in item.metadata
    report = json.loads(stored(graph, "quality_report", graph.pairs[0]).read_text())
    cards = graph.cards()
    assert {role: weight["sha256"] for role, weight in report["weights"].items()} == {
        role: cards[role]["sha256"] for role in ("pose", "parsing", "garment_mask", "gmm", "tom", "lpips", "clip")
    }


def test_pairs_read_exactly_their_photos_and_refuse_what_is_missing(tmp_path):
    storage = OpenFormatStorage(tmp_path)
    (tmp_path / "garment_mask").mkdir()
    Image.fromarray(np.full((4, 3), 255, dtype=np.uint8)).save(tmp_path / "garment_mask" / "g-1.png")
    assert set(read_partitions(storage, garment_mask.key, ["g-1", "g-1"])) == {"g-1"}
    with pytest.raises(dg.Failure, match="garment_mask is not materialised for g-2: materialise it first"):
        read_partitions(storage, garment_mask.key, ["g-1", "g-2"])
    with pytest.raises(dg.Failure, match="through OpenFormatIOManager"):
        read_partitions(dg.InMemoryIOManager(), garment_mask.key, ["g-1"])
