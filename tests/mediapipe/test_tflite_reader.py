"""The .tflite reader: what the header says of MediaPipe's published files, and broken files are `corrupt`."""

from __future__ import annotations

import contextlib
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from mycloset_assets.checkpoints import analyze, load_model
from mycloset_assets.checkpoints.errors import CorruptCheckpointError
from mycloset_assets.checkpoints.reader import read_header
from mycloset_assets.checkpoints.tensors import read_tensors
from mycloset_assets.checkpoints.tflite import Sparsity, _densify, parse_model

from .conftest import BUNDLED

FACE = BUNDLED["mediapipe_face_detection_short_range"]
SAFE_VERDICTS = {"corrupt", "not_a_checkpoint", "unknown", "partial", "identified"}


def test_header_of_the_face_detector() -> None:
    header = read_header(FACE)
    assert header.container == "tflite"
    assert len(header.tensors) == 85
    assert header.params == 101390
    assert header.dtypes == {"float16": 74, "int32": 11}
    kernel = header.tensors["conv2d/Kernel"]
    assert kernel.shape == (24, 3, 5, 5) and kernel.stride == (75, 1, 15, 3) and kernel.dtype == torch.float16
    assert header.tensors["depthwise_conv2d/Kernel"].shape == (24, 1, 3, 3)
    assert "CONV_2D x21" in header.metadata and "DEQUANTIZE x74" in header.metadata


def test_tensors_come_in_torch_layout_as_float16() -> None:
    header = read_header(FACE)
    tensors = read_tensors(header, ["conv2d/Kernel", "channel_padding/Paddings"])
    kernel = tensors["conv2d/Kernel"]
    assert kernel.shape == (24, 3, 5, 5) and kernel.dtype == torch.float16 and kernel.is_contiguous()
    raw = FACE.read_bytes()
    model = parse_model(raw)
    stored = next(t for t in model.tensors if t.name == "conv2d/Kernel")
    start, length = model.buffers[stored.buffer]
    ohwi = np.frombuffer(raw, np.float16, count=length // 2, offset=start).reshape(24, 5, 5, 3)
    assert np.array_equal(kernel.numpy(), ohwi.transpose(0, 3, 1, 2))
    assert tensors["channel_padding/Paddings"].tolist() == [[0, 0], [0, 0], [0, 0], [0, 4]]


@pytest.mark.parametrize(("entry", "path"), sorted(BUNDLED.items()))
def test_bundled_files_are_identified(entry: str, path: Path) -> None:
    report = analyze(path)
    assert (report.verdict, report.entry, report.container, report.match_rate) == ("identified", entry, "tflite", 1.0)
    assert report.missing == [] and report.unexpected == [] and report.mismatched == []


def _corrupt_copy(tmp_path: Path, edit) -> Path:
    data = bytearray(FACE.read_bytes())
    edit(data)
    path = tmp_path / "broken.tflite"
    path.write_bytes(bytes(data))
    return path


def _set_name_length(data: bytearray, name: bytes, length: int) -> None:
    """Overwrite the length word of the string ``name`` in the file."""
    start = data.index(name) - 4
    data[start : start + 4] = struct.pack("<I", length)


@pytest.mark.parametrize(
    ("case", "edit", "message"),
    [
        ("truncated", lambda d: d.__delitem__(slice(len(d) // 2, None)), "outside the file"),
        ("root offset past the end", lambda d: d.__setitem__(slice(0, 4), struct.pack("<I", 10**9)), "outside"),
        (
            "a name longer than the file",
            lambda d: _set_name_length(d, b"conv2d/Kernel", 10**8),
            "runs past the end",
        ),
    ],
)  # fmt: skip
def test_broken_files_are_corrupt(tmp_path: Path, case: str, edit, message: str) -> None:
    report = analyze(_corrupt_copy(tmp_path, edit))
    assert report.verdict == "corrupt", case
    assert report.container == "tflite"
    assert message in report.reason


def test_a_shape_that_lies_about_its_buffer_is_corrupt(tmp_path: Path) -> None:
    raw = FACE.read_bytes()
    model = parse_model(raw)
    kernel = next(t for t in model.tensors if t.name == "conv2d/Kernel")
    # Make every shape vector [24, 5, 5, 3] (the stored kernel's, and its dequantised copy's) [24, 5, 5, 4].
    needle = struct.pack("<5i", 4, *kernel.shape)
    assert raw.count(needle) == 2
    path = tmp_path / "lying.tflite"
    path.write_bytes(raw.replace(needle, struct.pack("<5i", 4, 24, 5, 5, 4)))
    report = analyze(path)
    assert report.verdict == "corrupt"
    assert "conv2d/Kernel" in report.reason and "needs 4800 bytes but its buffer holds 3600" in report.reason


def test_random_damage_never_crashes(tmp_path: Path) -> None:
    raw = FACE.read_bytes()
    rng = np.random.default_rng(0)
    verdicts = set()
    for trial in range(60):
        data = bytearray(raw)
        start = int(rng.integers(8, 4096)) if trial % 2 else int(rng.integers(8, len(raw) - 64))
        data[start : start + 16] = rng.integers(0, 256, 16, dtype=np.uint8).tobytes()
        path = tmp_path / f"damaged{trial}.tflite"
        path.write_bytes(bytes(data))
        report = analyze(path)
        assert report.verdict in SAFE_VERDICTS
        verdicts.add(report.verdict)
        if report.verdict == "identified":
            with contextlib.suppress(CorruptCheckpointError):
                load_model(path)
    assert "corrupt" in verdicts


def test_not_a_tflite_identifier_is_not_read_as_one(tmp_path: Path) -> None:
    path = _corrupt_copy(tmp_path, lambda d: d.__setitem__(slice(4, 8), b"XXXX"))
    assert analyze(path).container != "tflite"


def test_densify_expands_a_block_sparse_matrix() -> None:
    # A 4x4 matrix in 2x2 blocks: block rows 0 and 1; row 0 holds block column 1, row 1 block column 0.
    dense = np.zeros((4, 4), np.float32)
    dense[0:2, 2:4] = [[1, 2], [3, 4]]
    dense[2:4, 0:2] = [[5, 6], [7, 8]]
    sparsity = Sparsity(
        traversal_order=(0, 1, 2, 3),
        block_map=(0, 1),
        levels=((0, 2, (), ()), (1, 0, (0, 1, 2), (1, 0)), (0, 2, (), ()), (0, 2, (), ())),
    )
    values = np.arange(1, 9, dtype=np.float32)
    assert np.array_equal(_densify(values, (4, 4), sparsity), dense)


def test_densify_refuses_indices_outside_the_shape() -> None:
    sparsity = Sparsity((0, 1), (), ((0, 2, (), ()), (1, 0, (0, 1, 2), (0, 7))))
    with pytest.raises(CorruptCheckpointError, match="outside its shape"):
        _densify(np.ones(2, np.float32), (2, 4), sparsity)


def test_sparse_weights_of_the_pose_detector_load_dense(mediapipe_models: dict[str, Path]) -> None:
    header = read_header(mediapipe_models["mediapipe_pose_detection"])
    sparse = [name for name, tensor in header.tflite.by_name.items() if tensor.sparsity is not None]
    assert len(sparse) == 38
    tensors = read_tensors(header, sparse[:3])
    for name in sparse[:3]:
        assert tuple(tensors[name].shape) == header.tensors[name].shape
        assert tensors[name].dtype == torch.float16 and torch.count_nonzero(tensors[name]) > 0
