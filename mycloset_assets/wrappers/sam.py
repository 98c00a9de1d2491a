"""SAM mask refinement (SAM ViT-B/L/H or MobileSAM): a photo and a box/point prompt in, SAM's best mask at the
photo's size out.

Pre- and post-processing are segment-anything's ``SamPredictor`` (which MobileSAM uses unchanged):
``ResizeLongestSide(1024)`` resizes the RGB photo with PIL bilinear to the long side 1024 (sides rounded half
up) and scales prompt coordinates by new/old size per axis; ``Sam.preprocess`` normalises and pads to
1024 x 1024; the image is encoded once and every prompt decoded against that embedding with
``multimask_output=True``; the output with the highest predicted IoU is kept (SAM's advice for an
ambiguous prompt), its low-res logits upsampled by ``postprocess_masks`` to the photo's size and thresholded
at 0. A photo of any size costs one 1024-side encoder pass (about a minute for ViT-B on two CPU cores, a
fraction of a second for MobileSAM).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from ..checkpoints import LoadedModel
from ..vision.prompts import Refinement, SamPrompt, agree, input_shape, scale_prompt
from .base import WrongFamilyError, check_images


@dataclass(frozen=True, eq=False)
class ImageEmbedding:
    """One photo's image-encoder output (1 x 256 x 64 x 64), with the resized and original (h, w) sizes."""

    features: torch.Tensor
    input_size: tuple[int, int]
    original_size: tuple[int, int]


@dataclass(frozen=True, eq=False)
class SamMask:
    """SAM's chosen mask: ``mask`` H x W bool at the photo's size, ``score`` its predicted IoU, ``logits``
    its 256 x 256 low-res logits (float32; SAM accepts them back as a mask prompt), ``index`` which of the
    three multimask outputs it is."""

    mask: np.ndarray
    score: float
    logits: np.ndarray | None = None
    index: int = 0


def resize_longest_side(image: np.ndarray, long_side: int) -> np.ndarray:
    """The RGB uint8 photo resized to ``input_shape`` with PIL bilinear (``ResizeLongestSide.apply_image``)."""
    height, width = input_shape(image.shape[0], image.shape[1], long_side)
    if (height, width) == image.shape[:2]:
        return image
    return np.asarray(Image.fromarray(np.ascontiguousarray(image)).resize((width, height), Image.BILINEAR))


SAM_FAMILIES = ("sam", "mobile_sam")


class MaskRefiner:
    """SAM on a ``LoadedModel`` of family ``sam`` or ``mobile_sam``: ``segment`` a prompt, ``refine`` a coarse mask.

    ``embed`` + ``decode`` let a caller encode a photo once and decode many prompts (``segment_many``).
    """

    def __init__(self, loaded: LoadedModel) -> None:
        if loaded.entry.family not in SAM_FAMILIES:
            raise WrongFamilyError(
                f"MaskRefiner wraps SAM checkpoints, not {loaded.entry.family} ({loaded.entry.id}); "
                "load sam_vit_*.pth or mobile_sam.pt and pass that"
            )
        self.loaded = loaded
        self.module = loaded.module
        self.entry = loaded.entry
        self.long_side = int(self.module.image_encoder.img_size)

    @property
    def device(self) -> torch.device:
        return self.loaded.device

    def embed(self, image: np.ndarray) -> ImageEmbedding:
        """Resize, normalise, pad and encode one RGB uint8 H x W x 3 photo."""
        check_images([image])
        resized = resize_longest_side(image, self.long_side)
        pixels = torch.from_numpy(resized.transpose(2, 0, 1).copy()).to(device=self.device, dtype=self.loaded.dtype)
        with torch.inference_mode():
            features = self.module.image_encoder(self.module.preprocess(pixels)[None])
        return ImageEmbedding(features, (resized.shape[0], resized.shape[1]), (image.shape[0], image.shape[1]))

    def decode(self, embedding: ImageEmbedding, prompt: SamPrompt) -> SamMask:
        """SAM's best of three masks for ``prompt`` (photo coordinates) on an embedded photo."""
        scaled = scale_prompt(prompt, embedding.original_size, self.long_side)
        dtype, device = self.loaded.dtype, self.device
        points = None
        if len(scaled.points):
            coords = torch.as_tensor(scaled.points, dtype=dtype, device=device)[None]
            points = (coords, torch.as_tensor(scaled.labels, dtype=torch.int64, device=device)[None])
        boxes = None if scaled.box is None else torch.as_tensor(scaled.box, dtype=dtype, device=device)[None]
        with torch.inference_mode():
            sparse, dense = self.module.prompt_encoder(points=points, boxes=boxes, masks=None)
            low_res, scores = self.module.mask_decoder(
                image_embeddings=embedding.features,
                image_pe=self.module.prompt_encoder.get_dense_pe(),
                sparse_prompt_embeddings=sparse,
                dense_prompt_embeddings=dense,
                multimask_output=True,
            )
            best = int(torch.argmax(scores[0]))
            chosen = low_res[:, best : best + 1]
            logits = self.module.postprocess_masks(chosen, embedding.input_size, embedding.original_size)
        return SamMask(
            mask=(logits[0, 0] > self.module.mask_threshold).cpu().numpy(),
            score=float(scores[0, best]),
            logits=chosen[0, 0].float().cpu().numpy(),
            index=best,
        )

    def segment(self, image: np.ndarray, prompt: SamPrompt) -> SamMask:
        """SAM's best mask for ``prompt`` on ``image`` (RGB uint8 H x W x 3), at the photo's size."""
        return self.decode(self.embed(image), prompt)

    def segment_many(self, image: np.ndarray, prompts: Sequence[SamPrompt]) -> list[SamMask]:
        """One mask per prompt, encoding the photo once."""
        embedding = self.embed(image)
        return [self.decode(embedding, prompt) for prompt in prompts]

    def refine(
        self,
        image: np.ndarray,
        reference_mask: np.ndarray,
        prompt: SamPrompt,
        iou_range: tuple[float, float] = (0.5, 1.0),
        *,
        reference_name: str = "reference",
    ) -> Refinement:
        """Segment ``prompt`` and keep SAM's mask only when its IoU with ``reference_mask`` is in ``iou_range``."""
        check_images([image])
        reference = np.asarray(reference_mask, dtype=bool)
        if reference.shape != image.shape[:2]:
            raise ValueError(
                f"the reference mask is {reference.shape[0]} x {reference.shape[1]} but the photo is "
                f"{image.shape[0]} x {image.shape[1]}; pass the mask computed on this photo"
            )
        result = self.segment(image, prompt)
        return agree(reference, result.mask, result.score, iou_range, reference_name=reference_name)
