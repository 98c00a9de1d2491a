"""Impostors, broken and hostile files: each gets the right verdict and a reason a user can act on."""

from __future__ import annotations

import io
import json
import os
import pickle
import struct
import warnings
import zipfile
from pathlib import Path

import pytest
import torch
from torchvision import models

from mycloset_assets.checkpoints import LoadRefusedError, analyze, load_model
from mycloset_assets.checkpoints.analysis import inspect
from mycloset_assets.checkpoints.bounds import AnalysisBounds
from mycloset_assets.cli import main as cli_main

from . import hostile


def _save_state(network: torch.nn.Module, path: Path, **kwargs) -> Path:
    torch.save(network.state_dict(), path, **kwargs)
    return path


@pytest.mark.parametrize(
    ("builder", "name", "family", "claimed"),
    [
        (models.resnet18, "openpose.pth", "torchvision:resnet18", "OpenPose"),
        (models.mobilenet_v3_small, "tom_final.pth", "torchvision:mobilenet_v3_small", "TOM"),
        (models.efficientnet_b0, "exp-schp-201908261155-lip.pth", "torchvision:efficientnet_b0", "SCHP"),
        (models.densenet121, "weights.pth", "torchvision:densenet121", None),
    ],
)
def test_torchvision_classifier_under_a_try_on_name_is_an_impostor(tmp_path, builder, name, family, claimed):
    network = builder(weights=None)
    report = analyze(_save_state(network, tmp_path / name))
    assert (report.verdict, report.entry, report.family) == ("impostor", None, family)
    assert report.confidence == 1.0 and report.match_rate == 1.0
    assert report.tensors == len(network.state_dict())
    assert f"torchvision {family.split(':')[1]} ImageNet classifier" in report.reason
    if claimed:
        assert report.reason.endswith(f"not {'an' if claimed[0] in 'AEIOU' else 'a'} {claimed} checkpoint")
    with pytest.raises(LoadRefusedError, match="impostor"):
        load_model(tmp_path / name)


def test_fine_tuned_resnet_with_another_head_is_still_named(tmp_path):
    path = _save_state(models.resnet50(weights=None, num_classes=10), tmp_path / "openpose.pth")
    report = analyze(path)
    assert (report.verdict, report.family) == ("impostor", "torchvision:resnet50")
    assert [m["key"] for m in report.mismatched] == ["fc.weight", "fc.bias"]
    assert report.mismatched[0]["file_shape"] == [10, 2048] and report.mismatched[0]["model_shape"] == [1000, 2048]
    assert "another shape" in report.reason


def test_html_page_saved_as_pth(tmp_path):
    path = tmp_path / "tom_final.pth"
    path.write_text("<!DOCTYPE html>\n<html><head><title>Google Drive - Virus scan warning</title></head></html>")
    report = analyze(path)
    assert (report.verdict, report.container, report.entry, report.family) == ("not_a_checkpoint", "html", None, None)
    assert "download it again" in report.reason
    with pytest.raises(LoadRefusedError, match="not_a_checkpoint"):
        load_model(path)


def test_text_and_empty_files(tmp_path):
    text = tmp_path / "gmm_final.pth"
    text.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 123\n")
    empty = tmp_path / "u2net.pth"
    empty.write_bytes(b"")
    assert (analyze(text).verdict, analyze(text).container) == ("not_a_checkpoint", "text")
    report = analyze(empty)
    assert (report.verdict, report.container, report.tensors) == ("not_a_checkpoint", "empty", 0)
    assert "empty" in report.reason


def test_onnx_model_is_named(tmp_path):
    graph = b"\x0a\x04Relu\x12\x01x\x1a\x01y"
    body = b"\x08\x08" + b"\x12\x07pytorch" + b"\x1a\x042.14" + b"\x3a" + bytes([len(graph)]) + graph
    path = tmp_path / "u2net.pth"
    path.write_bytes(body + b"\x42\x04\x0a\x00\x10\x11")
    report = analyze(path)
    assert (report.verdict, report.container) == ("not_a_checkpoint", "onnx")
    assert "ONNX" in report.reason


def test_truncated_zip_and_legacy_files_are_corrupt(tmp_path, synth_file):
    for name, container in (("u2net_cloth_seg4", "torch_zip"), ("u2netp", "torch_legacy")):
        data = synth_file(name).read_bytes()
        cut = tmp_path / f"{name}.pth"
        cut.write_bytes(data[: len(data) // 2])
        report = analyze(cut)
        assert (report.verdict, report.container) == ("corrupt", container), report.reason
        assert "truncated" in report.reason and "download it again" in report.reason
        with pytest.raises(LoadRefusedError, match="corrupt"):
            load_model(cut)


def test_bit_flip_in_zip_data_fails_the_crc_check(tmp_path, synth_file):
    data = bytearray(synth_file("u2net_cloth_seg4").read_bytes())
    data[len(data) // 2] ^= 0x10
    flipped = tmp_path / "cloth.pth"
    flipped.write_bytes(bytes(data))
    report = analyze(flipped)
    assert (report.verdict, report.container) == ("corrupt", "torch_zip")
    assert "CRC" in report.reason
    assert analyze(flipped, verify=False).verdict == "identified", "header-only analysis does not read the data"


def test_bit_flip_in_legacy_storage_record_is_corrupt(tmp_path, synth_file):
    from mycloset_assets.checkpoints.reader import read_header

    source = synth_file("openpose_hand")
    header = read_header(source)
    first = min(header.storage_offsets.values()) - 8
    data = bytearray(source.read_bytes())
    data[first + 2] ^= 0x01
    flipped = tmp_path / "hand.pth"
    flipped.write_bytes(bytes(data))
    report = analyze(flipped)
    assert (report.verdict, report.container) == ("corrupt", "torch_legacy")
    assert "elements" in report.reason


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("how", ["torch_zip", "torch_legacy", "plain_pickle"])
def test_malicious_pickle_is_refused_and_never_executed(tmp_path, how):
    marker = tmp_path / "pwned"
    path = tmp_path / "openpose.pth"
    payload = {"trap": _Payload(marker), "state_dict": {"conv.weight": torch.zeros(2)}}
    if how == "plain_pickle":
        path.write_bytes(pickle.dumps(payload))
    else:
        torch.save(payload, path, _use_new_zipfile_serialization=how == "torch_zip")
    report = analyze(path)
    assert report.verdict == "unsafe"
    assert "posix.system" in report.reason and "not executed" in report.reason
    with pytest.raises(LoadRefusedError, match="unsafe"):
        load_model(path)
    assert not marker.exists()


def _safetensors(path: Path, header: dict, data: bytes) -> Path:
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)
    return path


@pytest.mark.parametrize(
    ("header", "data", "says"),
    [
        ({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, b"\0" * 8, "header lies"),
        (
            {
                "a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
                "b": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]},
            },
            b"\0" * 24,
            "overlap",
        ),
        ({"w": {"dtype": "F32", "shape": [2**40, 2**20], "data_offsets": [0, 16]}}, b"\0" * 16, "absurd shape"),
        ({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 16]}}, b"\0" * 16, "do not hold"),
    ],
)
def test_lying_safetensors_headers_are_corrupt(tmp_path, header, data, says):
    report = analyze(_safetensors(tmp_path / "model.safetensors", header, data))
    assert (report.verdict, report.container) == ("corrupt", "safetensors")
    assert says in report.reason


def test_safetensors_renamed_pth_is_identified(tmp_path, synth_file):
    report = analyze(synth_file("u2netp", container="safetensors", filename="u2netp.pth"))
    assert (report.verdict, report.entry, report.container, report.match_rate) == (
        "identified",
        "u2netp",
        "safetensors",
        1.0,
    )


def test_unknown_architecture_is_not_forced_into_a_family(tmp_path):
    network = torch.nn.Sequential(torch.nn.Conv2d(3, 7, 5), torch.nn.ReLU(), torch.nn.Linear(7, 3))
    report = analyze(_save_state(network, tmp_path / "hrnet_w32.pth"))
    assert (report.verdict, report.family, report.entry) == ("unknown", None, None)
    assert report.tensors == 4 and "no registry entry" in report.reason


def test_dict_without_tensors_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "config.pth"
    torch.save({"epoch": 3, "lr": 0.1}, path)
    report = analyze(path)
    assert (report.verdict, report.container) == ("not_a_checkpoint", "torch_zip")
    assert "no tensors" in report.reason


def test_deeply_nested_pickle_is_not_a_crash(tmp_path):
    nested: dict = {}
    node = nested
    for _ in range(200):
        node["inner"] = {}
        node = node["inner"]
    node["weight"] = torch.zeros(3)
    path = tmp_path / "deep.pth"
    torch.save(nested, path)
    report = analyze(path)
    assert (report.verdict, report.container) == ("not_a_checkpoint", "torch_zip")


def test_nested_wrappers_are_found(tmp_path, synth_file):
    state = torch.load(synth_file("openpose_hand"), weights_only=True)
    path = tmp_path / "hand.ckpt"
    torch.save({"epoch": 7, "model": {"state_dict": state}}, path)
    report = analyze(path)
    assert (report.verdict, report.entry, report.wrapper) == ("identified", "openpose_hand", "model.state_dict")
    assert load_model(path).module.state_dict()["model1_0.conv1_1.weight"].equal(state["conv1_1.weight"])


def test_wrapper_beside_a_stray_tensor_is_still_found(tmp_path, synth_file):
    state = torch.load(synth_file("u2netp"), weights_only=True)
    path = tmp_path / "u2netp_ckpt.pth"
    torch.save({"step": torch.tensor(1200), "ema": state}, path)
    report = analyze(path)
    assert (report.verdict, report.entry, report.wrapper) == ("identified", "u2netp", "ema")


def _zip_with(source: Path, path: Path, extra: list[tuple[str, bytes]]) -> Path:
    """``source``'s members, then ``extra`` members (a name may repeat one of them)."""
    with zipfile.ZipFile(source) as archive, zipfile.ZipFile(path, "w") as out, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        for info in archive.infolist():
            out.writestr(zipfile.ZipInfo(info.filename), archive.read(info))
        for name, data in extra:
            out.writestr(zipfile.ZipInfo(name), data)
    return path


def _patched_row(path: Path, name: str, *, flags: int = 0, method: int | None = None) -> Path:
    """Set bits of ``name``'s general-purpose flags and/or its compression method in both its headers."""
    data = bytearray(path.read_bytes())
    encoded = name.encode()
    for signature, flag_at, name_at in ((b"PK\x03\x04", 6, 30), (b"PK\x01\x02", 8, 46)):
        start = 0
        while (start := data.find(signature, start)) >= 0:
            if data[start + name_at : start + name_at + len(encoded)] == encoded:
                data[start + flag_at] |= flags
                if method is not None:
                    data[start + flag_at + 2 : start + flag_at + 4] = struct.pack("<H", method)
            start += 4
    path.write_bytes(bytes(data))
    return path


def _repeated_rows(path: Path, times: int) -> Path:
    """One member listed in ``times`` rows of the central directory (every row points at the same bytes)."""
    data = path.read_bytes()
    end = data.rfind(b"PK\x05\x06")
    count, size, offset = struct.unpack_from("<HLL", data, end + 10)
    directory = data[offset : offset + size]
    first_row_end = 46 + sum(struct.unpack_from("<HHH", directory, 28))
    rows = directory[:first_row_end] * times + directory[first_row_end:]
    tail = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, count + times - 1, count + times - 1, len(rows), offset, 0)
    path.write_bytes(data[:offset] + rows + tail)
    return path


def _small_state(path: Path) -> Path:
    torch.save({"w": torch.zeros(2)}, path)
    return path


_BYTEARRAY_BOMB = b"\x80\x02" + hostile.pickle_global("builtins", "bytearray") + b"J\x00\x00\x00\x40\x85R."
_SCRIPT_CODE = [("code/__torch__/m.py", b"class M(Module):\n  __parameters__ = []\n", zipfile.ZIP_STORED)]


def _script_nesting(levels: int) -> bytes:
    body = b"h\x00)\x81}X\x01\x00\x00\x00c" * levels + b"N" + b"sb" * levels
    return b"\x80\x02" + hostile.pickle_global("__torch__", "M") + b"q\x00" + body + b"."


def _shared_tensor_names(path: Path, count: int) -> Path:
    """``count`` names for one tensor, saved by torch and re-zipped deflated (a few hundred KB on disk)."""
    shared = torch.zeros(1)
    saved = io.BytesIO(_serialized({f"{i:07d}": shared for i in range(count)}))
    with zipfile.ZipFile(saved) as archive, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        for info in archive.infolist():
            out.writestr(zipfile.ZipInfo(info.filename), archive.read(info), compress_type=zipfile.ZIP_DEFLATED)
    return path


def _case_files(tmp_path: Path) -> dict[str, tuple[Path, str, str]]:
    """Every class of hostile input of the hardening issue: name -> (file, verdict, words of the reason)."""
    state = _small_state(tmp_path / "state.pth")
    root = zipfile.ZipFile(state).namelist()[0].split("/")[0]
    payload = pickle.dumps(_Payload(tmp_path / "pwned"), protocol=2)
    cases: dict[str, tuple[Path, str, str]] = {
        "duplicate_member": (
            _zip_with(state, tmp_path / "duplicate.pth", [(f"{root}/data.pkl", payload)]),
            "corrupt",
            f"the member {root}/data.pkl is listed 2 times",
        ),
        "several_roots": (
            _zip_with(state, tmp_path / "roots.pth", [("other/data.pkl", payload), ("other/version", b"3\n")]),
            "corrupt",
            f"outside its folder {root}/",
        ),
        "bytearray_bomb_zip": (
            hostile.torch_zip(tmp_path / "bytearray.pth", _BYTEARRAY_BOMB),
            "corrupt",
            "analysis bound memory",
        ),
        "bytearray_bomb_legacy": (
            hostile.legacy_file(tmp_path / "bytearray_legacy.pth", _BYTEARRAY_BOMB),
            "corrupt",
            "analysis bound memory",
        ),
        "bytearray_bomb_plain_pickle": (
            _written(tmp_path / "bytearray.pkl", _BYTEARRAY_BOMB),
            "not_a_checkpoint",
            "a plain pickle",
        ),
        "nested_lists_deflated": (
            hostile.torch_zip(
                tmp_path / "lists.pth",
                b"\x80\x02" + b"]" * 10_000_000 + b"a" * 9_999_999 + b".",
                pickle_compression=zipfile.ZIP_DEFLATED,
            ),
            "corrupt",
            "analysis bound memory",
        ),
        "memo_index_bomb": (
            hostile.torch_zip(tmp_path / "memo.pth", b"\x80\x02]r\x00\x00\x00\x40."),
            "corrupt",
            "analysis bound memory",
        ),
        "deep_tuple_key": (
            hostile.torch_zip(tmp_path / "tuple.pth", b"\x80\x02}K\x00" + b"\x85" * 100_000 + b"K\x01s."),
            "corrupt",
            "analysis bound depth",
        ),
        "bzip2_code_member": (
            hostile.torch_zip(
                tmp_path / "bzip2.pt",
                b"\x80\x02}.",
                members=[("code/__torch__/m.py", b"\n" * 4_000_000, zipfile.ZIP_BZIP2)],
            ),
            "corrupt",
            "compression method 12, which torch cannot read",
        ),
        "deflated_code_beyond_bound": (
            hostile.torch_zip(
                tmp_path / "code.pt",
                b"\x80\x02}.",
                members=[("code/__torch__/m.py", b"\n" * 80_000_000, zipfile.ZIP_DEFLATED)],
            ),
            "corrupt",
            "analysis bound code_bytes",
        ),
        "blank_lines_in_code": (
            hostile.torch_zip(
                tmp_path / "blank.pt",
                b"\x80\x02}.",
                members=[
                    ("code/__torch__/m.py", b"class M(Module):\n" + b" \n" * 300_000 + b"  x = 1\n", zipfile.ZIP_STORED)
                ],
            ),
            "not_a_checkpoint",
            "holds no tensors",
        ),
        "one_member_in_256_rows": (
            _repeated_rows(_small_state(tmp_path / "rows.pth"), 256),
            "corrupt",
            "listed",
        ),
        "encrypted_member": (
            _patched_row(_small_state(tmp_path / "encrypted.pth"), "encrypted/version", flags=1),
            "corrupt",
            "is encrypted, which torch cannot read",
        ),
        "unknown_compression": (
            _patched_row(_small_state(tmp_path / "method.pth"), "method/version", method=99),
            "corrupt",
            "compression method 99",
        ),
        "damaged_deflate_stream": (
            _damaged_deflate(tmp_path / "zlib.pth"),
            "corrupt",
            "data.pkl cannot be read",
        ),
        "too_many_tensors": (
            _shared_tensor_names(tmp_path / "tensors.pth", 250_000),
            "corrupt",
            "analysis bound tensors",
        ),
        "unknown_codec": (
            hostile.torch_zip(
                tmp_path / "codec.pth",
                b"\x80\x02"
                + hostile.pickle_global("_codecs", "encode")
                + b"X\x01\x00\x00\x00xX\x05\x00\x00\x00nopeq\x86R.",
            ),
            "corrupt",
            "_codecs.encode of a str as 'nopeq' is refused",
        ),
        "attribute_error": (
            hostile.torch_zip(
                tmp_path / "attribute.pth",
                b"\x80\x02" + hostile.pickle_global("torch", "Size") + b"(K\x01t\x85R}X\x01\x00\x00\x00aK\x01sb.",
            ),
            "corrupt",
            "AttributeError",
        ),
        "deep_torchscript_objects": (
            hostile.torch_zip(tmp_path / "deep.pt", _script_nesting(100), members=_SCRIPT_CODE),
            "corrupt",
            "analysis bound depth",
        ),
        "cyclic_torchscript_object": (
            hostile.torch_zip(
                tmp_path / "cycle.pt",
                b"\x80\x02" + hostile.pickle_global("__torch__", "M") + b")\x81q\x00}X\x01\x00\x00\x00ah\x00sb.",
                members=_SCRIPT_CODE,
            ),
            "corrupt",
            "contains itself",
        ),
        "deep_json_header": (
            hostile.safetensors_file(
                tmp_path / "deep.safetensors", b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}", b""
            ),
            "corrupt",
            "nests too deeply to parse",
        ),
    }
    for name, (header, data, says) in _SAFETENSORS_REJECTED.items():
        cases[f"safetensors_{name}"] = (
            hostile.safetensors_file(tmp_path / f"{name}.safetensors", header, data),
            "corrupt",
            says,
        )
    return cases


def _written(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _damaged_deflate(path: Path) -> Path:
    with zipfile.ZipFile(io.BytesIO(_serialized({"w": torch.zeros(2)}))) as archive:
        pickled = archive.read(next(n for n in archive.namelist() if n.endswith("data.pkl")))
    hostile.torch_zip(path, pickled * 50, pickle_compression=zipfile.ZIP_DEFLATED)
    data = bytearray(path.read_bytes())
    start = data.find(b"data.pkl") + len(b"data.pkl")
    for offset in range(start + 20, start + 40):
        data[offset] ^= 0x5A
    path.write_bytes(bytes(data))
    return path


def _serialized(obj: object) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


_F32 = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}
_SAFETENSORS_REJECTED: dict[str, tuple[bytes | dict, bytes, str]] = {
    "metadata_not_strings": ({"__metadata__": {"epoch": 3}, "w": _F32}, b"\0" * 8, "map names to strings"),
    "utf16_header": (json.dumps({"w": _F32}).encode("utf-16-le"), b"\0" * 8, "does not parse"),
    "gap_before_data": (
        {"w": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}},
        b"\0" * 12,
        "a gap of 4 bytes before its data",
    ),
    "float_shape": ({"w": {"dtype": "F32", "shape": [2.0], "data_offsets": [0, 8]}}, b"\0" * 8, "is not integers"),
    "string_shape": ({"w": {"dtype": "F32", "shape": ["2"], "data_offsets": [0, 8]}}, b"\0" * 8, "is not integers"),
    "trailing_data": ({"w": _F32}, b"\0" * 12, "cover 8 of the 12 data bytes"),
    "duplicate_key": (
        b'{"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "w": {"dtype": "F32", "shape": [2], '
        b'"data_offsets": [0, 8]}}',
        b"\0" * 8,
        "names 'w' twice",
    ),
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, synth_file) -> dict[str, tuple[Path, str, str]]:
    analyze(synth_file("u2netp"))  # builds the registry's tables before any measured child forks
    return _case_files(tmp_path_factory.mktemp("hostile"))


_CASES = [
    "duplicate_member",
    "several_roots",
    "bytearray_bomb_zip",
    "bytearray_bomb_legacy",
    "bytearray_bomb_plain_pickle",
    "nested_lists_deflated",
    "memo_index_bomb",
    "deep_tuple_key",
    "bzip2_code_member",
    "deflated_code_beyond_bound",
    "blank_lines_in_code",
    "one_member_in_256_rows",
    "encrypted_member",
    "unknown_compression",
    "damaged_deflate_stream",
    "too_many_tensors",
    "unknown_codec",
    "attribute_error",
    "deep_torchscript_objects",
    "cyclic_torchscript_object",
    "deep_json_header",
    *(f"safetensors_{name}" for name in _SAFETENSORS_REJECTED),
]


@pytest.mark.parametrize("case", _CASES)
def test_hostile_file_gets_a_verdict_within_the_bounds(corpus, case):
    path, verdict, says = corpus[case]
    report, growth_mib, seconds = hostile.measured(lambda: analyze(path).to_dict())
    assert (report["verdict"], report["entry"]) == (verdict, None), report["reason"]
    assert says in report["reason"]
    assert growth_mib <= hostile.PEAK_GROWTH_MIB, f"peak RSS grew by {growth_mib:.0f} MiB"
    assert seconds <= hostile.SECONDS, f"the analysis took {seconds:.1f} s"
    assert not (path.parent / "pwned").exists()


def test_every_refused_safetensors_header_is_refused_by_the_library_too(corpus):
    """What the analysis refuses, the library refuses; a repeated key it accepts (keeping one entry) is
    refused here as ambiguous."""
    from safetensors import SafetensorError, safe_open

    for name in set(_SAFETENSORS_REJECTED) - {"duplicate_key"}:
        with pytest.raises(SafetensorError), safe_open(str(corpus[f"safetensors_{name}"][0]), framework="pt"):
            pass


def test_a_batch_over_the_whole_corpus_reports_every_file(corpus, capsys):
    paths = [str(corpus[case][0]) for case in _CASES]
    assert cli_main(["analyze", "--json", *paths]) == 0
    reports = json.loads(capsys.readouterr().out)
    assert [r["path"] for r in reports] == paths
    assert [r["verdict"] for r in reports] == [corpus[case][1] for case in _CASES]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_an_unreadable_file_is_a_verdict(tmp_path):
    path = _small_state(tmp_path / "locked.pth")
    path.chmod(0)
    report = analyze(path)
    assert (report.verdict, report.container) == ("corrupt", "unknown")
    assert "check its permissions" in report.reason


@pytest.mark.parametrize(("key", "shown"), [("net.ema", '"net.ema"'), (0, "[0]")])
def test_weights_under_a_dotted_or_int_key_load_as_identified(tmp_path, synth_file, key, shown):
    state = torch.load(synth_file("u2netp"), weights_only=True)
    path = tmp_path / "wrapped.pth"
    torch.save({key: state, "epoch": 3}, path)
    report = analyze(path)
    assert (report.verdict, report.entry, report.wrapper) == ("identified", "u2netp", shown)
    loaded = load_model(path)
    first = next(iter(state))
    assert loaded.module.state_dict()[first].equal(state[first])


def test_tensors_under_int_keys_are_not_counted(tmp_path):
    path = tmp_path / "ints.pth"
    torch.save({0: torch.zeros(2), 1: torch.zeros(3)}, path)
    report = analyze(path)
    assert (report.verdict, report.tensors) == ("not_a_checkpoint", 0)


@pytest.mark.parametrize(
    ("bounds", "says"),
    [
        (AnalysisBounds(members=20), "the zip directory lists 56 members, beyond the analysis bound members = 20"),
        (AnalysisBounds(tensors=20), "the header describes too many tensors, beyond the analysis bound tensors = 20"),
        (AnalysisBounds(memory_floor=0, memory_per_file_byte=0), "beyond the analysis bound memory = 0"),
    ],
)
def test_each_bound_is_enforced_and_named(tmp_path, bounds, says):
    path = tmp_path / "fifty.pth"
    torch.save({f"k{i}": torch.zeros(1) for i in range(50)}, path)
    assert analyze(path).tensors == 50
    _, report = inspect(path, bounds=bounds)
    assert (report.verdict, report.container) == ("corrupt", "torch_zip")
    assert says in report.reason
