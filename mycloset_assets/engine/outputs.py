"""A try-on result as files a person can open: PNGs of the result and its intermediates, and report.json."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..vision.compositing import to_uint8_image
from ..vision.drawing import colorize_parsing, draw_grid, draw_openpose18, draw_parsing
from ..vision.images import save_png
from .quality import quality_picture
from .result import TryOnResult
from .stages import VITONHD13_NAMES

REPORT_NAME = "report.json"
QUALITY_NAME = "quality.json"


def mask_image(mask: np.ndarray) -> np.ndarray:
    """A bool or [0, 1] float mask as an 8-bit grey image (0 / 255 for bool, rounded otherwise)."""
    if mask.dtype == bool:
        return mask.astype(np.uint8) * 255
    return np.rint(np.clip(mask, 0.0, 1.0) * 255).astype(np.uint8)


def agnostic_image(result: TryOnResult) -> np.ndarray:
    """The person representation as a picture: VITON-HD's image agnostic; for CP-VTON the body shape in grey,
    the head's pixels, and the keypoint squares in red."""
    if result.agnostic.shape[0] == 3:
        return to_uint8_image(result.agnostic)
    shape, head, pose = result.agnostic[0], result.agnostic[1:4], result.agnostic[4:]
    grey = to_uint8_image(shape)
    picture = np.repeat(grey[:, :, None], 3, axis=2)
    on_head = (head > -1).any(axis=0)
    picture[on_head] = to_uint8_image(head)[on_head]
    picture[(pose > 0).any(axis=0)] = (255, 0, 0)
    return picture


def pictures(result: TryOnResult) -> dict[str, np.ndarray]:
    """Every picture a try-on run writes, by output name (uint8 arrays, ready for ``save_png``)."""
    images = {
        "tryon": result.tryon,
        "pose": draw_openpose18(result.person, result.people),
        "parsing": draw_parsing(result.person, result.parsing, result.parsing_names),
        "garment_mask": mask_image(result.garment_mask),
        "agnostic": agnostic_image(result),
        "warped_garment": result.warped_garment,
        "warped_mask": mask_image(result.warped_mask),
        "warp_grid": draw_grid(np.array(result.grid), image=result.warped_garment),
        "rendered": result.rendered,
        "composition_mask": mask_image(result.composition_mask),
    }
    if "seg_labels" in result.extras:
        images["seg"] = colorize_parsing(result.extras["seg_labels"], VITONHD13_NAMES)
    if "misalignment" in result.extras:
        images["misalignment"] = mask_image(result.extras["misalignment"])
    if "person_mask" in result.extras:
        images["person_mask"] = result.extras["person_mask"]
    for name in ("clothing_mask", "sam_garment_mask", "sam_clothing_mask"):
        if name in result.extras:
            images[name] = mask_image(result.extras[name])
    for name in ("tryon_before_restoration", "restored_face"):
        if name in result.extras:
            images[name] = result.extras[name]
    if result.quality is not None:
        images["quality"] = quality_picture(result.person, result.garment, result.warped_garment, result.tryon)
    return images


def save_outputs(result: TryOnResult, folder: str | os.PathLike[str]) -> dict[str, str]:
    """Write ``NAME.png`` for every picture into ``folder`` (created), and quality.json when the quality step
    ran (``quality.png`` is its side-by-side picture); returns ``{name: file name}``."""
    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, image in pictures(result).items():
        save_png(image, target / f"{name}.png")
        written[name] = f"{name}.png"
    if result.quality is not None:
        write_json(result.quality, target / QUALITY_NAME)
        written["quality_report"] = QUALITY_NAME
    return written


def write_json(data: Mapping[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write ``data`` as indented JSON atomically (a reader never sees half a file)."""
    target = Path(path)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(descriptor, "w") as stream:
            json.dump(data, stream, indent=1)
            stream.write("\n")
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target
