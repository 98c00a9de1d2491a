"""The header reader's fast paths: each gives exactly what the reference path gives, or leaves the file to it."""

from __future__ import annotations

import gc
import io
import pickle
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import pytest
import torch

from mycloset_assets.checkpoints import analyze, reader, zipdir
from mycloset_assets.checkpoints.bounds import Budget
from mycloset_assets.checkpoints.errors import CorruptCheckpointError
from mycloset_assets.checkpoints.pickles import StorageRecord, TensorRecord


def _state() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return {
        "conv.weight": torch.randn(4, 3, 3, 3, generator=generator),
        "conv.bias": torch.randn(4, generator=generator),
        "bn.num_batches_tracked": torch.tensor(3),
    }


def _saved(path: Path, obj: Any = None) -> Path:
    torch.save(_state() if obj is None else obj, path)
    return path


def _outcome(read: Any, path: Path) -> tuple[Any, ...]:
    try:
        header = read(path, path.stat().st_size, Budget(path.stat().st_size))
    except Exception as exc:  # noqa: BLE001 - the outcome compared is whatever the read ends with
        return type(exc), str(exc), getattr(exc, "container", None)
    return header.container, list(header.tensors.items()), header.wrapper, header.metadata, header.storages


def _plain_members(path: Path) -> dict[str, bytes]:
    with zipdir.PlainZip(path, path.stat().st_size) as plain:
        members = plain.members()
        return {name: members.read(name) for name in members.names}


def _rewritten(source: Path, path: Path, variant: str) -> Path:
    """``source``'s members written again by zipfile, with one unusual feature."""
    buffer = io.BytesIO()
    compression = zipfile.ZIP_DEFLATED if variant == "deflated" else zipfile.ZIP_STORED
    with zipfile.ZipFile(source) as archive, zipfile.ZipFile(buffer, "w", compression) as out:
        for info in archive.infolist():
            data = archive.read(info)
            name = info.filename.replace("byteorder", "byteördër") if variant == "non_ascii_name" else info.filename
            member = zipfile.ZipInfo(name)
            member.compress_type = compression
            if variant == "extra_field":
                member.extra = b"\xfe\xca\x04\x00abcd"
            out.writestr(member, data)
            if variant == "duplicate_name" and name.endswith("/data/0"):
                with pytest.warns(UserWarning, match="Duplicate name"):
                    out.writestr(zipfile.ZipInfo(name), data[:4])
        if variant == "comment":
            out.comment = b"saved by hand"
    raw = buffer.getvalue()
    path.write_bytes(b"\0" * 64 + raw if variant == "leading_bytes" else raw)
    return path


def test_plain_reader_reads_what_torch_save_writes_as_zipfile_does(tmp_path):
    path = _saved(tmp_path / "model.pth")
    with zipfile.ZipFile(path) as archive:
        assert _plain_members(path) == {name: archive.read(name) for name in archive.namelist()}
    header = reader.read_header(path)
    assert _outcome(reader._read_zip, path) == _outcome(reader._read_zipfile, path)
    assert header.tensors["conv.weight"] == TensorRecord(
        (4, 3, 3, 3), (27, 9, 3, 1), 0, StorageRecord("0", torch.float32, 108)
    )


@pytest.mark.parametrize("writer", ["torch", "zipfile"])
def test_damaged_archives_read_exactly_as_through_zipfile(tmp_path, writer):
    path = _saved(tmp_path / "model.pth")
    if writer == "zipfile":
        path = _rewritten(path, tmp_path / "rewritten.pth", "plain")
    data = path.read_bytes()
    with zipfile.ZipFile(path) as archive:
        directory = archive.start_dir
        first = archive.infolist()[0].header_offset
    positions = [*range(directory, len(data)), *range(first, first + 120)]
    damaged = [bytes(data[:p]) + bytes([data[p] ^ flip]) + data[p + 1 :] for p in positions for flip in (0x01, 0xFF)]
    damaged += [data[:cut] for cut in range(len(data) - 150, len(data))]
    accepted = 0
    mutated = tmp_path / "mutated.pth"
    for variant in damaged:
        mutated.write_bytes(variant)
        assert _outcome(reader._read_zip, mutated) == _outcome(reader._read_zipfile, mutated)
        try:
            _plain_members(mutated)
            accepted += 1
        except zipdir.NotPlainZip:
            pass
    assert 0 < accepted < len(damaged), "both the plain reader and the zipfile fallback were exercised"


@pytest.mark.parametrize(
    "variant", ["deflated", "comment", "leading_bytes", "extra_field", "duplicate_name", "non_ascii_name"]
)
def test_unusual_archives_are_left_to_zipfile(tmp_path, variant):
    source = _saved(tmp_path / "model.pth")
    path = _rewritten(source, tmp_path / f"{variant}.pth", variant)
    with pytest.raises(zipdir.NotPlainZip):
        _plain_members(path)
    outcome = _outcome(reader._read_zip, path)
    assert outcome == _outcome(reader._read_zipfile, path)
    if variant == "duplicate_name":
        assert outcome[0] is CorruptCheckpointError
        assert outcome[1].startswith("the member model/data/0 is listed 2 times: zipfile reads the last copy")
    else:
        assert outcome[1] == list(reader.read_header(source).tensors.items())


def test_damaged_data_pkl_fails_its_crc_check_as_before(tmp_path):
    path = _saved(tmp_path / "model.pth")
    data = bytearray(path.read_bytes())
    data[data.index(b"conv.bias")] ^= 0x20
    path.write_bytes(bytes(data))
    report = analyze(path, verify=False)
    assert (report.verdict, report.container) == ("corrupt", "torch_zip")
    assert report.reason == "data.pkl cannot be read: Bad CRC-32 for file 'model/data.pkl'; download the file again"


class _Storage:
    def __init__(self, numel: int) -> None:
        self.numel = numel


class _View:
    def __init__(self, storage: _Storage, offset: Any, shape: tuple[Any, ...], stride: tuple[Any, ...]) -> None:
        self.args = (storage, offset, shape, stride, False, OrderedDict())

    def __reduce__(self) -> tuple[Any, ...]:
        return torch._utils._rebuild_tensor_v2, self.args


class _Pickler(pickle.Pickler):
    def persistent_id(self, obj: Any) -> Any:
        return ("storage", torch.FloatStorage, "0", "cpu", obj.numel) if isinstance(obj, _Storage) else None


def _views_file(path: Path, views: dict[str, tuple[Any, ...]], numel: int = 6) -> Path:
    """A torch zip archive whose tensors are the given (offset, shape, stride) views of one storage."""
    storage = _Storage(numel)
    buffer = io.BytesIO()
    _Pickler(buffer, protocol=2).dump(OrderedDict((key, _View(storage, *view)) for key, view in views.items()))
    with zipfile.ZipFile(path, "w") as out:
        out.writestr("archive/data.pkl", buffer.getvalue())
        out.writestr("archive/byteorder", "little")
        out.writestr("archive/data/0", bytes(4 * numel))
        out.writestr("archive/version", "3\n")
    return path


@pytest.mark.parametrize(
    ("view", "reason"),
    [
        ((0, (2, 3), (3, 1)), None),
        ((0, (3, 2), (1, 3)), None),
        ((1, (2, 2), (3, 1)), None),
        ((6, (0, 5), (5, 1)), None),
        ((5, (), ()), None),
        ((1, (2, 3), (3, 1)), "tensor w reaches past the end of its storage (7 > 6)"),
        ((0, (2, 3), (3, -1)), "tensor w has a negative size or offset"),
        ((0, (2, 3), (3,)), "tensor w has a negative size or offset"),
        ((0, (2, 3.0), (3, 1)), "tensor w has a negative size or offset"),
        ((-1, (2,), (1,)), "tensor w has a negative size or offset"),
    ],
)
def test_views_are_checked_against_their_storage(tmp_path, view, reason):
    path = _views_file(tmp_path / "views.pth", {"w": view})
    with zipfile.ZipFile(path) as archive:
        assert _plain_members(path) == {name: archive.read(name) for name in archive.namelist()}
    report = analyze(path, verify=False)
    if reason is None:
        offset, shape, stride = view
        assert reader.read_header(path).tensors == {
            "w": TensorRecord(shape, stride, offset, StorageRecord("0", torch.float32, 6))
        }
        assert report.verdict == "unknown"
    else:
        assert (report.verdict, report.container, report.reason) == ("corrupt", "torch_zip", reason)


def test_the_first_bad_view_is_the_one_named(tmp_path):
    views = {"a": (0, (2, 3), (3, 1)), "b": (0, (4, 2), (2, 1)), "c": (0, (2,), (-1,))}
    report = analyze(_views_file(tmp_path / "views.pth", views), verify=False)
    assert report.reason == "tensor b reaches past the end of its storage (8 > 6)"


def test_tensors_under_keys_that_are_not_strings_are_left_out(tmp_path):
    weights = reader.read_header(_saved(tmp_path / "model.pth", {0: torch.zeros(2), "b": torch.ones(3)})).tensors
    assert list(weights) == ["b"]
    assert [t.shape for t in weights.values()] == [(3,)]


def test_collector_is_held_off_during_a_read_and_restored(tmp_path):
    path = _saved(tmp_path / "many.pth", {f"layer{i}.weight": torch.zeros(2) for i in range(300)})
    collections: list[str] = []

    def record(phase: str, _: dict[str, int]) -> None:
        collections.append(phase)

    gc.callbacks.append(record)
    try:
        reader._read_header(path)
        unpaused = len(collections)
        collections.clear()
        assert len(reader.read_header(path).tensors) == 300
        assert unpaused > 0 and collections == []
        assert gc.isenabled()
        with pytest.raises(CorruptCheckpointError):
            reader.read_header(_views_file(tmp_path / "bad.pth", {"w": (0, (9,), (1,))}))
        assert gc.isenabled()
        gc.disable()
        reader.read_header(path)
        assert not gc.isenabled()
    finally:
        gc.enable()
        gc.callbacks.remove(record)


def test_every_cut_through_a_pickle_reads_as_truncated_so_the_window_grows():
    """The legacy reader reads pickles in growing windows: a window ending anywhere inside an opcode (a BINGET's
    index byte, a BINFLOAT's 8 bytes) must read as truncated, never as a malformed stream."""
    from mycloset_assets.checkpoints.bounds import DEFAULT_BOUNDS
    from mycloset_assets.checkpoints.pickle_scan import PickleTruncatedError, scan_pickle

    shared = [1.5, "meta"]
    value = OrderedDict(a=shared, b=shared, c=(2.25, 3 * 10**9, b"\x00" * 40), d={"k": [shared] * 3})
    data = pickle.dumps(value, protocol=2)
    assert scan_pickle(data, Budget(len(data), DEFAULT_BOUNDS)) == len(data)
    for cut in range(1, len(data)):
        with pytest.raises(PickleTruncatedError):
            scan_pickle(data[:cut], Budget(len(data), DEFAULT_BOUNDS))
