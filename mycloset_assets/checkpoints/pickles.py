"""A restricted unpickler that reads torch pickles into records, never executing anything.

torch checkpoints are pickles. ``torch.load(weights_only=True)`` allows a fixed set of globals; this
unpickler allows the same kind of set but resolves none of them to real code: tensors become
``TensorRecord`` (shape, dtype, storage key, offset) without touching their bytes, TorchScript objects
(``__torch__.*`` classes) become ``ScriptObjectRecord`` holding their attributes, and any other global
stops the read with ``UnsafePickleError`` naming it.
"""

from __future__ import annotations

import codecs
import io
import math
import pickle
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

import torch

from .bounds import Budget
from .errors import UnsafePickleError
from .pickle_scan import scan_pickle

STORAGE_DTYPES: dict[str, torch.dtype] = {
    "DoubleStorage": torch.float64,
    "FloatStorage": torch.float32,
    "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16,
    "LongStorage": torch.int64,
    "IntStorage": torch.int32,
    "ShortStorage": torch.int16,
    "CharStorage": torch.int8,
    "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool,
    "ComplexFloatStorage": torch.complex64,
    "ComplexDoubleStorage": torch.complex128,
}


@dataclass(frozen=True)
class StorageRecord:
    """A storage a tensor views: its key in the file, element dtype and element count."""

    key: str
    dtype: torch.dtype
    numel: int

    @property
    def nbytes(self) -> int:
        return self.numel * self.dtype.itemsize


@dataclass(frozen=True, slots=True)
class TensorRecord:
    """A tensor as the header describes it; its bytes stay in the file."""

    shape: tuple[int, ...]
    stride: tuple[int, ...]
    offset: int
    storage: StorageRecord

    @property
    def dtype(self) -> torch.dtype:
        return self.storage.dtype

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.numel * self.dtype.itemsize

    def span(self) -> int:
        """Elements of the storage this view reaches (offset + furthest element + 1)."""
        if self.numel == 0:
            return self.offset
        return self.offset + sum((size - 1) * step for size, step in zip(self.shape, self.stride, strict=True)) + 1


class ScriptObjectRecord:
    """An object of a TorchScript class, recorded with its attributes and never resolved."""

    qualified_name = "__torch__"

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def attributes(self) -> dict[str, Any]:
        """The object's attributes (TorchScript stores them as a dict or a tuple of its values)."""
        state = getattr(self, "state", None)
        return dict(state) if isinstance(state, dict) else {}


class Opaque:
    """The value of an allowed global this reader does not interpret (sparse, quantized tensors...)."""

    def __init__(self, name: str, *args: Any, **kwargs: Any) -> None:
        self.name = name

    def __setstate__(self, state: Any) -> None:
        self.state = state


class _DtypeMarker:
    def __init__(self, dtype: torch.dtype) -> None:
        self.dtype = dtype


def _rebuild_parameter(data: Any, *_: Any) -> Any:
    return data


def _rebuild_from_type_v2(func: Callable[..., Any], new_type: Any, args: Any, state: Any) -> Any:
    return func(*args)


def _sized(value: Any, what: str) -> int:
    if not isinstance(value, str | bytes | bytearray | tuple | list | dict | set | frozenset):
        raise pickle.UnpicklingError(f"{what} of a {type(value).__name__} is refused")
    return len(value)


_OPAQUE_TORCH = {
    "torch._utils._rebuild_qtensor",
    "torch._utils._rebuild_sparse_tensor",
    "torch._utils._rebuild_nested_tensor",
    "torch._utils._rebuild_meta_tensor_no_storage",
    "torch._utils._rebuild_wrapper_subclass",
    "torch._utils._rebuild_device_tensor_from_numpy",
    "torch._utils._rebuild_device_tensor_from_cpu_tensor",
    "collections.Counter",
    "torch.Tensor",
}
_TEXT_CODECS = {"latin1", "latin-1", "utf-8", "utf8", "ascii"}


class _Allowed:
    """The allowed callables of one read, each charging what it materialises to the read's budget."""

    def __init__(self, budget: Budget) -> None:
        self.budget = budget

    def functions(self) -> dict[str, Any]:
        return {
            "collections.OrderedDict": self.ordered_dict,
            "builtins.set": self.set,
            "builtins.frozenset": self.frozenset,
            "builtins.bytearray": self.bytearray,
            "builtins.complex": self.complex,
            "_codecs.encode": self.encode,
            "torch.Size": self.size,
            "torch.device": self.device,
            "torch._utils._rebuild_tensor": self.tensor,
            "torch._utils._rebuild_tensor_v2": self.tensor,
            "torch._utils._rebuild_tensor_v3": self.tensor,
            "torch._utils._rebuild_parameter": _rebuild_parameter,
            "torch._utils._rebuild_parameter_with_state": _rebuild_parameter,
            "torch._tensor._rebuild_from_type_v2": _rebuild_from_type_v2,
            "torch.nn.parameter.Parameter": _rebuild_parameter,
        }

    def _charge(self, items: Any, per_item: int, what: str) -> int:
        count = _sized(items, what)
        self.budget.charge_memory(256 + per_item * count, what)
        return count

    def ordered_dict(self, *args: Any) -> OrderedDict[Any, Any]:
        if args:
            self._charge(args[0], 128, "an OrderedDict")
        return OrderedDict(*args[:1])

    def set(self, *args: Any) -> set[Any]:
        if args:
            self._charge(args[0], 64, "a set")
        return set(*args[:1])

    def frozenset(self, *args: Any) -> frozenset[Any]:
        if args:
            self._charge(args[0], 64, "a frozenset")
        return frozenset(*args[:1])

    def bytearray(self, *args: Any) -> bytearray:
        if not args:
            return bytearray()
        source = args[0]
        size = source if type(source) is int else _sized(source, "a bytearray")
        self.budget.charge_memory(64 + max(size, 0), f"bytearray({size})")
        return bytearray(*args[:3])

    def complex(self, *args: Any) -> complex:
        if not all(type(value) in (int, float) for value in args):
            raise pickle.UnpicklingError("complex() of anything but numbers is refused")
        return complex(*args[:2])

    def encode(self, text: Any, encoding: Any = "utf-8", *_: Any) -> bytes:
        if type(text) is not str or encoding not in _TEXT_CODECS:
            raise pickle.UnpicklingError(f"_codecs.encode of a {type(text).__name__} as {encoding!r:.40} is refused")
        self.budget.charge_memory(64 + 4 * len(text), "_codecs.encode")
        return codecs.encode(text, encoding)

    def size(self, *args: Any) -> tuple[Any, ...]:
        if args:
            self._charge(args[0], 8, "a torch.Size")
        return tuple(*args[:1])

    def device(self, *args: Any) -> str:
        if not all(type(value) in (str, int) for value in args) or sum(map(len, map(str, args))) > 64:
            raise pickle.UnpicklingError("torch.device of anything but a short name and index is refused")
        return ":".join(map(str, args))

    def tensor(self, storage: StorageRecord, offset: int, size: Any, stride: Any, *_: Any) -> TensorRecord:
        if not isinstance(storage, StorageRecord):
            raise pickle.UnpicklingError("a tensor refers to something that is not a storage")
        self.budget.charge_tensors()
        if type(size) is not tuple or type(stride) is not tuple:
            self._charge(size, 16, "a tensor's size")
            self._charge(stride, 16, "a tensor's stride")
        return TensorRecord(tuple(size), tuple(stride), offset, storage)

    def opaque(self, name: str) -> Callable[..., Opaque]:
        def build(*args: Any, **kwargs: Any) -> Opaque:
            self.budget.charge_memory(256, name)
            return Opaque(name, *args, **kwargs)

        return build


def _storage_dtype(name: str) -> torch.dtype | None:
    module, _, attr = name.rpartition(".")
    if module in ("torch", "torch.cuda"):
        return STORAGE_DTYPES.get(attr)
    return None


class RecordingUnpickler(pickle.Unpickler):
    """Unpickles a torch pickle into records; refuses every global outside the weights-only set."""

    def __init__(self, file: IO[bytes], budget: Budget, *, script_classes: bool = False) -> None:
        super().__init__(file, encoding="latin1")
        self.script_classes = script_classes
        self.budget = budget
        self._allowed = _Allowed(budget)
        self._functions = self._allowed.functions()
        self._classes: dict[str, type[ScriptObjectRecord]] = {}
        self.storages: dict[str, StorageRecord] = {}

    def find_class(self, module: str, name: str) -> Any:
        qualified = f"{module}.{name}"
        self.budget.check_time()
        if qualified in self._functions:
            return self._functions[qualified]
        dtype = _storage_dtype(qualified)
        if dtype is not None:
            return _DtypeMarker(dtype)
        if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
            return getattr(torch, name)
        if qualified in _OPAQUE_TORCH:
            return self._allowed.opaque(qualified)
        if self.script_classes and module.startswith("__torch__"):
            return self._script_class(qualified)
        raise UnsafePickleError(qualified)

    def _script_class(self, qualified: str) -> type[ScriptObjectRecord]:
        if qualified not in self._classes:
            self.budget.charge_memory(4096, "a TorchScript class")
            self._classes[qualified] = type("ScriptObject", (ScriptObjectRecord,), {"qualified_name": qualified})
        return self._classes[qualified]

    def persistent_load(self, pid: Any) -> Any:
        if type(pid) is tuple and len(pid) >= 5:
            tag, storage_type, key, _location, numel = pid[:5]
            if tag == "storage" and type(storage_type) is _DtypeMarker and type(key) is str and type(numel) is int:
                record = self.storages.get(key)
                if record is None:
                    self.budget.charge_memory(256 + len(key), "a storage record")
                    record = self.storages[key] = StorageRecord(key, storage_type.dtype, numel)
                return record
        return self._storage(pid)

    def _storage(self, pid: Any) -> StorageRecord:
        """The general case of ``persistent_load``, for ids other than the ``("storage", FloatStorage, key,
        location, numel, ...)`` that torch writes."""
        if not isinstance(pid, tuple) or not pid or pid[0] != "storage":
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r:.80}")
        storage_type, key, _location, numel = pid[1:5]
        if isinstance(storage_type, _DtypeMarker):
            dtype = storage_type.dtype
        elif isinstance(storage_type, torch.dtype):
            dtype = storage_type
        else:
            raise pickle.UnpicklingError(f"storage of unknown type {storage_type!r:.80}")
        if type(key) not in (str, int) or type(numel) is not int:
            raise pickle.UnpicklingError("a storage key must be a string and its size an integer")
        key = str(key)
        record = self.storages.get(key)
        if record is None:
            self.budget.charge_memory(256 + len(key), "a storage record")
            record = StorageRecord(key, dtype, numel)
            self.storages[key] = record
        return record


def read_pickle(
    data: bytes, budget: Budget, *, script_classes: bool = False, start: int = 0
) -> tuple[Any, dict[str, StorageRecord], int]:
    """Unpickle the pickle at ``data[start:]`` into records, after checking its cost against ``budget``;
    returns the object, the storages it refers to and the offset just after the pickle."""
    stop = scan_pickle(data, budget, start)
    stream = io.BytesIO(data)
    stream.seek(start)
    unpickler = RecordingUnpickler(stream, budget, script_classes=script_classes)
    return unpickler.load(), unpickler.storages, stop
