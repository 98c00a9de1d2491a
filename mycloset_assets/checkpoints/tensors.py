"""Read a checkpoint's tensors (the bytes), container by container, with weights-only safety.

torch zip archives are memory-mapped (``torch.load(mmap=True, weights_only=True)``), legacy files are read
once, safetensors files are opened lazily, and TorchScript archives are read storage by storage from
the zip, never through ``torch.jit.load``.
"""

from __future__ import annotations

import math
import zipfile
from collections.abc import Iterable, Mapping
from typing import Any

import torch
from safetensors import safe_open

from .errors import CorruptCheckpointError
from .reader import Header
from .tflite import read_tflite_tensors


def _unwrap(obj: Any, keys: tuple[Any, ...]) -> Mapping[str, Any]:
    for key in keys:
        obj = obj[key]
    return obj


def read_tensors(header: Header, keys: Iterable[str]) -> dict[str, torch.Tensor]:
    """The tensors named ``keys`` (published names, wrapper already removed) from ``header``'s file."""
    wanted = list(keys)
    try:
        if header.container == "safetensors":
            with safe_open(str(header.path), framework="pt", device="cpu") as handle:
                return {key: handle.get_tensor(key) for key in wanted}
        if header.container == "tflite":
            return read_tflite_tensors(header.path, header.tflite, wanted)
        if header.container == "torchscript":
            return _read_script_tensors(header, wanted)
        mmap = header.container == "torch_zip"
        loaded = torch.load(header.path, map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as exc:  # noqa: BLE001 - whatever torch or safetensors raise, the file cannot be loaded
        raise CorruptCheckpointError(
            f"{header.path}: the tensor data cannot be read ({type(exc).__name__}: {exc})"
        ) from exc
    try:
        weights = _unwrap(loaded, header.wrapper_keys)
        return {key: weights[key] for key in wanted}
    except (KeyError, TypeError, IndexError) as exc:
        raise CorruptCheckpointError(
            f"{header.path}: torch.load reads other contents than the analysis did (no {exc}); the file is refused"
        ) from exc


def _read_script_tensors(header: Header, keys: list[str]) -> dict[str, torch.Tensor]:
    storages: dict[str, torch.Tensor] = {}
    out: dict[str, torch.Tensor] = {}
    with zipfile.ZipFile(header.path) as archive:
        for key in keys:
            record = header.tensors[key]
            storage = record.storage
            if storage.key not in storages:
                raw = bytearray(archive.read(f"{header.archive}/data/{storage.key}"))
                if len(raw) < storage.nbytes:
                    raise CorruptCheckpointError(f"{header.path}: storage {storage.key} is short")
                storages[storage.key] = torch.frombuffer(raw, dtype=storage.dtype, count=storage.numel)
            flat = storages[storage.key]
            if math.prod(record.shape) == 0:
                out[key] = torch.empty(record.shape, dtype=record.dtype)
                continue
            out[key] = flat.as_strided(record.shape, record.stride, record.offset)
    return out
