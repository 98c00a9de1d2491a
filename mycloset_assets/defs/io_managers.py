"""Storage in open formats only: PNG, JSON, NPZ and safetensors files under one base folder, never pickles.

The format follows the value's type:

- PNG: a uint8 numpy array, H x W (mask, label map), H x W x 3 (RGB) or H x W x 4 (RGBA); loads back as the
  same array.
- NPZ: a non-empty dict of numpy arrays (no object arrays); loads back as a dict of arrays.
- safetensors: a non-empty dict of torch tensors (weights); loads back as :class:`Weights`, a dict of tensors
  whose ``metadata`` holds the file header's strings (a canonical copy's card travels there).
- JSON: any other dict, a list, or a dataclass (nested numpy arrays and scalars become lists and numbers,
  paths strings); loads back as dicts and lists.

Anything else (a module, a bare tensor, a string, ``None``, an object) is refused with
:class:`UnsupportedValueError`. One file per asset and partition: ``BASE/<asset key path>/<partition>.<ext>``
(``BASE/<asset key path>.<ext>`` unpartitioned). Partition keys are percent-encoded into safe file names and a
pair key ``person|garment`` becomes ``<person>/<garment>``. A step that covers one partition hands over and
gets one value; a step covering several (a single-run backfill) or an unpartitioned step reading a
partitioned asset works with a dict keyed by partition. ``BASE`` is a local folder, a ``file://`` URL or any
other ``fsspec`` location (``s3://...``, ``gs://...``, ``memory://...``, with its package installed). Local
files are written atomically (a temporary file beside the target, renamed over it); elsewhere the value is
written to a local temporary file and uploaded in one ``put_file``, so readers never see a partial object
(object stores have no rename) and safetensors, whose writer needs a file name, works everywhere.
"""

import dataclasses
import io
import json
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import quote

import dagster as dg
import numpy as np
import torch
from PIL import Image
from pydantic import Field
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import load_file, save_file
from upath import UPath

from ..vision.images import encode_png

FORMATS = ("png", "json", "npz", "safetensors")
PAIR_SEPARATOR = "|"
_SAFE_CHARACTERS = "+=@,"
_LOCAL_PROTOCOLS = ("", "file", "local")


class Weights(dict[str, torch.Tensor]):
    """A dict of tensors plus string ``metadata`` written into (and read back from) the safetensors header."""

    def __init__(
        self, tensors: Mapping[str, torch.Tensor] | None = None, metadata: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(tensors or {})
        self.metadata = dict(metadata or {})


class UnsupportedValueError(TypeError):
    """A value the IO manager will not store (it writes open formats only and never pickles)."""


class PartitionValuesError(ValueError):
    """A step over several partitions did not hand over exactly one value per partition."""


def _is_image(value: Any) -> bool:
    return isinstance(value, np.ndarray) and (value.ndim == 2 or (value.ndim == 3 and value.shape[2] in (3, 4)))


def format_of(value: Any) -> str:
    """The file format ``value`` is stored in (``png``, ``json``, ``npz``, ``safetensors``), or raise."""
    if isinstance(value, np.ndarray):
        if value.dtype == np.uint8 and _is_image(value) and value.size:
            return "png"
        raise UnsupportedValueError(
            f"a numpy array is stored as PNG only when it is a uint8 H x W, H x W x 3 or H x W x 4 image; got "
            f"{value.dtype} {value.shape} (convert masks to uint8 0/255, or return a dict of arrays for NPZ)"
        )
    if isinstance(value, Mapping) and value:
        values = list(value.values())
        if all(isinstance(item, np.ndarray) for item in values):
            _check_keys(value, "NPZ")
            objects = [key for key, item in value.items() if item.dtype == object]
            if objects:
                raise UnsupportedValueError(f"NPZ arrays cannot hold Python objects (would need pickle): {objects}")
            return "npz"
        if all(isinstance(item, torch.Tensor) for item in values):
            _check_keys(value, "safetensors")
            metadata = getattr(value, "metadata", {})
            if not all(isinstance(key, str) and isinstance(item, str) for key, item in metadata.items()):
                raise UnsupportedValueError("safetensors header metadata must map strings to strings")
            return "safetensors"
        if any(isinstance(item, torch.Tensor) for item in values):
            raise UnsupportedValueError("a dict holding torch tensors must hold only tensors (stored as safetensors)")
    if isinstance(value, Mapping | list | tuple) or (dataclasses.is_dataclass(value) and not isinstance(value, type)):
        return "json"
    hint = " (store its state_dict())" if isinstance(value, torch.nn.Module) else ""
    hint = " (wrap it in a dict of tensors)" if isinstance(value, torch.Tensor) else hint
    raise UnsupportedValueError(
        f"cannot store a {type(value).__module__}.{type(value).__qualname__}{hint}: the IO manager writes PNG "
        "images, JSON dicts/lists/dataclasses, NPZ dicts of arrays and safetensors dicts of tensors, never pickles"
    )


def _check_keys(value: Mapping[Any, Any], kind: str) -> None:
    bad = [key for key in value if not isinstance(key, str)]
    if bad:
        raise UnsupportedValueError(f"{kind} keys must be strings, got {bad[:3]}")


def _json_default(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            raise UnsupportedValueError("a numpy object array cannot be written as JSON")
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    raise UnsupportedValueError(f"a {type(value).__qualname__} cannot be written as JSON")


def to_json(value: Any) -> str:
    """The JSON text of a dict, list or dataclass (numpy arrays as lists); NaN and infinity are refused."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    try:
        return json.dumps(value, default=_json_default, indent=1, allow_nan=False)
    except ValueError as error:
        raise UnsupportedValueError(f"not valid JSON: {error}") from error
    except TypeError as error:
        raise UnsupportedValueError(f"not JSON-serialisable: {error}") from error


def _write_png(value: np.ndarray, path: Path) -> None:
    path.write_bytes(encode_png(value))


def _write_json(value: Any, path: Path) -> None:
    path.write_text(to_json(value) + "\n")


def _write_npz(value: Mapping[str, np.ndarray], path: Path) -> None:
    with path.open("wb") as stream:
        np.savez(stream, **value)


def _write_safetensors(value: Mapping[str, torch.Tensor], path: Path) -> None:
    tensors = {key: tensor.detach().cpu().contiguous() for key, tensor in value.items()}
    save_file(tensors, str(path), metadata=getattr(value, "metadata", None) or None)


_WRITERS: dict[str, Callable[[Any, Path], None]] = {
    "png": _write_png,
    "json": _write_json,
    "npz": _write_npz,
    "safetensors": _write_safetensors,
}


def _header_metadata(stream: BinaryIO) -> dict[str, str]:
    """The ``__metadata__`` strings of a safetensors header (8-byte little-endian length, then JSON)."""
    length = int.from_bytes(stream.read(8), "little")
    return json.loads(stream.read(length)).get("__metadata__", {})


def _decode(data: bytes, fmt: str) -> Any:
    if fmt == "png":
        with Image.open(io.BytesIO(data)) as image:
            return np.array(image)
    if fmt == "json":
        return json.loads(data)
    if fmt == "npz":
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    return Weights(load_safetensors_bytes(data), _header_metadata(io.BytesIO(data)))


def _is_local(path: UPath) -> bool:
    return path.protocol in _LOCAL_PROTOCOLS


def write_value(value: Any, stem: UPath) -> UPath:
    """Write ``value`` to ``stem`` + its format's suffix, removing the asset's files in other formats."""
    fmt = format_of(value)
    target = stem.with_name(f"{stem.name}.{fmt}")
    target.parent.mkdir(parents=True, exist_ok=True)
    local = _is_local(target)
    handle, temporary = tempfile.mkstemp(
        prefix=f".{target.name}.", suffix=".tmp", dir=target.parent.path if local else None
    )
    os.close(handle)
    try:
        _WRITERS[fmt](value, Path(temporary))
        if local:
            os.replace(temporary, target.path)
        else:
            target.fs.put_file(temporary, target.path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    for other in FORMATS:
        if other != fmt:
            sibling = stem.with_name(f"{stem.name}.{other}")
            if sibling.exists():
                sibling.unlink()
    return target


def stored_path(stem: UPath) -> UPath:
    """The one file stored for ``stem`` (whatever its format); FileNotFoundError when there is none."""
    found = [candidate for fmt in FORMATS if (candidate := stem.with_name(f"{stem.name}.{fmt}")).exists()]
    if not found:
        raise FileNotFoundError(f"nothing stored at {stem} (.{', .'.join(FORMATS)})")
    if len(found) > 1:
        raise FileExistsError(f"several formats stored for {stem}: {[path.name for path in found]}")
    return found[0]


def read_value(stem: UPath) -> Any:
    """Load what :func:`write_value` wrote for ``stem``: the same type of value (dataclasses come back as dicts)."""
    path = stored_path(stem)
    fmt = path.suffix[1:]
    if fmt == "safetensors" and _is_local(path):
        with path.open("rb") as stream:
            metadata = _header_metadata(stream)
        return Weights(load_file(path.path), metadata)
    return _decode(path.read_bytes(), fmt)


def _segment(text: str) -> str:
    if not text:
        raise ValueError("partition keys and their pair parts must not be empty")
    encoded = quote(text, safe=_SAFE_CHARACTERS)
    return "%2E" + encoded[1:] if encoded.startswith(".") else encoded


def partition_parts(partition_key: str) -> tuple[str, ...]:
    """Safe path segments of a partition key: each ``|``-separated part percent-encoded (``/``, ``..``,
    control characters, a leading dot), so two keys never share a path and none escapes its folder."""
    return tuple(_segment(part) for part in partition_key.split(PAIR_SEPARATOR))


class OpenFormatStorage(dg.IOManager):
    """The IO manager itself: stores every asset output under ``base`` in an open format (see the module)."""

    def __init__(self, base: str | os.PathLike[str]) -> None:
        self.base = UPath(base)

    def _asset_stem(self, context: dg.InputContext | dg.OutputContext) -> UPath:
        if context.has_asset_key:
            return self.base.joinpath(*context.asset_key.path)
        return self.base.joinpath("runs", *context.get_identifier())

    def stem(self, asset_key: dg.AssetKey, partition_key: str | None = None) -> UPath:
        """Where an asset (partition) is stored, without the format suffix."""
        stem = self.base.joinpath(*asset_key.path)
        return stem if partition_key is None else stem.joinpath(*partition_parts(partition_key))

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        if not (context.has_asset_key and context.has_asset_partitions):
            path = write_value(obj, self._asset_stem(context))
            context.add_output_metadata(_metadata([path]))
            return
        keys = list(context.asset_partition_keys)
        if context.has_partition_key and len(keys) == 1:
            values = {keys[0]: obj}
        else:
            values = _per_partition(obj, keys, context.asset_key)
        for value in values.values():
            format_of(value)
        paths = [write_value(values[key], self.stem(context.asset_key, key)) for key in keys]
        context.add_output_metadata(_metadata(paths))

    def load_input(self, context: dg.InputContext) -> Any:
        if not (context.has_asset_key and context.has_asset_partitions):
            return read_value(self._asset_stem(context))
        keys = list(context.asset_partition_keys)
        if context.has_partition_key and len(keys) == 1:
            return read_value(self.stem(context.asset_key, keys[0]))
        allow_missing = bool((context.definition_metadata or {}).get("allow_missing_partitions", False))
        values = {}
        for key in keys:
            try:
                values[key] = read_value(self.stem(context.asset_key, key))
            except FileNotFoundError:
                if not allow_missing:
                    raise
                context.log.warning(f"{context.asset_key.to_user_string()} partition {key!r} is not stored; skipped")
        return values


def _per_partition(obj: Any, keys: Sequence[str], asset_key: dg.AssetKey) -> Mapping[str, Any]:
    if isinstance(obj, Mapping) and set(obj) == set(keys):
        return obj
    got = f"keys {sorted(map(str, obj))[:5]}" if isinstance(obj, Mapping) else f"a {type(obj).__qualname__}"
    shown = ", ".join(sorted(keys)[:5]) + (", ..." if len(keys) > 5 else "")
    raise PartitionValuesError(
        f"{asset_key.to_user_string()} ran for {len(keys)} partitions ({shown}), so it must return a dict with "
        f"exactly one value per partition key; got {got}"
    )


def _metadata(paths: Sequence[UPath]) -> dict[str, Any]:
    sizes = [path.stat().st_size for path in paths]
    formats = sorted({path.suffix[1:] for path in paths})
    metadata: dict[str, Any] = {"format": ", ".join(formats), "stored_bytes": sum(sizes)}
    if len(paths) == 1:
        metadata["path"] = dg.MetadataValue.path(str(paths[0]))
    else:
        metadata["files"] = len(paths)
    return metadata


class OpenFormatIOManager(dg.ConfigurableIOManagerFactory):
    """Stores asset values as PNG, JSON, NPZ or safetensors files under ``base_dir`` (never pickles).

    ``base_dir`` defaults to the Dagster instance's storage folder (``$DAGSTER_HOME/storage``); any
    ``fsspec`` URL works too (``s3://bucket/prefix`` with ``s3fs`` installed).
    """

    base_dir: str | None = Field(
        default=None, description="Folder or fsspec URL for the stored files; default: the instance's storage folder."
    )

    def create_io_manager(self, context: dg.InitResourceContext) -> OpenFormatStorage:
        if self.base_dir:
            return OpenFormatStorage(self.base_dir)
        if context.instance is None:
            raise dg.DagsterInvariantViolationError("OpenFormatIOManager needs base_dir when run without an instance")
        return OpenFormatStorage(context.instance.storage_directory())
