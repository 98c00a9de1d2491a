"""Impostors, broken and hostile files: each gets the right verdict and a reason a user can act on."""

from __future__ import annotations

import json
import os
import pickle
import struct
from pathlib import Path

import pytest
import torch
from torchvision import models

from mycloset_assets.checkpoints import LoadRefusedError, analyze, load_model


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
