"""The working-size rule: a photo whose proportions would put a network input out of bounds is refused
from its header, and the working size of a usable photo is bounded."""

from __future__ import annotations

import io
import resource
import time

import numpy as np
import pytest
from PIL import Image

from mycloset_assets.vision.images import (
    MAX_ASPECT_RATIO,
    WorkingSizeError,
    check_working_size,
    load_image,
    working_size,
)


def _png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), "white").save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def test_a_tiny_png_of_extreme_proportions_is_refused_before_decoding(tmp_path):
    path = tmp_path / "strip.png"
    path.write_bytes(_png(20000, 10))
    assert path.stat().st_size < 2000
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    with pytest.raises(
        WorkingSizeError, match=r"20000 x 10 pixels is 2000\.0 times longer than wide, beyond the limit of 4"
    ):
        load_image(path)
    assert time.perf_counter() - started < 1.0
    assert (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024 < 64


@pytest.mark.parametrize(("height", "width"), [(10, 41), (41, 10), (1, 5)])
def test_proportions_beyond_the_limit_are_refused(height, width):
    with pytest.raises(WorkingSizeError, match="crop it closer"):
        check_working_size(height, width)
    with pytest.raises(WorkingSizeError):
        load_image(np.zeros((height, width, 3), dtype=np.uint8))


@pytest.mark.parametrize(("height", "width"), [(10, 40), (40, 10), (1024, 768), (1, 1)])
def test_proportions_within_the_limit_load(height, width):
    check_working_size(height, width)
    assert load_image(np.zeros((height, width, 3), dtype=np.uint8)).size == (height, width)


def test_the_rule_can_be_switched_off_for_images_that_are_not_photos():
    assert load_image(np.zeros((1, 100), dtype=np.uint8), max_aspect_ratio=None).size == (1, 100)


@pytest.mark.parametrize(
    ("size", "max_side", "expected"),
    [
        ((3000, 2000), 1024, (1024, 683)),
        ((2000, 3000), 1024, (683, 1024)),
        ((600, 400), 1024, (600, 400)),
        ((4000, 1000), None, (4000, 1000)),
        ((4000, 1000), 512, (512, 128)),
    ],
)
def test_working_size_bounds_the_longer_side_and_keeps_the_proportions(size, max_side, expected):
    assert working_size(*size, max_side) == expected
    if max_side is not None:
        assert max(expected) <= max_side
    assert max(expected) / min(expected) <= MAX_ASPECT_RATIO + 0.01


def test_working_size_refuses_what_the_rule_refuses():
    with pytest.raises(WorkingSizeError):
        working_size(10, 20000, 1024)
