"""GFPGAN v1.4: identified under its ``params_ema`` wrapper, loaded strictly, and equal to spandrel's
independent GFPGANv1Clean on the same state dict (stored noise, ``randomize_noise=False``)."""

from __future__ import annotations

import pytest
import torch

from mycloset_assets.checkpoints import analyze, load_model
from mycloset_assets.checkpoints.synth import parity_input


@pytest.fixture(scope="module")
def face() -> torch.Tensor:
    return parity_input([1, 3, 512, 512], 1).clamp(-1, 1)


@pytest.fixture(scope="module")
def gfpgan(synth_file):
    return load_model(synth_file("gfpgan_v1_4")).module


@pytest.fixture(scope="module")
def restored(gfpgan, face):
    with torch.no_grad():
        return gfpgan(face, return_rgb=True, randomize_noise=False)


def test_published_file_is_identified(synth_file):
    report = analyze(synth_file("gfpgan_v1_4"))
    assert (report.verdict, report.entry, report.family) == ("identified", "gfpgan_v1_4", "gfpgan")
    assert (report.match_rate, report.container, report.wrapper, report.prefix) == (
        1.0,
        "torch_zip",
        "params_ema",
        None,
    )
    assert (report.tensors, report.matched, report.total, report.params) == (285, 285, 285, 87143276)
    assert report.missing == [] and report.unexpected == [] and report.mismatched == []


def test_stored_noise_is_loaded_from_the_file(gfpgan):
    keys = gfpgan.state_dict().keys()
    assert [k for k in keys if ".noises." in k] == [f"stylegan_decoder.noises.noise{i}" for i in range(15)]
    assert gfpgan.stylegan_decoder.noises.noise14.shape == (1, 1, 512, 512)


@pytest.mark.slow
def test_matches_spandrel_on_the_same_state_dict(synth_file, face, restored):
    from spandrel.architectures import GFPGAN as spandrel_gfpgan

    state = torch.load(synth_file("gfpgan_v1_4"), map_location="cpu", weights_only=True)["params_ema"]
    reference = spandrel_gfpgan.GFPGANArch().load(state).model.eval()
    with torch.no_grad():
        want, want_rgbs = reference(face, return_rgb=True, randomize_noise=False)
    image, rgbs = restored
    assert image.shape == (1, 3, 512, 512)
    assert (image - want).abs().max() <= 1e-4
    assert [tuple(r.shape[-2:]) for r in rgbs] == [(2**i, 2**i) for i in range(3, 10)]
    assert len(rgbs) == len(want_rgbs)
    for got, expected in zip(rgbs, want_rgbs, strict=True):
        assert (got - expected).abs().max() <= 1e-4


@pytest.mark.slow
def test_random_noise_and_no_intermediate_rgbs(gfpgan, face, restored):
    with torch.no_grad():
        image, rgbs = gfpgan(face, return_rgb=False, randomize_noise=True)
    assert rgbs == []
    assert image.shape == restored[0].shape
    assert not torch.allclose(image, restored[0])
