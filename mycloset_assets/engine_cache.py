"""A content-addressed cache of named numpy arrays: bounded in memory (LRU by bytes), optionally on disk.

Keys are sha256 digests of what a result was computed from (``content_key``): image pixels, model file
hashes, configuration. Nothing is keyed by a type, a path or an object id, so a changed pixel or another
model version is a different key, and the same content reached by another route is the same key.

Values are flat ``{name: ndarray}`` mappings, stored read-only so a caller cannot change what the cache
holds. The disk layer writes one uncompressed NPZ per key (``DIR/ab/abcdef….npz``), atomically (temporary
file, then rename), and reads it back with ``allow_pickle=False``: no pickle is ever written or loaded. A
damaged file is a miss and is removed.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
import zipfile
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_MAX_BYTES = 512 * 2**20
_HEX = frozenset("0123456789abcdef")

Arrays = Mapping[str, np.ndarray]


class CacheError(ValueError):
    """A value or key the cache cannot store."""


def array_digest(array: np.ndarray) -> str:
    """Hex sha256 of an array's dtype, shape and C-order bytes (equal arrays, equal digests)."""
    array = np.asarray(array)
    if array.dtype.hasobject:
        raise CacheError(f"cannot digest an array of Python objects (dtype {array.dtype})")
    digest = hashlib.sha256(f"{array.dtype.str}|{array.shape}|".encode())
    digest.update(np.ascontiguousarray(array).data)
    return digest.hexdigest()


def content_key(**parts: Any) -> str:
    """Hex sha256 of ``parts`` as canonical JSON (sorted keys); values must be JSON data (hash arrays first)."""
    try:
        text = json.dumps(parts, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise CacheError(f"cache key parts must be JSON data (digest arrays with array_digest): {exc}") from exc
    return hashlib.sha256(text.encode()).hexdigest()


def freeze(arrays: Arrays) -> dict[str, np.ndarray]:
    """Read-only C-order copies of ``arrays`` (refusing object arrays, which only a pickle could store)."""
    frozen = {}
    for name, value in arrays.items():
        array = np.array(value, copy=True, order="C")
        if array.dtype.hasobject:
            raise CacheError(f"cannot cache {name!r}: arrays of Python objects would need a pickle")
        array.flags.writeable = False
        frozen[name] = array
    return frozen


def _size(arrays: Arrays) -> int:
    return sum(array.nbytes for array in arrays.values())


@dataclass
class CacheStats:
    """Counts since the cache was made: lookups served from memory or disk, misses, stores, evictions."""

    memory_hits: int = 0
    disk_hits: int = 0
    misses: int = 0
    stores: int = 0
    evictions: int = 0

    @property
    def hits(self) -> int:
        """Lookups answered from either layer."""
        return self.memory_hits + self.disk_hits


class ContentCache:
    """Arrays by content key: an LRU of at most ``max_bytes`` in memory, and ``directory`` on disk when given.

    ``get`` returns the stored read-only arrays (memory first, then disk, promoting a disk hit to memory);
    ``put`` stores copies. A value larger than ``max_bytes`` skips the memory layer. Thread-safe.
    """

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES, directory: str | os.PathLike[str] | None = None) -> None:
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0, got {max_bytes}")
        self.max_bytes = max_bytes
        self.directory = Path(directory) if directory is not None else None
        self.stats = CacheStats()
        self._memory: OrderedDict[str, dict[str, np.ndarray]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    @property
    def memory_bytes(self) -> int:
        """Bytes of the arrays held in memory now."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._memory)

    def __contains__(self, key: str) -> bool:
        path = self._file(key)
        return key in self._memory or (path is not None and path.is_file())

    def get(self, key: str) -> dict[str, np.ndarray] | None:
        """The arrays stored under ``key`` (read-only), or None."""
        _check_key(key)
        with self._lock:
            if key in self._memory:
                self._memory.move_to_end(key)
                self.stats.memory_hits += 1
                return dict(self._memory[key])
        arrays = self._read(key)
        with self._lock:
            if arrays is None:
                self.stats.misses += 1
                return None
            self.stats.disk_hits += 1
            self._remember(key, arrays)
        return dict(arrays)

    def put(self, key: str, arrays: Arrays) -> dict[str, np.ndarray]:
        """Store copies of ``arrays`` under ``key``; returns the stored read-only arrays."""
        _check_key(key)
        frozen = freeze(arrays)
        if self.directory is not None:
            self._write(key, frozen)
        with self._lock:
            self.stats.stores += 1
            self._remember(key, frozen)
        return dict(frozen)

    def clear(self) -> None:
        """Forget the memory layer (the disk layer stays)."""
        with self._lock:
            self._memory.clear()
            self._bytes = 0

    def _remember(self, key: str, arrays: dict[str, np.ndarray]) -> None:
        size = _size(arrays)
        if key in self._memory:
            self._bytes -= _size(self._memory.pop(key))
        if size > self.max_bytes:
            return
        self._memory[key] = arrays
        self._bytes += size
        while self._bytes > self.max_bytes:
            _, evicted = self._memory.popitem(last=False)
            self._bytes -= _size(evicted)
            self.stats.evictions += 1

    def _file(self, key: str) -> Path | None:
        return self.directory / key[:2] / f"{key}.npz" if self.directory is not None else None

    def _read(self, key: str) -> dict[str, np.ndarray] | None:
        path = self._file(key)
        if path is None or not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                return freeze({name: data[name] for name in data.files})
        except (OSError, ValueError, zipfile.BadZipFile, EOFError):
            path.unlink(missing_ok=True)
            return None

    def _write(self, key: str, arrays: dict[str, np.ndarray]) -> None:
        path = self._file(key)
        assert path is not None
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(prefix=f".{key[:16]}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(descriptor, "wb") as stream:
                np.savez(stream, allow_pickle=False, **arrays)
                stream.flush()
                os.fsync(stream.fileno())
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise


def _check_key(key: str) -> None:
    if len(key) != 64 or not set(key) <= _HEX:
        raise CacheError(f"cache keys are hex sha256 digests (content_key(...)), got {key!r}")


_DEFAULT_CACHE = ContentCache()


def default_cache() -> ContentCache:
    """The process-wide memory cache (``DEFAULT_MAX_BYTES``) the engine uses unless given another."""
    return _DEFAULT_CACHE
