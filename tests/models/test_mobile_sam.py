"""MobileSAM: identified from its contents, loaded strictly, each part computing what the reference does."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mycloset_assets.checkpoints import analyze, load_model
from tests.conftest import assert_parity, parity_case


@pytest.fixture(scope="module")
def sam(synth_file):
    return load_model(synth_file("mobile_sam")).module


@pytest.fixture(scope="module")
def case():
    return parity_case("mobile_sam")


@pytest.fixture(scope="module")
def embedding(sam, case):
    with torch.no_grad():
        return sam.image_encoder(case.inputs["x"])


def test_published_file_is_identified(synth_file):
    report = analyze(synth_file("mobile_sam"))
    assert (report.verdict, report.entry, report.family) == ("identified", "mobile_sam", "mobile_sam")
    assert (report.match_rate, report.container, report.wrapper, report.prefix) == (
        1.0,
        "torch_zip",
        None,
        None,
    )
    assert (report.tensors, report.matched, report.total) == (439, 439, 439)
    assert report.params == 10140231 - 27  # the 27 BatchNorm counters are integers
    assert report.missing == [] and report.unexpected == [] and report.mismatched == []


def test_constants_are_not_checkpoint_tensors(sam):
    keys = sam.state_dict().keys()
    assert not any(k.endswith(("attention_bias_idxs", "pixel_mean", "pixel_std")) for k in keys)
    assert "prompt_encoder.pe_layer.positional_encoding_gaussian_matrix" in keys
    assert sam.pixel_mean.flatten().tolist() == pytest.approx([123.675, 116.28, 103.53])


def test_parts_match_reference_outputs(sam, case, embedding):
    points = (case.inputs["point_coords"].float(), case.inputs["point_labels"])
    with torch.no_grad():
        sparse, dense = sam.prompt_encoder(points=points, boxes=None, masks=None)
        low_res_masks, iou_predictions = sam.mask_decoder(
            image_embeddings=embedding,
            image_pe=sam.prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=True,
        )
    assert embedding.shape == (1, 256, 64, 64)
    assert sparse.shape == (1, 2, 256) and dense.shape == (1, 256, 64, 64)
    assert_parity(
        case,
        {
            "image_embedding_pooled4": F.avg_pool2d(embedding, 4),
            "low_res_masks": low_res_masks,
            "iou_predictions": iou_predictions,
        },
    )


def test_prompt_encoder_pads_points_only_without_a_box(sam):
    coords = torch.tensor([[[100.0, 200.0], [300.0, 50.0]]])
    labels = torch.tensor([[1, 0]])
    box = torch.tensor([[10.0, 20.0, 500.0, 600.0]])
    with torch.no_grad():
        padded, _ = sam.prompt_encoder(points=(coords, labels), boxes=None, masks=None)
        with_box, _ = sam.prompt_encoder(points=(coords, labels), boxes=box, masks=None)
        mask_only, dense = sam.prompt_encoder(points=None, boxes=None, masks=torch.zeros(1, 1, 256, 256))
    assert padded.shape == (1, 3, 256) and with_box.shape == (1, 4, 256) and mask_only.shape == (1, 0, 256)
    torch.testing.assert_close(padded[0, 2], sam.prompt_encoder.not_a_point_embed.weight[0])
    torch.testing.assert_close(padded[:, :2], with_box[:, :2])
    assert dense.shape == (1, 256, 64, 64)


def test_preprocess_normalises_and_pads_bottom_right(sam):
    image = torch.full((3, 100, 80), 255.0)
    padded = sam.preprocess(image)
    assert padded.shape == (3, 1024, 1024)
    torch.testing.assert_close(padded[:, :100, :80], ((255.0 - sam.pixel_mean) / sam.pixel_std).expand(3, 100, 80))
    assert padded[:, 100:].abs().max() == 0 and padded[:, :, 80:].abs().max() == 0


def test_end_to_end_forward_is_the_parts_chained(sam, case, embedding):
    image = case.inputs["x"][0] * sam.pixel_std + sam.pixel_mean  # preprocess() gives back the parity input
    coords, labels = torch.tensor([[[400.0, 300.0]]]), torch.tensor([[1]])
    record = {"image": image, "original_size": (500, 400), "point_coords": coords, "point_labels": labels}
    (result,) = sam([record], multimask_output=False)
    with torch.no_grad():
        sparse, dense = sam.prompt_encoder(points=(coords, labels), boxes=None, masks=None)
        low_res, iou = sam.mask_decoder(embedding, sam.prompt_encoder.get_dense_pe(), sparse, dense, False)
    assert result["masks"].shape == (1, 1, 500, 400) and result["masks"].dtype == torch.bool
    assert result["low_res_logits"].shape == (1, 1, 256, 256)
    torch.testing.assert_close(result["low_res_logits"], low_res, atol=1e-4, rtol=0)
    torch.testing.assert_close(result["iou_predictions"], iou, atol=1e-4, rtol=0)
