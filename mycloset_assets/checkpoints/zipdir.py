"""The directory and stored members of a plain zip archive (the kind ``torch.save`` writes), read in one pass.

``zipfile`` builds an object per member (a millisecond or more for a checkpoint of a few hundred tensors);
:class:`PlainZip` reads the central directory with ``struct`` at once. It accepts only archives it reads exactly
as ``zipfile`` does and raises :class:`NotPlainZip` for anything else, so the reader falls back to ``zipfile``,
whose errors then give the verdict.
"""

from __future__ import annotations

import os
import struct
import zipfile
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path
from typing import Any, BinaryIO


def read_at(handle: BinaryIO, offset: int, length: int) -> bytes:
    """``length`` bytes at ``offset`` (fewer at the end of the file): one system call where the OS has pread,
    and no refill of the handle's buffer."""
    if hasattr(os, "pread"):
        return os.pread(handle.fileno(), length, offset)
    handle.seek(offset)
    return handle.read(length)


@dataclass(frozen=True)
class ZipMembers:
    """What reading a zip checkpoint needs of its archive: member names in directory order, their sizes
    (the last entry of a repeated name wins, as in zipfile) and a way to read one member's bytes."""

    names: list[str]
    sizes: Mapping[str, int]
    read: Callable[[str], bytes]


class NotPlainZip(Exception):
    """The archive holds something the plain reader leaves to zipfile (which then gives the verdict)."""


_END = struct.Struct("<4s4H2LH")
_END64_LOCATOR = struct.Struct("<4sLQL")
_END64 = struct.Struct("<4sQ2H2L4Q")
_CENTRAL = struct.Struct("<4s4B4HL2L5H2L")
_LOCAL = struct.Struct("<4s2B4HL2L2H")
_EXTRA = struct.Struct("<HH")
_ZIP64_TAIL = _END64.size + _END64_LOCATOR.size + _END.size
_MAX_EXTRACT_VERSION = 63
_ZIPFILE_ONLY_FLAGS = 0x01 | 0x20 | 0x40
_ZIP64_EXTRA = 0x0001
_ZIP64_SENTINEL = 0xFFFF_FFFF
_VERSION, _FLAGS, _METHOD, _CRC, _STORED, _FILE_SIZE = 3, 5, 6, 9, 10, 11
_NAME_SIZE, _EXTRA_SIZE, _COMMENT_SIZE, _OFFSET = 12, 13, 14, 18


class PlainZip:
    """The directory and stored members of a plain zip archive (the kind torch.save writes), read in one pass.

    zipfile builds an object per member, a millisecond or more for a checkpoint of a few hundred tensors. This
    reader accepts only what it reads exactly as zipfile does (and as the stricter zipfile of newer Pythons
    does): no archive comment or leading data, one disk, unique ASCII names, no extra field but zip64 sizes, and
    members that are stored, unencrypted, inside their own span and pass their CRC. Anything else raises
    ``NotPlainZip``, at opening or at a member's read.
    """

    def __init__(self, path: Path, size: int) -> None:
        try:
            self._handle = path.open("rb")
        except OSError as exc:
            raise NotPlainZip from exc
        try:
            self._read_directory(size)
        except (OSError, struct.error) as exc:
            self._handle.close()
            raise NotPlainZip from exc
        except NotPlainZip:
            self._handle.close()
            raise

    def __enter__(self) -> PlainZip:
        return self

    def __exit__(self, *_: object) -> None:
        self._handle.close()

    def members(self) -> ZipMembers:
        return ZipMembers(self._names, self._sizes, self._read)

    def _read_exactly(self, offset: int, length: int) -> bytes:
        data = read_at(self._handle, offset, length)
        if len(data) != length:
            raise NotPlainZip
        return data

    def _read_directory(self, size: int) -> None:
        if size < _END.size:
            raise NotPlainZip
        tail_size = min(size, _ZIP64_TAIL)
        tail = self._read_exactly(size - tail_size, tail_size)
        end = tail_size - _END.size
        signature, disk, first_disk, here, count, directory_size, directory_offset, comment = _END.unpack_from(
            tail, end
        )
        if signature != b"PK\x05\x06" or comment or disk or first_disk or here != count:
            raise NotPlainZip
        directory_end = size - _END.size
        if end >= _END64_LOCATOR.size and tail.startswith(b"PK\x06\x07", end - _END64_LOCATOR.size):
            directory_end, count, directory_size, directory_offset = _zip64_end(tail, size)
        if directory_offset + directory_size != directory_end:
            raise NotPlainZip
        self._directory_offset = directory_offset
        self._parse_directory(self._read_exactly(directory_offset, directory_size), count)

    def _parse_directory(self, directory: bytes, count: int) -> None:
        unpack = _CENTRAL.unpack_from
        rows: list[tuple[Any, ...]] = []
        raw_names: list[bytes] = []
        position, end = 0, len(directory)
        while position < end:
            row = unpack(directory, position)
            name_start = position + _CENTRAL.size
            extra_start = name_start + row[_NAME_SIZE]
            rows.append(row)
            raw_names.append(directory[name_start:extra_start])
            position = extra_start + row[_EXTRA_SIZE] + row[_COMMENT_SIZE]
        joined = b"".join(raw_names)
        if (
            position != end
            or len(rows) != count
            or set(map(itemgetter(0), rows)) != {b"PK\x01\x02"}
            or max(map(itemgetter(_VERSION), rows)) > _MAX_EXTRACT_VERSION
            or not joined.isascii()
            or b"\x00" in joined
        ):
            raise NotPlainZip
        if any(map(itemgetter(_EXTRA_SIZE), rows)):
            rows = _with_zip64_fields(directory, rows)
        if any(row[_METHOD] or row[_FLAGS] & _ZIPFILE_ONLY_FLAGS for row in rows) or _rows_overlap(
            rows, self._directory_offset
        ):
            raise NotPlainZip
        self._names = list(map(bytes.decode, raw_names))
        self._sizes = dict(zip(self._names, map(itemgetter(_FILE_SIZE), rows), strict=True))
        self._entries = dict(zip(self._names, zip(rows, raw_names, strict=True), strict=True))
        self._offsets = list(map(itemgetter(_OFFSET), rows))
        if len(self._entries) != count:
            raise NotPlainZip

    def _read(self, name: str) -> bytes:
        row, raw = self._entries[name]
        offset, stored, crc = row[_OFFSET], row[_STORED], row[_CRC]
        if row[_METHOD] or row[_FLAGS] & _ZIPFILE_ONLY_FLAGS or stored != row[_FILE_SIZE]:
            raise NotPlainZip
        limit = min(filter(offset.__lt__, self._offsets), default=self._directory_offset)
        try:
            header = self._read_exactly(offset, _LOCAL.size)
            signature, *_, name_size, extra_size = _LOCAL.unpack(header)
            start = offset + _LOCAL.size + name_size + extra_size
            if (
                signature != b"PK\x03\x04"
                or self._offsets.count(offset) != 1
                or start + stored > limit
                or self._read_exactly(offset + _LOCAL.size, name_size) != raw
            ):
                raise NotPlainZip
            data = self._read_exactly(start, stored)
        except OSError as exc:
            raise NotPlainZip from exc
        if zlib.crc32(data) != crc:
            raise NotPlainZip
        return data


def _rows_overlap(rows: list[tuple[Any, ...]], directory_offset: int) -> bool:
    """Whether two members' byte ranges (local header, name and data) overlap, or one reaches the directory."""
    spans = sorted((row[_OFFSET], row[_OFFSET] + _LOCAL.size + row[_NAME_SIZE] + row[_STORED]) for row in rows)
    ends = [end for _, end in spans]
    return any(map(int.__lt__, [start for start, _ in spans[1:]], ends)) or bool(ends and ends[-1] > directory_offset)


def _zip64_end(tail: bytes, size: int) -> tuple[int, int, int, int]:
    """Where the central directory ends, its entry count, size and offset, from the zip64 end records."""
    if len(tail) != _ZIP64_TAIL:
        raise NotPlainZip
    _, disk, record_offset, disks = _END64_LOCATOR.unpack_from(tail, _END64.size)
    signature, _, _, _, record_disk, first_disk, here, count, directory_size, directory_offset = _END64.unpack(
        tail[: _END64.size]
    )
    if (
        signature != b"PK\x06\x06"
        or disk
        or disks != 1
        or record_offset != size - _ZIP64_TAIL
        or record_disk
        or first_disk
        or here != count
    ):
        raise NotPlainZip
    return record_offset, count, directory_size, directory_offset


def _with_zip64_fields(directory: bytes, rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """The directory rows with sizes and header offsets taken from their zip64 extra fields, the one kind of
    extra field read here."""
    updated, position = [], 0
    for row in rows:
        extra_start = position + _CENTRAL.size + row[_NAME_SIZE]
        position = extra_start + row[_EXTRA_SIZE] + row[_COMMENT_SIZE]
        if not row[_EXTRA_SIZE]:
            updated.append(row)
            continue
        extra = directory[extra_start : extra_start + row[_EXTRA_SIZE]]
        kind, length = _EXTRA.unpack_from(extra)
        if kind != _ZIP64_EXTRA or length != len(extra) - _EXTRA.size or length % 8:
            raise NotPlainZip
        fields = (row[_FILE_SIZE], row[_STORED], row[_OFFSET])
        if sum(value == _ZIP64_SENTINEL for value in fields) != length // 8:
            raise NotPlainZip
        values = iter(struct.unpack_from(f"<{length // 8}Q", extra, _EXTRA.size))
        file_size, stored, offset = (next(values) if value == _ZIP64_SENTINEL else value for value in fields)
        updated.append((*row[:_STORED], stored, file_size, *row[_NAME_SIZE:_OFFSET], offset))
    return updated


_TORCH_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)
_ENCRYPTED = 0x1
_LOCAL_HEADER_SIZE = 30
_CHUNK = 1 << 20


def _check_directory(infos: list[zipfile.ZipInfo], max_members: int) -> None:
    """Refuse what torch (miniz) would read otherwise than zipfile, or what cannot be read once per byte:
    encrypted members, compression other than stored or deflate, and directory rows whose byte ranges
    overlap (one member listed under several rows)."""
    if len(infos) > max_members:
        raise ValueError(f"the zip directory lists {len(infos)} members, beyond the bound of {max_members}")
    for info in infos:
        if info.flag_bits & _ENCRYPTED:
            raise ValueError(f"the member {info.filename} is encrypted, which torch cannot read")
        if info.compress_type not in _TORCH_METHODS:
            raise ValueError(
                f"the member {info.filename} uses zip compression method {info.compress_type}, which torch "
                "cannot read (only stored and deflate)"
            )
    spans = sorted(
        (info.header_offset, info.header_offset + _LOCAL_HEADER_SIZE + len(info.orig_filename) + info.compress_size)
        for info in infos
    )
    for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
        if start < end:
            raise ValueError("two rows of the zip directory share bytes (one member listed several times)")


def strict_zipfile_members(archive: zipfile.ZipFile, max_members: int, max_member_bytes: int) -> ZipMembers:
    """The members of ``archive`` as the reader uses them, after ``_check_directory``; a member is read
    whole only up to ``max_member_bytes`` (decompressed), whatever its directory row claims."""
    infos = archive.infolist()
    _check_directory(infos, max_members)

    def read(name: str) -> bytes:
        with archive.open(name) as stream:
            data = stream.read(max_member_bytes + 1)
        if len(data) > max_member_bytes:
            raise ValueError(f"the member {name} expands beyond {max_member_bytes} bytes")
        return data

    return ZipMembers(archive.namelist(), {info.filename: info.file_size for info in infos}, read)


def verify_members(path: Path, max_members: int, charge_inflated: Callable[[int], None]) -> str | None:
    """Check every member's CRC, reading each byte range of the file once; returns the first member that
    fails, else None. ``charge_inflated`` is called with the bytes decompressed from compressed members
    (it raises to stop). Raises ValueError for a directory ``_check_directory`` refuses and zipfile's own
    errors for an unreadable archive."""
    with zipfile.ZipFile(path) as archive:
        infos = archive.infolist()
        _check_directory(infos, max_members)
        for info in infos:
            try:
                with archive.open(info) as stream:
                    while chunk := stream.read(_CHUNK):
                        if info.compress_type != zipfile.ZIP_STORED:
                            charge_inflated(len(chunk))
            except zipfile.BadZipFile as exc:
                if "CRC" in str(exc):
                    return info.filename
                raise
    return None
