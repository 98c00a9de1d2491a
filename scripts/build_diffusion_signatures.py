"""Write the expected tensors of the diffusion registry entries as data (``mycloset_assets/registry/signatures/``).

Run with the ``diffusion`` extra installed (diffusers==0.42.1): ``python scripts/build_diffusion_signatures.py``.
For each entry whose YAML names a ``signature``, the network is built from the YAML's published config on the
meta device and its state dict is stored as ``{key: [shape, dtype]}`` together with the names the original
single-file (CompVis/Stability ``model.diffusion_model.*``, ControlNet ``control_model.*`` or unprefixed)
layout gives each key. The single-file names are derived here and checked against diffusers' own converters
(``convert_ldm_unet_checkpoint``, ``convert_controlnet_checkpoint``): every key must come back, with its
shape. The analyzer reads only the data, so diffusers is never needed to recognise a file.
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import sys
from pathlib import Path

import diffusers
import torch
import yaml
from diffusers.loaders.single_file_utils import convert_controlnet_checkpoint, convert_ldm_unet_checkpoint

ROOT = Path(__file__).resolve().parents[1]
REGISTRY = ROOT / "mycloset_assets" / "registry"
UNET_PREFIX = "model.diffusion_model."
CONTROLNET_PREFIX = "control_model."
RESNET = (
    ("norm1", "in_layers.0"),
    ("conv1", "in_layers.2"),
    ("time_emb_proj", "emb_layers.1"),
    ("norm2", "out_layers.0"),
    ("conv2", "out_layers.3"),
    ("conv_shortcut", "skip_connection"),
)
TOP = (
    ("time_embedding.linear_1.", "time_embed.0."),
    ("time_embedding.linear_2.", "time_embed.2."),
    ("add_embedding.linear_1.", "label_emb.0.0."),
    ("add_embedding.linear_2.", "label_emb.0.2."),
    ("conv_in.", "input_blocks.0.0."),
    ("conv_norm_out.", "out.0."),
    ("conv_out.", "out.2."),
    ("controlnet_mid_block.", "middle_block_out.0."),
    ("controlnet_cond_embedding.conv_in.", "input_hint_block.0."),
    ("controlnet_cond_embedding.conv_out.", "input_hint_block.14."),
)


def _resnet(rest: str) -> str:
    for new, old in RESNET:
        if rest.startswith(new + "."):
            return old + rest[len(new) :]
    raise ValueError(f"unexpected resnet key {rest}")


def ldm_name(key: str, layers: int, up_attention: set[int]) -> str:
    """The original (CompVis ``openaimodel.UNetModel``/``ControlNet``) name of a diffusers UNet key."""
    for new, old in TOP:
        if key.startswith(new):
            return old + key[len(new) :]
    if match := re.match(r"controlnet_cond_embedding\.blocks\.(\d+)\.(.*)", key):
        return f"input_hint_block.{2 * int(match[1]) + 2}.{match[2]}"
    if match := re.match(r"controlnet_down_blocks\.(\d+)\.(.*)", key):
        return f"zero_convs.{match[1]}.0.{match[2]}"
    if match := re.match(r"down_blocks\.(\d+)\.(resnets|attentions|downsamplers)\.(\d+)\.(.*)", key):
        block, kind, index, rest = int(match[1]), match[2], int(match[3]), match[4]
        if kind == "downsamplers":
            return f"input_blocks.{(layers + 1) * (block + 1)}.0.op.{rest.removeprefix('conv.')}"
        slot = (layers + 1) * block + index + 1
        return f"input_blocks.{slot}.0.{_resnet(rest)}" if kind == "resnets" else f"input_blocks.{slot}.1.{rest}"
    if match := re.match(r"up_blocks\.(\d+)\.(resnets|attentions|upsamplers)\.(\d+)\.(.*)", key):
        block, kind, index, rest = int(match[1]), match[2], int(match[3]), match[4]
        if kind == "upsamplers":
            position = 2 if block in up_attention else 1
            return f"output_blocks.{(layers + 1) * block + layers}.{position}.{rest}"
        slot = (layers + 1) * block + index
        return f"output_blocks.{slot}.0.{_resnet(rest)}" if kind == "resnets" else f"output_blocks.{slot}.1.{rest}"
    if match := re.match(r"mid_block\.(resnets|attentions)\.(\d+)\.(.*)", key):
        kind, index, rest = match[1], int(match[2]), match[3]
        if kind == "resnets":
            return f"middle_block.{2 * index}.{_resnet(rest)}"
        return f"middle_block.{2 * index + 1}.{rest}"
    raise ValueError(f"no single-file name for {key}")


def build(class_name: str, config: dict) -> torch.nn.Module:
    with torch.device("meta"):
        return getattr(diffusers, class_name).from_config(config)


def signature(entry: dict) -> dict:
    """The stored signature of one registry entry."""
    args = entry["architecture"]["args"]
    class_name, config = args["class_name"], args["config"]
    state = build(class_name, config).state_dict()
    up_attention = {i for i, kind in enumerate(config.get("up_block_types", ())) if "CrossAttn" in kind}
    layers = config.get("layers_per_block", 2)
    prefix = CONTROLNET_PREFIX if class_name == "ControlNetModel" else UNET_PREFIX
    bare = {key: ldm_name(key, layers, up_attention) for key in state}
    single = {key: prefix + name for key, name in bare.items()}
    _check_round_trip(class_name, config, state, single)
    layouts = {"single_file": single}
    if class_name == "ControlNetModel":
        layouts["release_without_prefix"] = bare  # e.g. ControlNets for SD 2.1 published without control_model.
    return {
        "format": 1,
        "built_with": f"diffusers=={diffusers.__version__}, torch=={torch.__version__.split('+')[0]}",
        "class_name": class_name,
        "tensors": {key: [list(t.shape), str(t.dtype).removeprefix("torch.")] for key, t in state.items()},
        "layouts": layouts,
    }


def _check_round_trip(class_name: str, config: dict, state: dict, single: dict) -> None:
    """diffusers' own single-file converter must turn the derived names back into every key."""
    original = {published: state[key] for key, published in single.items()}
    if class_name == "ControlNetModel":
        converted = convert_controlnet_checkpoint(original, config)
    else:
        converted = convert_ldm_unet_checkpoint(original, config)
    if set(converted) != set(state):
        raise SystemExit(f"round trip differs: {sorted(set(converted) ^ set(state))[:10]}")
    wrong = [k for k in state if tuple(converted[k].shape) != tuple(state[k].shape)]
    if wrong:
        raise SystemExit(f"round trip changes shapes: {wrong[:10]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ids", nargs="*", help="registry ids (default: every entry with a signature)")
    options = parser.parse_args(argv)
    for path in sorted(REGISTRY.glob("*.yaml")):
        entry = yaml.safe_load(path.read_text())
        target = entry["architecture"].get("signature")
        if not target or (options.ids and entry["id"] not in options.ids):
            continue
        data = signature(entry)
        out = REGISTRY / target
        out.parent.mkdir(parents=True, exist_ok=True)
        payload = json.dumps(data, separators=(",", ":"), sort_keys=True).encode()
        out.write_bytes(gzip.compress(payload, compresslevel=9, mtime=0))
        print(f"{entry['id']}: {len(data['tensors'])} tensors -> {out.relative_to(ROOT)} ({out.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
