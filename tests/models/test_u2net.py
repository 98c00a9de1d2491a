"""U2Net, U2Netp and the 4-class cloth-segmentation U2Net: told apart, loaded strictly, reference-exact."""

from __future__ import annotations

import pytest
import torch

from mycloset_assets.checkpoints import analyze, load_model
from tests.conftest import assert_parity, parity_case


@pytest.mark.parametrize(
    ("name", "tensors", "total", "container"),
    [
        ("u2net", 686, 686, "torch_legacy"),
        ("u2netp", 686, 686, "torch_legacy"),
        ("u2net_cloth_seg4", 798, 798, "torch_zip"),
    ],
)
def test_each_variant_is_identified_as_itself(synth_file, name, tensors, total, container):
    report = analyze(synth_file(name))
    assert (report.verdict, report.entry, report.match_rate, report.confidence) == ("identified", name, 1.0, 1.0)
    assert (report.tensors, report.matched, report.total, report.container) == (tensors, total, total, container)
    assert report.missing == [] and report.unexpected == [] and report.mismatched == []


def test_cloth_seg_prefix_is_reported_and_optional_counters_are_not_missing(synth_file):
    cloth = analyze(synth_file("u2net_cloth_seg4"))
    assert cloth.prefix == "module."
    saliency = analyze(synth_file("u2net"))
    assert saliency.prefix is None
    assert not any("num_batches_tracked" in key for key in saliency.missing)


def test_u2netp_matches_reference_outputs(synth_file):
    case = parity_case("u2netp")
    model = load_model(synth_file("u2netp")).module
    with torch.no_grad():
        outputs = model(case.inputs["x"])
    assert len(outputs) == 7
    assert_parity(case, {"d0": outputs[0], "d1": outputs[1]})


def test_cloth_segmentation_matches_reference_logits(synth_file):
    case = parity_case("u2net_cloth_seg4")
    model = load_model(synth_file("u2net_cloth_seg4")).module
    with torch.no_grad():
        outputs = model(case.inputs["x"])
    assert outputs[0].min() < 0, "the cloth-segmentation release returns raw logits, not probabilities"
    assert_parity(case, {"d0": outputs[0]})


def test_full_u2net_output_shapes(synth_file):
    model = load_model(synth_file("u2net")).module
    with torch.no_grad():
        outputs = model(torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0)))
    assert [tuple(o.shape) for o in outputs] == [(1, 1, 64, 64)] * 7
    assert all(float(o.min()) >= 0.0 and float(o.max()) <= 1.0 for o in outputs)
