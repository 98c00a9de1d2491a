"""GFPGAN v1.4 face restoration of a photo, aligned by the person's pose keypoints.

The reference (TencentARC/GFPGAN ``GFPGANer.enhance`` with facexlib's ``FaceRestoreHelper``) finds five face
landmarks with RetinaFace; here the eyes and nose of the pose keypoints align the face instead
(:mod:`mycloset_assets.vision.face`). The rest is the reference's: the 512 x 512 aligned crop, ``/ 255``,
``(x - 0.5) / 0.5``, the network, clamp to [-1, 1], ``round((x + 1) / 2 * 255)`` (basicsr ``tensor2img``), and the
restored face pasted back with the inverse similarity and facexlib's feathered mask.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..checkpoints import LoadedModel
from ..vision.face import (
    FaceAlignment,
    FaceLandmarks,
    align_face,
    find_face,
    paste_face,
)
from .base import check_family


@dataclass(frozen=True)
class FaceRestoration:
    """One restored face: ``image`` the photo with the restored face pasted back (H x W x 3 uint8);
    ``landmarks`` and ``alignment`` as found; ``face`` the aligned crop given to the network and
    ``restored_face`` the network's output (both 512 x 512 x 3 uint8, RGB); ``box`` (x0, y0, x1, y1, x1 and y1
    exclusive) the only region of ``image`` that can differ from the photo."""

    image: np.ndarray
    landmarks: FaceLandmarks
    alignment: FaceAlignment
    face: np.ndarray
    restored_face: np.ndarray
    box: tuple[int, int, int, int]


class FaceRestorer:
    """GFPGAN (``gfpgan_v1_4``): an RGB photo and one person's keypoints -> :class:`FaceRestoration`.

    ``keypoints`` are one person's rows of (x, y, score) in ``layout`` ``"openpose18"`` (e.g.
    ``BodyPoseResult.keypoints[i]``) or ``"coco17"`` (e.g. ``keypoints_coco17[i]`` or HRNet's). Without a usable
    face (an eye or the nose missing or scored below ``min_score``, eyes closer than ``min_eye_distance`` pixels,
    a face turned away) :class:`~mycloset_assets.vision.face.FaceNotFoundError` is raised before any network work,
    so a caller can skip restoration with the reason.

    The network runs with ``randomize_noise=False``: StyleGAN2's stored noise buffers, so a photo always gives the
    same result (deterministic and cacheable). The reference ``GFPGANer`` draws fresh noise on every call, so its
    outputs vary slightly from run to run.
    """

    family = "gfpgan"

    def __init__(self, loaded: LoadedModel, min_score: float = 0.3, min_eye_distance: float = 8.0) -> None:
        check_family(loaded, [self.family], type(self).__name__)
        if min_score < 0 or min_eye_distance < 0:
            raise ValueError(f"min_score and min_eye_distance must be >= 0, got {min_score} and {min_eye_distance}")
        self.loaded = loaded
        self.module = loaded.module
        self.entry = loaded.entry
        self.min_score = float(min_score)
        self.min_eye_distance = float(min_eye_distance)
        height, width = (int(v) for v in self.entry.preprocess["input_size"])
        if height != width:
            raise ValueError(f"{self.entry.id}: GFPGAN restores square crops, the registry says {height} x {width}")
        self.size = height

    @property
    def device(self) -> torch.device:
        return self.loaded.device

    def restore_face(self, face: np.ndarray) -> np.ndarray:
        """The network on one aligned ``size`` x ``size`` x 3 uint8 RGB crop -> the restored crop (uint8 RGB)."""
        if face.dtype != np.uint8 or face.shape != (self.size, self.size, 3):
            raise ValueError(
                f"expected the aligned {self.size} x {self.size} x 3 uint8 face crop, got {face.dtype} {face.shape}"
            )
        batch = torch.from_numpy(np.ascontiguousarray(face)).permute(2, 0, 1)[None].float() / 255
        batch = ((batch - 0.5) / 0.5).to(self.loaded.device, self.loaded.dtype)
        with torch.inference_mode():
            restored, _ = self.module(batch, return_rgb=False, randomize_noise=False)
        values = (restored[0].float().cpu().clamp(-1, 1) + 1) / 2
        return (values * 255).round().to(torch.uint8).permute(1, 2, 0).contiguous().numpy()

    def __call__(self, image: np.ndarray, keypoints: np.ndarray, layout: str = "openpose18") -> FaceRestoration:
        """Find the face in ``keypoints``, align and crop it, restore it and paste it back into ``image``."""
        landmarks = find_face(keypoints, layout, min_score=self.min_score, min_eye_distance=self.min_eye_distance)
        alignment = align_face(landmarks, self.size)
        face = alignment.crop(image)
        restored = self.restore_face(face)
        pasted = paste_face(image, restored, alignment)
        return FaceRestoration(
            image=pasted.image,
            landmarks=landmarks,
            alignment=alignment,
            face=face,
            restored_face=restored,
            box=pasted.box,
        )
