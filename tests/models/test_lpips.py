"""LPIPS v0.1 (alex, vgg): lin files identified and told apart, loaded with their torchvision trunk only."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch

from mycloset_assets.checkpoints import MissingCompanionError, analyze, load_model
from mycloset_assets.models.lpips import LPIPS
from tests.conftest import assert_parity, parity_case

TRUNK = {"lpips_alex_lin": "torchvision_alexnet_features", "lpips_vgg_lin": "torchvision_vgg16"}


@pytest.mark.parametrize("name", ["lpips_alex_lin", "lpips_vgg_lin"])
def test_lin_file_is_identified_as_its_own_variant(synth_file, name):
    report = analyze(synth_file(name))
    assert (report.verdict, report.entry, report.family, report.match_rate) == ("identified", name, "lpips", 1.0)
    assert (report.tensors, report.matched, report.total, report.container) == (5, 5, 5, "torch_legacy")
    assert report.missing == [] and report.unexpected == [] and report.mismatched == []


def test_squeeze_lin_file_is_neither_alex_nor_vgg(tmp_path):
    channels = [64, 128, 256, 384, 384, 512, 512]
    squeeze = OrderedDict((f"lin{k}.model.1.weight", torch.rand(1, c, 1, 1)) for k, c in enumerate(channels))
    path = tmp_path / "squeeze.pth"
    torch.save(squeeze, path, _use_new_zipfile_serialization=False)
    report = analyze(path)
    assert (report.verdict, report.family) == ("partial", "lpips")
    assert report.match_rate < 1.0
    assert {"lin5.model.1.weight", "lin6.model.1.weight"} <= set(report.unexpected)


def test_lin_file_alone_names_the_trunk_it_needs(synth_file):
    with pytest.raises(MissingCompanionError, match="torchvision_alexnet_features"):
        load_model(synth_file("lpips_alex_lin"))


def test_alex_matches_reference_distance_and_per_layer_terms(synth_file):
    case = parity_case("lpips")
    trunk = {"torchvision_alexnet_features": synth_file("torchvision_alexnet_features")}
    loaded = load_model(synth_file("lpips_alex_lin"), companions=trunk)
    model = loaded.module
    assert isinstance(model, LPIPS) and not model.training
    assert set(loaded.companions) == {"torchvision_alexnet_features"}
    with torch.no_grad():
        distance, per_layer = model(case.inputs["in0"], case.inputs["in1"], retPerLayer=True)
    assert len(per_layer) == 5
    assert_parity(case, {"distance": distance, "per_layer": torch.cat(per_layer, 1).flatten(1)})


@pytest.mark.slow
def test_vgg_loads_with_its_trunk_and_is_a_distance(synth_file):
    trunk = {"torchvision_vgg16": synth_file("torchvision_vgg16")}
    model = load_model(synth_file("lpips_vgg_lin"), companions=trunk).module
    generator = torch.Generator().manual_seed(0)
    a, b = torch.rand(2, 1, 3, 32, 32, generator=generator) * 2 - 1
    with torch.no_grad():
        distance, per_layer = model(a, b, retPerLayer=True)
        same = model(a, a)
        with torch.device("meta"):
            maps = LPIPS("vgg", spatial=True)
        maps.load_state_dict(model.state_dict(), assign=True)
        spatial = maps.eval()(a, b)
    assert [tuple(t.shape) for t in per_layer] == [(1, 1, 1, 1)] * 5
    torch.testing.assert_close(distance, sum(per_layer[1:], start=per_layer[0]))
    assert float(same.abs().max()) == 0.0
    assert tuple(spatial.shape) == (1, 1, 32, 32)


def test_lins_are_registered_once_and_constants_are_not_checkpoint_keys():
    with torch.device("meta"):
        model = LPIPS("alex")
    keys = list(model.state_dict())
    assert [k for k in keys if not k.startswith("net.")] == [f"lin{k}.model.1.weight" for k in range(5)]
    assert not any(k.startswith(("lins.", "scaling_layer.")) for k in keys)
    assert not model.scaling_layer.shift.is_meta
