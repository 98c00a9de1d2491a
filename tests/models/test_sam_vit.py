"""SAM ViT-B/L/H: identified from the published key sets, and computing what segment-anything 1.0 computes.

segment-anything==1.0 is a pinned test extra. Parity runs on weights synthesized from a seed and loaded into
both networks; tolerance 1e-5 absolute (float32, the same operations in the same order: 0.0 was measured).
Full 1024-side encoder passes take about a minute on two CPU cores, so the real configurations are checked
block by block (a windowed and a global block of each variant) and end to end at a reduced size.
"""

from __future__ import annotations

from functools import partial

import pytest
import torch
from segment_anything import sam_model_registry
from segment_anything.modeling import ImageEncoderViT as RefEncoder
from segment_anything.modeling import MaskDecoder as RefDecoder
from segment_anything.modeling import PromptEncoder as RefPromptEncoder
from segment_anything.modeling import Sam as RefSam
from segment_anything.modeling import TwoWayTransformer as RefTransformer
from segment_anything.modeling.image_encoder import Block as RefBlock

from mycloset_assets.checkpoints import analyze
from mycloset_assets.checkpoints.keymap import entry_tables
from mycloset_assets.models.mobile_sam import SegmentAnything
from mycloset_assets.models.sam_vit import VARIANTS, Block, ImageEncoderViT, SamViT

TOLERANCE = 1e-5
PUBLISHED = {"vit_b": "sam_vit_b_01ec64.pth", "vit_l": "sam_vit_l_0b3195.pth", "vit_h": "sam_vit_h_4b8939.pth"}
TENSORS = {"vit_b": 314, "vit_l": 482, "vit_h": 594}


def synthesize(module: torch.nn.Module, seed: int) -> None:
    """Fill every tensor from a seeded generator (zeros in the reference's init would hide mistakes)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in module.state_dict().items():
            noise = torch.randn(tensor.shape, generator=generator)
            tensor.copy_(noise * (0.05 if tensor.dim() > 1 else 0.1) + (1.0 if name.endswith("norm1.weight") else 0.0))


def reference_state(variant: str) -> dict[str, torch.Tensor]:
    """segment-anything's own state dict for ``variant``, built on the meta device (names, shapes, dtypes)."""
    with torch.device("meta"):
        return sam_model_registry[variant]().state_dict()


def write_published(variant: str, folder) -> str:
    """``torch.save`` of a plain state dict with the published keys and shapes; every tensor is a zero-stride
    view of one element, so a 2.5 GB ViT-H file is a few hundred kB while its header is the real one."""
    state = {k: torch.zeros((), dtype=v.dtype).expand(v.shape) for k, v in reference_state(variant).items()}
    path = folder / PUBLISHED[variant]
    torch.save(state, path)
    return str(path)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_network_has_segment_anythings_keys_and_shapes(variant):
    table = entry_tables(f"sam_{variant}")[0]
    ours = {name: spec.shape for name, spec in table.tensors.items()}
    assert ours == {k: tuple(v.shape) for k, v in reference_state(variant).items()}
    assert len(ours) == TENSORS[variant]


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_published_file_is_identified_as_its_variant_only(variant, tmp_path):
    report = analyze(write_published(variant, tmp_path))
    assert (report.verdict, report.entry, report.family) == ("identified", f"sam_{variant}", "sam"), report.reason
    assert (report.match_rate, report.confidence, report.container, report.wrapper, report.prefix) == (
        1.0,
        1.0,
        "torch_zip",
        None,
        None,
    )
    assert (report.tensors, report.matched, report.total, report.params) == (
        TENSORS[variant],
        TENSORS[variant],
        TENSORS[variant],
        sum(t.numel() for t in reference_state(variant).values()),
    )
    assert "equal on contents" not in report.reason


def test_mobile_sam_is_not_taken_for_a_vit_sam(synth_file):
    report = analyze(synth_file("mobile_sam"))
    assert (report.verdict, report.entry) == ("identified", "mobile_sam")


def _blocks(variant: str, index: int) -> tuple[torch.nn.Module, torch.nn.Module]:
    spec = VARIANTS[variant]
    window = 0 if index in spec["global_attn_indexes"] else 14
    reference = RefBlock(
        dim=spec["embed_dim"],
        num_heads=spec["num_heads"],
        norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
        use_rel_pos=True,
        window_size=window,
        input_size=(64, 64),
    ).eval()
    synthesize(reference, index)
    ours = Block(spec["embed_dim"], spec["num_heads"], window, (64, 64)).eval()
    ours.load_state_dict(reference.state_dict(), strict=True)
    return reference, ours


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_windowed_and_global_blocks_match_the_reference(variant):
    first_global = VARIANTS[variant]["global_attn_indexes"][0]
    dim = VARIANTS[variant]["embed_dim"]
    # a 20 x 20 grid pads the 14 x 14 windows; the global block resizes its 127-row tables to 39 rows
    for index, grid in ((0, 20), (first_global, 20), (0, 64)):
        reference, ours = _blocks(variant, index)
        x = torch.randn(1, grid, grid, dim, generator=torch.Generator().manual_seed(grid))
        with torch.no_grad():
            error = (reference(x) - ours(x)).abs().max().item()
        assert error <= TOLERANCE, (variant, index, grid, error)


def small_pair(image_size: int = 256) -> tuple[RefSam, SegmentAnything]:
    """A reduced SAM (width 96, 4 blocks, blocks 1 and 3 global) in both implementations, same weights."""
    args = {"embed_dim": 96, "depth": 4, "num_heads": 4, "global_attn_indexes": (1, 3)}
    reference = RefSam(
        image_encoder=RefEncoder(
            img_size=image_size,
            mlp_ratio=4,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            qkv_bias=True,
            use_rel_pos=True,
            window_size=14,
            out_chans=256,
            **args,
        ),
        prompt_encoder=RefPromptEncoder(
            embed_dim=256,
            image_embedding_size=(image_size // 16, image_size // 16),
            input_image_size=(image_size, image_size),
            mask_in_chans=16,
        ),
        mask_decoder=RefDecoder(
            num_multimask_outputs=3,
            transformer=RefTransformer(depth=2, embedding_dim=256, mlp_dim=2048, num_heads=8),
            transformer_dim=256,
            iou_head_depth=3,
            iou_head_hidden_dim=256,
        ),
    ).eval()
    synthesize(reference, 7)
    ours = SegmentAnything(ImageEncoderViT(img_size=image_size, **args), image_size).eval()
    ours.load_state_dict(reference.state_dict(), strict=True)
    return reference, ours


def test_end_to_end_matches_segment_anything_at_a_reduced_size():
    reference, ours = small_pair()
    generator = torch.Generator().manual_seed(3)
    image = torch.rand(3, 200, 256, generator=generator) * 255
    batch = [
        {
            "image": image,
            "original_size": (400, 512),
            "point_coords": torch.tensor([[[60.0, 80.0], [200.0, 150.0]]]),
            "point_labels": torch.tensor([[1, 0]]),
            "boxes": torch.tensor([[20.0, 30.0, 220.0, 180.0]]),
        }
    ]
    with torch.no_grad():
        want = reference(batch, multimask_output=True)[0]
        got = ours(batch, multimask_output=True)[0]
    for key in ("low_res_logits", "iou_predictions"):
        assert got[key].shape == want[key].shape
        assert (got[key] - want[key]).abs().max().item() <= TOLERANCE, key
    assert got["masks"].shape == (1, 3, 400, 512)
    disagree = (got["masks"] != want["masks"]).float().mean().item()
    assert disagree <= 1e-4  # only pixels whose logit is within float rounding of the threshold may differ


def test_samvit_rejects_an_unknown_variant():
    with pytest.raises(ValueError, match="unknown SAM variant 'vit_g'; known: vit_b, vit_l, vit_h"):
        SamViT("vit_g")
