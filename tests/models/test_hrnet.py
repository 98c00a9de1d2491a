"""HRNet pose, W32 and W48, original and MMPose publications: identified from contents, loaded strictly,
equal to the reference's outputs, and the same network through both publications."""

from __future__ import annotations

import pytest
import torch

from mycloset_assets.checkpoints import analyze, get_entry, load_model
from mycloset_assets.models.hrnet import PoseHighResolutionNet, infer_hrnet_config
from tests.conftest import assert_parity, load_manifest, parity_case

ORIGINAL = {32: "hrnet_w32_coco_256x192", 48: "hrnet_w48_coco_384x288"}
MMPOSE = {width: f"{name}_mmpose" for width, name in ORIGINAL.items()}
ENTRIES = [(name, width) for width in (32, 48) for name in (ORIGINAL[width], MMPOSE[width])]
TENSORS = 1754


def mmpose_key(module_key: str) -> str:
    """Where MMPose stores a module key: the heatmap conv in the head, everything else in the backbone."""
    head = module_key.startswith("final_layer.")
    return f"keypoint_head.{module_key}" if head else f"backbone.{module_key}"


@pytest.mark.parametrize("width", [32, 48])
def test_module_keys_are_the_original_publication_keys_in_order(width):
    with torch.device("meta"):
        state = PoseHighResolutionNet(**get_entry(ORIGINAL[width]).args).state_dict()
    published = [(t["key"], t["shape"], t["dtype"]) for t in load_manifest(ORIGINAL[width])["tensors"]]
    assert [(key, list(t.shape), str(t.dtype).removeprefix("torch.")) for key, t in state.items()] == published
    assert state["final_layer.weight"].shape == (17, width, 1, 1)
    assert state["stage4.2.fuse_layers.0.3.0.weight"].shape == (width, 8 * width, 1, 1)


@pytest.mark.parametrize("width", [32, 48])
def test_config_is_inferred_from_tensor_shapes(width):
    shapes = {t["key"]: tuple(t["shape"]) for t in load_manifest(ORIGINAL[width])["tensors"]}
    config = infer_hrnet_config(shapes)
    assert config == {
        "width": width,
        "num_joints": 17,
        "num_modules": [1, 4, 3],
        "num_blocks": 4,
        "final_conv_kernel": 1,
    }
    assert config == get_entry(ORIGINAL[width]).args == get_entry(MMPOSE[width]).args


def test_config_inference_round_trips_other_configurations():
    config = {"width": 18, "num_joints": 14, "num_modules": [1, 1, 2], "num_blocks": 2, "final_conv_kernel": 3}
    with torch.device("meta"):
        state = PoseHighResolutionNet(**config).state_dict()
    assert infer_hrnet_config({key: tuple(t.shape) for key, t in state.items()}) == config
    with pytest.raises(ValueError, match="HRNet"):
        infer_hrnet_config({"conv1.weight": (64, 3, 3, 3)})


@pytest.mark.parametrize(("name", "width"), ENTRIES)
def test_published_file_is_identified_and_loads_strictly(synth_file, name, width):
    path = synth_file(name)
    report = analyze(path)
    assert (report.verdict, report.entry, report.family, report.match_rate, report.confidence) == (
        "identified",
        name,
        "hrnet_pose",
        1.0,
        1.0,
    ), report.reason
    assert (report.matched, report.total, report.tensors, report.container) == (
        TENSORS,
        TENSORS,
        TENSORS,
        "torch_legacy",
    )
    assert report.wrapper == ("state_dict" if name.endswith("_mmpose") else None)
    loaded = load_model(path)
    assert isinstance(loaded.module, PoseHighResolutionNet)
    assert not loaded.module.training
    assert loaded.module.final_layer.in_channels == width


def test_w32_matches_reference_outputs(synth_file):
    case = parity_case(ORIGINAL[32])
    model = load_model(synth_file(ORIGINAL[32])).module
    with torch.no_grad():
        heatmaps = model(case.inputs["x"])
    assert_parity(case, {"heatmaps": heatmaps})


@pytest.mark.parametrize("width", [32, 48])
def test_both_publications_of_the_same_weights_compute_the_same(synth_file, width):
    original, mmpose = (load_manifest(ORIGINAL[width]), load_manifest(MMPOSE[width]))
    # synthesized values depend on (position, key suffix, shape): same in both layouts, so same weights
    assert [mmpose_key(t["key"]) for t in original["tensors"]] == [t["key"] for t in mmpose["tensors"]]
    a = load_model(synth_file(ORIGINAL[width])).module
    b = load_model(synth_file(MMPOSE[width])).module
    b_state = b.state_dict()
    for key, tensor in a.state_dict().items():
        assert torch.equal(b_state[key], tensor), key
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        heatmaps = a(x)
        assert torch.equal(b(x), heatmaps)
    assert heatmaps.shape == (1, 17, 16, 16)


def test_original_weights_resaved_in_the_mmpose_layout_load_by_name(tmp_path, synth_file):
    source = load_model(synth_file(ORIGINAL[32])).module
    state = source.state_dict()
    reordered = {mmpose_key(key): state[key] for key in reversed(state)}
    path = tmp_path / "hrnet_w32_mmpose_layout.pth"
    torch.save({"meta": {"epoch": 1}, "state_dict": reordered}, path)
    report = analyze(path)
    assert (report.verdict, report.entry, report.match_rate) == ("identified", MMPOSE[32], 1.0), report.reason
    loaded = load_model(path).module
    loaded_state = loaded.state_dict()
    for key, tensor in state.items():
        assert torch.equal(loaded_state[key], tensor), key
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(loaded(x), source(x))


@pytest.mark.parametrize(
    "layout",
    [
        {"container": "torch_zip", "wrapper": "model", "prefix": "module."},
        {"container": "safetensors"},
    ],
    ids=["zip_model_module_prefix", "safetensors"],
)
def test_widths_and_publications_are_told_apart_when_resaved(synth_file, layout):
    for name, width in ENTRIES:
        report = analyze(synth_file(name, **layout))
        assert (report.verdict, report.entry, report.match_rate) == ("identified", name, 1.0), report.reason
        assert report.family == "hrnet_pose"
        assert f"W{width}" in report.reason
