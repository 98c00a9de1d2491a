"""What a Stable Diffusion or ControlNet file holds, from its header: layout, parts, precision.

A diffusers folder keeps one network per file (``unet/diffusion_pytorch_model[.fp16].safetensors`` with its
``config.json`` beside it); an original CompVis/Stability single file holds the UNet
(``model.diffusion_model.*``), the VAE (``first_stage_model.*``) and the text encoder(s)
(``cond_stage_model.*``, SDXL ``conditioner.embedders.*``) together, and ControlNet's own release holds
``control_model.*`` (some releases drop the prefix). The sentence is added to the analysis reason of the
diffusion entries.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from .reader import Header

DIFFUSION_FAMILIES = frozenset({"stable_diffusion_unet", "controlnet"})
SINGLE_FILE_PARTS = (
    ("UNet", ("model.diffusion_model.",)),
    ("VAE", ("first_stage_model.",)),
    ("text encoder", ("cond_stage_model.", "conditioner.embedders.")),
)
CONTROLNET_PREFIX = "control_model."
CONTROLNET_HINT = "input_hint_block."


def _holds(keys: Iterable[str], prefixes: tuple[str, ...]) -> bool:
    return any(key.startswith(prefixes) for key in keys)


def precision(header: Header) -> str:
    """``fp16``, ``bf16`` or ``fp32`` (the floating dtype most tensors have), or ``mixed fp16/fp32`` etc."""
    names = {"float16": "fp16", "bfloat16": "bf16", "float32": "fp32", "float64": "fp64"}
    found = sorted((count, names[dtype]) for dtype, count in header.dtypes.items() if dtype in names)
    if len(found) > 1 and found[-2][0] * 10 > found[-1][0]:
        return "mixed " + "/".join(sorted(name for _, name in found))
    return found[-1][1] if found else "no floating-point"


def _folder_config(header: Header) -> str | None:
    """The ``_class_name`` of the ``config.json`` beside the file ("" when it has none), None without one."""
    config = header.path.parent / "config.json"
    if not config.is_file():
        return None
    try:
        data = json.loads(config.read_text())
    except (OSError, ValueError):
        return ""
    return str(data.get("_class_name", "")) if isinstance(data, dict) else ""


def describe(header: Header, family: str) -> str:
    """One sentence: the layout (diffusers folder or single file), which parts it holds and lacks, precision."""
    keys = header.tensors.keys()
    dtype = precision(header)
    if family == "controlnet" and _holds(keys, (CONTROLNET_PREFIX,)):
        extra = " and a Stable Diffusion UNet" if _holds(keys, SINGLE_FILE_PARTS[0][1]) else ""
        return f"an original ControlNet single file (control_model.*{extra}), {dtype}"
    if family == "controlnet" and _holds(keys, (CONTROLNET_HINT,)):
        return f"an original ControlNet single file without the control_model. prefix, {dtype}"
    if _holds(keys, SINGLE_FILE_PARTS[0][1]):
        held = [name for name, prefixes in SINGLE_FILE_PARTS if _holds(keys, prefixes)]
        lacking = [name for name, prefixes in SINGLE_FILE_PARTS if not _holds(keys, prefixes)]
        missing = f"; missing: {', '.join(lacking)}" if lacking else "; complete"
        return f"an original single-file checkpoint holding {', '.join(held)}{missing}, {dtype}"
    config = _folder_config(header)
    if config is None:
        return f"diffusers layout, {dtype}, no config.json beside it"
    named = f" ({config})" if config else ""
    return f"a diffusers folder file with config.json beside it{named}, {dtype}"
