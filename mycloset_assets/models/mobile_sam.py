"""MobileSAM (ChaoningZhang/MobileSAM ``build_sam_vit_t``): SAM with a TinyViT-5M image encoder.

``SegmentAnything`` is what every SAM shares (``sam_vit`` gives it a ViT-B/L/H encoder). The three parts
keep the reference's attribute names (``image_encoder``, ``prompt_encoder``, ``mask_decoder``) so callers
can run them one by one, as SAM's predictor does: embed the image once, then decode masks for any number
of prompts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .mobile_sam_decoder import MaskDecoder, PromptEncoder, TwoWayTransformer
from .mobile_sam_tinyvit import TinyViT

PIXEL_MEAN = (123.675, 116.28, 103.53)
PIXEL_STD = (58.395, 57.12, 57.375)


class SegmentAnything(nn.Module):
    """Segment Anything around any image encoder: image (padded to ``image_size``) + prompts -> mask logits.

    The image encoder must map N x 3 x S x S to N x ``prompt_embed_dim`` x S/16 x S/16 and carry ``img_size``.
    """

    mask_threshold: float = 0.0

    def __init__(
        self,
        image_encoder: nn.Module,
        image_size: int = 1024,
        prompt_embed_dim: int = 256,
        mask_in_chans: int = 16,
        num_multimask_outputs: int = 3,
        pixel_mean: Sequence[float] = PIXEL_MEAN,
        pixel_std: Sequence[float] = PIXEL_STD,
    ) -> None:
        super().__init__()
        embedding_size = image_size // 16
        self.image_encoder = image_encoder
        self.prompt_encoder = PromptEncoder(
            prompt_embed_dim, (embedding_size, embedding_size), (image_size, image_size), mask_in_chans
        )
        self.mask_decoder = MaskDecoder(
            prompt_embed_dim,
            TwoWayTransformer(depth=2, embedding_dim=prompt_embed_dim, num_heads=8, mlp_dim=2048),
            num_multimask_outputs=num_multimask_outputs,
        )
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean, device="cpu").view(-1, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std, device="cpu").view(-1, 1, 1), persistent=False)

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise a 3 x H x W (0-255, RGB, longest side resized to image_size) image and pad it square."""
        x = (x - self.pixel_mean) / self.pixel_std
        height, width = x.shape[-2:]
        size = self.image_encoder.img_size
        return F.pad(x, (0, size - width, 0, size - height))

    def postprocess_masks(
        self, masks: torch.Tensor, input_size: tuple[int, ...], original_size: tuple[int, ...]
    ) -> torch.Tensor:
        """Low-res logits -> logits at the original image size (padding removed)."""
        size = self.image_encoder.img_size
        masks = F.interpolate(masks, (size, size), mode="bilinear", align_corners=False)
        masks = masks[..., : input_size[0], : input_size[1]]
        return F.interpolate(masks, original_size, mode="bilinear", align_corners=False)

    @torch.no_grad()
    def forward(self, batched_input: list[dict[str, Any]], multimask_output: bool) -> list[dict[str, torch.Tensor]]:
        """SAM's end-to-end call: per image a dict with ``image`` (3 x H x W resized, 0-255),
        ``original_size`` and optional ``point_coords``/``point_labels``, ``boxes``, ``mask_inputs``;
        returns per image ``masks`` (bool), ``iou_predictions`` and ``low_res_logits``."""
        images = torch.stack([self.preprocess(record["image"]) for record in batched_input])
        embeddings = self.image_encoder(images)
        outputs = []
        for record, embedding in zip(batched_input, embeddings, strict=True):
            points = (record["point_coords"], record["point_labels"]) if "point_coords" in record else None
            sparse, dense = self.prompt_encoder(
                points=points, boxes=record.get("boxes"), masks=record.get("mask_inputs")
            )
            low_res_masks, iou_predictions = self.mask_decoder(
                image_embeddings=embedding.unsqueeze(0),
                image_pe=self.prompt_encoder.get_dense_pe(),
                sparse_prompt_embeddings=sparse,
                dense_prompt_embeddings=dense,
                multimask_output=multimask_output,
            )
            masks = self.postprocess_masks(low_res_masks, record["image"].shape[-2:], record["original_size"])
            outputs.append(
                {
                    "masks": masks > self.mask_threshold,
                    "iou_predictions": iou_predictions,
                    "low_res_logits": low_res_masks,
                }
            )
        return outputs


class MobileSAM(SegmentAnything):
    """Segment Anything with TinyViT (MobileSAM ``vit_t``); ``options`` are SegmentAnything's."""

    def __init__(self, image_size: int = 1024, prompt_embed_dim: int = 256, **options: Any) -> None:
        super().__init__(
            TinyViT(img_size=image_size, out_chans=prompt_embed_dim), image_size, prompt_embed_dim, **options
        )
