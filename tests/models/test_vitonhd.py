"""VITON-HD SegGenerator, GMM and ALIAS generator: identified, loaded strictly, reference-exact.

The GMM is checked against the reference's outputs (tests/fixtures/parity/vitonhd_gmm). SegGenerator and
ALIAS have no fixture: they load with a 100 % tensor match, the spectral-norm weights are the legacy hook's
``weight_orig / sigma`` (sigma from the stored u and v), and their outputs have the documented shapes and
ranges. The GMM grid is for ``grid_sample`` with ``align_corners=False`` (test.py on torch >= 1.3).
"""

from __future__ import annotations

import shutil

import pytest
import torch
from torch import nn

from mycloset_assets.checkpoints import analyze, load_model
from mycloset_assets.models.vitonhd_alias import ALIASGenerator, SpectralNormConv2d
from tests.conftest import assert_parity, parity_case

ENTRIES = [("vitonhd_seg", 46), ("vitonhd_gmm", 104), ("vitonhd_alias", 264)]


def _alias_inputs(height: int, width: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """x (9 channels in [-1, 1]), a 7-class one-hot seg, seg_div and a misalignment mask inside 'upper'."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(1, 9, height, width, generator=gen) * 2 - 1
    labels = torch.randint(0, 7, (1, height, width), generator=gen)
    seg = nn.functional.one_hot(labels, 7).permute(0, 3, 1, 2).float()
    misalign = seg[:, 2:3] * (torch.rand(1, 1, height, width, generator=gen) > 0.5).float()
    seg_div = torch.cat((seg, misalign), 1)
    seg_div[:, 2:3] -= misalign
    return x, seg, seg_div, misalign


@pytest.fixture(scope="module")
def alias(synth_file):
    return load_model(synth_file("vitonhd_alias")).module


@pytest.fixture(scope="module")
def small_alias(alias):
    """The published weights in a generator built for 256x128 (the load size only sets the output size)."""
    with torch.device("meta"):
        small = ALIASGenerator(load_height=256, load_width=128)
    small.load_state_dict(alias.state_dict(), assign=True)
    return small.eval()


@pytest.fixture(scope="module")
def seg(synth_file):
    return load_model(synth_file("vitonhd_seg")).module


@pytest.mark.parametrize(("name", "tensors"), ENTRIES)
def test_each_network_is_identified_as_itself(synth_file, name, tensors):
    report = analyze(synth_file(name))
    assert (report.verdict, report.entry, report.match_rate, report.confidence) == ("identified", name, 1.0, 1.0)
    assert (report.tensors, report.matched, report.total, report.container) == (tensors, tensors, tensors, "torch_zip")
    assert report.missing == [] and report.unexpected == [] and report.mismatched == []


def test_gmm_files_named_alike_are_told_apart_by_their_contents(synth_file, tmp_path):
    vitonhd = tmp_path / "vitonhd" / "gmm_final.pth"
    vitonhd.parent.mkdir()
    shutil.copy(synth_file("vitonhd_gmm"), vitonhd)
    report = analyze(vitonhd)
    assert (report.verdict, report.entry, report.match_rate) == ("identified", "vitonhd_gmm", 1.0)

    cpvton = synth_file("cpvton_gmm")
    assert cpvton.name == "gmm_final.pth"
    report = analyze(cpvton)
    assert (report.verdict, report.entry, report.match_rate) == ("identified", "cpvton_gmm", 1.0)


def test_gmm_matches_reference_outputs(synth_file):
    case = parity_case("vitonhd_gmm")
    model = load_model(synth_file("vitonhd_gmm")).module
    with torch.no_grad():
        theta, grid = model(case.inputs["inputA"], case.inputs["inputB"])
    assert grid.shape == (1, 1024, 768, 2), "the grid is produced at the load size, not the input size"
    assert_parity(
        case,
        {
            "theta": theta,
            "grid_pooled4_nchw": nn.functional.avg_pool2d(grid.permute(0, 3, 1, 2), 4),
            "grid_stride4": grid[:, ::4, ::4, :],
        },
    )


@pytest.mark.parametrize("size", [(256, 192), (128, 96)])
def test_seg_generator_gives_probabilities(seg, size):
    x = torch.randn(1, 21, *size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = seg(x)
    assert out.shape == (1, 13, *size)
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0


def test_spectral_norm_weight_is_weight_orig_over_sigma_from_stored_u_v(synth_file, alias):
    stored = torch.load(synth_file("vitonhd_alias"), map_location="cpu", weights_only=True)
    convs = {name: m for name, m in alias.named_modules() if isinstance(m, SpectralNormConv2d)}
    assert len(convs) == 23  # conv_0 and conv_1 in 8 blocks, conv_s in the 7 that change channels
    for name, conv in convs.items():
        w_orig, u, v = (stored[f"{name}.weight_{part}"] for part in ("orig", "u", "v"))
        sigma = torch.dot(u, w_orig.flatten(1) @ v)
        torch.testing.assert_close(conv.weight, w_orig / sigma, rtol=1e-6, atol=0)


def test_spectral_norm_conv_equals_torch_legacy_hook_in_eval_and_training():
    torch.manual_seed(0)
    reference = nn.utils.spectral_norm(nn.Conv2d(6, 5, kernel_size=3, padding=1))
    ours = SpectralNormConv2d(6, 5, kernel_size=3, padding=1)
    ours.load_state_dict(reference.state_dict())
    assert list(ours.state_dict()) == list(reference.state_dict())
    x = torch.randn(2, 6, 8, 8)
    for training in (False, True, False):
        reference.train(training)
        ours.train(training)
        torch.testing.assert_close(ours(x), reference(x), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(ours.weight_u, reference.weight_u)
        torch.testing.assert_close(ours.weight_v, reference.weight_v)


def test_alias_output_shape_range_and_seeded_noise(small_alias):
    inputs = _alias_inputs(256, 128)
    with torch.no_grad():
        torch.manual_seed(1)
        first = small_alias(*inputs)
        torch.manual_seed(1)
        again = small_alias(*inputs)
        torch.manual_seed(2)
        other = small_alias(*inputs)
    assert first.shape == (1, 3, 256, 128)
    assert torch.isfinite(first).all() and float(first.abs().max()) <= 1.0
    assert torch.equal(first, again), "the ALIASNorm noise comes from torch's global generator"
    assert not torch.equal(first, other)


def test_alias_output_size_is_the_load_size_whatever_the_input_size(small_alias):
    with torch.no_grad():
        out = small_alias(*_alias_inputs(128, 64))
    assert out.shape == (1, 3, 256, 128)


@pytest.mark.slow
def test_alias_at_published_size(alias):
    with torch.no_grad():
        torch.manual_seed(0)
        out = alias(*_alias_inputs(1024, 768))
    assert out.shape == (1, 3, 1024, 768)
    assert torch.isfinite(out).all() and float(out.abs().max()) <= 1.0
