"""The try-on engine's own cost: overhead over the networks' forwards, cache hits, and batching.

Run: ``python benchmarks/bench_engine.py [--checkpoints DIR] [--repeat 3] [--fast]``. Without
``--checkpoints`` the CP-VTON checkpoints are synthesized (published layouts) into a temporary folder. After a
warm-up (models loaded), prints for one (person, garment) pair, medians of ``--repeat`` runs:

1. the sum of the networks' forward times (measured by forward hooks) against the engine's end-to-end time,
   split into the wrappers' pre/post-processing (resizing, decoding, warping: the reference's own work) and
   the engine's own (decoding the photos, hashing, cache keys, selection, the monitor);
2. the end-to-end time of a cache miss against a hit;
3. the throughput of one batch of 8 pairs against 8 single calls (8 different crops of the same size);
4. with MobileSAM, GFPGAN, LPIPS (with its AlexNet trunk) and CLIP synthesized beside them (``--optional``,
   on by default without ``--checkpoints``), each step of one full try-on as a share of the whole: mask
   refinement, face restoration and the quality figures against pose, parsing, masks and the try-on networks.
   Synthesized OpenPose finds nobody, so this run is given the astronaut's keypoints (``astronaut_keypoints.json``)
   and has no pose step; its share is measured in 1.

Sections 1 to 3 run the CP-VTON steps alone (the optional steps switched off), as before they existed.

5. the model pool (``--section pool`` runs it alone): section 4's run, each figure in a fresh subprocess so
   that its peak RSS (``ru_maxrss``) is its own: peak RSS and loads with a pool budget (``--budget-mb``,
   default 256) against none; the time from the first engine call (checkpoint analysis included) to the first
   result with lazy loading (the default) against eager (every chosen checkpoint preloaded first); and a
   rerun over a warm disk cache, where lazy loading reads no network.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from mycloset_assets.checkpoints.synth import write_checkpoint
from mycloset_assets.engine.optional_steps import wanted_roles
from mycloset_assets.engine_cache import ContentCache
from mycloset_assets.package_data import demo_data_folder, manifests_folder
from mycloset_assets.pipeline import ModelPool, ModelSet, TryOnOptions, run_virtual_try_on, run_virtual_try_on_batch
from mycloset_assets.vision.images import load_image

DEMO = demo_data_folder()
MANIFESTS = manifests_folder()
CPVTON = ("openpose_body_coco18", "schp_lip20", "u2netp", "cpvton_gmm", "cpvton_tom")
OPTIONAL = ("mobile_sam", "gfpgan_v1_4", "lpips_alex_lin", "torchvision_alexnet_features", "clip_vit_b32")
WORK_STEPS = ("pose", "parsing", "garment_mask", "gmm", "tom", "seg", "alias")
OPTIONAL_STEPS = ("mask_refinement", "face_restoration", "quality")
CORE_ONLY = {"mask_refinement": False, "face_restoration": False, "quality": False}
POOL_MODES = ("lazy", "budget", "eager", "prime", "lazy-cached", "eager-cached")
MIB = 2**20
FAST = TryOnOptions(max_side=256, pose_scales=(0.25,), parsing_size=(256, 256), mask_size=(160, 160))


class ForwardTimer:
    """Wall seconds spent inside the top-level forward of every pooled network."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._started: dict[int, float] = {}

    def attach(self, module: torch.nn.Module) -> None:
        module.register_forward_pre_hook(self._begin)
        module.register_forward_hook(self._end)

    def _begin(self, module: torch.nn.Module, args: object) -> None:
        self._started[id(module)] = time.perf_counter()

    def _end(self, module: torch.nn.Module, args: object, output: object) -> None:
        self.seconds += time.perf_counter() - self._started.pop(id(module))


def synthesize(folder: Path, names: tuple[str, ...]) -> Path:
    """The checkpoints ``names`` in their published layouts under ``folder``."""
    for name in names:
        manifest = json.loads((MANIFESTS / f"{name}.json").read_text())
        write_checkpoint(manifest, folder / name / manifest["published_as"]["file"], 0)
    return folder


def timed(function: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    value = function()
    return time.perf_counter() - start, value


def crops(photo: np.ndarray, count: int, size: tuple[int, int]) -> list[np.ndarray]:
    """``count`` different crops of ``photo``, all ``size`` (height, width)."""
    height, width = size
    offsets = np.linspace(0, photo.shape[1] - width, count).astype(int)
    return [np.ascontiguousarray(photo[:height, x : x + width]) for x in offsets]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoints", metavar="DIR", help="a checkpoint folder (default: synthesized CP-VTON)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (medians)")
    parser.add_argument("--fast", action="store_true", help="small working sizes instead of the entries' settings")
    parser.add_argument(
        "--no-optional", action="store_true", help="do not synthesize the optional steps' checkpoints (no section 4)"
    )
    parser.add_argument(
        "--section", choices=("all", "engine", "pool"), default="all", help="engine: sections 1-4; pool: section 5"
    )
    parser.add_argument("--budget-mb", type=int, default=256, help="section 5's pool budget (MiB)")
    parser.add_argument("--pool-child", choices=POOL_MODES, help=argparse.SUPPRESS)
    parser.add_argument("--cache-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.pool_child:
        pool_child(args)
        return
    with tempfile.TemporaryDirectory() as scratch:
        names = CPVTON if args.no_optional else CPVTON + OPTIONAL
        folder = Path(args.checkpoints) if args.checkpoints else synthesize(Path(scratch), names)
        if args.section in ("all", "engine"):
            engine_sections(folder, args)
        if args.section in ("all", "pool"):
            pool_section(folder, args, Path(scratch) / "cache")


def engine_sections(folder: Path, args: argparse.Namespace) -> None:
    """Sections 1 to 4."""
    full = FAST if args.fast else TryOnOptions()
    options = dataclasses.replace(full, **CORE_ONLY)
    models = ModelSet.from_folder(folder)
    person = load_image(DEMO / "astronaut.png").pixels
    garment = load_image(DEMO / "tshirt.png").pixels
    pool = ModelPool()
    common = {"models": models, "options": options, "pipeline": "cpvton", "pool": pool}
    run_virtual_try_on(person, garment, cache=False, **common)  # loads every network
    timer = ForwardTimer()
    for loaded in pool.loaded():
        timer.attach(loaded.module)

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; options: {options.to_dict()}")
    print(f"person {person.shape[1]}x{person.shape[0]}, garment {garment.shape[1]}x{garment.shape[0]}")

    rows, pose_shares = [], []
    for _ in range(args.repeat):
        timer.seconds = 0.0
        seconds, result = timed(lambda: run_virtual_try_on(person, garment, cache=False, **common))
        steps = sum(s.seconds for s in result.steps if s.name in WORK_STEPS)
        rows.append((seconds, timer.seconds, steps))
        pose_shares.append(next(s.seconds for s in result.steps if s.name == "pose"))
    end_to_end, forwards, network_steps = (statistics.median(column) for column in zip(*rows, strict=True))
    wrappers, engine = network_steps - forwards, end_to_end - network_steps
    print(f"\n1. one pair, no cache (median of {args.repeat})")
    print(f"   networks' forwards      {forwards:8.3f} s")
    print(f"   wrappers' pre/post      {wrappers:8.3f} s")
    print(f"   engine's own            {engine:8.3f} s  ({100 * engine / forwards:.1f} % of the forwards)")
    print(f"   end to end              {end_to_end:8.3f} s  ({100 * (end_to_end - forwards) / forwards:.1f} % over")
    print("                                       the forwards, pre/post-processing included)")

    misses, hits = [], []
    for _ in range(args.repeat):
        cache = ContentCache()
        misses.append(timed(lambda c=cache: run_virtual_try_on(person, garment, cache=c, **common))[0])
        seconds, result = timed(lambda c=cache: run_virtual_try_on(person, garment, cache=c, **common))
        assert result.cache_hit
        hits.append(seconds)
    miss, hit = statistics.median(misses), statistics.median(hits)
    print(f"\n2. cache: miss {miss:.3f} s, hit {1000 * hit:.1f} ms ({miss / hit:.0f}x faster)")

    people = crops(person, 8, (480, 360))
    singles, batches = [], []
    for _ in range(args.repeat):
        singles.append(timed(lambda: [run_virtual_try_on(p, garment, cache=False, **common) for p in people])[0])
        pairs = [(p, garment) for p in people]
        batches.append(timed(lambda pairs=pairs: run_virtual_try_on_batch(pairs, cache=False, **common))[0])
    single, batch = statistics.median(singles), statistics.median(batches)
    print(
        f"\n3. 8 pairs: 8 single calls {single:.3f} s ({8 / single:.2f} pairs/s), one batch {batch:.3f} s "
        f"({8 / batch:.2f} pairs/s): {single / batch:.2f}x"
    )
    if models.optional(["mask_refinement", "face_restoration"]):
        optional_shares(person, garment, {**common, "options": full}, args.repeat, statistics.median(pose_shares))


def optional_shares(
    person: np.ndarray, garment: np.ndarray, common: dict[str, object], repeat: int, pose: float
) -> None:
    """Section 4: every step of one full try-on (optional steps on) as a share of the whole run."""
    keypoints = astronaut_keypoints()
    run_virtual_try_on(person, garment, cache=False, keypoints=keypoints, **common)  # loads the optional networks
    runs = []
    for _ in range(repeat):
        seconds, result = timed(lambda: run_virtual_try_on(person, garment, cache=False, keypoints=keypoints, **common))
        runs.append((seconds, {step.name: step.seconds for step in result.steps}, result.optional_steps))
    total = statistics.median(seconds for seconds, _, _ in runs)
    names = list(runs[0][1])
    medians = {name: statistics.median(steps[name] for _, steps, _ in runs) for name in names}
    print(f"\n4. one full try-on, every step (median of {repeat}; keypoints given, so no pose step)")
    print(f"   {'step':18s} {'seconds':>8s}  {'share':>6s}")
    for name in names:
        mark = "  <- optional" if name in OPTIONAL_STEPS else ""
        print(f"   {name:18s} {medians[name]:8.3f}  {100 * medians[name] / total:5.1f} %{mark}")
    optional = sum(medians.get(name, 0.0) for name in OPTIONAL_STEPS)
    print(f"   {'end to end':18s} {total:8.3f}  optional steps {100 * optional / total:.1f} % of it")
    print(f"   (the pose step of section 1 took {pose:.3f} s: {100 * pose / (total + pose):.1f} % with it added)")
    ran = {name: record["ran"] for name, record in runs[0][2].items()}
    print(f"   ran: {ran}")


def astronaut_keypoints() -> np.ndarray:
    """The astronaut's OpenPose-18 keypoints (synthesized OpenPose finds nobody)."""
    return np.array(json.loads((DEMO / "astronaut_keypoints.json").read_text())["keypoints"], dtype=np.float64)


def peak_rss_mib() -> float:
    """This process's peak resident set size so far: ``VmHWM`` of /proc/self/status where there is one, else
    ``ru_maxrss``. Linux keeps ``ru_maxrss`` across fork and exec, so a child started by a large parent
    reports at least the parent's RSS; ``VmHWM`` belongs to the new program's memory alone."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_seconds() -> float:
    """User and system CPU seconds of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def pool_child(args: argparse.Namespace) -> None:
    """One section-5 figure in this fresh process: section 4's run in mode ``--pool-child``; prints one JSON
    line. ``eager*`` preloads every chosen checkpoint first; ``*cached`` and ``prime`` use ``--cache-dir``."""
    mode = args.pool_child
    options = FAST if args.fast else TryOnOptions()
    person = load_image(DEMO / "astronaut.png").pixels
    garment = load_image(DEMO / "tshirt.png").pixels
    keypoints = astronaut_keypoints()
    before = peak_rss_mib()
    pool = ModelPool(memory_budget=args.budget_mb * MIB if mode == "budget" else None)
    cache = ContentCache(directory=args.cache_dir) if mode in ("prime", "lazy-cached", "eager-cached") else False
    start, cpu = time.perf_counter(), cpu_seconds()
    models = ModelSet.from_folder(args.checkpoints)
    if mode.startswith("eager"):
        _, chosen = models.select("cpvton", ["pose"])
        chosen.update(models.optional(wanted_roles(options)))
        pool.preload(chosen.values(), options.device, options.torch_dtype, models)
    preloaded = time.perf_counter() - start
    run_virtual_try_on(
        person, garment, models=models, options=options, pipeline="cpvton", cache=cache, keypoints=keypoints, pool=pool
    )
    first = time.perf_counter() - start
    figures = pool.figures()
    print(
        json.dumps(
            {
                "first_result_s": first,
                "first_result_cpu_s": cpu_seconds() - cpu,
                "preload_s": preloaded if mode.startswith("eager") else 0.0,
                "rss_before_mib": before,
                "peak_rss_mib": peak_rss_mib(),
                "loads": figures["loads"],
                "releases": figures["releases"],
                "peak_resident_mib": figures["peak_resident_bytes"] / MIB,
            }
        )
    )


def pool_run(folder: Path, args: argparse.Namespace, mode: str, cache: Path) -> dict[str, float]:
    """Medians of ``--repeat`` fresh processes running ``mode``."""
    command = [sys.executable, __file__, "--pool-child", mode, "--checkpoints", str(folder)]
    command += ["--budget-mb", str(args.budget_mb), "--cache-dir", str(cache)] + ["--fast"] * args.fast
    runs = []
    for _ in range(args.repeat if mode != "prime" else 1):
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"section 5, {mode}: the child process failed:\n{done.stderr}")
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return {name: statistics.median(run[name] for run in runs) for name in runs[0]}


def pool_section(folder: Path, args: argparse.Namespace, cache: Path) -> None:
    """Section 5: peak RSS and loads with a budget against none, first result lazy against eager."""
    rows = {mode: pool_run(folder, args, mode, cache) for mode in POOL_MODES}
    labels = {
        "lazy": "lazy, no budget",
        "budget": f"lazy, budget {args.budget_mb} MiB",
        "eager": "eager, no budget",
        "lazy-cached": "lazy, warm disk cache",
        "eager-cached": "eager, warm disk cache",
    }
    print(f"\n5. model pool: section 4's run, one fresh process per figure (median of {args.repeat})")
    print(f"   {'':24s} {'first result':>12s} {'(CPU)':>8s} {'preload':>8s} {'loads':>5s} {'released':>8s} "
          f"{'peak held':>10s} {'peak RSS':>9s}")  # fmt: skip
    for mode, label in labels.items():
        row = rows[mode]
        print(
            f"   {label:24s} {row['first_result_s']:10.2f} s {row['first_result_cpu_s']:6.2f} s "
            f"{row['preload_s']:6.2f} s {row['loads']:5.0f} {row['releases']:8.0f} {row['peak_resident_mib']:6.0f} MiB "
            f"{row['peak_rss_mib']:5.0f} MiB"
        )
    lazy, budget, eager = rows["lazy"], rows["budget"], rows["eager"]
    print(
        f"   (each process held {lazy['rss_before_mib']:.0f} MiB before the first engine call: Python, torch, photos)"
    )
    saved = 1 - budget["peak_rss_mib"] / lazy["peak_rss_mib"]
    print(
        f"   budget: peak RSS {budget['peak_rss_mib']:.0f} against {lazy['peak_rss_mib']:.0f} MiB "
        f"({100 * saved:.1f} % less), {budget['loads']:.0f} loads against {lazy['loads']:.0f}"
    )
    for label, lazy_row, eager_row in (("", lazy, eager), ("warm cache, ", rows["lazy-cached"], rows["eager-cached"])):
        wall, cpu = (lazy_row[k] / eager_row[k] for k in ("first_result_s", "first_result_cpu_s"))
        print(
            f"   {label}first result: lazy {lazy_row['first_result_s']:.2f} s, "
            f"eager {eager_row['first_result_s']:.2f} s (lazy/eager {wall:.2f} wall, {cpu:.2f} CPU)"
        )


if __name__ == "__main__":
    main()
