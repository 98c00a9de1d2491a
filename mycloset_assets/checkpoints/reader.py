"""Read a checkpoint's header: tensor names, shapes, dtypes and byte sizes, never the tensor bytes.

Containers: torch zip archives (``data.pkl``), legacy torch files (pre-1.6 pickle stream), safetensors
(JSON header), TorchScript archives (``data.pkl`` with ``__torch__`` classes, read without resolving them),
TensorFlow Lite flatbuffers (``tflite.py``).
Other content is named (empty, HTML, text, ONNX) and broken containers are reported as corrupt.
"""

from __future__ import annotations

import gc
import math
import pickle
import re
import struct
import zipfile
import zlib
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import chain, repeat
from operator import le, mul
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open

from .bounds import DEFAULT_BOUNDS, AnalysisBounds, BoundExceededError, Budget
from .errors import CorruptCheckpointError, NotACheckpointError, UnsafePickleError
from .pickle_scan import PickleTruncatedError
from .pickles import ScriptObjectRecord, StorageRecord, TensorRecord, read_pickle
from .safetensors_header import parse_safetensors_header
from .tflite import read_tflite
from .zipdir import NotPlainZip, PlainZip, ZipMembers, read_at, strict_zipfile_members

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
_SNIFF_BYTES = 4096
_LEGACY_WINDOW = 1 << 16


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
    wrapper_keys: tuple[Any, ...] = ()
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
    return _fail_with(error(message), container)


def _fail_with(exc: Exception, container: str) -> Exception:
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


def read_header(path: Path | str, bounds: AnalysisBounds = DEFAULT_BOUNDS) -> Header:
    """Read ``path``'s header within ``bounds``; raises NotACheckpointError, CorruptCheckpointError (its
    subclass BoundExceededError when a bound is reached) or UnsafePickleError."""
    with gc_paused():
        return _read_header(Path(path), bounds)


def _read_header(path: Path, bounds: AnalysisBounds = DEFAULT_BOUNDS) -> Header:
    kind = sniff(path)
    size = path.stat().st_size
    budget = Budget(size, bounds)
    if kind == "zip":
        return _read_zip(path, size, budget)
    if kind == "torch_legacy":
        return _read_legacy(path, size, budget)
    if kind == "safetensors":
        return _read_safetensors(path, size, budget)
    if kind == "tflite":
        return _read_tflite(path, size)
    if kind == "pickle":
        _scan_plain_pickle(path, budget)
        raise _fail(NotACheckpointError, "unknown", "a plain pickle, not a torch checkpoint (no torch file header)")
    messages = {
        "empty": "the file is empty (0 bytes): the download or copy did not finish",
        "html": "an HTML page, not weights: the download saved an error or login page; download it again",
        "text": "a text file, not weights; check where it came from",
        "onnx": "an ONNX model, not a torch checkpoint: use an ONNX runtime, or the .pth of the same model",
        "unknown": "not a known checkpoint format (no torch zip, legacy torch or safetensors header)",
    }
    raise _fail(NotACheckpointError, kind, messages[kind])


def _scan_plain_pickle(path: Path, budget: Budget) -> None:
    """Refuse a plain pickle that needs an unsafe global; any other failure just means "not a checkpoint"."""
    try:
        with path.open("rb") as handle:
            _read_next_pickle(handle, 0, budget, "unknown")
    except UnsafePickleError:
        raise
    except CorruptCheckpointError:
        return


def find_weights(obj: Any, depth: int = 3) -> tuple[tuple[Any, ...], Mapping[str, Any], list[str]]:
    """Locate the tensor dict inside a loaded object: (the keys leading to it, the dict, names of other
    entries). The keys are kept as they are (a key may hold a dot, or be an int), so the loader follows
    exactly the path the analysis found.

    Wrappers nest at most ``depth`` levels (``{"model": {"state_dict": ...}}`` is two).
    """
    if not isinstance(obj, Mapping) or depth < 0:
        return (), {}, []
    own = _count_weights(obj.values())
    candidates = [k for k in WRAPPER_KEYS if isinstance(obj.get(k), Mapping)]
    candidates += [
        k for k, v in obj.items() if type(v) is not TensorRecord and isinstance(v, Mapping) and k not in candidates
    ]
    best: tuple[int, tuple[Any, ...], Mapping[str, Any]] = (own, (), obj if own else {})
    for key in candidates:
        inner_keys, inner, _ = find_weights(obj[key], depth - 1)
        count = _count_weights(inner.values())
        if count > best[0]:
            best = (count, (key, *inner_keys), inner)
    if not best[1]:
        return (), best[2], [] if own else [_key_name(k) for k in obj]
    top = best[1][0]
    return best[1], best[2], [_key_name(k) for k in obj if k != top]


def wrapper_name(keys: tuple[Any, ...]) -> str | None:
    """The wrapper path as reports write it: ``model.state_dict``; a key that is not a string is shown as
    ``[0]`` and a key holding a dot is quoted, so the name is never ambiguous."""
    if not keys:
        return None
    return ".".join(_key_name(key) for key in keys)


def _key_name(key: Any) -> str:
    if type(key) is not str:
        return f"[{key!r:.40}]"
    return f'"{key}"' if "." in key else key


def _count_weights(values: Iterable[Any]) -> int:
    return sum(map(isinstance, values, repeat((TensorRecord, torch.Tensor))))


def _tensors_of(mapping: Mapping[str, Any], budget: Budget, container: str) -> OrderedDict[str, TensorRecord]:
    """The tensors under string keys (a tensor under another key has no name a network could load it by)."""
    if len(mapping) > budget.bounds.tensors:
        try:
            budget.charge_tensors(len(mapping))
        except CorruptCheckpointError as exc:
            exc.container = container  # type: ignore[attr-defined]
            raise
    if set(map(type, mapping.values())) == {TensorRecord} and set(map(type, mapping)) == {str}:
        return OrderedDict(mapping)
    return OrderedDict((k, v) for k, v in mapping.items() if type(k) is str and isinstance(v, TensorRecord))


def _unpickle(
    data: bytes, container: str, budget: Budget, *, script: bool = False, start: int = 0
) -> tuple[Any, dict[str, StorageRecord], int]:
    try:
        return read_pickle(data, budget, script_classes=script, start=start)
    except (UnsafePickleError, CorruptCheckpointError) as exc:
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
        LookupError,
        OverflowError,
        MemoryError,
        RecursionError,
        UnicodeDecodeError,
    ) as exc:
        raise _fail(
            CorruptCheckpointError, container, f"the pickled header is damaged ({type(exc).__name__}: {exc})"
        ) from exc


def _read_next_pickle(
    handle: Any, position: int, budget: Budget, container: str
) -> tuple[Any, dict[str, StorageRecord], int]:
    """The pickle starting at ``position`` of an open file, read in growing windows (never more than the
    header bound); returns the object, its storages and the offset just after it."""
    window = _LEGACY_WINDOW
    while True:
        data = read_at(handle, position, window)
        try:
            obj, storages, stop = _unpickle(data, container, budget)
        except CorruptCheckpointError as exc:
            if not isinstance(exc.__cause__, PickleTruncatedError) or len(data) < window:
                raise
            budget.check_header_size(window + 1, "a pickle of the file")
            window = min(4 * window, budget.bounds.header_bytes + 1)
            continue
        return obj, storages, position + stop


def _read_zip(path: Path, size: int, budget: Budget) -> Header:
    """Read a zip checkpoint through the plain-archive reader, or through zipfile when it declines the file.

    zipfile stays the reference: every file the plain reader accepts reads the same through zipfile, and
    every other one (damaged, truncated, compressed, unusual) is read by zipfile, whose errors give the verdict.
    """
    try:
        with PlainZip(path, size) as plain:
            return _read_members(plain.members(), path, size, budget)
    except NotPlainZip:
        pass
    return _read_zipfile(path, size, budget)


def _read_zipfile(path: Path, size: int, budget: Budget) -> Header:
    """The reference read of a zip checkpoint, through zipfile, refusing what torch would read otherwise."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, OverflowError) as exc:
        raise _fail(
            CorruptCheckpointError,
            "torch_zip",
            f"a zip archive whose end record is missing or broken ({exc}): the file is truncated or damaged "
            f"({size} bytes); download it again",
        ) from exc
    with archive:
        try:
            members = strict_zipfile_members(archive, budget.bounds.members, budget.bounds.header_bytes)
        except ValueError as exc:
            raise _fail(CorruptCheckpointError, "torch_zip", str(exc)) from exc
        return _read_members(members, path, size, budget)


def _archive_root(names: list[str], container: str) -> str:
    """The one folder every member is in: torch reads the folder of the first member and nothing else, so a
    member elsewhere, or a name listed twice, would make the analysis read another file than torch."""
    if not names:
        raise _fail(NotACheckpointError, "unknown", "an empty zip archive: not a torch checkpoint")
    root, slash, _ = names[0].partition("/")
    if not slash or not root:
        raise _fail(
            NotACheckpointError,
            "unknown",
            "a zip archive whose first member is not in a folder: not a torch checkpoint",
        )
    outside = [name for name in names if not name.startswith(f"{root}/")]
    if outside:
        raise _fail(
            CorruptCheckpointError,
            container,
            f"the archive holds members outside its folder {root}/ (e.g. {outside[0]}): torch reads only "
            f"{root}/, so the file is ambiguous and is refused",
        )
    if len(set(names)) != len(names):
        repeated = next(name for name in names if names.count(name) > 1)
        raise _fail(
            CorruptCheckpointError,
            container,
            f"the member {repeated} is listed {names.count(repeated)} times: zipfile reads the last copy and "
            "torch another, so the file is ambiguous and is refused",
        )
    return root


def _read_members(archive: ZipMembers, path: Path, size: int, budget: Budget) -> Header:
    names = archive.names
    if not any(n.endswith("/data.pkl") and n.count("/") == 1 for n in names):
        raise _fail(NotACheckpointError, "unknown", "a zip archive without data.pkl: not a torch checkpoint")
    if len(names) > budget.bounds.members:
        error = BoundExceededError("members", budget.bounds.members, f"the zip directory lists {len(names)} members")
        raise _fail_with(error, "torch_zip")
    first_root = names[0].partition("/")[0]
    code = f"{first_root}/code/"
    scripted = any(n.startswith(code) for n in names) or f"{first_root}/constants.pkl" in names
    container = "torchscript" if scripted else "torch_zip"
    root = _archive_root(names, container)
    pickle_name = f"{root}/data.pkl"
    if pickle_name not in archive.sizes:
        raise _fail(NotACheckpointError, "unknown", f"a zip archive without {pickle_name}: not a torch checkpoint")
    try:
        budget.check_header_size(archive.sizes[pickle_name], "data.pkl")
        data = archive.read(pickle_name)
    except CorruptCheckpointError as exc:
        exc.container = container  # type: ignore[attr-defined]
        raise
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error, ValueError) as exc:
        raise _fail(
            CorruptCheckpointError, container, f"data.pkl cannot be read: {exc}; download the file again"
        ) from exc
    obj, storages, _ = _unpickle(data, container, budget, script=scripted)
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
    wrapper_keys: tuple[Any, ...] = ()
    if scripted:
        try:
            classes = _script_class_members(archive, root, budget)
        except CorruptCheckpointError as exc:
            exc.container = container  # type: ignore[attr-defined]
            raise
        except (zipfile.BadZipFile, OSError, EOFError, zlib.error, ValueError) as exc:
            raise _fail(CorruptCheckpointError, container, f"the code/ text cannot be read: {exc}") from exc
        tensors = OrderedDict(_script_tensors(obj, classes, budget, container))
        metadata: list[str] = []
    else:
        wrapper_keys, weights, metadata = find_weights(obj)
        tensors = _tensors_of(weights, budget, container)
    header = Header(
        path,
        container,
        size,
        tensors,
        wrapper_name(wrapper_keys),
        metadata,
        storages,
        archive=root,
        wrapper_keys=wrapper_keys,
    )
    _check_views(header)
    return header


_CLASS_RE = re.compile(r"^class (\w+)\(", re.M)
_LIST_RE = re.compile(r"^[ \t]+__(parameters|buffers)__ = \[([^\]\n]*)\]", re.M)


def _script_class_members(archive: ZipMembers, root: str, budget: Budget) -> dict[str, list[str]]:
    """Parameter and buffer names of each TorchScript class, read as text from code/ (never run)."""
    members: dict[str, list[str]] = {}
    prefix = f"{root}/code/"
    for name in archive.names:
        if not (name.startswith(prefix) and name.endswith(".py")):
            continue
        budget.charge_code(archive.sizes[name])
        budget.check_time()
        module = name[len(prefix) : -3].replace("/", ".")
        source = archive.read(name).decode("utf-8", errors="replace")
        blocks = _CLASS_RE.split(source)
        for class_name, body in zip(blocks[1::2], blocks[2::2], strict=True):
            lists = {kind: re.findall(r'"([^"]+)"', items) for kind, items in _LIST_RE.findall(body)}
            members[f"{module}.{class_name}"] = lists.get("parameters", []) + lists.get("buffers", [])
    return members


def _script_tensors(
    root: Any, classes: dict[str, list[str]], budget: Budget, container: str
) -> list[tuple[str, TensorRecord]]:
    """The tensors of a TorchScript object tree, depth first; a cycle or a tree deeper than the depth bound
    is refused (TorchScript modules nest a few levels)."""
    found: list[tuple[str, TensorRecord]] = []
    pending: list[tuple[Any, str, int]] = [(root, "", 0)]
    visiting: set[int] = set()
    while pending:
        obj, prefix, depth = pending.pop()
        if not isinstance(obj, ScriptObjectRecord):
            continue
        if id(obj) in visiting:
            raise _fail(CorruptCheckpointError, container, f"the TorchScript object {prefix[:-1]} contains itself")
        try:
            budget.check_depth(depth, "the TorchScript object tree")
        except CorruptCheckpointError as exc:
            exc.container = container  # type: ignore[attr-defined]
            raise
        visiting.add(id(obj))
        attributes = obj.attributes()
        declared = classes.get(obj.qualified_name)
        names = declared if declared is not None else [k for k, v in attributes.items() if isinstance(v, TensorRecord)]
        found += [(f"{prefix}{n}", attributes[n]) for n in names if isinstance(attributes.get(n), TensorRecord)]
        children = [(value, f"{prefix}{name}.", depth + 1) for name, value in attributes.items()]
        pending += reversed([child for child in children if isinstance(child[0], ScriptObjectRecord)])
    return found


def _read_legacy(path: Path, size: int, budget: Budget) -> Header:
    container = "torch_legacy"
    with path.open("rb") as handle:
        magic, _, position = _read_next_pickle(handle, 0, budget, container)
        protocol, _, position = _read_next_pickle(handle, position, budget, container)
        if magic != LEGACY_MAGIC or protocol != LEGACY_PROTOCOL:
            raise _fail(CorruptCheckpointError, container, f"unsupported legacy protocol {protocol!r:.40}")
        sys_info, _, position = _read_next_pickle(handle, position, budget, container)
        if isinstance(sys_info, Mapping) and sys_info.get("little_endian") is False:
            raise _fail(CorruptCheckpointError, container, "a big-endian legacy file is not supported")
        obj, storages, position = _read_next_pickle(handle, position, budget, container)
        keys, _, position = _read_next_pickle(handle, position, budget, container)
        if not isinstance(keys, list) or not all(type(k) is str for k in keys) or set(keys) != set(storages):
            raise _fail(CorruptCheckpointError, container, "the storage list does not match the tensors' storages")
        if len(set(keys)) != len(keys):
            raise _fail(CorruptCheckpointError, container, "the storage list names a storage twice")
        offsets: dict[str, int] = {}
        for key in keys:
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
                break
        if position > size:
            raise _fail(
                CorruptCheckpointError,
                container,
                f"the file is truncated: its storages need {position} bytes, the file has {size}; download it again",
            )
    wrapper_keys, weights, metadata = find_weights(obj)
    header = Header(
        path,
        container,
        size,
        _tensors_of(weights, budget, container),
        wrapper_name(wrapper_keys),
        metadata,
        storages,
        storage_offsets=offsets,
        wrapper_keys=wrapper_keys,
    )
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


def _read_safetensors(path: Path, size: int, budget: Budget) -> Header:
    container = "safetensors"
    try:
        with path.open("rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
            budget.check_header_size(length, "the JSON header")
            raw = handle.read(length)
        entries, metadata = parse_safetensors_header(raw, size - 8 - length, budget)
    except CorruptCheckpointError as exc:
        exc.container = container  # type: ignore[attr-defined]
        raise
    data_start = 8 + length
    tensors: OrderedDict[str, TensorRecord] = OrderedDict()
    storages: dict[str, StorageRecord] = {}
    offsets: dict[str, int] = {}
    for key, (dtype, shape, begin) in entries.items():
        storage = StorageRecord(key, dtype, math.prod(shape))
        storages[key] = storage
        offsets[key] = data_start + begin
        tensors[key] = TensorRecord(shape, _contiguous_stride(shape), 0, storage)
    _check_safetensors_library(path, container)
    return Header(path, container, size, tensors, None, metadata, storages, storage_offsets=offsets)


def _check_safetensors_library(path: Path, container: str) -> None:
    """The safetensors library, which loads the file, is the final judge of its header (it reads no data)."""
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            handle.keys()
    except Exception as exc:  # noqa: BLE001 - any refusal of the library is the verdict
        raise _fail(CorruptCheckpointError, container, f"the safetensors library refuses the header ({exc})") from exc


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
