"""SCHP LIP-20 and ATR-18: identified from contents, loaded strictly, equal to the reference's outputs."""

from __future__ import annotations

import pytest
import torch

from mycloset_assets.checkpoints import analyze, load_model
from mycloset_assets.models.schp import AugmentCE2P, InPlaceABN
from tests.conftest import assert_parity, load_manifest, parity_case

ENTRIES = [("schp_lip20", 20), ("schp_atr18", 18)]


@pytest.mark.parametrize(("name", "num_classes"), ENTRIES)
def test_module_keys_are_the_published_keys_without_module_prefix(name, num_classes):
    with torch.device("meta"):
        state = AugmentCE2P(num_classes).state_dict()
    published = [(t["key"].removeprefix("module."), t["shape"], t["dtype"]) for t in load_manifest(name)["tensors"]]
    assert [(key, list(t.shape), str(t.dtype).removeprefix("torch.")) for key, t in state.items()] == published


@pytest.mark.parametrize(("name", "num_classes"), ENTRIES)
def test_published_file_is_identified_and_loads_strictly(synth_file, name, num_classes):
    path = synth_file(name)
    report = analyze(path)
    assert (report.verdict, report.entry, report.family, report.match_rate, report.confidence) == (
        "identified",
        name,
        "schp",
        1.0,
        1.0,
    )
    assert (report.matched, report.total, report.tensors, report.wrapper, report.prefix) == (
        603,
        603,
        603,
        "state_dict",
        "module.",
    )
    loaded = load_model(path)
    assert isinstance(loaded.module, AugmentCE2P)
    assert not loaded.module.training
    assert loaded.module.fushion[-1].out_channels == num_classes


def test_lip_matches_reference_outputs(synth_file):
    case = parity_case("schp_lip20")
    model = load_model(synth_file("schp_lip20")).module
    with torch.no_grad():
        [[parsing, fusion], [edge]] = model(case.inputs["x"])
    assert_parity(case, {"fusion": fusion, "parsing": parsing, "edge": edge})


def test_atr_outputs_have_18_classes_at_stride_4(synth_file):
    model = load_model(synth_file("schp_atr18")).module
    with torch.no_grad():
        out = model(torch.randn(2, 3, 64, 48))
    assert [[t.shape for t in group] for group in out] == [
        [(2, 18, 16, 12), (2, 18, 16, 12)],
        [(2, 2, 16, 12)],
    ]
    assert all(torch.isfinite(t).all() for group in out for t in group)


@pytest.mark.parametrize(
    "layout",
    [
        {"container": "torch_zip", "wrapper": None, "prefix": None},
        {"container": "safetensors", "prefix": None},
    ],
    ids=["zip_bare_state_dict", "safetensors"],
)
def test_lip_and_atr_are_told_apart_when_resaved(synth_file, layout):
    for name, _ in ENTRIES:
        report = analyze(synth_file(name, **layout))
        assert (report.verdict, report.entry, report.match_rate) == ("identified", name, 1.0), report.reason


def test_inplace_abn_scales_by_absolute_weight_plus_eps():
    abn = InPlaceABN(3, activation="none", eps=1e-5)
    with torch.no_grad():
        abn.weight.copy_(torch.tensor([-2.0, 0.0, 0.5]))
        abn.bias.copy_(torch.tensor([0.1, -0.2, 0.3]))
        abn.running_mean.copy_(torch.tensor([0.5, -1.0, 0.0]))
        abn.running_var.copy_(torch.tensor([4.0, 1.0, 0.25]))
    x = torch.randn(2, 3, 4, 5)
    mean, var = abn.running_mean.view(1, 3, 1, 1), abn.running_var.view(1, 3, 1, 1)
    gamma = abn.weight.abs().view(1, 3, 1, 1) + 1e-5
    want = (x - mean) / torch.sqrt(var + 1e-5) * gamma + abn.bias.view(1, 3, 1, 1)
    torch.testing.assert_close(abn(x), want)
    leaky = InPlaceABN(3)
    leaky.load_state_dict(abn.state_dict())
    torch.testing.assert_close(leaky(x), torch.nn.functional.leaky_relu(want, 0.01))
