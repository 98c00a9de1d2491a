"""The JSON header of a safetensors file, parsed by the rules of the safetensors library that loads it.

Python's ``json`` accepts more than the library's parser (UTF-16 text, ``NaN``, numbers as floats, any
metadata value): a header is read here only as the library would read it, so a file the analysis accepts is
a file ``load_model`` can open. Every entry names a known dtype, an integer shape and the offsets of exactly
its bytes; the tensors cover the data section end to end, without gaps or overlaps.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import torch

from .bounds import Budget
from .errors import CorruptCheckpointError

SAFETENSORS_DTYPES: dict[str, torch.dtype] = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}
MAX_TENSOR_BYTES = 2**50

Entry = tuple[torch.dtype, tuple[int, ...], int]


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    table = dict(pairs)
    if len(table) != len(pairs):
        repeated = next(key for key, _ in pairs if sum(k == key for k, _ in pairs) > 1)
        raise CorruptCheckpointError(f"the JSON header names {repeated!r:.60} twice: the file is ambiguous")
    return table


def _no_constants(name: str) -> Any:
    raise CorruptCheckpointError(f"the JSON header holds {name}, which the safetensors library refuses")


def _decode(raw: bytes, budget: Budget) -> dict[str, Any]:
    budget.charge_memory(24 * len(raw) + 64 * raw.count(b"[") + 232 * raw.count(b"{"), "parsing the JSON header")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CorruptCheckpointError(f"the JSON header is not UTF-8 text ({exc})") from exc
    try:
        table = json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_no_constants)
    except RecursionError as exc:
        raise CorruptCheckpointError("the JSON header nests too deeply to parse (not a safetensors header)") from exc
    except json.JSONDecodeError as exc:
        raise CorruptCheckpointError(f"the JSON header does not parse: {exc}") from exc
    if not isinstance(table, dict):
        raise CorruptCheckpointError("the JSON header is not an object")
    return table


def _is_size(value: Any) -> bool:
    return type(value) is int and 0 <= value < 2**64


def _entry(key: str, spec: Any) -> tuple[torch.dtype, tuple[int, ...], int, int]:
    if not isinstance(spec, dict) or not {"dtype", "shape", "data_offsets"} <= spec.keys():
        raise CorruptCheckpointError(f"tensor {key}: malformed header entry (needs dtype, shape and data_offsets)")
    dtype = SAFETENSORS_DTYPES.get(spec["dtype"]) if isinstance(spec["dtype"], str) else None
    if dtype is None:
        raise CorruptCheckpointError(f"tensor {key}: malformed header entry (dtype {spec['dtype']!r:.40})")
    shape, offsets = spec["shape"], spec["data_offsets"]
    if not isinstance(shape, list) or not all(map(_is_size, shape)):
        raise CorruptCheckpointError(f"tensor {key}: malformed header entry (shape {shape!r:.60} is not integers)")
    if not isinstance(offsets, list) or len(offsets) != 2 or not all(map(_is_size, offsets)):
        raise CorruptCheckpointError(f"tensor {key}: malformed header entry (data_offsets {offsets!r:.60})")
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes > MAX_TENSOR_BYTES:
        raise CorruptCheckpointError(f"tensor {key}: absurd shape {shape}")
    begin, end = offsets
    if end - begin != nbytes:
        raise CorruptCheckpointError(
            f"tensor {key}: offsets [{begin}, {end}] do not hold {nbytes} bytes of shape {shape}"
        )
    return dtype, tuple(shape), begin, end


def _tensor_specs(table: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    return ((key, spec) for key, spec in table.items() if key != "__metadata__")


def parse_safetensors_header(raw: bytes, data_size: int, budget: Budget) -> tuple[dict[str, Entry], list[str]]:
    """``{key: (dtype, shape, offset in the data section)}`` and the metadata names of a safetensors header
    whose data section holds ``data_size`` bytes; raises CorruptCheckpointError naming what the library
    would refuse."""
    table = _decode(raw, budget)
    metadata = table.get("__metadata__")
    if metadata is not None and (
        not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values())
    ):
        raise CorruptCheckpointError("the header's __metadata__ must map names to strings")
    budget.charge_tensors(len(table))
    spans: list[tuple[int, int, str]] = []
    entries: dict[str, Entry] = {}
    for key, spec in _tensor_specs(table):
        dtype, shape, begin, end = _entry(key, spec)
        if end > data_size:
            raise CorruptCheckpointError(
                f"tensor {key}: data ends at {end} but the file holds {data_size} bytes of data "
                "(truncated, or the header lies)"
            )
        entries[key] = (dtype, shape, begin)
        spans.append((begin, end, key))
    spans.sort()
    covered = 0
    for begin, end, key in spans:
        if begin < covered:
            raise CorruptCheckpointError(f"tensors {_before(spans, key)} and {key} overlap in the data")
        if begin > covered:
            raise CorruptCheckpointError(f"tensor {key}: a gap of {begin - covered} bytes before its data")
        covered = end
    if covered != data_size:
        raise CorruptCheckpointError(
            f"the tensors cover {covered} of the {data_size} data bytes: the header lies or the file has extra data"
        )
    return entries, sorted(metadata) if metadata else []


def _before(spans: list[tuple[int, int, str]], key: str) -> str:
    index = [name for _, _, name in spans].index(key)
    return spans[index - 1][2]
