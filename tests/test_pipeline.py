"""The try-on engine end to end on synthesized checkpoints in their published layouts and on real photos.

The checkpoint folder holds the synthesized files under names that say nothing (in sub-folders, as links),
an ImageNet ResNet-18 named ``openpose.pth`` and an HTML page named ``tom_final.pth``; the engine must pick
each role's file by analysis and list the other two as skipped. The photos come from the NASA portrait in
``demo_data``: a portrait, a landscape, a grayscale and an RGBA one. Synthesized weights find nobody in a
photo, so the VITON-HD run is given its keypoints. Options keep every network small (CP-VTON runs at its
own 256 x 192).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from mycloset_assets.checkpoints.convert import file_sha256
from mycloset_assets.checkpoints.manager import ModelManager
from mycloset_assets.checkpoints.pipelines import PIPELINES
from mycloset_assets.engine.stages import labels_to_photo, points_to_photo, working_copy
from mycloset_assets.engine_cache import ContentCache
from mycloset_assets.monitoring import Monitor
from mycloset_assets.pipeline import (
    MissingModelsError,
    ModelInfo,
    ModelPool,
    ModelSet,
    PersonNotFoundError,
    TryOnOptions,
    TryOnRequest,
    TryOnResult,
    run_virtual_try_on,
    run_virtual_try_on_batch,
)
from mycloset_assets.vision.images import load_image

DEMO = Path(__file__).parents[1] / "mycloset_assets" / "demo_data"
FAST = TryOnOptions(max_side=160, pose_scales=(0.25,), parsing_size=(128, 128), mask_size=(128, 128))
CPVTON_FILES = {
    "openpose_body_coco18": "a/model_a.pth",
    "schp_lip20": "b/weights (1).bin",
    "u2netp": "mask.ckpt",
    "cpvton_gmm": "x.pth",
    "cpvton_tom": "c/d/y.pt",
}
FRAME = (256, 192)


def link_zoo(folder: Path, synth_file, files: dict[str, str], seeds: dict[str, int] | None = None) -> Path:
    """``folder`` with a link to each synthesized checkpoint under the given odd name."""
    for name, relative in files.items():
        target = folder / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(synth_file(name, (seeds or {}).get(name, 0)))
    return folder


def add_impostors(folder: Path) -> dict[str, str]:
    """An ImageNet ResNet-18 named like OpenPose and an HTML page named like the TOM; their shown paths."""
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), folder / "openpose.pth")
    (folder / "tom_final.pth").write_text("<!DOCTYPE html><html><title>Quota exceeded</title></html>\n")
    return {"impostor": str(folder / "openpose.pth"), "html": str(folder / "tom_final.pth")}


def photos() -> dict[str, bytes | Image.Image | np.ndarray]:
    """A portrait, a landscape, a grayscale and an RGBA photo of different sizes (as PNG bytes, PIL, array)."""
    astronaut = Image.open(DEMO / "astronaut.png").convert("RGB")
    portrait = astronaut.crop((64, 0, 448, 512)).resize((180, 240), Image.BICUBIC)
    landscape = astronaut.resize((300, 200), Image.BICUBIC)
    gray = astronaut.crop((96, 0, 416, 480)).convert("L").resize((150, 225), Image.BICUBIC)
    rgba = astronaut.resize((200, 260), Image.BICUBIC).convert("RGBA")
    alpha = np.full((260, 200), 255, dtype=np.uint8)
    alpha[:, :30] = 0
    rgba.putalpha(Image.fromarray(alpha))
    encoded = io.BytesIO()
    gray.save(encoded, format="PNG")
    return {"portrait": np.asarray(portrait), "landscape": landscape, "gray": encoded.getvalue(), "rgba": rgba}


def check_result(result: TryOnResult, person_size: tuple[int, int], garment_size: tuple[int, int]) -> None:
    """Every intermediate has the documented shape, dtype and range."""
    height, width = person_size
    frame = FRAME if result.pipeline == "cpvton" else FAST_HD.vitonhd_size
    assert result.person.shape == (height, width, 3) and result.person.dtype == np.uint8
    assert result.garment.shape == (*garment_size, 3)
    assert result.keypoints.shape == (18, 3) and result.keypoints.dtype == np.float64
    assert result.people.ndim == 3 and result.people.shape[1:] == (18, 3)
    assert result.parsing.shape == person_size and result.parsing.dtype == np.uint8
    assert result.parsing.max() < len(result.parsing_names) == 20
    assert result.garment_mask.shape == garment_size and result.garment_mask.dtype == bool
    channels = 22 if result.pipeline == "cpvton" else 3
    assert result.agnostic.shape == (channels, *frame) and result.agnostic.dtype == np.float32
    assert result.agnostic.min() >= -1.0 and result.agnostic.max() <= 1.0
    assert result.grid.shape == (*frame, 2) and result.grid.dtype == np.float32 and np.isfinite(result.grid).all()
    assert result.theta.shape == (50,)
    for image in (result.warped_garment, result.rendered, result.tryon_frame):
        assert image.shape == (*frame, 3) and image.dtype == np.uint8
    for soft in (result.warped_mask, result.composition_mask):
        assert soft.shape == frame and soft.dtype == np.float32 and soft.min() >= 0.0 and soft.max() <= 1.0
    assert result.tryon.shape == (height, width, 3) and result.tryon.dtype == np.uint8
    inputs = (result.person, result.garment)
    assert all(not array.flags.writeable for array in result.arrays().values() if not any(array is i for i in inputs))


# model selection -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def zoo(synth_file, tmp_path_factory) -> tuple[Path, dict[str, str]]:
    folder = link_zoo(tmp_path_factory.mktemp("engine") / "zoo", synth_file, CPVTON_FILES)
    return folder, add_impostors(folder)


def test_the_folder_is_read_by_analysis_whatever_the_names(zoo, synth_file):
    folder, impostors = zoo
    models = ModelSet.from_folder(folder)
    assert {entry: c.shown for entry, c in models.checkpoints.items()} == {
        entry: str(folder / relative) for entry, relative in CPVTON_FILES.items()
    }
    assert set(models.skipped) == set(impostors.values())
    assert models.skipped[impostors["impostor"]].startswith("impostor: torchvision resnet18")
    assert models.skipped[impostors["html"]].startswith("not_a_checkpoint: an HTML page")
    assert models.best_pipeline() == "cpvton"
    pipeline, chosen = models.select(None)
    assert pipeline == "cpvton" and set(chosen) == set(PIPELINES["cpvton"])
    assert chosen["gmm"].sha256 == file_sha256(synth_file("cpvton_gmm"))


def test_a_missing_checkpoint_fails_before_any_work(zoo, tmp_path, synth_file):
    partial = link_zoo(tmp_path / "partial", synth_file, {"cpvton_gmm": "g.pth", "cpvton_tom": "t.pth"})
    add_impostors(partial)
    monitor = Monitor()
    with pytest.raises(MissingModelsError) as raised:
        run_virtual_try_on(DEMO / "astronaut.png", DEMO / "tshirt.png", models=partial, monitor=monitor)
    message = str(raised.value)
    assert "no try-on pipeline is complete" in message
    pose = "pose (openpose_body_coco18 or mediapipe_pose_landmark_full + mediapipe_pose_detection)"
    assert f"cpvton needs {pose}, parsing (schp_lip20 or graphonomy_cihp20)" in message
    assert "garment_mask (u2net_cloth_seg4 or u2net or u2netp)" in message
    assert "openpose.pth (impostor: torchvision resnet18" in message
    assert raised.value.missing["cpvton.pose"] == ("openpose_body_coco18", "mediapipe_pose_landmark_full")
    assert [step.name for step in monitor.steps] == ["inputs", "models"]
    with pytest.raises(MissingModelsError, match=r"cannot run vitonhd: vitonhd needs .*seg \(vitonhd_seg\)") as hd:
        run_virtual_try_on(DEMO / "astronaut.png", DEMO / "tshirt.png", models=zoo[0], pipeline="vitonhd")
    assert set(hd.value.missing) == {"seg", "gmm", "alias"}


def test_given_pose_parsing_and_mask_need_only_the_tryon_networks(tmp_path, synth_file):
    folder = link_zoo(tmp_path / "tryon-only", synth_file, {"cpvton_gmm": "g.pth", "cpvton_tom": "t.pth"})
    person = load_image(DEMO / "astronaut.png").pixels
    keypoints = np.full((18, 3), (-1.0, -1.0, 0.0))
    keypoints[1] = (256, 200, 0.9)
    parsing = np.zeros(person.shape[:2], dtype=np.int64)
    parsing[150:400, 150:360] = 5
    garment = load_image(DEMO / "tshirt.png").pixels
    mask = (garment.min(axis=2) < 250).astype(np.uint8) * 255
    result = run_virtual_try_on(
        person, garment, models=folder, keypoints=keypoints, parsing=parsing, garment_mask=mask, cache=False
    )
    assert result.pipeline == "cpvton" and set(result.models) == {"gmm", "tom"}
    assert np.array_equal(result.keypoints, keypoints) and np.array_equal(result.parsing, parsing)
    assert np.array_equal(result.garment_mask, mask == 255) and result.cached == ()
    assert [step.name for step in result.steps] == ["inputs", "models", "gmm", "tom", "quality"]
    check_result(result, (512, 512), (256, 192))


def test_models_follow_the_model_managers_active_versions(tmp_path, synth_file):
    manager = ModelManager(tmp_path / "home")
    for name in ("u2netp", "cpvton_gmm", "cpvton_tom"):
        manager.register(synth_file(name))
    person = load_image(DEMO / "astronaut.png").pixels
    keypoints = np.full((18, 3), (-1.0, -1.0, 0.0))
    parsing = np.zeros(person.shape[:2], dtype=np.uint8)
    cache = ContentCache()
    kwargs = {"keypoints": keypoints, "parsing": parsing, "models": manager, "options": FAST, "cache": cache}
    first = run_virtual_try_on(person, DEMO / "tshirt.png", **kwargs)
    gmm = manager.get("cpvton_gmm")
    assert first.models["gmm"] == ModelInfo("cpvton_gmm", gmm.sha256, str(gmm.path), first.models["gmm"].provenance)
    assert first.models["gmm"].provenance.startswith("synthesized by this project (synth.py's rule, seed 0)")
    assert first.skipped == {}
    manager.update("cpvton_gmm", synth_file("cpvton_gmm", 1))
    updated = run_virtual_try_on(person, DEMO / "tshirt.png", **kwargs)
    assert updated.models["gmm"].sha256 == manager.get("cpvton_gmm").sha256 != gmm.sha256
    assert updated.cached == ("garment_mask",) and not np.array_equal(updated.theta, first.theta)
    manager.rollback("cpvton_gmm")
    rolled_back = run_virtual_try_on(person, DEMO / "tshirt.png", **kwargs)
    assert rolled_back.cache_hit and np.array_equal(rolled_back.tryon, first.tryon)


# CP-VTON end to end ----------------------------------------------------------------------------------------


class ForwardCounter:
    """Counts forwards of pooled networks and the batch size of each."""

    def __init__(self) -> None:
        self.batches: dict[str, list[int]] = {}

    def attach(self, pool: ModelPool, models: ModelSet, role_entries: dict[str, str]) -> None:
        for role, entry in role_entries.items():
            module = pool.load(models.checkpoints[entry], "cpu", torch.float32, models).module
            module.register_forward_pre_hook(self._hook(role))

    def _hook(self, role: str):
        def count(module, args):
            self.batches.setdefault(role, []).append(int(args[0].shape[0]))

        return count


@pytest.fixture(scope="module")
def engine(zoo):
    """A pool with forward counters, a memory cache and the batch of four photos, run once."""
    models = ModelSet.from_folder(zoo[0])
    pool = ModelPool()
    counter = ForwardCounter()
    counter.attach(pool, models, {role: entry for role, entry in zip(PIPELINES["cpvton"], CPVTON_FILES, strict=True)})
    cache = ContentCache()
    inputs = photos()
    garment = DEMO / "tshirt.png"
    monitor = Monitor()
    results = run_virtual_try_on_batch(
        [(photo, garment) for photo in inputs.values()], models=models, options=FAST, cache=cache, pool=pool,
        monitor=monitor,
    )  # fmt: skip
    return {"models": models, "pool": pool, "counter": counter, "cache": cache, "inputs": inputs, "results": results}


def test_a_batch_runs_end_to_end_on_photos_of_every_kind(engine, zoo):
    sizes = {"portrait": (240, 180), "landscape": (200, 300), "gray": (225, 150), "rgba": (260, 200)}
    results = dict(zip(engine["inputs"], engine["results"], strict=True))
    for name, result in results.items():
        check_result(result, sizes[name], (256, 192))
        assert result.pipeline == "cpvton" and result.cached == ()
        assert {role: info.entry for role, info in result.models.items()} == dict(
            zip(PIPELINES["cpvton"], CPVTON_FILES, strict=True)
        )
        assert result.models["pose"].path == str(zoo[0] / "a" / "model_a.pth")
        assert set(result.skipped) == set(zoo[1].values())
        assert [step.name for step in result.steps] == [
            "inputs", "models", "pose", "parsing", "garment_mask", "gmm", "tom", "quality",
        ]  # fmt: skip
        assert result.notes[0].startswith("no person was found in the person photo")
    gray = results["gray"].person
    assert np.array_equal(gray[..., 0], gray[..., 1]) and np.array_equal(gray[..., 1], gray[..., 2])
    assert (results["rgba"].person[:, :30] == 255).all()  # transparency composited on white
    # one forward per stage for the whole batch (OpenPose: one per photo size; one garment, masked once)
    assert engine["counter"].batches == {
        "pose": [1, 1, 1, 1], "parsing": [4], "garment_mask": [1], "gmm": [4], "tom": [4],
    }  # fmt: skip


def test_a_second_identical_call_is_a_cache_hit_with_identical_output(engine):
    first = engine["results"][0]
    counter, before = engine["counter"], {role: len(calls) for role, calls in engine["counter"].batches.items()}
    again = run_virtual_try_on(
        engine["inputs"]["portrait"], DEMO / "tshirt.png", models=engine["models"], options=FAST,
        cache=engine["cache"], pool=engine["pool"],
    )  # fmt: skip
    assert again.cache_hit and again.cached == ("pose", "parsing", "garment_mask", "tryon", "quality")
    assert {role: len(calls) for role, calls in counter.batches.items()} == before  # no network ran
    assert [step.name for step in again.steps] == ["inputs", "models", "pose", "parsing", "garment_mask", "quality"]
    for name, array in first.arrays().items():
        assert np.array_equal(again.arrays()[name], array), name
    assert engine["pool"].loads == 5  # every network was loaded once


def test_a_changed_byte_is_a_miss(engine):
    person = engine["inputs"]["portrait"].copy()
    person[100, 90, 1] ^= 1
    changed = run_virtual_try_on(
        person, DEMO / "tshirt.png", models=engine["models"], options=FAST, cache=engine["cache"], pool=engine["pool"]
    )
    assert changed.cached == ("garment_mask",) and not changed.cache_hit
    garment = load_image(DEMO / "tshirt.png").pixels.copy()
    garment[0, 0, 0] ^= 1
    other = run_virtual_try_on(
        engine["inputs"]["portrait"], garment, models=engine["models"], options=FAST, cache=engine["cache"],
        pool=engine["pool"],
    )  # fmt: skip
    assert other.cached == ("pose", "parsing") and not other.cache_hit
    assert np.array_equal(other.garment, garment)


def test_another_model_version_is_a_miss(engine, zoo, tmp_path, synth_file):
    folder = link_zoo(tmp_path / "v2", synth_file, CPVTON_FILES, seeds={"cpvton_gmm": 1, "openpose_body_coco18": 1})
    result = run_virtual_try_on(
        engine["inputs"]["portrait"], DEMO / "tshirt.png", models=folder, options=FAST, cache=engine["cache"],
        pool=engine["pool"],
    )  # fmt: skip
    first = engine["results"][0]
    assert result.models["gmm"].sha256 != first.models["gmm"].sha256
    assert result.cached == ("parsing", "garment_mask") and not result.cache_hit
    assert not np.array_equal(result.theta, first.theta)
    assert [step.name for step in result.steps][-3:] == ["gmm", "tom", "quality"]


def test_a_disk_cache_serves_a_new_process_the_same_arrays(engine, tmp_path):
    inputs = (engine["inputs"]["landscape"], DEMO / "tshirt.png")
    kwargs = {"models": engine["models"], "options": FAST, "pool": engine["pool"]}
    stored = run_virtual_try_on(*inputs, cache=ContentCache(directory=tmp_path), **kwargs)
    assert stored.cached == ()
    assert {p.suffix for p in tmp_path.rglob("*") if p.is_file()} == {".npz"}
    fresh = run_virtual_try_on(*inputs, cache=ContentCache(directory=tmp_path), **kwargs)
    assert fresh.cache_hit
    for name, array in stored.arrays().items():
        assert np.array_equal(fresh.arrays()[name], array), name


def test_a_budget_below_every_network_loads_each_alone_with_the_same_result(engine):
    inputs = (engine["inputs"]["landscape"], DEMO / "tshirt.png")
    kwargs = {"models": engine["models"], "options": FAST, "cache": False}
    unbounded = run_virtual_try_on(*inputs, pool=engine["pool"], **kwargs)
    pool = ModelPool(memory_budget=0)
    bounded = run_virtual_try_on(*inputs, pool=pool, **kwargs)
    assert (pool.loads, pool.releases, len(pool)) == (5, 4, 1)
    assert pool.loaded()[0].entry.id == "cpvton_tom"  # the network used last stays
    for name, array in unbounded.arrays().items():
        assert np.array_equal(bounded.arrays()[name], array), name
    run_virtual_try_on(*inputs, pool=pool, **kwargs)
    assert (pool.loads, pool.releases, len(pool)) == (10, 9, 1)  # released networks are loaded again


# VITON-HD --------------------------------------------------------------------------------------------------

FAST_HD = TryOnOptions(max_side=160, parsing_size=(128, 128), mask_size=(128, 128), vitonhd_size=(256, 128))


def test_vitonhd_end_to_end_with_given_keypoints(synth_file, tmp_path):
    files = {
        "schp_lip20": "p.pth", "u2netp": "m.pth", "vitonhd_seg": "1.pth", "vitonhd_gmm": "2.pth",
        "vitonhd_alias": "3.pth", "cpvton_gmm": "4.pth", "cpvton_tom": "5.pth", "openpose_body_coco18": "6.pth",
    }  # fmt: skip
    folder = link_zoo(tmp_path / "hd", synth_file, files)
    person = load_image(DEMO / "astronaut.png").pixels[:, 56:456]
    keypoints = np.full((18, 3), (-1.0, -1.0, 0.0))
    for index, (x, y) in {
        0: (200, 120), 1: (200, 200), 2: (124, 210), 3: (94, 300), 4: (84, 400), 5: (274, 210), 6: (304, 300),
        7: (314, 400), 8: (144, 420), 11: (254, 420), 14: (190, 110), 15: (210, 110),
    }.items():  # fmt: skip
        keypoints[index] = (x, y, 0.9)
    with pytest.raises(PersonNotFoundError, match="lacks Neck, RShoulder, LShoulder, RHip, LHip"):
        run_virtual_try_on(person, DEMO / "tshirt.png", models=folder, options=FAST_HD, cache=False)
    result = run_virtual_try_on(person, DEMO / "tshirt.png", models=folder, options=FAST_HD, keypoints=keypoints)
    assert result.pipeline == "vitonhd"  # the preferred pipeline, complete here
    assert set(result.models) == {"parsing", "garment_mask", "seg", "gmm", "alias"}
    check_result(result, (512, 400), (256, 192))
    assert set(np.unique(result.composition_mask)) <= {0.0, 1.0}
    assert result.extras["seg_labels"].shape == (256, 128) and result.extras["seg_labels"].max() < 13
    assert result.extras["pose_image"].shape == (256, 128, 3) and result.extras["pose_image"].dtype == np.uint8
    assert [step.name for step in result.steps][-4:] == ["seg", "gmm", "alias", "quality"]
    batch = run_virtual_try_on_batch(
        [TryOnRequest(person, DEMO / "tshirt.png", keypoints=keypoints)], models=folder, options=FAST_HD
    )
    assert batch[0].cache_hit and np.array_equal(batch[0].tryon, result.tryon)


# mapping between the photo and its working copy ------------------------------------------------------------


def test_working_copies_map_back_to_the_photo_by_pixel_centres():
    photo = np.zeros((400, 300, 3), dtype=np.uint8)
    small = working_copy(photo, 200)
    assert small.shape == (200, 150, 3) and working_copy(photo, 400) is photo
    points = np.array([[[0.0, 0.0, 0.5], [149.0, 199.0, 0.7], [-1.0, -1.0, 0.0]]])
    mapped = points_to_photo(points, (200, 150), (400, 300))
    np.testing.assert_allclose(mapped[0], [[0.5, 0.5, 0.5], [298.5, 398.5, 0.7], [-1.0, -1.0, 0.0]])
    labels = np.arange(6, dtype=np.uint8).reshape(2, 3)
    assert np.array_equal(labels_to_photo(labels, (4, 6)), labels.repeat(2, axis=0).repeat(2, axis=1))
    mask = labels_to_photo(labels > 2, (4, 6))
    assert mask.dtype == bool and mask.sum() == 12
