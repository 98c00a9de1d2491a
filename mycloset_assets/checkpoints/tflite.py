"""TensorFlow Lite flatbuffers (``.tflite``): a header-only read and the tensor bytes, both bounds-checked.

The flatbuffer is walked by hand (the TFLite schema's few tables this needs), and every offset, vector
length and buffer range is checked against the file, so a damaged or lying file raises
``CorruptCheckpointError`` instead of reading past its end. Constant tensors (weights) become
``TensorRecord`` views in the layout torch modules use: convolution kernels stored O×H×W×I appear as
O×I×H×W, depthwise kernels 1×H×W×C as C×1×H×W, PReLU slopes 1×1×C as C×1×1 (the permutation is a
stride, nothing is copied). fp16 weights keep their dtype in the header (the loader casts them), and
sparse weights (TFLite's DENSIFY format) are expanded to dense by ``read_tflite_tensors``.
"""

from __future__ import annotations

import math
import mmap
import struct
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import CorruptCheckpointError
from .pickles import StorageRecord, TensorRecord

CONTAINER = "tflite"
IDENTIFIER = b"TFL3"
MAX_TENSORS = 1_000_000
MAX_ELEMENTS = 2**40

TENSOR_TYPES: dict[int, torch.dtype] = {
    0: torch.float32,
    1: torch.float16,
    2: torch.int32,
    3: torch.uint8,
    4: torch.int64,
    6: torch.bool,
    7: torch.int16,
    9: torch.int8,
    10: torch.float64,
}
BUILTIN_OPS: dict[int, str] = {
    0: "ADD",
    1: "AVERAGE_POOL_2D",
    2: "CONCATENATION",
    3: "CONV_2D",
    4: "DEPTHWISE_CONV_2D",
    5: "DEPTH_TO_SPACE",
    6: "DEQUANTIZE",
    9: "FULLY_CONNECTED",
    14: "LOGISTIC",
    17: "MAX_POOL_2D",
    18: "MUL",
    19: "RELU",
    21: "RELU6",
    22: "RESHAPE",
    23: "RESIZE_BILINEAR",
    25: "SOFTMAX",
    28: "TANH",
    34: "PAD",
    41: "SUB",
    54: "PRELU",
    67: "TRANSPOSE_CONV",
    117: "HARD_SWISH",
    124: "DENSIFY",
}
# Each builtin option table as (field name, scalar format, default), in schema order.
_OPTION_FIELDS: dict[str, tuple[tuple[str, str, int], ...]] = {
    "CONV_2D": (("padding", "b", 0), ("stride_w", "i", 0), ("stride_h", "i", 0), ("activation", "b", 0),
                ("dilation_w", "i", 1), ("dilation_h", "i", 1)),
    "DEPTHWISE_CONV_2D": (("padding", "b", 0), ("stride_w", "i", 0), ("stride_h", "i", 0),
                          ("depth_multiplier", "i", 0), ("activation", "b", 0), ("dilation_w", "i", 1),
                          ("dilation_h", "i", 1)),
    "AVERAGE_POOL_2D": (("padding", "b", 0), ("stride_w", "i", 0), ("stride_h", "i", 0), ("filter_w", "i", 0),
                        ("filter_h", "i", 0), ("activation", "b", 0)),
    "CONCATENATION": (("axis", "i", 0), ("activation", "b", 0)),
    "ADD": (("activation", "b", 0),),
    "SUB": (("activation", "b", 0),),
    "MUL": (("activation", "b", 0),),
    "RESIZE_BILINEAR": (("new_height", "i", 0), ("new_width", "i", 0), ("align_corners", "?", 0),
                        ("half_pixel_centers", "?", 0)),
    "DEPTH_TO_SPACE": (("block_size", "i", 0),),
    "TRANSPOSE_CONV": (("padding", "b", 0), ("stride_w", "i", 0), ("stride_h", "i", 0)),
}  # fmt: skip
_OPTION_FIELDS["MAX_POOL_2D"] = _OPTION_FIELDS["AVERAGE_POOL_2D"]
_SCALARS = {"b": 1, "B": 1, "?": 1, "h": 2, "H": 2, "i": 4, "I": 4, "f": 4, "q": 8, "Q": 8}
# Which input of which operator is a weight whose layout differs from torch's, and the permutation that
# turns the TFLite layout into torch's (torch dim i = TFLite dim perm[i]).
_WEIGHT_LAYOUTS: dict[tuple[str, int], tuple[int, ...]] = {
    ("CONV_2D", 1): (0, 3, 1, 2),
    ("DEPTHWISE_CONV_2D", 1): (3, 0, 1, 2),
    ("PRELU", 1): (2, 0, 1),
    ("Convolution2DTransposeBias", 1): (3, 0, 1, 2),
    ("TRANSPOSE_CONV", 1): (3, 0, 1, 2),
}
_PASS_THROUGH = ("DEQUANTIZE", "DENSIFY")


def _corrupt(message: str) -> CorruptCheckpointError:
    error = CorruptCheckpointError(message)
    error.container = CONTAINER  # type: ignore[attr-defined]
    return error


class _Buffer:
    """The file's bytes with bounds-checked little-endian reads."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def scalar(self, fmt: str, pos: int) -> Any:
        size = _SCALARS[fmt]
        if pos < 0 or pos + size > len(self.data):
            raise _corrupt(f"a field at byte {pos} lies outside the file ({len(self.data)} bytes)")
        return struct.unpack_from("<" + fmt, self.data, pos)[0]

    def table(self, pos: int) -> _Table:
        vtable = pos - self.scalar("i", pos)
        vsize = self.scalar("H", vtable)
        if vsize < 4 or vsize % 2:
            raise _corrupt(f"the table at byte {pos} has a malformed vtable")
        tsize = self.scalar("H", vtable + 2)
        if pos + tsize > len(self.data):
            raise _corrupt(f"the table at byte {pos} runs past the end of the file")
        return _Table(self, pos, vtable, vsize)


class _Table:
    """One flatbuffer table: fields by schema index, each offset checked before it is followed."""

    def __init__(self, buf: _Buffer, pos: int, vtable: int, vsize: int) -> None:
        self.buf, self.pos, self.vtable, self.vsize = buf, pos, vtable, vsize

    def _field(self, index: int) -> int | None:
        slot = 4 + 2 * index
        if slot >= self.vsize:
            return None
        offset = self.buf.scalar("H", self.vtable + slot)
        return self.pos + offset if offset else None

    def scalar(self, index: int, fmt: str, default: Any = 0) -> Any:
        pos = self._field(index)
        return default if pos is None else self.buf.scalar(fmt, pos)

    def _target(self, index: int) -> int | None:
        pos = self._field(index)
        return None if pos is None else pos + self.buf.scalar("I", pos)

    def child(self, index: int) -> _Table | None:
        target = self._target(index)
        return None if target is None else self.buf.table(target)

    def _vector(self, index: int, item: int) -> tuple[int, int] | None:
        start = self._target(index)
        if start is None:
            return None
        length = self.buf.scalar("I", start)
        if start + 4 + length * item > len(self.buf.data):
            raise _corrupt(f"a vector of {length} items at byte {start} runs past the end of the file")
        return start + 4, length

    def string(self, index: int) -> str:
        found = self._vector(index, 1)
        if found is None:
            return ""
        start, length = found
        return self.buf.data[start : start + length].decode("utf-8", errors="replace")

    def scalars(self, index: int, fmt: str) -> list[Any]:
        found = self._vector(index, _SCALARS[fmt])
        if found is None:
            return []
        start, length = found
        return list(struct.unpack_from(f"<{length}{fmt}", self.buf.data, start))

    def bytes_span(self, index: int) -> tuple[int, int]:
        """(offset, length) of a [ubyte] vector in the file, (0, 0) when absent."""
        found = self._vector(index, 1)
        return found if found is not None else (0, 0)

    def tables(self, index: int) -> list[_Table]:
        found = self._vector(index, 4)
        if found is None:
            return []
        start, length = found
        if length > MAX_TENSORS:
            raise _corrupt(f"a table vector claims {length} entries, which is absurd")
        return [self.buf.table(start + 4 * i + self.buf.scalar("I", start + 4 * i)) for i in range(length)]


@dataclass(frozen=True)
class Sparsity:
    """TFLite's sparse format of one tensor: traversal order, block map and per-level metadata."""

    traversal_order: tuple[int, ...]
    block_map: tuple[int, ...]
    levels: tuple[tuple[int, int, tuple[int, ...], tuple[int, ...]], ...]  # (format, dense_size, segments, indices)


@dataclass(frozen=True)
class TFLiteTensor:
    """One tensor of the subgraph as the file declares it."""

    index: int
    name: str
    shape: tuple[int, ...]
    dtype: torch.dtype
    buffer: int
    quantized: bool
    sparsity: Sparsity | None


@dataclass(frozen=True)
class TFLiteOperator:
    """One operator: its name, input/output tensor indices (-1 for an absent optional input) and options."""

    op: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    options: dict[str, Any]


@dataclass
class TFLiteModel:
    """The first subgraph of a .tflite file and where each buffer's bytes lie."""

    tensors: list[TFLiteTensor]
    operators: list[TFLiteOperator]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    buffers: list[tuple[int, int]]
    description: str = ""

    def constant(self, tensor: TFLiteTensor) -> bool:
        """Whether the tensor's values are stored in the file."""
        return 0 < tensor.buffer < len(self.buffers) and self.buffers[tensor.buffer][1] > 0


@dataclass
class TFLiteHeader:
    """What ``read_tflite`` adds to a Header: the parsed model and each weight's layout permutation."""

    model: TFLiteModel
    layouts: dict[str, tuple[int, ...]] = field(default_factory=dict)
    by_name: dict[str, TFLiteTensor] = field(default_factory=dict)


def _sparsity(table: _Table | None, rank: int) -> Sparsity | None:
    if table is None:
        return None
    levels = []
    for meta in table.tables(2):
        segments: tuple[int, ...] = ()
        indices: tuple[int, ...] = ()
        for index, kind_index, out in ((3, 2, "segments"), (5, 4, "indices")):
            kind = meta.scalar(kind_index, "B")
            holder = meta.child(index)
            if holder is None:
                continue
            fmt = {1: "i", 2: "H", 3: "B"}.get(kind)
            if fmt is None:
                raise _corrupt(f"a sparse dimension has an unknown index vector type {kind}")
            values = tuple(holder.scalars(0, fmt))
            if out == "segments":
                segments = values
            else:
                indices = values
        levels.append((meta.scalar(0, "b"), meta.scalar(1, "i"), segments, indices))
    order = tuple(table.scalars(0, "i"))
    block_map = tuple(table.scalars(1, "i"))
    if len(order) != rank + len(block_map) or len(levels) != len(order) or sorted(order) != list(range(len(order))):
        raise _corrupt("a sparse tensor's traversal order and dimension metadata do not agree with its shape")
    return Sparsity(order, block_map, tuple(levels))


def parse_model(data: bytes) -> TFLiteModel:
    """Parse a .tflite flatbuffer's first subgraph; raises CorruptCheckpointError for any broken offset."""
    if len(data) < 8 or data[4:8] != IDENTIFIER:
        raise _corrupt("not a TFLite flatbuffer (no TFL3 identifier)")
    buf = _Buffer(data)
    root = buf.table(buf.scalar("I", 0))
    codes = []
    for code in root.tables(1):
        builtin = max(code.scalar(0, "b"), code.scalar(3, "i"))
        custom = code.string(1)
        codes.append(custom or BUILTIN_OPS.get(builtin, f"BUILTIN_{builtin}"))
    subgraphs = root.tables(2)
    if not subgraphs:
        raise _corrupt("the model has no subgraph")
    graph = subgraphs[0]
    buffers = []
    for buffer in root.tables(4):
        start, length = buffer.bytes_span(0)
        if not length:
            offset, size = buffer.scalar(1, "Q"), buffer.scalar(2, "Q")
            if size and offset + size > len(data):
                raise _corrupt(f"a buffer claims bytes {offset}..{offset + size} of a {len(data)}-byte file")
            start, length = (offset, size) if size else (0, 0)
        buffers.append((start, length))
    tensors = []
    for index, item in enumerate(graph.tables(0)):
        shape = tuple(item.scalars(0, "i"))
        type_id = item.scalar(1, "b")
        if type_id not in TENSOR_TYPES:
            raise _corrupt(f"tensor {index} has an unsupported type {type_id}")
        if any(s < 0 for s in shape) or math.prod(shape) > MAX_ELEMENTS:
            raise _corrupt(f"tensor {index} has an absurd shape {list(shape)}")
        buffer_index = item.scalar(2, "I")
        if buffer_index >= max(len(buffers), 1):
            raise _corrupt(f"tensor {index} refers to buffer {buffer_index}, but the file has {len(buffers)}")
        quant = item.child(4)
        quantized = quant is not None and bool(quant.scalars(2, "f") or quant.scalars(3, "q"))
        tensors.append(
            TFLiteTensor(
                index, item.string(3), shape, TENSOR_TYPES[type_id], buffer_index, quantized,
                _sparsity(item.child(6), len(shape)),
            )
        )  # fmt: skip
    operators = []
    for item in graph.tables(3):
        code = item.scalar(0, "I")
        if code >= len(codes):
            raise _corrupt(f"an operator refers to operator code {code}, but the file has {len(codes)}")
        op = codes[code]
        inputs, outputs = tuple(item.scalars(1, "i")), tuple(item.scalars(2, "i"))
        if any(not -1 <= i < len(tensors) for i in inputs + outputs):
            raise _corrupt(f"a {op} operator refers to a tensor outside the {len(tensors)} the file declares")
        operators.append(TFLiteOperator(op, inputs, outputs, _options(item, op)))
    ends = tuple(graph.scalars(1, "i")), tuple(graph.scalars(2, "i"))
    if any(not 0 <= i < len(tensors) for i in ends[0] + ends[1]):
        raise _corrupt("the subgraph's inputs or outputs refer to tensors it does not declare")
    return TFLiteModel(tensors, operators, ends[0], ends[1], buffers, root.string(3))


def _options(item: _Table, op: str) -> dict[str, Any]:
    if op == "Convolution2DTransposeBias":
        start, length = item.bytes_span(5)
        if length < 12:
            raise _corrupt("Convolution2DTransposeBias has no padding/stride options")
        padding, stride_w, stride_h = struct.unpack_from("<3i", item.buf.data, start)
        return {"padding": padding, "stride_w": stride_w, "stride_h": stride_h}
    options = item.child(4)
    if op == "RESHAPE":
        return {"new_shape": options.scalars(0, "i") if options else []}
    fields = _OPTION_FIELDS.get(op)
    if not fields:
        return {}
    return {name: (options.scalar(i, fmt, default) if options else default) for i, (name, fmt, default) in
            enumerate(fields)}  # fmt: skip


def weight_layouts(model: TFLiteModel) -> dict[int, tuple[int, ...]]:
    """Constant tensor index -> permutation to torch layout, for weights whose layout differs."""
    producer = {out: op for op in model.operators for out in op.outputs}
    layouts: dict[int, tuple[int, ...]] = {}
    for op in model.operators:
        for position, tensor in enumerate(op.inputs):
            perm = _WEIGHT_LAYOUTS.get((op.op, position))
            if perm is None or tensor < 0:
                continue
            source = source_constant(model, tensor, producer)
            if len(model.tensors[source].shape) != len(perm):
                raise _corrupt(f"{op.op} weight {model.tensors[source].name!r} has rank "
                               f"{len(model.tensors[source].shape)}, expected {len(perm)}")  # fmt: skip
            if layouts.setdefault(source, perm) != perm:
                raise _corrupt(f"tensor {model.tensors[source].name!r} is used in two layouts")
    return layouts


def source_constant(model: TFLiteModel, tensor: int, producer: dict[int, TFLiteOperator] | None = None) -> int:
    """The stored tensor behind ``tensor``, following DEQUANTIZE and DENSIFY back to their input."""
    producer = producer if producer is not None else {out: op for op in model.operators for out in op.outputs}
    seen = 0
    while tensor in producer and producer[tensor].op in _PASS_THROUGH and seen < 8:
        tensor = producer[tensor].inputs[0]
        seen += 1
    return tensor


def _view(shape: tuple[int, ...], perm: tuple[int, ...] | None) -> tuple[tuple[int, ...], tuple[int, ...]]:
    stride, step = [], 1
    for size in reversed(shape):
        stride.append(step)
        step *= max(size, 1)
    stride.reverse()
    if perm is None:
        return shape, tuple(stride)
    return tuple(shape[p] for p in perm), tuple(stride[p] for p in perm)


def read_tflite(path: Path) -> tuple[OrderedDict[str, TensorRecord], TFLiteHeader, list[str]]:
    """Constant tensors by name (torch layout views), the parsed model, and the operator summary.

    The file is memory-mapped: only the pages of the flatbuffer's tables are read, not the weights."""
    with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
        model = parse_model(data)  # type: ignore[arg-type]
    layouts = weight_layouts(model)
    tensors: OrderedDict[str, TensorRecord] = OrderedDict()
    extra = TFLiteHeader(model)
    for tensor in model.tensors:
        if not model.constant(tensor):
            continue
        if tensor.name in tensors:
            raise _corrupt(f"two constant tensors are both named {tensor.name!r}")
        _check_stored_size(model, tensor)
        numel = math.prod(tensor.shape)
        storage = StorageRecord(tensor.name, tensor.dtype, numel)
        perm = layouts.get(tensor.index)
        shape, stride = _view(tensor.shape, perm)
        tensors[tensor.name] = TensorRecord(shape, stride, 0, storage)
        extra.by_name[tensor.name] = tensor
        if perm is not None:
            extra.layouts[tensor.name] = perm
    ops: dict[str, int] = {}
    for op in model.operators:
        ops[op.op] = ops.get(op.op, 0) + 1
    summary = [f"{name} x{count}" for name, count in sorted(ops.items())]
    return tensors, extra, summary


def _check_stored_size(model: TFLiteModel, tensor: TFLiteTensor) -> None:
    stored = model.buffers[tensor.buffer][1]
    if tensor.sparsity is not None:
        return
    needed = math.prod(tensor.shape) * tensor.dtype.itemsize
    if stored != needed:
        raise _corrupt(
            f"tensor {tensor.name!r} of shape {list(tensor.shape)} needs {needed} bytes but its buffer holds {stored}"
        )


def _densify(values: np.ndarray, shape: tuple[int, ...], sparsity: Sparsity) -> np.ndarray:
    """Expand TFLite's sparse format to a dense array (the FormatConverter's traversal, level by level)."""
    rank = len(shape)
    order, block_map, levels = sparsity.traversal_order, sparsity.block_map, sparsity.levels
    block_size = [levels[order[rank + b]][1] for b in range(len(block_map))]
    prev = np.zeros(1, dtype=np.int64)
    columns: list[np.ndarray] = []
    for fmt, dense_size, segments, indices in levels:
        if fmt == 0:
            repeat = np.repeat(np.arange(len(prev)), dense_size)
            child = np.tile(np.arange(dense_size, dtype=np.int64), len(prev))
            prev = prev[repeat] * dense_size + child
        else:
            segs = np.asarray(segments, dtype=np.int64)
            if len(segs) < int(prev.max(initial=0)) + 2 or np.any(np.diff(segs) < 0) or segs[-1] > len(indices):
                raise _corrupt("a sparse tensor's segments do not fit its indices")
            counts = segs[prev + 1] - segs[prev]
            repeat = np.repeat(np.arange(len(prev)), counts)
            positions = np.concatenate([np.arange(segs[p], segs[p + 1]) for p in prev]) if len(prev) else prev
            child = np.asarray(indices, dtype=np.int64)[positions]
            prev = positions.astype(np.int64)
        columns = [c[repeat] for c in columns] + [child]
    if len(prev) != values.size:
        raise _corrupt(f"a sparse tensor lists {len(prev)} positions but stores {values.size} values")
    original = [np.zeros(len(prev), dtype=np.int64) for _ in range(rank)]
    for level in range(rank):
        original[order[level]] = columns[level]
    for level in range(rank, len(order)):
        block = order[level] - rank
        dim = block_map[block]
        original[dim] = original[dim] * block_size[block] + columns[level]
    if any(np.any((o < 0) | (o >= s)) for o, s in zip(original, shape, strict=True)):
        raise _corrupt("a sparse tensor's indices fall outside its shape")
    dense = np.zeros(shape, dtype=values.dtype)
    dense[tuple(original)] = values
    return dense


_NUMPY = {torch.float32: np.float32, torch.float16: np.float16, torch.int32: np.int32, torch.uint8: np.uint8,
          torch.int64: np.int64, torch.bool: np.bool_, torch.int16: np.int16, torch.int8: np.int8,
          torch.float64: np.float64}  # fmt: skip


def read_tflite_tensors(path: Path, extra: TFLiteHeader, keys: Iterable[str]) -> dict[str, torch.Tensor]:
    """The named constants as torch tensors in the header's (torch) layout; sparse ones made dense."""
    out: dict[str, torch.Tensor] = {}
    with path.open("rb") as handle:
        data = handle.read()
    for key in keys:
        tensor = extra.by_name[key]
        start, length = extra.model.buffers[tensor.buffer]
        if start + length > len(data):
            raise _corrupt(f"tensor {key!r}'s data lies past the end of the file")
        dtype = _NUMPY[tensor.dtype]
        if length % np.dtype(dtype).itemsize:
            raise _corrupt(f"tensor {key!r}'s buffer is not a whole number of {tensor.dtype} values")
        values = np.frombuffer(data, dtype=dtype, count=length // np.dtype(dtype).itemsize, offset=start)
        if tensor.sparsity is not None:
            try:
                array = _densify(values, tensor.shape, tensor.sparsity)
            except (IndexError, ValueError) as exc:
                raise _corrupt(f"sparse tensor {key!r} cannot be expanded: {exc}") from exc
        else:
            array = values.reshape(tensor.shape)
        perm = extra.layouts.get(key)
        if perm is not None:
            array = array.transpose(perm)
        out[key] = torch.from_numpy(np.array(array, order="C", copy=True))
    return out


def graph_spec(model: TFLiteModel) -> dict[str, Any]:
    """The operator graph as JSON-able data: what a network module needs to run the model without the file.

    DEQUANTIZE and DENSIFY steps are folded into their stored constant (the loader dequantises and
    densifies), so every operator input is an activation or a constant named as in the file; constants are
    listed with their torch-layout shape and dtype.
    """
    producer = {out: op for op in model.operators for out in op.outputs}
    layouts = weight_layouts(model)
    constants: dict[str, list[Any]] = {}
    nodes = []
    for op in model.operators:
        if op.op in _PASS_THROUGH:
            continue
        inputs = []
        for tensor in op.inputs:
            source = source_constant(model, tensor, producer) if tensor >= 0 else tensor
            if source >= 0 and model.constant(model.tensors[source]):
                stored = model.tensors[source]
                shape, _ = _view(stored.shape, layouts.get(source))
                constants[str(source)] = [stored.name, list(shape), str(stored.dtype).removeprefix("torch.")]
            inputs.append(source)
        nodes.append([op.op, inputs, list(op.outputs), op.options])
    return {
        "inputs": list(model.inputs),
        "outputs": list(model.outputs),
        "output_names": [model.tensors[i].name for i in model.outputs],
        "constants": constants,
        "nodes": nodes,
    }
