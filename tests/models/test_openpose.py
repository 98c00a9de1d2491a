"""OpenPose body and hand: identified from contents, loaded strictly, equal to the reference's outputs."""

from __future__ import annotations

import pytest
import torch

from mycloset_assets.checkpoints import analyze, load_model
from mycloset_assets.models.openpose import BodyPoseNet, HandPoseNet
from tests.conftest import assert_parity, parity_case


@pytest.mark.parametrize(
    ("name", "network", "tensors"),
    [("openpose_body_coco18", BodyPoseNet, 184), ("openpose_hand", HandPoseNet, 104)],
)
def test_published_file_is_identified_and_loads_strictly(synth_file, name, network, tensors):
    path = synth_file(name)
    report = analyze(path)
    assert (report.verdict, report.entry, report.match_rate, report.confidence) == ("identified", name, 1.0, 1.0)
    assert (report.matched, report.total, report.tensors, report.container) == (
        tensors,
        tensors,
        tensors,
        "torch_legacy",
    )
    loaded = load_model(path)
    assert isinstance(loaded.module, network)
    assert not loaded.module.training


def test_body_matches_reference_outputs(synth_file):
    case = parity_case("openpose_body_coco18")
    model = load_model(synth_file("openpose_body_coco18")).module
    with torch.no_grad():
        paf, heatmap = model(case.inputs["x"])
    assert_parity(case, {"paf": paf, "heatmap": heatmap})


def test_body_heatmap_keeps_the_reference_relu_quirk(synth_file):
    model = load_model(synth_file("openpose_body_coco18")).module
    assert isinstance(model.model6_2[-1], torch.nn.ReLU)
    assert isinstance(model.model6_1[-1], torch.nn.Conv2d)


def test_hand_matches_reference_outputs(synth_file):
    case = parity_case("openpose_hand")
    model = load_model(synth_file("openpose_hand")).module
    with torch.no_grad():
        heatmap = model(case.inputs["x"])
    assert_parity(case, {"heatmap": heatmap})


def test_file_resaved_from_the_module_state_dict_is_the_same_entry(tmp_path, synth_file):
    source = load_model(synth_file("openpose_hand")).module
    resaved = tmp_path / "hand_module_keys.pth"
    torch.save(source.state_dict(), resaved)
    report = analyze(resaved)
    assert (report.verdict, report.entry, report.match_rate) == ("identified", "openpose_hand", 1.0)
    again = load_model(resaved).module
    for key, tensor in source.state_dict().items():
        assert torch.equal(again.state_dict()[key], tensor), key
