"""MediaPipe fixtures: the two small published models bundled in tests/fixtures/mediapipe (a fresh clone
runs with them alone), the recorded outputs of MediaPipe's own solutions, and the five models from the real
mediapipe 0.10.21 wheel, downloaded once per session into a cache folder (tests needing them skip, saying
why, when the package index cannot be reached)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from mycloset_assets.checkpoints.fetch import MEDIAPIPE_VERSION, FetchError, download_wheel, fetch_mediapipe
from mycloset_assets.vision.images import load_image

FIXTURES = Path(__file__).parents[1] / "fixtures" / "mediapipe"
ASTRONAUT = Path(__file__).parents[2] / "mycloset_assets" / "demo_data" / "astronaut.png"
BUNDLED = {
    "mediapipe_face_detection_short_range": FIXTURES / "face_detection_short_range.tflite",
    "mediapipe_selfie_segmentation": FIXTURES / "selfie_segmentation.tflite",
}
CACHE = Path(os.environ.get("MYCLOSET_TEST_CACHE", Path.home() / ".cache" / "mycloset-tests")) / "wheels"
# The photo variants the solution was recorded on (tests/fixtures/mediapipe/record_solution.py).
VARIANTS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "astronaut": lambda im: im,
    "crop": lambda im: im[40:472, 60:412],
    "flip": lambda im: im[:, ::-1],
    "rot90": lambda im: np.rot90(im),
    "padded": lambda im: np.pad(im, ((96, 0), (0, 160), (0, 0)), constant_values=128),
}


@pytest.fixture(scope="session", autouse=True)
def _flush_denormals() -> None:
    torch.set_flush_denormal(True)


@pytest.fixture(scope="session")
def solution() -> dict[str, np.ndarray]:
    """MediaPipe 0.10.21's own outputs per variant (``VARIANT/pose``, ``VARIANT/selfie``, ...)."""
    with np.load(FIXTURES / "solution.npz") as data:
        return {key: data[key] for key in data.files}


@pytest.fixture(scope="session")
def photos() -> dict[str, np.ndarray]:
    """The astronaut photo and its recorded variants, RGB uint8."""
    image = load_image(ASTRONAUT).pixels
    return {name: np.ascontiguousarray(make(image)) for name, make in VARIANTS.items()}


@pytest.fixture(scope="session")
def mediapipe_wheel() -> Path:
    """The real mediapipe wheel, pip-downloaded once into the cache folder."""
    found = sorted(CACHE.glob(f"mediapipe-{MEDIAPIPE_VERSION}-*.whl"))
    if found:
        return found[0]
    CACHE.mkdir(parents=True, exist_ok=True)
    try:
        return download_wheel(CACHE)
    except FetchError as exc:
        pytest.skip(f"needs the mediapipe {MEDIAPIPE_VERSION} wheel from the package index: {exc}")


@pytest.fixture(scope="session")
def mediapipe_models(mediapipe_wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Registry id -> the real .tflite file, fetched from the wheel."""
    from mycloset_assets.checkpoints.fetch import MEDIAPIPE_ENTRIES

    paths = fetch_mediapipe(tmp_path_factory.mktemp("mediapipe"), mediapipe_wheel)
    return dict(zip(MEDIAPIPE_ENTRIES, paths, strict=True))
