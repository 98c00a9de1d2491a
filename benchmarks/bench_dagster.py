"""Dagster's cost over the engine: a single-run backfill of N person photos against the engine's own steps.

Run: ``python benchmarks/bench_dagster.py [--sizes 1 8 32] [--preset cheap|default] [--repeat 1] [--checkpoints
DIR] [--storage sqlite|postgres] [--planned-events per-partition|subset]``. Without ``--checkpoints`` the person
side's checkpoints (OpenPose body, SCHP LIP-20, and the CP-VTON GMM whose frame the person representation is
computed in) are synthesized in their published layouts into a temporary folder. On a temporary Dagster instance
the checkpoint analyses and the per-role model assets are
materialised once; then, for each N, the person-side assets (``person_image``, ``pose``, ``human_parsing``,
``person_representation``) are materialised for the first N person partitions as one run over a partition
range (what a single-run backfill launches), with each process-wide model cache emptied first as in a fresh
run process. The same photos go through the same steps called directly (decode, load the same files,
``detect_poses``, ``parse_people``, ``cpvton_person``, the same options, one batch). Prints per N: the
Dagster run's wall time and model loads (target: independent of N), both per-photo times and the Dagster
overhead (target: at most 25 % at N = 32). Every photo is 128 x 96, a different crop of the bundled astronaut.

The floor: the same run with bodies that do nothing. Four assets shaped like the person side (the same
partitions, backfill policy, dependencies, instance and tags) return a constant per partition to an in-memory
IO manager, with no metadata, previews, checks or files. Its time is what Dagster itself costs for N photos,
whatever the assets do; ``(engine + floor) / engine`` is the lowest ratio any asset code could reach.

Storage: the embedded default (SQLite, what ``mycloset demo`` and ``dagster dev`` use) or ``--storage postgres``
(the scale extra, and ``PYTHONPATH=.``: a private PostgreSQL cluster with fsync on, started on 127.0.0.1 by the
scale tests' helper). Dagster writes a run's planned events one per asset and partition unless
``DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS`` is set (``--planned-events subset``: one per asset, at the cost
Dagster states: partitions of a failed run are not marked failed).
"""

import argparse
import contextlib
import json
import os
import tempfile
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import torch
from PIL import Image

from mycloset_assets.checkpoints import get_entry, load_model
from mycloset_assets.checkpoints.synth import write_checkpoint
from mycloset_assets.defs.checkpoints import canonical_checkpoint, checkpoint_analysis, register_checkpoint_files
from mycloset_assets.defs.images import SINGLE_RUN, garment_image, person_image
from mycloset_assets.defs.io_managers import OpenFormatIOManager
from mycloset_assets.defs.models import MODEL_ASSETS, asset_name
from mycloset_assets.defs.partitions import InboxResource, image_partition_key, person_images
from mycloset_assets.defs.resources import ModelFactoryResource
from mycloset_assets.defs.tryon import TRYON_ASSETS, human_parsing, person_representation, pose
from mycloset_assets.engine.models import default_pool
from mycloset_assets.engine.stages import detect_poses, parse_people, parsing_settings, pose_estimator
from mycloset_assets.package_data import demo_data_folder, manifests_folder
from mycloset_assets.pipeline import TryOnOptions
from mycloset_assets.vision.images import load_image
from mycloset_assets.wrappers.parsing import parsing_wrapper
from mycloset_assets.wrappers.tryon import cpvton_person

DEMO = demo_data_folder()
MANIFESTS = manifests_folder()
PERSON_SIDE_ENTRIES = ("openpose_body_coco18", "schp_lip20", "cpvton_gmm")
ROLES = ("pose", "parsing", "gmm")
ALL_ASSETS = [
    checkpoint_analysis,
    canonical_checkpoint,
    *MODEL_ASSETS.values(),
    person_image,
    garment_image,
    *TRYON_ASSETS,
]
PERSON_ASSETS = (person_image, pose, human_parsing, person_representation)
RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"
PHOTO_SIZE = (128, 96)
PLANNED_SUBSET = "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS"
PRESETS: dict[str, tuple[dict[str, dict[str, Any]], TryOnOptions]] = {
    "cheap": (
        {
            "pose": {"pose_scales": [0.25], "max_side": 64},
            "human_parsing": {"parsing_size": [64, 64], "max_side": 64},
        },
        TryOnOptions(max_side=64, pose_scales=(0.25,), parsing_size=(64, 64)),
    ),
    "default": ({}, TryOnOptions()),
}


@dataclass
class Bench:
    """The instance, resources and photos every measurement shares."""

    instance: dg.DagsterInstance
    resources: dict[str, Any]
    store: Path
    photos: list[Path]
    keys: list[str]
    op_config: dict[str, dict[str, Any]]
    options: TryOnOptions

    def card(self, role: str) -> dict[str, Any]:
        """The stored card of a per-role model asset (the file the assets load)."""
        return json.loads((self.store / f"{asset_name(role)}.json").read_text())


@dataclass(frozen=True)
class Row:
    """One N: the Dagster run and the direct engine calls on the same photos."""

    count: int
    dagster_seconds: float
    step_seconds: float
    loads: int
    materialised: int
    engine_seconds: float
    engine_load_seconds: float
    floor_seconds: float

    @property
    def overhead(self) -> float:
        return (self.dagster_seconds - self.engine_seconds) / self.engine_seconds

    @property
    def lowest_ratio(self) -> float:
        """The ratio Dagster's own cost alone gives: engine time plus the floor, over engine time."""
        return 1 + self.floor_seconds / self.engine_seconds


def synthesize(folder: Path) -> Path:
    """The person side's checkpoints in their published layouts under ``folder``."""
    for name in PERSON_SIDE_ENTRIES:
        manifest = json.loads((MANIFESTS / f"{name}.json").read_text())
        write_checkpoint(manifest, folder / name / manifest["published_as"]["file"], 0)
    return folder


def write_photos(folder: Path, count: int) -> list[Path]:
    """``count`` different 128 x 96 PNG photos: crops of the astronaut at shifting offsets, slightly noised."""
    folder.mkdir(parents=True, exist_ok=True)
    astronaut = np.array(Image.open(DEMO / "astronaut.png").convert("RGB"))
    height, width = PHOTO_SIZE
    crop_width = astronaut.shape[0] * width // height
    offsets = np.linspace(0, astronaut.shape[1] - crop_width, count).astype(int)
    paths = []
    for index, offset in enumerate(offsets):
        crop = Image.fromarray(astronaut[:, offset : offset + crop_width]).resize((width, height), Image.BILINEAR)
        noise = np.random.default_rng(index).integers(-2, 3, size=(height, width, 3))
        pixels = np.clip(np.asarray(crop, dtype=np.int16) + noise, 0, 255).astype(np.uint8)
        path = folder / f"person-{index:03d}.png"
        Image.fromarray(pixels).save(path)
        paths.append(path)
    return paths


def run_config(op_config: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
    """The step options, and the console logger at WARNING (its DEBUG lines would drown the figures)."""
    return {
        "ops": {name: {"config": config} for name, config in op_config.items()},
        "loggers": {"console": {"config": {"log_level": "WARNING"}}},
    }


def prepare(instance: dg.DagsterInstance, zoo: Path, scratch: Path, count: int, preset: str) -> Bench:
    """Photos in the inbox, their partitions, the checkpoint analyses and the model assets materialised once."""
    inbox = InboxResource(root=str(scratch / "inbox"))
    photos = write_photos(inbox.folder("person"), count)
    resources = {
        "model_factory": ModelFactoryResource(checkpoint_folder=str(zoo)),
        "inbox": inbox,
        "io_manager": OpenFormatIOManager(base_dir=str(scratch / "store")),
    }
    for key in register_checkpoint_files(instance, resources["model_factory"].files()):
        dg.materialize(ALL_ASSETS, selection=[checkpoint_analysis], instance=instance, resources=resources,
                       partition_key=key, run_config=run_config({}))  # fmt: skip
    models = [MODEL_ASSETS[role] for role in ROLES]
    dg.materialize(ALL_ASSETS, selection=models, instance=instance, resources=resources, run_config=run_config({}))
    keys = [image_partition_key(path) for path in photos]
    instance.add_dynamic_partitions(person_images.name, keys)
    op_config, options = PRESETS[preset]
    return Bench(instance, resources, scratch / "store", photos, keys, op_config, options)


def step_seconds(result: dg.ExecuteInProcessResult) -> float:
    """The seconds the person-side steps measured themselves (model load and work, the assets' own figures)."""
    total = 0.0
    for asset in PERSON_ASSETS:
        metadata = result.asset_materializations_for_node(asset.key.path[-1])[0].metadata
        total += sum(metadata[name].value for name in ("seconds", "load_seconds") if name in metadata)
    return total


def backfill(bench: Bench, count: int) -> tuple[float, float, int, int]:
    """Wall seconds, the steps' own seconds, model loads and partitions materialised of one run over the first
    ``count`` partitions."""
    default_pool().clear()
    before = default_pool().loads
    start = time.perf_counter()
    result = dg.materialize(
        ALL_ASSETS,
        selection=list(PERSON_ASSETS),
        instance=bench.instance,
        resources=bench.resources,
        tags={RANGE_START: bench.keys[0], RANGE_END: bench.keys[count - 1]},
        run_config=run_config(bench.op_config),
    )
    seconds = time.perf_counter() - start
    materialised = min(
        len({item.partition for item in result.asset_materializations_for_node(asset.key.path[-1])})
        for asset in PERSON_ASSETS
    )
    return seconds, step_seconds(result), default_pool().loads - before, materialised


def _floor_asset(name: str, deps: Sequence[str]) -> dg.AssetsDefinition:
    @dg.asset(
        key=["floor", name],
        deps=[dg.AssetKey(["floor", dep]) for dep in deps],
        partitions_def=person_images,
        backfill_policy=SINGLE_RUN,
        io_manager_key="floor_io_manager",
    )
    def nothing(context: dg.AssetExecutionContext) -> dict[str, int]:
        return dict.fromkeys(context.partition_keys, 0)

    return nothing


FLOOR_ASSETS = [
    _floor_asset("person_image", ()),
    _floor_asset("pose", ("person_image",)),
    _floor_asset("human_parsing", ("person_image",)),
    _floor_asset("person_representation", ("pose", "human_parsing")),
]


def floor(bench: Bench, count: int) -> float:
    """Wall seconds of the person side's run shape over the first ``count`` partitions with bodies that do
    nothing: Dagster's own cost."""
    start = time.perf_counter()
    dg.materialize(
        FLOOR_ASSETS,
        instance=bench.instance,
        resources={"floor_io_manager": dg.InMemoryIOManager()},
        tags={RANGE_START: bench.keys[0], RANGE_END: bench.keys[count - 1]},
        run_config=run_config({}),
    )
    return time.perf_counter() - start


def engine(bench: Bench, photos: Sequence[Path]) -> tuple[float, float]:
    """Wall seconds of the same steps called directly on ``photos`` (one batch), and of its model loads."""
    options = bench.options
    cards = {role: bench.card(role) for role in ROLES}
    frame = tuple(get_entry(cards["gmm"]["entry"]).preprocess["input_size"])
    start = time.perf_counter()
    pixels = [load_image(path).pixels for path in photos]
    loading = time.perf_counter()
    pose_model = load_model(cards["pose"]["path"], options.device, options.dtype)
    parsing_model = load_model(cards["parsing"]["path"], options.device, options.dtype)
    loaded = time.perf_counter()
    poses = detect_poses(pose_estimator(pose_model, None, scales=options.pose_scales), pixels, options.max_side)
    settings = parsing_settings(parsing_model.entry.family, options)
    parser = parsing_wrapper(parsing_model, **settings, batch_size=options.batch_size)
    labels = parse_people(parser, pixels, options.max_side)
    for photo, found, parsed in zip(pixels, poses, labels, strict=True):
        cpvton_person(photo, parsed["parsing"], found["keypoints"], frame)
    return time.perf_counter() - start, loaded - loading


def measure(bench: Bench, count: int, repeat: int) -> Row:
    """On the first ``count`` photos, in turn, the engine's time, the Dagster run's and the floor's; the fastest
    of each."""
    engines, runs, floors = [], [], []
    for _ in range(repeat):
        engines.append(engine(bench, bench.photos[:count]))
        runs.append(backfill(bench, count))
        floors.append(floor(bench, count))
    engine_seconds, engine_loads = min(engines)
    dagster_seconds, steps, loads, materialised = min(runs)
    return Row(count, dagster_seconds, steps, loads, materialised, engine_seconds, engine_loads, min(floors))


def report(rows: Sequence[Row]) -> None:
    print(
        f"\n{'N':>4} {'dagster s':>10} {'in steps':>9} {'loads':>6} {'done':>5} {'engine s':>9} {'of it loads':>12} "
        f"{'dagster s/photo':>16} {'engine s/photo':>15} {'overhead':>9} {'ratio':>6} {'floor s':>8} "
        f"{'lowest ratio':>13}"
    )
    for row in rows:
        print(
            f"{row.count:>4} {row.dagster_seconds:>10.2f} {row.step_seconds:>9.2f} {row.loads:>6} "
            f"{row.materialised:>5} {row.engine_seconds:>9.2f} {row.engine_load_seconds:>12.2f} "
            f"{row.dagster_seconds / row.count:>16.3f} {row.engine_seconds / row.count:>15.3f} "
            f"{100 * row.overhead:>8.1f}% {1 + row.overhead:>6.2f} {row.floor_seconds:>8.2f} "
            f"{row.lowest_ratio:>13.2f}"
        )
    print(
        "\nin steps: what the person-side steps measured of their own model loads and work (the rest is Dagster, "
        "previews, storage);\nloads: networks loaded during the Dagster run (cache emptied first); "
        "done: partitions materialised by every person-side asset;\nengine s: decode + model loads + pose + "
        "parsing + representation called directly; overhead: (dagster - engine) / engine; ratio: dagster / engine;\n"
        "floor s: the same run shape with bodies that do nothing (Dagster's own cost); lowest ratio: "
        "(engine + floor) / engine, the best any asset code could do."
    )


@contextlib.contextmanager
def bench_instance(storage: str) -> Any:
    """A temporary instance on the embedded SQLite storage, or on a private PostgreSQL cluster's fresh database."""
    if storage == "sqlite":
        with dg.instance_for_test() as instance:
            yield instance
        return
    from tests.scale.servers import fresh_database, started_postgres

    with started_postgres(fsync=True) as postgres, fresh_database(postgres) as database:
        server = {"hostname": postgres.host, "port": postgres.port, "username": postgres.user, "password": ""}
        settings = {**server, "db_name": database, "scheme": "postgresql+psycopg2"}
        with dg.instance_for_test(overrides={"storage": {"postgres": {"postgres_db": settings}}}) as instance:
            yield instance


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 8, 32], help="backfill sizes N")
    parser.add_argument(
        "--preset", choices=sorted(PRESETS), default="default", help="step options: the assets' defaults, or cheap"
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs per figure (the fastest is shown)")
    parser.add_argument("--checkpoints", metavar="DIR", help="a checkpoint folder (default: synthesized)")
    parser.add_argument("--storage", choices=("sqlite", "postgres"), default="sqlite", help="the instance's storage")
    parser.add_argument(
        "--planned-events",
        choices=("per-partition", "subset"),
        default="per-partition",
        help=f"Dagster's planned events of a run: one per asset and partition, or one per asset ({PLANNED_SUBSET})",
    )
    args = parser.parse_args()
    if min(args.sizes) < 1 or args.repeat < 1:
        parser.error("--sizes and --repeat must be at least 1")
    warnings.filterwarnings("ignore", category=dg.BetaWarning)
    if args.planned_events == "subset":
        os.environ[PLANNED_SUBSET] = "1"

    with tempfile.TemporaryDirectory() as scratch_dir, bench_instance(args.storage) as instance:
        scratch = Path(scratch_dir)
        zoo = Path(args.checkpoints) if args.checkpoints else synthesize(scratch / "zoo")
        started = time.perf_counter()
        bench = prepare(instance, zoo, scratch, max(args.sizes), args.preset)
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, dagster {dg.__version__}")
        print(f"storage {type(instance.event_log_storage).__name__}; planned events {args.planned_events}")
        print(f"preset {args.preset}: run config {bench.op_config or 'defaults'}; engine {bench.options.to_dict()}")
        print(f"{len(bench.photos)} photos {PHOTO_SIZE[1]} x {PHOTO_SIZE[0]}; models: " + ", ".join(
            f"{role} {bench.card(role)['entry']}" for role in ROLES
        ))  # fmt: skip
        print(f"setup (analyses, model assets): {time.perf_counter() - started:.1f} s")
        engine(bench, bench.photos[:1])
        report([measure(bench, count, args.repeat) for count in args.sizes])


if __name__ == "__main__":
    main()
