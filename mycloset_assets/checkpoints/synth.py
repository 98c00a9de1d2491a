"""Write checkpoints in a published layout, filled with deterministic values.

Real weights cannot be downloaded where tests and demos run, so the project writes files with the exact
layout of each published checkpoint (container, wrapper, prefix, keys, shapes, dtypes, order) as recorded
in a manifest. Values follow the zoo's synthesis rule, tensor number k (0-based, manifest order) drawn from
a generator seeded ``seed + k``:

- ``*running_var``: ``0.5 + rand``; ``*running_mean``: ``0.1 * randn``
- non-floating dtypes: zeros
- ndim >= 2: ``randn / sqrt(prod(shape[1:]))``
- ndim == 1 and ``*weight``: ``1 + 0.1 * randn``; any other ndim <= 1: ``0.1 * randn``

Floats are drawn in float32 and cast to the manifest dtype, so the same seed gives the same values as the
reference fixtures were computed on.
"""

from __future__ import annotations

import json
import math
import struct
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "float64": torch.float64,
    "int64": torch.int64,
    "int32": torch.int32,
    "uint8": torch.uint8,
    "bool": torch.bool,
}

CONTAINERS = ("torch_zip", "torch_legacy", "safetensors", "torchscript")
_KEEP = object()


def synth_tensor(key: str, shape: list[int], dtype: str, generator: torch.Generator) -> torch.Tensor:
    """One tensor by the synthesis rule (see the module docstring)."""
    target = DTYPES[dtype]
    if not target.is_floating_point:
        return torch.zeros(shape, dtype=target)
    if key.endswith("running_var"):
        values = 0.5 + torch.rand(shape, generator=generator)
    elif key.endswith("running_mean"):
        values = 0.1 * torch.randn(shape, generator=generator)
    elif len(shape) >= 2:
        values = torch.randn(shape, generator=generator) / math.sqrt(max(1, math.prod(shape[1:])))
    elif len(shape) == 1 and key.endswith("weight"):
        values = 1 + 0.1 * torch.randn(shape, generator=generator)
    else:
        values = 0.1 * torch.randn(shape, generator=generator)
    return values.to(target)


def synth_state_dict(manifest: Mapping[str, Any], seed: int = 0) -> OrderedDict[str, torch.Tensor]:
    """The manifest's tensors, as published (keys with their published prefix), in published order."""
    state: OrderedDict[str, torch.Tensor] = OrderedDict()
    for index, spec in enumerate(manifest["tensors"]):
        generator = torch.Generator().manual_seed(seed + index)
        state[spec["key"]] = synth_tensor(spec["key"], spec["shape"], spec["dtype"], generator)
    return state


def parity_input(shape: list[int], seed: int) -> torch.Tensor:
    """The input a parity fixture was computed on: ``randn(shape)`` from a generator seeded ``seed``."""
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def _relayout(
    state: OrderedDict[str, torch.Tensor], published_prefix: str | None, prefix: object
) -> OrderedDict[str, torch.Tensor]:
    if prefix is _KEEP:
        return state
    bare = OrderedDict(
        (key[len(published_prefix) :] if published_prefix and key.startswith(published_prefix) else key, t)
        for key, t in state.items()
    )
    return OrderedDict((f"{prefix or ''}{key}", t) for key, t in bare.items())


def write_checkpoint(
    manifest: Mapping[str, Any],
    out: Path | str,
    seed: int = 0,
    *,
    container: str | None = None,
    wrapper: object = _KEEP,
    prefix: object = _KEEP,
) -> Path:
    """Write ``manifest``'s checkpoint to ``out``.

    By default the file is laid out as published. ``container``, ``wrapper`` (a dict key or None) and
    ``prefix`` (a string such as ``"module."`` or None) re-lay the same values out the way users re-save
    files, to check that recognition depends on contents only.
    """
    out = Path(out)
    container = container or manifest.get("container", "torch_zip")
    if container not in CONTAINERS:
        raise ValueError(f"unknown container {container!r}; expected one of {CONTAINERS}")
    state = _relayout(synth_state_dict(manifest, seed), _common_module_prefix(manifest), prefix)
    out.parent.mkdir(parents=True, exist_ok=True)
    if container == "safetensors":
        from safetensors.torch import save_file

        save_file({key: t.contiguous() for key, t in state.items()}, str(out))
        return out
    if container == "torchscript":
        torch.jit.save(torch.jit.script(_tensor_tree(state)), str(out))
        return out
    wrapper_key = manifest.get("wrapper") if wrapper is _KEEP else wrapper
    payload: dict[str, Any] = {wrapper_key: state} if wrapper_key else state
    if wrapper_key:
        payload.update(manifest.get("wrapper_extras") or {})
    torch.save(payload, out, _use_new_zipfile_serialization=container == "torch_zip")
    return out


def _common_module_prefix(manifest: Mapping[str, Any]) -> str | None:
    keys = [spec["key"] for spec in manifest["tensors"]]
    return "module." if keys and all(key.startswith("module.") for key in keys) else None


class _Holder(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def _tensor_tree(state: Mapping[str, torch.Tensor]) -> torch.nn.Module:
    """A module tree whose ``state_dict()`` is ``state``, as TorchScript archives of the zoo hold it."""
    root = _Holder()
    for key, tensor in state.items():
        *path, leaf = key.split(".")
        node = root
        for part in path:
            if not hasattr(node, part):
                node.add_module(part, _Holder())
            node = getattr(node, part)
        if tensor.is_floating_point():
            node.register_parameter(leaf, torch.nn.Parameter(tensor, requires_grad=False))
        else:
            node.register_buffer(leaf, tensor)
    return root


SAFETENSORS_NAMES = {"float32": "F32", "float16": "F16", "bfloat16": "BF16", "float64": "F64", "int64": "I64"}


def write_header_only_safetensors(
    path: Path, tensors: Mapping[str, tuple[tuple[int, ...], str]], metadata: Mapping[str, str] | None = None
) -> Path:
    """A safetensors file with the real header of ``tensors`` (key -> (shape, dtype name)) and zero data.

    The data section is a hole (the file is extended, not written), so a 10 GB SDXL UNet costs its header on
    disk; every header-only reader sees the published layout.
    """
    header: dict[str, Any] = {"__metadata__": dict(metadata)} if metadata else {}
    offset = 0
    for key, (shape, dtype) in tensors.items():
        nbytes = math.prod(shape) * DTYPES[dtype].itemsize
        header[key] = {
            "dtype": SAFETENSORS_NAMES[dtype],
            "shape": list(shape),
            "data_offsets": [offset, offset + nbytes],
        }
        offset += nbytes
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        handle.write(struct.pack("<Q", len(raw)) + raw)
        handle.truncate(8 + len(raw) + offset)
    return path
