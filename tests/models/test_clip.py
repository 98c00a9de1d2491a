"""CLIP ViT-B/32: the TorchScript archive is read without executing it, and the towers compute what an
independent implementation (open_clip's OpenAI-layout CLIP, test-only dependency) computes on the same weights.
"""

from __future__ import annotations

import pytest
import torch

from mycloset_assets.checkpoints import analyze, load_model
from mycloset_assets.checkpoints.synth import parity_input, synth_state_dict
from mycloset_assets.models.clip import CLIP
from tests.conftest import load_manifest

NAME = "clip_vit_b32"
EXTRAS = ("input_resolution", "context_length", "vocab_size")
SOT, EOT = 49406, 49407


def _refuse_torchscript(*args, **kwargs):
    raise AssertionError("the archive's TorchScript code must not be loaded or executed")


@pytest.fixture(scope="module")
def loaded(synth_file):
    """The synthesized archive loaded through the factory, with TorchScript loading forbidden."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch.jit, "load", _refuse_torchscript)
        path = synth_file(NAME)
        return analyze(path), load_model(path)


@pytest.fixture(scope="module")
def published() -> dict[str, torch.Tensor]:
    """The archive's tensors as written (published dtypes), without the three metadata scalars."""
    state = synth_state_dict(load_manifest(NAME), 0)
    return {key: tensor for key, tensor in state.items() if key not in EXTRAS}


def _tokens() -> torch.Tensor:
    """Two token sequences as clip.tokenize lays them out: SOT, ids, EOT, zero padding."""
    generator = torch.Generator().manual_seed(7)
    text = torch.zeros(2, 77, dtype=torch.long)
    for row, length in enumerate((9, 75)):
        text[row, 0] = SOT
        text[row, 1 : length + 1] = torch.randint(1, SOT, (length,), generator=generator)
        text[row, length + 1] = EOT
    return text


def test_archive_is_identified_without_executing_it(loaded):
    report, _ = loaded
    assert (report.verdict, report.entry, report.family, report.container) == (
        "identified",
        NAME,
        "clip",
        "torchscript",
    )
    assert (report.tensors, report.matched, report.total, report.match_rate) == (305, 302, 302, 1.0)
    assert report.missing == [] and report.unexpected == [] and report.mismatched == []


def test_weights_are_the_archive_tensors_in_float32(loaded, published):
    model = loaded[1].module
    assert isinstance(model, CLIP) and not model.training
    state = model.state_dict()
    assert set(state) == set(published)
    assert {t.dtype for t in state.values()} == {torch.float32}
    assert {t.dtype for t in published.values()} == {torch.float16, torch.float32}
    for key, tensor in published.items():
        assert torch.equal(state[key], tensor.float()), key
    mask = model.attn_mask
    assert tuple(mask.shape) == (77, 77) and torch.isinf(mask.triu(1)[0, 1:]).all() and not mask.tril().any()


@pytest.mark.slow
def test_towers_match_open_clip_on_the_same_weights(loaded, published):
    from open_clip import model as open_clip_model

    reference = open_clip_model.build_model_from_openai_state_dict(dict(published), quick_gelu=True)
    reference = reference.float().eval()
    model = loaded[1].module
    image, text = parity_input([2, 3, 224, 224], 11), _tokens()
    with torch.no_grad():
        image_features, text_features = model.encode_image(image), model.encode_text(text)
        per_image, per_text = model(image, text)
        torch.testing.assert_close(image_features, reference.encode_image(image), rtol=0, atol=1e-4)
        torch.testing.assert_close(text_features, reference.encode_text(text), rtol=0, atol=1e-4)
        want_image, want_text = reference.get_logits(image, text)
    assert tuple(image_features.shape) == tuple(text_features.shape) == (2, 512)
    torch.testing.assert_close(per_image, want_image, rtol=0, atol=1e-4)
    torch.testing.assert_close(per_text, want_text, rtol=0, atol=1e-4)


def test_meta_build_keeps_the_causal_mask_real():
    with torch.device("meta"):
        model = CLIP()
    assert not model.attn_mask.is_meta
    assert "attn_mask" not in model.state_dict()
