"""Each MediaPipe network, built on the meta device and loaded strictly through the factory, against TFLite
itself (ai-edge-litert 2.3.0) on the astronaut photo prepared as the solution graph prepares it.

Tolerance: max |torch - TFLite| <= 1e-3 + 5e-4 * max |TFLite| per output. (The outputs are raw logits and
coordinates of range up to ~1700; fp32 accumulation order differs between the two runtimes. Seen here:
5e-4 on detector regressors of range 742, 0.4 on segmentation logits of range 1721, 1e-4 on heatmaps.)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from mycloset_assets.checkpoints import load_model
from mycloset_assets.checkpoints.reader import read_header
from mycloset_assets.checkpoints.tensors import read_tensors
from mycloset_assets.checkpoints.tflite import graph_spec, parse_model
from mycloset_assets.models.mediapipe_blazeface import BlazeFaceShortRange
from mycloset_assets.models.mediapipe_blazepose import BlazePoseDetector, BlazePoseLandmark
from mycloset_assets.models.mediapipe_facemesh import FaceMesh
from mycloset_assets.models.mediapipe_selfie import SelfieSegmentation
from mycloset_assets.vision.mediapipe import Roi, crop_roi, letterbox_roi, to_tensor_range

from .conftest import BUNDLED
from .graph_runner import TFLiteGraphNet, resize_bilinear

Interpreter = pytest.importorskip("ai_edge_litert.interpreter", reason="ai-edge-litert (test extra)").Interpreter
ALL = (
    "mediapipe_pose_detection",
    "mediapipe_pose_landmark_full",
    "mediapipe_selfie_segmentation",
    "mediapipe_face_detection_short_range",
    "mediapipe_face_landmark",
)
# entry -> (input size, value range, how the graph crops the photo)
INPUTS = {
    "mediapipe_pose_detection": (224, (-1.0, 1.0), "letterbox"),
    "mediapipe_pose_landmark_full": (256, (0.0, 1.0), "rotated"),
    "mediapipe_selfie_segmentation": (256, (0.0, 1.0), "stretch"),
    "mediapipe_face_detection_short_range": (128, (-1.0, 1.0), "letterbox"),
    "mediapipe_face_landmark": (192, (0.0, 1.0), "face"),
}


def _input(entry: str, photo: np.ndarray) -> np.ndarray:
    size, (low, high), how = INPUTS[entry]
    height, width = photo.shape[:2]
    roi = {
        "letterbox": letterbox_roi(height, width),
        "stretch": Roi(width / 2, height / 2, width, height),
        "rotated": Roi(158.7, 524.0, 1254.9, 1254.9, 0.16),
        "face": Roi(212.0, 180.0, 160.0, 160.0, -0.1),
    }[how]
    border = "zero" if how in ("letterbox", "stretch") else "replicate"
    return to_tensor_range(crop_roi(photo, roi, size, border), low, high)


def _compare(path: Path, entry: str, photo: np.ndarray) -> None:
    loaded = load_model(path)
    assert loaded.entry.id == entry and loaded.analysis.match_rate == 1.0
    assert all(p.dtype == torch.float32 and not p.is_meta for p in loaded.module.parameters())
    tensor = _input(entry, photo)
    interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], tensor.transpose(1, 2, 0)[None].copy())
    interpreter.invoke()
    want = [interpreter.get_tensor(o["index"]) for o in interpreter.get_output_details()]
    with torch.inference_mode():
        got = loaded.module(torch.from_numpy(tensor[None]))
    assert len(got) == len(want)
    for name, mine, theirs in zip(loaded.module.output_names, got, want, strict=True):
        mine = mine.numpy()
        if mine.ndim == 4:
            mine = mine.transpose(0, 2, 3, 1)
        assert mine.shape == theirs.shape, name
        tolerance = 1e-3 + 5e-4 * float(np.abs(theirs).max())
        assert float(np.abs(mine - theirs).max()) <= tolerance, name


@pytest.mark.parametrize("entry", sorted(BUNDLED))
def test_bundled_network_matches_tflite(entry: str, photos: dict[str, np.ndarray]) -> None:
    _compare(BUNDLED[entry], entry, photos["astronaut"])


@pytest.mark.parametrize("entry", ALL)
def test_network_matches_tflite(entry: str, mediapipe_models: dict[str, Path], photos: dict[str, np.ndarray]) -> None:
    _compare(mediapipe_models[entry], entry, photos["crop"])


def _against_runner(path: Path, entry: str, photo: np.ndarray, module: type[torch.nn.Module]) -> None:
    """A hand-written network against the generic runner executing the file's own operator list with the same
    float32 weights: same output names and shapes, max |difference| <= 1e-4 (outputs range up to ~750)."""
    loaded = load_model(path)
    assert isinstance(loaded.module, module)
    runner = TFLiteGraphNet(entry, graph_spec(parse_model(path.read_bytes())))
    names = [name for name, _ in runner.named_parameters()] + [name for name, _ in runner.named_buffers()]
    runner.load_state_dict(read_tensors(read_header(path), names), strict=True)
    runner.float()
    tensor = torch.from_numpy(_input(entry, photo)[None])
    with torch.inference_mode():
        mine, reference = loaded.module(tensor), runner(tensor)
    assert list(loaded.module.output_names) == runner.output_names
    assert len(mine) == len(reference)
    for got, want in zip(mine, reference, strict=True):
        assert got.shape == want.shape
        assert float((got - want).abs().max()) <= 1e-4


def test_blazeface_modules_equal_the_files_graph_run_op_for_op(photos: dict[str, np.ndarray]) -> None:
    entry = "mediapipe_face_detection_short_range"
    _against_runner(BUNDLED[entry], entry, photos["astronaut"], BlazeFaceShortRange)


def test_blazepose_detector_modules_equal_the_files_graph_run_op_for_op(
    mediapipe_models: dict[str, Path], photos: dict[str, np.ndarray]
) -> None:
    entry = "mediapipe_pose_detection"
    _against_runner(mediapipe_models[entry], entry, photos["astronaut"], BlazePoseDetector)


@pytest.mark.parametrize(
    ("entry", "module"),
    [
        ("mediapipe_pose_landmark_full", BlazePoseLandmark),
        ("mediapipe_selfie_segmentation", SelfieSegmentation),
        ("mediapipe_face_landmark", FaceMesh),
    ],
)
def test_written_out_modules_equal_the_files_graph_run_op_for_op(
    entry: str, module: type[torch.nn.Module], request: pytest.FixtureRequest, photos: dict[str, np.ndarray]
) -> None:
    path = BUNDLED[entry] if entry in BUNDLED else request.getfixturevalue("mediapipe_models")[entry]
    _against_runner(path, entry, photos["astronaut"], module)


def test_outputs_have_the_documented_shapes(mediapipe_models: dict[str, Path]) -> None:
    shapes = {}
    for entry in ALL:
        size = INPUTS[entry][0]
        with torch.inference_mode():
            outputs = load_model(mediapipe_models[entry]).module(torch.zeros(1, 3, size, size))
        shapes[entry] = [tuple(o.shape) for o in outputs]
    assert shapes == {
        "mediapipe_pose_detection": [(1, 2254, 12), (1, 2254, 1)],
        "mediapipe_pose_landmark_full": [(1, 195), (1, 1), (1, 1, 256, 256), (1, 39, 64, 64), (1, 117)],
        "mediapipe_selfie_segmentation": [(1, 1, 256, 256)],
        "mediapipe_face_detection_short_range": [(1, 896, 16), (1, 896, 1)],
        "mediapipe_face_landmark": [(1, 1404, 1, 1), (1, 1, 1, 1)],
    }


def test_resize_bilinear_follows_tflite_sampling() -> None:
    row = torch.tensor([0.0, 1.0, 2.0]).reshape(1, 1, 1, 3)
    legacy = resize_bilinear(row, 1, 6, align_corners=False, half_pixel=False)
    assert legacy.flatten().tolist() == [0.0, 0.5, 1.0, 1.5, 2.0, 2.0]
    corners = resize_bilinear(row, 1, 5, align_corners=True, half_pixel=False)
    assert corners.flatten().tolist() == [0.0, 0.5, 1.0, 1.5, 2.0]
    half = resize_bilinear(row, 1, 6, align_corners=False, half_pixel=True)
    assert half.flatten().tolist() == pytest.approx([0.0, 0.25, 0.75, 1.25, 1.75, 2.0])
