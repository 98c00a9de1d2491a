"""DeepLabV3+ ResNet-101 and MobileNetV2 (VainF): told apart, loaded strictly, reference-exact."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mycloset_assets.checkpoints import analyze, load_model
from mycloset_assets.models.deeplabv3plus import DeepLabV3Plus, MobileNetV2Backbone, ResNet101Backbone
from tests.conftest import assert_parity, parity_case

MOBILENET, RESNET = "deeplabv3plus_mobilenet_voc", "deeplabv3plus_resnet101_voc"


def _image(shape: tuple[int, ...]) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize(
    ("name", "backbone", "tensors"),
    [(MOBILENET, MobileNetV2Backbone, 356), (RESNET, ResNet101Backbone, 674)],
)
def test_published_file_is_identified_as_its_backbone_and_loads_strictly(synth_file, name, backbone, tensors):
    path = synth_file(name)
    report = analyze(path)
    assert (report.verdict, report.entry, report.family) == ("identified", name, "deeplabv3plus")
    assert (report.match_rate, report.confidence, report.wrapper, report.prefix) == (1.0, 1.0, "model_state", None)
    assert (report.tensors, report.matched, report.total, report.container) == (tensors,) * 3 + ("torch_legacy",)
    assert report.missing == [] and report.unexpected == [] and report.mismatched == []
    loaded = load_model(path)
    assert isinstance(loaded.module, DeepLabV3Plus) and isinstance(loaded.module.backbone, backbone)
    assert not loaded.module.training


def test_mobilenet_matches_reference_logits(synth_file):
    case = parity_case(MOBILENET)
    model = load_model(synth_file(MOBILENET)).module
    with torch.no_grad():
        logits = model(case.inputs["x"])
    assert logits.shape == (1, 21, 256, 256)
    assert_parity(case, {"logits": F.avg_pool2d(logits, 2), "logits_center": logits[:, :, 96:160, 96:160]})


def test_resnet101_logits_at_a_small_input(synth_file):
    model = load_model(synth_file(RESNET)).module
    with torch.no_grad():
        logits = model(_image((1, 3, 64, 64)))
    assert logits.shape == (1, 21, 64, 64)
    assert torch.isfinite(logits).all()


def test_resaved_resnet101_is_the_same_entry_and_computes_the_same_logits(synth_file):
    published = synth_file(RESNET)
    resaved = synth_file(RESNET, container="safetensors", wrapper=None, prefix="module.")
    report = analyze(resaved)
    assert (report.verdict, report.entry, report.match_rate, report.prefix) == (
        "identified",
        RESNET,
        1.0,
        "module.",
    )
    x = _image((1, 3, 64, 64))
    with torch.no_grad():
        want = load_model(published).module(x)
        got = load_model(resaved).module(x)
    assert torch.equal(got, want)


def test_mobilenet_rewrapped_in_a_zip_is_still_mobilenet(synth_file):
    report = analyze(synth_file(MOBILENET, container="torch_zip", wrapper="state_dict"))
    assert (report.verdict, report.entry, report.match_rate) == ("identified", MOBILENET, 1.0)
    assert (report.container, report.wrapper) == ("torch_zip", "state_dict")


def test_torchvision_deeplabv3_shares_the_backbone_but_is_not_deeplabv3plus(synth_file):
    report = analyze(synth_file("torchvision_deeplabv3_resnet101"))
    assert (report.verdict, report.entry) == ("identified", "torchvision_deeplabv3_resnet101")


@pytest.mark.parametrize("output_stride", [16, 8])
def test_output_stride_sets_the_encoder_resolution(output_stride):
    model = DeepLabV3Plus("mobilenetv2", num_classes=5, output_stride=output_stride).eval()
    x = _image((1, 3, 65, 49))
    with torch.no_grad():
        low_level, out = model.backbone(x)
        logits = model(x)
    assert low_level.shape[-2:] == (16, 12)
    assert out.shape[-2:] == ((4, 3) if output_stride == 16 else (8, 6))
    assert logits.shape == (1, 5, 65, 49)


def test_unknown_backbone_is_refused():
    with pytest.raises(ValueError, match="backbone"):
        DeepLabV3Plus("xception")
