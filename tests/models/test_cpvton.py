"""CP-VTON GMM and TOM: identified from their contents, loaded strictly, reference-exact.

The GMM's grid is checked against the reference's ``(grid, theta)`` (tests/fixtures/parity/cpvton_gmm), and
so is the warped cloth of test.py: ``F.grid_sample(c, grid, padding_mode='border')`` on torch >= 1.3, i.e.
bilinear with ``align_corners=False`` (``mycloset_assets.vision.tps.warp``'s default).
"""

from __future__ import annotations

import pytest
import torch

from mycloset_assets.checkpoints import analyze, load_model
from mycloset_assets.checkpoints.synth import synth_state_dict
from mycloset_assets.models.cpvton import GMM, UnetGenerator
from mycloset_assets.vision.tps import warp
from tests.conftest import assert_parity, load_manifest, parity_case


@pytest.fixture(scope="module")
def gmm(synth_file):
    return load_model(synth_file("cpvton_gmm")).module


@pytest.fixture(scope="module")
def tom(synth_file):
    return load_model(synth_file("cpvton_tom")).module


@pytest.mark.parametrize(("name", "tensors"), [("cpvton_gmm", 104), ("cpvton_tom", 24)])
def test_each_network_is_identified_as_itself(synth_file, name, tensors):
    report = analyze(synth_file(name))
    assert (report.verdict, report.entry, report.match_rate, report.confidence) == ("identified", name, 1.0, 1.0)
    assert (report.tensors, report.matched, report.total) == (tensors, tensors, tensors)
    assert (report.container, report.wrapper, report.prefix) == ("torch_legacy", None, None)
    assert report.missing == [] and report.unexpected == [] and report.mismatched == []


def test_gmm_saved_without_batch_counters_still_loads(tmp_path):
    """A file saved with torch 0.4.0 (the README's version) lacks the 14 ``num_batches_tracked``."""
    state = synth_state_dict(load_manifest("cpvton_gmm"))
    path = tmp_path / "gmm_final.pth"
    kept = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    torch.save(kept, path, _use_new_zipfile_serialization=False)
    report = analyze(path)
    assert (report.verdict, report.entry, report.match_rate, report.total) == ("identified", "cpvton_gmm", 1.0, 90)
    assert isinstance(load_model(path).module, GMM)


def test_gmm_matches_reference_grid_theta_and_warp(gmm):
    case = parity_case("cpvton_gmm")
    cloth = case.inputs["cloth"]
    with torch.no_grad():
        grid, theta = gmm(case.inputs["agnostic"], cloth)
    errors = assert_parity(case, {"grid": grid, "theta": theta, "warped_cloth": warp(cloth, grid)})
    assert errors["grid"] < 1e-4 and errors["theta"] < 1e-5
    reference_grid = torch.from_numpy(case.expected["grid"])
    warped = warp(cloth, reference_grid, align_corners=False, padding_mode="border")
    torch.testing.assert_close(warped, torch.from_numpy(case.expected["warped_cloth"]), atol=1e-5, rtol=0)


def test_tom_matches_reference_raw_output(tom):
    case = parity_case("cpvton_tom")
    with torch.no_grad():
        raw = tom(case.inputs["x"])
    assert_parity(case, {"raw": raw})
    rendered, composite = torch.tanh(raw[:, :3]), torch.sigmoid(raw[:, 3:])
    assert rendered.shape == (1, 3, 256, 192) and composite.shape == (1, 1, 256, 192)
    assert composite.min() >= 0 and composite.max() <= 1


def test_networks_build_on_the_meta_device():
    with torch.device("meta"):
        gmm, tom = GMM(), UnetGenerator()
    assert all(t.is_meta for t in [*gmm.state_dict().values(), *tom.state_dict().values()])
