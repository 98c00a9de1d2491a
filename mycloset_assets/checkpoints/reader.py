"""Read a checkpoint's header: tensor names, shapes, dtypes and byte sizes, never the tensor bytes.

Containers: torch zip archives (``data.pkl``), legacy torch files (pre-1.6 pickle stream), safetensors
(JSON header), TorchScript archives (``data.pkl`` with ``__torch__`` classes, read without resolving them),
TensorFlow Lite flatbuffers (``tflite.py``).
Other content is named (empty, HTML, text, ONNX) and broken containers are reported as corrupt.
"""

from __future__ import annotations

import gc
import json
import math
import pickle
import re
import struct
import zipfile
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import chain, repeat
from operator import le, mul
from pathlib import Path
from typing import Any

import torch

from .errors import CorruptCheckpointError, NotACheckpointError, UnsafePickleError
from .pickles import ScriptObjectRecord, StorageRecord, TensorRecord, read_pickle
from .tflite import read_tflite
from .zipdir import NotPlainZip, PlainZip, ZipMembers, read_at

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001
WRAPPER_KEYS = (
    "state_dict",
    "params_ema",
    "params",
    "model_state",
    "model_state_dict",
    "model",
    "net",
    "network",
    "g_ema",
    "ema",
    "weights",
    "module",
)
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
MAX_SAFETENSORS_HEADER = 100 * 1024 * 1024
MAX_PICKLE_BYTES = 256 * 1024 * 1024
_SNIFF_BYTES = 4096


@dataclass
class Header:
    """What a checkpoint holds, read from its header alone."""

    path: Path
    container: str
    size: int
    tensors: OrderedDict[str, TensorRecord]
    wrapper: str | None = None
    metadata: list[str] = field(default_factory=list)
    storages: dict[str, StorageRecord] = field(default_factory=dict)
    archive: str | None = None
    storage_offsets: dict[str, int] = field(default_factory=dict)
    tflite: Any = None

    @property
    def params(self) -> int:
        """Elements of the floating-point tensors (buffers included)."""
        return sum(math.prod(t.shape) for t in self.tensors.values() if t.storage.dtype.is_floating_point)

    @property
    def dtypes(self) -> dict[str, int]:
        """Tensor count per dtype name."""
        counts: dict[str, int] = {}
        for t in self.tensors.values():
            name = str(t.dtype).removeprefix("torch.")
            counts[name] = counts.get(name, 0) + 1
        return counts


def _fail(error: type[Exception], container: str, message: str) -> Exception:
    exc = error(message)
    exc.container = container  # type: ignore[attr-defined]
    return exc


def sniff(path: Path) -> str:
    """Name a file's container from its first bytes (never from its name)."""
    size = path.stat().st_size
    if size == 0:
        return "empty"
    with path.open("rb") as handle:
        head = handle.read(_SNIFF_BYTES)
    if head[4:8] == b"TFL3":
        return "tflite"
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "zip"
    if head.startswith(b"\x80\x02\x8a\x0a") and int.from_bytes(head[4:14], "little") == LEGACY_MAGIC:
        return "torch_legacy"
    if len(head) >= 9 and head[8:9] == b"{":
        (header_len,) = struct.unpack("<Q", head[:8])
        if header_len <= size - 8:
            return "safetensors"
    if head[:1] == b"\x80" and 2 <= head[1] <= 5:
        return "pickle"
    if _looks_like_onnx(head):
        return "onnx"
    text = _as_text(head)
    if text is not None:
        lowered = text.lstrip("\ufeff \t\r\n").lower()
        if lowered.startswith(("<!doctype html", "<html", "<head", "<body")) or "<html" in lowered[:1024]:
            return "html"
        return "text"
    return "unknown"


def _as_text(head: bytes) -> str | None:
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:
            return None
        text = head[: exc.start].decode("utf-8")
    printable = sum(ch.isprintable() or ch in "\r\n\t" for ch in text)
    return text if text and printable / len(text) > 0.95 else None


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while pos < len(data):
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            break
    raise ValueError("bad varint")


def _looks_like_onnx(head: bytes) -> bool:
    """An ONNX ModelProto: protobuf fields ir_version (1, varint) then producer/graph/opset fields."""
    if not head.startswith(b"\x08"):
        return False
    pos, seen = 0, set()
    try:
        while pos < len(head) and len(seen) < 3:
            tag, pos = _varint(head, pos)
            number, wire = tag >> 3, tag & 7
            if number not in range(1, 21) or wire not in (0, 2):
                return False
            seen.add(number)
            if wire == 0:
                _, pos = _varint(head, pos)
            else:
                length, pos = _varint(head, pos)
                pos += length
    except ValueError:
        return False
    return 1 in seen and bool(seen & {2, 3, 7, 8})


@contextmanager
def gc_paused() -> Iterator[None]:
    """Hold off the cyclic garbage collector while a header is read or scored.

    A header read allocates thousands of small objects (records, tuples, dicts), and every 700 allocations
    start a collection; in a process that holds torch and built networks the occasional full collection costs
    far more than the read itself. Collection is only deferred, and the collector is switched back on
    afterwards if it was on.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def read_header(path: Path | str) -> Header:
    """Read ``path``'s header; raises NotACheckpointError, CorruptCheckpointError or UnsafePickleError."""
    with gc_paused():
        return _read_header(Path(path))


def _read_header(path: Path) -> Header:
    kind = sniff(path)
    size = path.stat().st_size
    if kind == "zip":
        return _read_zip(path, size)
    if kind == "torch_legacy":
        return _read_legacy(path, size)
    if kind == "safetensors":
        return _read_safetensors(path, size)
    if kind == "tflite":
        return _read_tflite(path, size)
    if kind == "pickle":
        _scan_plain_pickle(path)
        raise _fail(NotACheckpointError, "unknown", "a plain pickle, not a torch checkpoint (no torch file header)")
    messages = {
        "empty": "the file is empty (0 bytes): the download or copy did not finish",
        "html": "an HTML page, not weights: the download saved an error or login page; download it again",
        "text": "a text file, not weights; check where it came from",
        "onnx": "an ONNX model, not a torch checkpoint: use an ONNX runtime, or the .pth of the same model",
        "unknown": "not a known checkpoint format (no torch zip, legacy torch or safetensors header)",
    }
    raise _fail(NotACheckpointError, kind, messages[kind])


def _scan_plain_pickle(path: Path) -> None:
    try:
        with path.open("rb") as handle:
            read_pickle(handle)
    except UnsafePickleError as exc:
        exc.container = "unknown"  # type: ignore[attr-defined]
        raise
    except Exception:  # noqa: BLE001 - any other failure just means "not a checkpoint"
        return


def find_weights(obj: Any, depth: int = 3) -> tuple[str | None, Mapping[str, Any], list[str]]:
    """Locate the tensor dict inside a loaded object: (wrapper path, the dict, names of other entries).

    Wrappers nest at most ``depth`` levels (``{"model": {"state_dict": ...}}`` is two).
    """
    if not isinstance(obj, Mapping) or depth < 0:
        return None, {}, []
    own = _count_weights(obj.values())
    candidates = [k for k in WRAPPER_KEYS if isinstance(obj.get(k), Mapping)]
    candidates += [
        k for k, v in obj.items() if type(v) is not TensorRecord and isinstance(v, Mapping) and k not in candidates
    ]
    best: tuple[int, str | None, Mapping[str, Any]] = (own, None, obj if own else {})
    for key in candidates:
        inner_wrapper, inner, _ = find_weights(obj[key], depth - 1)
        count = _count_weights(inner.values())
        if count > best[0]:
            path = f"{key}.{inner_wrapper}" if inner_wrapper else str(key)
            best = (count, path, inner)
    if best[1] is None:
        return None, best[2], [] if own else [str(k) for k in obj]
    top = best[1].split(".")[0]
    return best[1], best[2], [str(k) for k in obj if k != top]


def _count_weights(values: Iterable[Any]) -> int:
    return sum(map(isinstance, values, repeat((TensorRecord, torch.Tensor))))


def _tensors_of(mapping: Mapping[str, Any]) -> OrderedDict[str, TensorRecord]:
    if set(map(type, mapping.values())) == {TensorRecord} and set(map(type, mapping)) == {str}:
        return OrderedDict(mapping)
    return OrderedDict((str(k), v) for k, v in mapping.items() if isinstance(v, TensorRecord))


def _unpickle(data: Any, container: str, *, script: bool = False) -> tuple[Any, dict[str, StorageRecord]]:
    try:
        return read_pickle(data, script_classes=script)
    except UnsafePickleError as exc:
        exc.container = container  # type: ignore[attr-defined]
        raise
    except (
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        TypeError,
        AttributeError,
        IndexError,
        KeyError,
        OverflowError,
        MemoryError,
        RecursionError,
        UnicodeDecodeError,
    ) as exc:
        raise _fail(
            CorruptCheckpointError, container, f"the pickled header is damaged ({type(exc).__name__}: {exc})"
        ) from exc


def _read_zip(path: Path, size: int) -> Header:
    """Read a zip checkpoint through the plain-archive reader, or through zipfile when it declines the file.

    zipfile stays the reference: every file the plain reader accepts reads the same through zipfile, and
    every other one (damaged, truncated, compressed, unusual) is read by zipfile, whose errors give the verdict.
    """
    try:
        with PlainZip(path, size) as plain:
            return _read_members(plain.members(), path, size)
    except NotPlainZip:
        pass
    return _read_zipfile(path, size)


def _read_zipfile(path: Path, size: int) -> Header:
    """The reference read of a zip checkpoint, through zipfile."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise _fail(
            CorruptCheckpointError,
            "torch_zip",
            f"a zip archive whose end record is missing or broken ({exc}): the file is truncated or damaged "
            f"({size} bytes); download it again",
        ) from exc
    with archive:
        sizes = {info.filename: info.file_size for info in archive.infolist()}
        return _read_members(ZipMembers(archive.namelist(), sizes, archive.read), path, size)


def _read_members(archive: ZipMembers, path: Path, size: int) -> Header:
    names = archive.names
    pickles = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
    if not pickles:
        raise _fail(NotACheckpointError, "unknown", "a zip archive without data.pkl: not a torch checkpoint")
    root = pickles[0].split("/")[0]
    code = f"{root}/code/"
    scripted = any(n.startswith(code) for n in names) or f"{root}/constants.pkl" in names
    container = "torchscript" if scripted else "torch_zip"
    if archive.sizes[pickles[0]] > MAX_PICKLE_BYTES:
        raise _fail(
            CorruptCheckpointError, container, f"data.pkl claims over {MAX_PICKLE_BYTES} bytes, which is absurd"
        )
    try:
        data = archive.read(pickles[0])
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise _fail(
            CorruptCheckpointError, container, f"data.pkl cannot be read: {exc}; download the file again"
        ) from exc
    obj, storages = _unpickle(data, container, script=scripted)
    prefix = f"{root}/data/"
    for key, storage in storages.items():
        stored = archive.sizes.get(prefix + key)
        if stored is None:
            raise _fail(CorruptCheckpointError, container, f"storage data/{key} is missing from the archive")
        if stored < storage.nbytes:
            raise _fail(
                CorruptCheckpointError,
                container,
                f"storage data/{key} holds {stored} bytes but the header needs {storage.nbytes}",
            )
    if scripted:
        classes = _script_class_members(archive, root)
        tensors = OrderedDict(_script_tensors(obj, "", classes))
        wrapper, metadata = None, []
    else:
        wrapper, weights, metadata = find_weights(obj)
        tensors = _tensors_of(weights)
    header = Header(path, container, size, tensors, wrapper, metadata, storages, archive=root)
    _check_views(header)
    return header


_CLASS_RE = re.compile(r"^class (\w+)\(", re.M)
_LIST_RE = re.compile(r"^\s+__(parameters|buffers)__ = \[(.*?)\]", re.M)


def _script_class_members(archive: ZipMembers, root: str) -> dict[str, list[str]]:
    """Parameter and buffer names of each TorchScript class, read as text from code/ (never run)."""
    members: dict[str, list[str]] = {}
    prefix = f"{root}/code/"
    for name in archive.names:
        if not (name.startswith(prefix) and name.endswith(".py")):
            continue
        module = name[len(prefix) : -3].replace("/", ".")
        source = archive.read(name).decode("utf-8", errors="replace")
        blocks = _CLASS_RE.split(source)
        for class_name, body in zip(blocks[1::2], blocks[2::2], strict=True):
            lists = {kind: re.findall(r'"([^"]+)"', items) for kind, items in _LIST_RE.findall(body)}
            members[f"{module}.{class_name}"] = lists.get("parameters", []) + lists.get("buffers", [])
    return members


def _script_tensors(obj: Any, prefix: str, classes: dict[str, list[str]]) -> list[tuple[str, TensorRecord]]:
    if not isinstance(obj, ScriptObjectRecord):
        return []
    attributes = obj.attributes()
    declared = classes.get(obj.qualified_name)
    names = declared if declared is not None else [k for k, v in attributes.items() if isinstance(v, TensorRecord)]
    found = [(f"{prefix}{n}", attributes[n]) for n in names if isinstance(attributes.get(n), TensorRecord)]
    for name, value in attributes.items():
        if isinstance(value, ScriptObjectRecord):
            found += _script_tensors(value, f"{prefix}{name}.", classes)
    return found


def _read_legacy(path: Path, size: int) -> Header:
    container = "torch_legacy"
    with path.open("rb") as handle:
        magic, _ = _unpickle(handle, container)
        protocol, _ = _unpickle(handle, container)
        if magic != LEGACY_MAGIC or protocol != LEGACY_PROTOCOL:
            raise _fail(CorruptCheckpointError, container, f"unsupported legacy protocol {protocol!r}")
        sys_info, _ = _unpickle(handle, container)
        if isinstance(sys_info, Mapping) and sys_info.get("little_endian") is False:
            raise _fail(CorruptCheckpointError, container, "a big-endian legacy file is not supported")
        obj, storages = _unpickle(handle, container)
        keys, _ = _unpickle(handle, container)
        if not isinstance(keys, list) or set(map(str, keys)) != set(storages):
            raise _fail(CorruptCheckpointError, container, "the storage list does not match the tensors' storages")
        offsets: dict[str, int] = {}
        position = handle.tell()
        for key in map(str, keys):
            storage = storages[key]
            count = read_at(handle, position, 8)
            if len(count) < 8:
                raise _fail(
                    CorruptCheckpointError,
                    container,
                    f"the file ends before storage {key} ({size} bytes): it is truncated; download it again",
                )
            (numel,) = struct.unpack("<q", count)
            if numel != storage.numel:
                raise _fail(
                    CorruptCheckpointError,
                    container,
                    f"storage {key} records {numel} elements but its tensors need {storage.numel}",
                )
            offsets[key] = position + 8
            position += 8 + storage.nbytes
        if position > size:
            raise _fail(
                CorruptCheckpointError,
                container,
                f"the file is truncated: its storages need {position} bytes, the file has {size}; download it again",
            )
    wrapper, weights, metadata = find_weights(obj)
    header = Header(path, container, size, _tensors_of(weights), wrapper, metadata, storages, storage_offsets=offsets)
    _check_views(header)
    return header


def _is_index(value: object) -> bool:
    return type(value) is int and value >= 0


def _check_views(header: Header) -> None:
    if _views_fit(list(header.tensors.values())):
        return
    for key, tensor in header.tensors.items():
        sizes = (*tensor.shape, *tensor.stride, tensor.offset)
        if not all(map(_is_index, sizes)) or len(tensor.shape) != len(tensor.stride):
            raise _fail(CorruptCheckpointError, header.container, f"tensor {key} has a negative size or offset")
        if tensor.span() > tensor.storage.numel:
            raise _fail(
                CorruptCheckpointError,
                header.container,
                f"tensor {key} reaches past the end of its storage ({tensor.span()} > {tensor.storage.numel})",
            )


def _views_fit(records: list[TensorRecord]) -> bool:
    """Whether every view is well formed and inside its storage, checked for all tensors at once (the loop in
    ``_check_views`` then only runs to name the first one that is not)."""
    shapes = [record.shape for record in records]
    strides = [record.stride for record in records]
    offsets = [record.offset for record in records]
    if list(map(len, shapes)) != list(map(len, strides)):
        return False
    sizes = [*chain.from_iterable(shapes), *chain.from_iterable(strides), *offsets]
    if not set(map(type, sizes)) <= {int} or (sizes and min(sizes) < 0):
        return False
    spans = [
        offset if 0 in shape else offset + sum(map(mul, shape, stride)) - sum(stride) + 1
        for shape, stride, offset in zip(shapes, strides, offsets, strict=True)
    ]
    return all(map(le, spans, [record.storage.numel for record in records]))


def _read_safetensors(path: Path, size: int) -> Header:
    container = "safetensors"
    with path.open("rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        if length > MAX_SAFETENSORS_HEADER:
            raise _fail(CorruptCheckpointError, container, f"the JSON header claims {length} bytes, which is absurd")
        raw = handle.read(length)
    try:
        table = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _fail(CorruptCheckpointError, container, f"the JSON header does not parse: {exc}") from exc
    if not isinstance(table, dict):
        raise _fail(CorruptCheckpointError, container, "the JSON header is not an object")
    data_start = 8 + length
    data_size = size - data_start
    tensors: OrderedDict[str, TensorRecord] = OrderedDict()
    storages: dict[str, StorageRecord] = {}
    offsets: dict[str, int] = {}
    spans: list[tuple[int, int, str]] = []
    for key, spec in table.items():
        if key == "__metadata__":
            continue
        try:
            dtype = SAFETENSORS_DTYPES[spec["dtype"]]
            shape = tuple(int(s) for s in spec["shape"])
            begin, end = (int(v) for v in spec["data_offsets"])
        except (KeyError, TypeError, ValueError) as exc:
            raise _fail(CorruptCheckpointError, container, f"tensor {key}: malformed header entry ({exc})") from exc
        if any(s < 0 for s in shape) or math.prod(shape) * dtype.itemsize > 2**50:
            raise _fail(CorruptCheckpointError, container, f"tensor {key}: absurd shape {list(shape)}")
        nbytes = math.prod(shape) * dtype.itemsize
        if begin < 0 or end - begin != nbytes:
            raise _fail(
                CorruptCheckpointError,
                container,
                f"tensor {key}: offsets [{begin}, {end}] do not hold {nbytes} bytes of shape {list(shape)}",
            )
        if end > data_size:
            raise _fail(
                CorruptCheckpointError,
                container,
                f"tensor {key}: data ends at {end} but the file holds {data_size} bytes of data "
                "(truncated, or the header lies)",
            )
        storage = StorageRecord(key, dtype, math.prod(shape))
        storages[key] = storage
        offsets[key] = data_start + begin
        tensors[key] = TensorRecord(shape, _contiguous_stride(shape), 0, storage)
        spans.append((begin, end, key))
    spans.sort()
    for (_, end_a, key_a), (begin_b, _, key_b) in zip(spans, spans[1:], strict=False):
        if begin_b < end_a:
            raise _fail(CorruptCheckpointError, container, f"tensors {key_a} and {key_b} overlap in the data")
    metadata = table.get("__metadata__")
    names = sorted(metadata) if isinstance(metadata, dict) else []
    return Header(path, container, size, tensors, None, names, storages, storage_offsets=offsets)


def _read_tflite(path: Path, size: int) -> Header:
    tensors, model, operators = read_tflite(path)
    storages = {t.storage.key: t.storage for t in tensors.values()}
    return Header(path, "tflite", size, tensors, None, operators, storages, tflite=model)


def _contiguous_stride(shape: tuple[int, ...]) -> tuple[int, ...]:
    stride, step = [], 1
    for size in reversed(shape):
        stride.append(step)
        step *= max(size, 1)
    return tuple(reversed(stride))
