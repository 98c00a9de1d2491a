"""Compositing and stage glue: TOM's composition, VITON-HD's parse post-processing, misalignment, the way
back to the photo."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mycloset_assets.vision.compositing import (
    Letterbox,
    alias_seg_div,
    composite,
    gaussian_blur,
    gaussian_kernel,
    misalignment_mask,
    paste_back,
    seg_labels,
    to_uint8_image,
    tom_outputs,
    vitonhd_seg_noise,
)


def test_images_are_saved_as_the_references_do():
    values = np.array([[-1.0, 1.0, 0.0, 0.5], [-3.0, 2.0, -0.999, 0.99]], dtype=np.float32)
    rgb = np.stack([values, values * 0 - 1, values * 0 + 1])
    image = to_uint8_image(rgb)
    assert image.shape == (2, 4, 3) and image.dtype == np.uint8
    # (x + 1) * 0.5 * 255, clamped, truncated: 0 -> 127.5 -> 127; 0.5 -> 191.25 -> 191; 0.99 -> 253.7 -> 253
    np.testing.assert_array_equal(image[..., 0], [[0, 255, 127, 191], [0, 255, 0, 253]])
    assert (image[..., 1] == 0).all() and (image[..., 2] == 255).all()
    np.testing.assert_array_equal(to_uint8_image(values[None]), image[..., 0])


def test_tom_split_and_composition_formula():
    raw = torch.randn(2, 4, 8, 6, generator=torch.Generator().manual_seed(0)) * 3
    rendered, mask = tom_outputs(raw)
    torch.testing.assert_close(rendered, torch.tanh(raw[:, :3]), rtol=0, atol=0)
    torch.testing.assert_close(mask, torch.sigmoid(raw[:, 3:]), rtol=0, atol=0)
    warped = torch.rand(2, 3, 8, 6) * 2 - 1
    tryon = composite(warped, rendered, mask)
    torch.testing.assert_close(tryon, warped * mask + rendered * (1 - mask), rtol=0, atol=0)
    ones, zeros = torch.ones(2, 1, 8, 6), torch.zeros(2, 1, 8, 6)
    torch.testing.assert_close(composite(warped, rendered, ones), warped)
    torch.testing.assert_close(composite(warped, rendered, zeros), rendered)
    with pytest.raises(ValueError, match=r"TOM output must be N x 4 x H x W, got \(2, 3, 8, 6\)"):
        tom_outputs(raw[:, :3])


def test_gaussian_kernel_is_torchgeometrys():
    kernel = gaussian_kernel(15, 3.0)
    assert kernel.shape == (15,) and kernel.dtype == torch.float32
    raw = np.exp(-((np.arange(15) - 7) ** 2) / 18.0)
    np.testing.assert_allclose(kernel.numpy(), raw / raw.sum(), rtol=1e-6)
    assert float(kernel.sum()) == pytest.approx(1.0, abs=1e-6)
    torch.testing.assert_close(kernel, kernel.flip(0), rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"odd and positive, got 14"):
        gaussian_kernel(14, 3.0)


def test_blur_equals_the_2d_zero_padded_convolution_with_the_outer_product_kernel():
    images = torch.rand(2, 3, 40, 30, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    kernel = np.exp(-((np.arange(15) - 7) ** 2) / 18.0)
    kernel /= kernel.sum()
    expected = np.zeros((2, 3, 40, 30))
    padded = np.pad(images.numpy(), ((0, 0), (0, 0), (7, 7), (7, 7)))
    for dy in range(15):
        for dx in range(15):
            expected += kernel[dy] * kernel[dx] * padded[:, :, dy : dy + 40, dx : dx + 30]
    np.testing.assert_allclose(gaussian_blur(images.float()).numpy(), expected, rtol=0, atol=1e-6)
    kernel = gaussian_kernel(15, 3.0)
    impulse = torch.zeros(1, 1, 31, 31)
    impulse[0, 0, 15, 15] = 1
    torch.testing.assert_close(gaussian_blur(impulse)[0, 0, 8:23, 8:23], torch.outer(kernel, kernel), atol=1e-7, rtol=0)
    corner = float(gaussian_blur(torch.ones(1, 1, 40, 40))[0, 0, 0, 0])
    assert corner == pytest.approx(float(kernel[7:].sum()) ** 2, abs=1e-6), "zero padding darkens the border"


def test_seg_labels_upsample_blur_and_argmax():
    probabilities = (0.05 + 0.01 * torch.arange(13.0)).view(1, 13, 1, 1).repeat(1, 1, 16, 12)  # class 12 leads
    probabilities[0, 3, 4:12, 3:9] = 0.9  # upper cloth in the middle
    probabilities[0, 0, :, :3] = 0.8  # background on the left
    labels = seg_labels(probabilities, 64, 48)
    assert labels.shape == (1, 64, 48) and labels.dtype == torch.int64
    assert labels[0, 32, 24] == 3 and labels[0, 32, 2] == 0 and labels[0, 2, 40] == 12
    up = F.interpolate(probabilities, size=(64, 48), mode="bilinear", align_corners=False)
    kernel = gaussian_kernel()
    blurred = F.conv2d(up, torch.outer(kernel, kernel).expand(13, 1, 15, 15), padding=7, groups=13)
    top2 = blurred.topk(2, dim=1).values
    assert float((top2[:, 0] - top2[:, 1]).min()) > 1e-5, "no near-ties in this case"
    torch.testing.assert_close(labels, blurred.argmax(dim=1), rtol=0, atol=0)


def test_misalignment_and_seg_div():
    upper = torch.tensor([[[[1.0, 1.0, 0.0, 1.0]]]])
    warped = torch.tensor([[[[1.0, 0.25, 0.5, 0.0]]]])
    misalign = misalignment_mask(upper, warped)
    torch.testing.assert_close(misalign, torch.tensor([[[[0.0, 0.75, 0.0, 1.0]]]]))
    seg = torch.zeros(1, 7, 1, 4)
    seg[0, 2] = upper[0, 0]
    seg[0, 0, 0, 2] = 1
    seg_div = alias_seg_div(seg, misalign)
    assert seg_div.shape == (1, 8, 1, 4)
    torch.testing.assert_close(seg_div[0, 2, 0], torch.tensor([1.0, 0.25, 0.0, 0.0]))
    torch.testing.assert_close(seg_div[0, 7], misalign[0, 0])
    torch.testing.assert_close(seg_div[:, [0, 1, 3, 4, 5, 6]], seg[:, [0, 1, 3, 4, 5, 6]])
    assert seg[0, 2, 0, 1] == 1.0, "seg itself is left alone"


def test_seg_noise_is_binary_with_gen_noise_rate():
    noise = vitonhd_seg_noise((4, 1, 256, 192), torch.Generator().manual_seed(0))
    assert set(noise.unique().tolist()) == {0.0, 1.0}
    # P(255 * N(0, 1) >= 254.5) = 1 - Phi(0.998) = 0.1591; 196608 draws: std 0.0008
    assert float(noise.mean()) == pytest.approx(0.1591, abs=0.004)
    again = vitonhd_seg_noise((4, 1, 256, 192), torch.Generator().manual_seed(0))
    torch.testing.assert_close(noise, again, rtol=0, atol=0)


def test_letterbox_pads_narrow_photos_on_the_sides_and_maps_points_through_pixel_centres():
    frame = Letterbox.fit((100, 50), (256, 192))  # 1:2 into 3:4: pad the width to 75
    assert (frame.padded_size, frame.top, frame.left) == ((100, 75), 0, 12)
    assert frame.scale == (2.56, 2.56)
    points = np.array([[0.0, 0.0, 0.9], [49.0, 99.0, 0.5], [10.0, 10.0, 0.0]])
    mapped = frame.points_to_frame(points)
    np.testing.assert_allclose(mapped[0], [(12.5) * 2.56 - 0.5, 0.5 * 2.56 - 0.5, 0.9])
    np.testing.assert_allclose(mapped[1], [(61.5) * 2.56 - 0.5, 99.5 * 2.56 - 0.5, 0.5])
    np.testing.assert_array_equal(mapped[2], [-1, -1, 0]), "missing points stay missing"

    wide = Letterbox.fit((60, 200), (256, 192))  # wider than 3:4: pad the height to 267
    assert (wide.padded_size, wide.top, wide.left) == ((267, 200), 103, 0)
    same = Letterbox.fit((512, 384), (256, 192))
    assert (same.padded_size, same.top, same.left) == ((512, 384), 0, 0)
    with pytest.raises(ValueError, match=r"sizes must be positive"):
        Letterbox.fit((0, 10), (256, 192))


def test_letterbox_images_labels_and_masks_into_the_frame_and_back():
    frame = Letterbox.fit((100, 50), (256, 192))
    photo = np.full((100, 50, 3), (10, 200, 30), dtype=np.uint8)
    framed = frame.image_to_frame(photo)
    assert framed.shape == (256, 192, 3)
    # photo columns 0..49 are padded columns 12..61; frame column c samples padded column (c + 0.5) / 2.56 - 0.5
    assert (framed[:, :29] == 255).all() and (framed[:, 160:] == 255).all(), "white padding"
    assert (framed[:, 32:157] == (10, 200, 30)).all()
    assert 10 < framed[0, 30, 0] < 255
    back = frame.image_to_photo(framed)
    assert back.shape == photo.shape
    np.testing.assert_array_equal(back[:, 1:-1], photo[:, 1:-1])
    assert (back[:, [0, -1]] >= photo[:, [0, -1]]).all(), "the outermost columns take some of the white padding"

    labels = np.zeros((100, 50), dtype=np.int64)
    labels[50:, 25:] = 7
    framed_labels = frame.labels_to_frame(labels)
    assert framed_labels.dtype == np.uint8 and set(np.unique(framed_labels)) == {0, 7}
    # photo row 50 starts at frame row 50 * 2.56 = 128, photo column 25 at frame column (25 + 12) * 2.56 = 94.7
    assert framed_labels[128, 95] == 7 and framed_labels[127, 95] == 0 and framed_labels[128, 94] == 0
    np.testing.assert_array_equal(frame.labels_to_photo(framed_labels), labels)
    mask = labels > 0
    np.testing.assert_array_equal(frame.mask_to_frame(mask), framed_labels > 0)

    soft = frame.map_to_photo(np.full((256, 192), 0.25, dtype=np.float32))
    assert soft.shape == (100, 50) and soft.dtype == np.float32 and np.allclose(soft, 0.25)
    with pytest.raises(ValueError, match=r"expected an array of the photo's size \(100, 50\), got \(50, 100\)"):
        frame.image_to_frame(photo.transpose(1, 0, 2))
    with pytest.raises(ValueError, match=r"labels must lie in 0..255, got 300..300"):
        frame.labels_to_frame(np.full((100, 50), 300))


def test_paste_back_blends_by_alpha():
    photo = np.full((2, 3, 3), 100, dtype=np.uint8)
    generated = np.full((2, 3, 3), 201, dtype=np.uint8)
    alpha = np.array([[0.0, 1.0, 0.5], [2.0, -1.0, 0.25]])
    pasted = paste_back(photo, generated, alpha)
    np.testing.assert_array_equal(pasted[..., 0], [[100, 201, 150], [201, 100, 125]])  # 150.5 -> 150 (even)
    with pytest.raises(ValueError, match=r"alpha \(3, 2\) must be the photo's height and width \(2, 3\)"):
        paste_back(photo, generated, alpha.T)


def test_letterbox_points_land_where_the_image_puts_their_pixel():
    """A bright pixel of a wide photo, framed by resizing, peaks at its mapped point (no x/y swap)."""
    frame = Letterbox.fit((40, 90), (256, 192))
    photo = np.zeros((40, 90, 3), dtype=np.uint8)
    photo[30, 70] = 255
    framed = frame.image_to_frame(photo, fill=0)
    x, y, _ = frame.points_to_frame(np.array([[70.0, 30.0, 1.0]]))[0]
    peak_y, peak_x = np.unravel_index(framed[..., 0].argmax(), framed.shape[:2])
    assert abs(peak_x - x) <= 0.5 and abs(peak_y - y) <= 0.5
