"""The analyzer on every published layout and on re-saved copies: identified from contents alone."""

from __future__ import annotations

import shutil

import pytest

from mycloset_assets.checkpoints import analyze, load_registry
from mycloset_assets.checkpoints.registry import REGISTRY_ENV
from mycloset_assets.package_data import registry_folder
from tests.conftest import load_manifest, manifest_names

JSON_KEYS = [
    "path",
    "verdict",
    "entry",
    "family",
    "confidence",
    "container",
    "wrapper",
    "prefix",
    "tensors",
    "params",
    "matched",
    "total",
    "match_rate",
    "missing",
    "unexpected",
    "mismatched",
    "reason",
]


@pytest.mark.slow
@pytest.mark.parametrize("name", manifest_names())
def test_every_published_layout_is_identified_as_itself(synth_file, name):
    manifest = load_manifest(name)
    report = analyze(synth_file(name))
    assert list(report.to_dict()) == JSON_KEYS
    assert report.container == manifest["container"]
    assert report.tensors == len(manifest["tensors"])
    floats = [t for t in manifest["tensors"] if t["dtype"].startswith(("float", "bfloat"))]
    assert report.params == sum(_numel(t["shape"]) for t in floats)
    assert report.wrapper == manifest["wrapper"]
    assert (report.verdict, report.entry, report.family) == ("identified", name, manifest["family"]), report.reason
    assert report.match_rate == 1.0 and report.missing == [] and report.mismatched == []
    assert "equal on contents" not in report.reason, "no two registry entries share a published layout"


def _numel(shape: list[int]) -> int:
    count = 1
    for size in shape:
        count *= size
    return count


LAYOUTS = {
    "zip, no wrapper, no prefix": {"container": "torch_zip", "wrapper": None, "prefix": None},
    "legacy, module. prefix": {"container": "torch_legacy", "wrapper": None, "prefix": "module."},
    "zip, state_dict wrapper, module. prefix": {"container": "torch_zip", "wrapper": "state_dict", "prefix": "module."},
    "legacy, model wrapper": {"container": "torch_legacy", "wrapper": "model", "prefix": None},
    "safetensors": {"container": "safetensors", "prefix": None},
    "safetensors, module. prefix": {"container": "safetensors", "prefix": "module."},
}


@pytest.mark.parametrize("name", ["u2netp", "openpose_hand", "u2net_cloth_seg4", "torchvision_alexnet_features"])
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_resaved_copies_are_still_identified(synth_file, name, layout):
    spec = LAYOUTS[layout]
    report = analyze(synth_file(name, **spec))
    assert (report.verdict, report.entry, report.match_rate, report.confidence) == ("identified", name, 1.0, 1.0)
    assert report.container == spec["container"]
    assert report.prefix == spec["prefix"]
    assert report.wrapper == spec.get("wrapper")


def test_file_name_never_decides(synth_file):
    report = analyze(synth_file("u2netp", filename="body_pose_model.pth"))
    assert (report.verdict, report.entry) == ("identified", "u2netp")


# Entries whose published files are 0.4-10 GB: their tests write the real headers (tests/models/test_sam_vit.py,
# tests/checkpoints/test_diffusion.py) instead of synthesizing full files from manifests.
HEADER_TESTED = {
    "sam_vit_b",
    "sam_vit_l",
    "sam_vit_h",
    "sd15_unet_diffusers",
    "sd15_inpainting_unet_diffusers",
    "sd21_unet_diffusers",
    "sdxl_unet_diffusers",
    "controlnet_sd15_diffusers",
}


def test_registry_has_one_entry_per_manifest():
    """Every entry of the try-on zoo has a manifest; the diffusion-era entries (header-tested) and the .tflite
    entries (MediaPipe's published files, fetched from their wheel, tested in tests/mediapipe/) have none."""
    entries = {
        name: entry
        for name, entry in load_registry().items()
        if name not in HEADER_TESTED and entry.published.get("container") != "tflite"
    }
    assert sorted(entries) == manifest_names()
    for name, entry in entries.items():
        manifest = load_manifest(name)
        assert entry.family == manifest["family"]
        assert entry.published["file"] == manifest["published_as"]["file"]
        assert entry.published["container"] == manifest["container"]
        assert entry.keys.wrapper == manifest["wrapper"]


@pytest.fixture
def extended_registry(tmp_path, monkeypatch):
    """The project's registry plus one new YAML: a second publication of U2NET(3, 1)."""
    folder = tmp_path / "registry"
    shutil.copytree(registry_folder(), folder)
    text = (folder / "u2net.yaml").read_text()
    text = text.replace("id: u2net\n", "id: u2net_human_seg\n").replace(
        "description: U^2-Net salient-object segmentation (full model, 1 channel)",
        "description: U^2-Net human segmentation (same architecture, other weights)",
    )
    (folder / "u2net_human_seg.yaml").write_text(text)
    monkeypatch.setenv(REGISTRY_ENV, str(folder))
    return folder


def test_a_new_checkpoint_is_one_yaml_and_equal_contents_are_said(extended_registry, synth_file):
    assert "u2net_human_seg" in load_registry()
    report = analyze(synth_file("u2net"))
    assert report.verdict == "identified"
    assert report.entry in ("u2net", "u2net_human_seg")
    other = "u2net_human_seg" if report.entry == "u2net" else "u2net"
    assert f"equal on contents to {other}" in report.reason
