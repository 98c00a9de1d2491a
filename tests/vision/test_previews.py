"""Preview sizes and the readable picture of a parsing label map (palette colours plus a legend)."""

import numpy as np
import pytest

from mycloset_assets.vision.drawing import parsing_palette, parsing_picture, preview_image, preview_scale

NAMES = ("Background", "Hat", "Hair", "Face")


@pytest.mark.parametrize(
    ("height", "width", "scale"),
    [(256, 192, 2.0), (100, 50, 6.0), (600, 400, 1.0), (1024, 10, 1.0), (2048, 1024, 0.5), (511, 300, 2.0)],
)
def test_preview_scale(height, width, scale):
    assert preview_scale(height, width) == scale


def test_preview_scale_rejects_nonsense():
    with pytest.raises(ValueError, match="non-empty image"):
        preview_scale(0, 10)
    with pytest.raises(ValueError, match="min_long_side <= max_long_side"):
        preview_scale(10, 10, min_long_side=600, max_long_side=500)


def test_preview_image_repeats_pixels_when_enlarging_and_averages_when_shrinking():
    image = np.arange(256 * 192 * 3, dtype=np.uint8).reshape(256, 192, 3)
    big = preview_image(image)
    assert (
        big.shape == (512, 384, 3) and np.array_equal(big[::2, ::2], image) and np.array_equal(big[1::2, 1::2], image)
    )
    flat = np.full((2048, 1024, 3), 200, dtype=np.uint8)
    assert preview_image(flat).shape == (1024, 512, 3) and (preview_image(flat) == 200).all()
    labels = np.zeros((2048, 2048), dtype=np.uint8)
    labels[:, 1024:] = 3
    small = preview_image(labels)
    assert small.shape == (1024, 1024) and small.dtype == np.uint8 and set(np.unique(small)) == {0, 3}
    same = preview_image(flat[:600, :600])
    assert same.shape == (600, 600, 3) and same is not flat


def test_parsing_picture_colours_every_class_and_lists_the_present_ones():
    labels = np.zeros((64, 48), dtype=np.uint8)
    labels[10:30, 10:30] = 2
    labels[40:50, 5:15] = 3
    picture = parsing_picture(labels, NAMES)
    palette = parsing_palette(len(NAMES))
    assert picture.dtype == np.uint8 and picture.shape[0] == 512
    image = picture[:, : 48 * 8]
    assert np.array_equal(image[::8, ::8], palette[labels])
    legend = picture[:, 48 * 8 :]
    assert legend.shape[1] > 40 and (legend == 255).mean() > 0.8
    swatches = {tuple(colour) for colour in legend.reshape(-1, 3)}
    assert {tuple(palette[i]) for i in (0, 2, 3)} <= swatches and tuple(palette[1]) not in swatches
    with pytest.raises(ValueError, match=r"label ids \[7\] are outside the label set of 4 names"):
        parsing_picture(np.full((4, 4), 7, dtype=np.uint8), NAMES)
