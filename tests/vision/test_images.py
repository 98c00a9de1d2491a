"""The image loader against generated files of every oddity, each with a known answer, and the PNG writer."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from mycloset_assets.vision.images import (
    CorruptImageError,
    EmptyImageError,
    ImageError,
    ImageTooLargeError,
    NotAnImageError,
    TruncatedImageError,
    UnsupportedImageError,
    apply_orientation,
    encode_jpeg,
    encode_png,
    load_image,
    save_png,
    undo_orientation,
)


def encoded(image: Image.Image, fmt: str = "PNG", **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_file(width: int, height: int, bit_depth: int, color_type: int, scanlines: bytes) -> bytes:
    """A PNG written chunk by chunk (Pillow cannot write 16-bit RGB, nor lie about its size)."""
    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(scanlines))
        + png_chunk(b"IEND", b"")
    )


def with_exif_chunk(png: bytes, payload: bytes, before: bytes = b"IDAT") -> bytes:
    """``png`` with an eXIf chunk holding ``payload`` inserted before its first ``before`` chunk."""
    at = png.index(before) - 4
    return png[:at] + png_chunk(b"eXIf", payload) + png[at:]


# ---------------------------------------------------------------------------------------------- orientation

STORED_IDS = np.array([[0, 1, 2], [3, 4, 5]])
# Display arrangement of the stored 2 x 3 grid for each EXIF orientation (EXIF 2.3, tag 0x0112).
DISPLAY_IDS = {
    1: [[0, 1, 2], [3, 4, 5]],
    2: [[2, 1, 0], [5, 4, 3]],
    3: [[5, 4, 3], [2, 1, 0]],
    4: [[3, 4, 5], [0, 1, 2]],
    5: [[0, 3], [1, 4], [2, 5]],
    6: [[3, 0], [4, 1], [5, 2]],
    7: [[5, 2], [4, 1], [3, 0]],
    8: [[2, 5], [1, 4], [0, 3]],
}


def id_image(ids: np.ndarray) -> np.ndarray:
    """RGB pixels that encode a cell id in every channel differently, so each cell is unique."""
    ids = np.asarray(ids)
    return np.stack([ids * 40, 250 - ids * 30, ids * 7 + 3], axis=-1).astype(np.uint8)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_is_applied(orientation: int) -> None:
    stored = Image.fromarray(id_image(STORED_IDS))
    exif = stored.getexif()
    exif[0x0112] = orientation
    data = encoded(stored, exif=exif)

    loaded = load_image(data)

    np.testing.assert_array_equal(loaded.pixels, id_image(np.array(DISPLAY_IDS[orientation])))
    np.testing.assert_array_equal(loaded.pixels, np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data)))))
    assert loaded.orientation == orientation
    assert loaded.original_size == (2, 3)
    assert loaded.size == np.asarray(DISPLAY_IDS[orientation]).shape
    assert loaded.conversions == ([] if orientation == 1 else [f"exif-orientation {orientation} applied"])
    assert loaded.pixels.flags.c_contiguous


def test_jpeg_camera_orientation_6_turns_portrait() -> None:
    stored = np.zeros((32, 48, 3), dtype=np.uint8)
    stored[:16, :24] = (255, 0, 0)  # top-left quadrant of the stored (landscape) pixels
    image = Image.fromarray(stored)
    exif = image.getexif()
    exif[0x0112] = 6
    loaded = load_image(encoded(image, "JPEG", exif=exif, quality=95))
    assert loaded.format == "JPEG"
    assert loaded.original_size == (32, 48)
    assert loaded.size == (48, 32)
    # Rotated 90 degrees clockwise for display: the stored top-left lands at the top-right.
    assert np.abs(loaded.pixels[4, 28].astype(int) - (255, 0, 0)).max() <= 8
    assert np.abs(loaded.pixels[4, 4].astype(int) - (0, 0, 0)).max() <= 8


@pytest.mark.parametrize("orientation", range(1, 9))
def test_undo_orientation_inverts_apply_for_images_and_masks(orientation: int) -> None:
    image = id_image(STORED_IDS)
    mask = STORED_IDS.astype(np.uint8)
    np.testing.assert_array_equal(undo_orientation(apply_orientation(image, orientation), orientation), image)
    np.testing.assert_array_equal(apply_orientation(mask, orientation), np.asarray(DISPLAY_IDS[orientation]))
    np.testing.assert_array_equal(undo_orientation(np.asarray(DISPLAY_IDS[orientation]), orientation), STORED_IDS)


def test_orientation_outside_1_to_8_is_refused() -> None:
    with pytest.raises(ValueError, match=r"EXIF orientation must be an integer 1-8, got 9"):
        apply_orientation(np.zeros((2, 2)), 9)


def test_exif_chunk_after_the_pixel_data_is_honoured() -> None:
    image = Image.fromarray(id_image(STORED_IDS))
    exif = image.getexif()
    exif[0x0112] = 8
    loaded = load_image(with_exif_chunk(encoded(image), exif.tobytes(), before=b"IEND"))
    np.testing.assert_array_equal(loaded.pixels, id_image(np.array(DISPLAY_IDS[8])))
    assert loaded.conversions == ["exif-orientation 8 applied"]


def test_invalid_exif_orientation_value_is_ignored_and_recorded() -> None:
    image = Image.fromarray(id_image(STORED_IDS))
    exif = image.getexif()
    exif[0x0112] = 9
    loaded = load_image(encoded(image, exif=exif))
    np.testing.assert_array_equal(loaded.pixels, id_image(STORED_IDS))
    assert loaded.orientation == 1
    assert loaded.conversions == ["invalid exif-orientation 9 ignored"]


def test_unreadable_exif_is_ignored_and_recorded() -> None:
    data = with_exif_chunk(encoded(Image.fromarray(id_image(STORED_IDS))), b"garbage!!")
    loaded = load_image(data)
    np.testing.assert_array_equal(loaded.pixels, id_image(STORED_IDS))
    assert loaded.orientation == 1
    assert len(loaded.conversions) == 1
    assert loaded.conversions[0].startswith("unreadable EXIF ignored")


# ---------------------------------------------------------------------------------------------- pixel formats


def test_rgb_png_is_returned_unchanged_from_path_str_and_pathlib(tmp_path: Path) -> None:
    pixels = id_image(STORED_IDS)
    path = tmp_path / "photo.png"
    path.write_bytes(encoded(Image.fromarray(pixels)))
    for source in (path, str(path)):
        loaded = load_image(source)
        np.testing.assert_array_equal(loaded.pixels, pixels)
        assert loaded.conversions == []
        assert loaded.format == "PNG"
        assert loaded.orientation == 1


def test_grayscale_png_becomes_three_equal_channels() -> None:
    gray = np.array([[0, 17, 255], [128, 64, 1]], dtype=np.uint8)
    loaded = load_image(encoded(Image.fromarray(gray)))
    np.testing.assert_array_equal(loaded.pixels, np.repeat(gray[:, :, None], 3, axis=2))
    assert loaded.conversions == ["grayscale -> RGB"]


def test_one_bit_png_becomes_black_and_white() -> None:
    bits = Image.new("1", (3, 1))
    bits.putpixel((1, 0), 1)
    loaded = load_image(encoded(bits))
    np.testing.assert_array_equal(loaded.pixels[0, :, 0], [0, 255, 0])
    assert loaded.conversions == ["1-bit -> 8-bit", "grayscale -> RGB"]


def test_rgba_png_is_composited_on_white() -> None:
    rgba = np.array([[[255, 0, 0, 128], [10, 20, 30, 0], [10, 20, 30, 255]]], dtype=np.uint8)
    loaded = load_image(encoded(Image.fromarray(rgba)))
    # 255 * a + c * (1 - a) with a = 128 / 255 on white: (255, 127, 127); fully transparent is white.
    np.testing.assert_array_equal(loaded.pixels, [[[255, 127, 127], [255, 255, 255], [10, 20, 30]]])
    assert loaded.conversions == ["RGBA composited on white -> RGB"]


def test_grayscale_with_alpha_png_is_composited_on_white() -> None:
    la = np.array([[[0, 255], [0, 0], [100, 51]]], dtype=np.uint8)
    loaded = load_image(encoded(Image.fromarray(la, mode="LA")))
    # 100 * 0.2 + 255 * 0.8 = 224
    np.testing.assert_array_equal(loaded.pixels[0, :, 0], [0, 255, 224])
    assert loaded.conversions == ["grayscale+alpha composited on white -> RGB"]


def _palette_image() -> Image.Image:
    image = Image.new("P", (3, 1), 0)
    image.putpalette([200, 10, 20, 0, 0, 255, 7, 8, 9] + [0] * (253 * 3))
    image.putpixel((1, 0), 1)
    image.putpixel((2, 0), 2)
    return image


def test_palette_png_is_expanded() -> None:
    loaded = load_image(encoded(_palette_image()))
    np.testing.assert_array_equal(loaded.pixels, [[[200, 10, 20], [0, 0, 255], [7, 8, 9]]])
    assert loaded.conversions == ["palette -> RGB"]


def test_palette_png_with_transparent_index_gets_white_there() -> None:
    loaded = load_image(encoded(_palette_image(), transparency=1))
    np.testing.assert_array_equal(loaded.pixels, [[[200, 10, 20], [255, 255, 255], [7, 8, 9]]])
    assert loaded.conversions == ["palette with transparency -> RGBA", "RGBA composited on white -> RGB"]


def test_16_bit_grayscale_png_keeps_the_high_byte() -> None:
    values = np.array([[0, 255, 256], [32768, 65280, 65535]], dtype=np.uint16)
    data = encoded(Image.fromarray(values))
    assert Image.open(io.BytesIO(data)).mode == "I;16"
    loaded = load_image(data)
    np.testing.assert_array_equal(loaded.pixels[:, :, 0], [[0, 0, 1], [128, 255, 255]])
    np.testing.assert_array_equal(loaded.pixels[:, :, 0], loaded.pixels[:, :, 2])
    assert loaded.conversions == ["16-bit -> 8-bit", "grayscale -> RGB"]


def test_16_bit_rgb_png_keeps_the_high_byte() -> None:
    rgb16 = np.array([[[0x1234, 0xABCD, 0xFFFF], [0x00FF, 0x0100, 0x8000]]], dtype=">u2")
    scanlines = b"\x00" + rgb16[0].tobytes()
    loaded = load_image(png_file(2, 1, 16, 2, scanlines))
    np.testing.assert_array_equal(loaded.pixels, [[[0x12, 0xAB, 0xFF], [0x00, 0x01, 0x80]]])
    assert loaded.conversions == ["16-bit -> 8-bit"]


def test_32_bit_integer_image_is_read_in_the_16_bit_range() -> None:
    loaded = load_image(Image.fromarray(np.array([[0, 0x8000, 70000]], dtype=np.int32)))
    np.testing.assert_array_equal(loaded.pixels[0, :, 0], [0, 128, 255])
    assert loaded.conversions == [
        "32-bit integer clipped to 0..65535",
        "32-bit integer -> 16-bit",
        "16-bit -> 8-bit",
        "grayscale -> RGB",
    ]


def test_float_pillow_image_in_unit_range() -> None:
    loaded = load_image(Image.fromarray(np.array([[0.0, 0.2, 1.0]], dtype=np.float32)))
    np.testing.assert_array_equal(loaded.pixels[0, :, 1], [0, 51, 255])
    assert loaded.conversions == ["float -> 8-bit", "grayscale -> RGB"]


@pytest.mark.parametrize(
    ("cmyk", "rgb"),
    [
        ((0, 255, 255, 0), (255, 0, 0)),
        ((255, 0, 255, 0), (0, 255, 0)),
        ((255, 255, 0, 0), (0, 0, 255)),
        ((0, 0, 0, 255), (0, 0, 0)),
        ((0, 0, 0, 0), (255, 255, 255)),
    ],
)
def test_cmyk_jpeg_becomes_rgb(cmyk: tuple[int, int, int, int], rgb: tuple[int, int, int]) -> None:
    loaded = load_image(encoded(Image.new("CMYK", (16, 16), cmyk), "JPEG", quality=95))
    assert loaded.conversions == ["CMYK -> RGB"]
    assert loaded.pixels.shape == (16, 16, 3)
    assert np.abs(loaded.pixels.astype(int) - rgb).max() <= 6


def test_animated_gif_uses_the_first_frame() -> None:
    frames = [Image.new("RGB", (4, 4), (255, 0, 0)), Image.new("RGB", (4, 4), (0, 0, 255))]
    data = encoded(frames[0], "GIF", save_all=True, append_images=frames[1:])
    loaded = load_image(data)
    np.testing.assert_array_equal(loaded.pixels, np.full((4, 4, 3), (255, 0, 0)))
    assert loaded.conversions == ["frame 1 of 2 used", "palette -> RGB"]
    assert loaded.format == "GIF"


# ---------------------------------------------------------------------------------------------- arrays


def test_rgb_array_is_copied_not_aliased() -> None:
    source = id_image(STORED_IDS)[:, ::-1]
    loaded = load_image(source)
    np.testing.assert_array_equal(loaded.pixels, source)
    assert not np.shares_memory(loaded.pixels, source)
    assert loaded.pixels.flags.c_contiguous
    assert (loaded.conversions, loaded.format, loaded.orientation) == ([], None, 1)


def test_array_dtypes_are_converted() -> None:
    assert load_image(np.array([[True, False]])).pixels[0, :, 0].tolist() == [255, 0]
    assert load_image(np.array([[True, False]])).conversions == ["bool -> 8-bit", "grayscale -> RGB"]
    assert load_image(np.array([[0x01FF, 0xFE00]], dtype=np.uint16)).pixels[0, :, 0].tolist() == [1, 254]
    assert load_image(np.array([[3, 200]], dtype=np.int64)).conversions == ["int64 -> 8-bit", "grayscale -> RGB"]
    floats = load_image(np.array([[[0.0, 0.2, 1.0]]], dtype=np.float64))
    assert floats.pixels.tolist() == [[[0, 51, 255]]]
    assert floats.conversions == ["float -> 8-bit"]


def test_array_channel_layouts_are_converted() -> None:
    gray = load_image(np.array([[[7], [9]]], dtype=np.uint8))
    assert gray.pixels.tolist() == [[[7, 7, 7], [9, 9, 9]]]
    gray_alpha = load_image(np.array([[[0, 0], [100, 51], [1, 200]]], dtype=np.uint8))
    # 1 * 200 / 255 + 255 * 55 / 255 = 55.78: rounded to nearest, not truncated.
    assert gray_alpha.pixels.tolist() == [[[255, 255, 255], [224, 224, 224], [56, 56, 56]]]
    rgba = load_image(np.array([[[255, 0, 0, 128]]], dtype=np.uint8))
    assert rgba.pixels.tolist() == [[[255, 127, 127]]]


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.full((2, 2), 1.5), r"float samples must lie in \[0, 1\], got \[1.5, 1.5\]"),
        (np.array([[0.0, np.nan]]), "float samples contain NaN or infinity"),
        (np.array([[-1, 300]]), r"int64 samples in \[-1, 300\] are ambiguous"),
        (np.zeros((2, 2, 5), dtype=np.uint8), r"expected H x W or H x W x C with C in 1-4 \(RGB order\)"),
        (np.zeros((1, 2, 2, 3), dtype=np.uint8), r"got shape \(1, 2, 2, 3\)"),
        (np.zeros((2, 2), dtype=np.complex64), "unsupported sample dtype complex64"),
    ],
)
def test_uninterpretable_arrays_are_refused(array: np.ndarray, message: str) -> None:
    with pytest.raises(UnsupportedImageError, match=message):
        load_image(array)


def test_wrong_source_type_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="load_image takes a path, bytes, a PIL image or a numpy array, not list"):
        load_image([[1, 2]])  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------- bad files


def test_empty_inputs_are_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(EmptyImageError, match=r"empty.png: the file is empty \(0 bytes\)"):
        load_image(empty)
    with pytest.raises(EmptyImageError, match=r"<bytes>: the image data is empty \(0 bytes\)"):
        load_image(b"")
    with pytest.raises(EmptyImageError, match=r"<array>: the image has no pixels \(4 x 0\)"):
        load_image(np.zeros((0, 4, 3), dtype=np.uint8))


def test_missing_file_is_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_image(tmp_path / "nowhere.jpg")


def _noisy_png() -> bytes:
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    return encoded(Image.fromarray(noise))


@pytest.mark.parametrize("cut", [20, 33, 60, 2000])
def test_truncated_png_is_reported_as_truncated(cut: int) -> None:
    with pytest.raises(TruncatedImageError, match="truncated") as raised:
        load_image(_noisy_png()[:cut])
    assert isinstance(raised.value, CorruptImageError)
    assert isinstance(raised.value, ImageError)
    assert isinstance(raised.value, ValueError)


def test_truncated_jpeg_file_is_reported_as_truncated(tmp_path: Path) -> None:
    noise = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    data = encoded(Image.fromarray(noise), "JPEG")
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(TruncatedImageError, match=r"cut.jpg: the image data is truncated .*re-copy or re-export"):
        load_image(path)


def test_damaged_png_header_is_reported_as_truncated_or_damaged() -> None:
    data = bytearray(_noisy_png())
    data[20] ^= 0xFF  # inside IHDR: its CRC no longer matches
    with pytest.raises(TruncatedImageError, match="starts like a PNG file but its header is truncated or damaged"):
        load_image(bytes(data))


@pytest.mark.parametrize(
    ("pixel_data", "message"),
    [
        (b"not zlib at all, garbage bytes", "broken data stream"),
        (zlib.compress(b"\x07" * 13 * 4), "unrecognized data stream contents"),  # filter type 7 does not exist
    ],
)
def test_undecodable_pixel_data_is_corrupt_not_truncated(pixel_data: bytes, message: str) -> None:
    header = png_chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 4, 8, 2, 0, 0, 0))
    data = b"\x89PNG\r\n\x1a\n" + header + png_chunk(b"IDAT", pixel_data) + png_chunk(b"IEND", b"")
    with pytest.raises(CorruptImageError, match=f"<bytes>: the image data cannot be decoded .*{message}") as raised:
        load_image(data)
    assert not isinstance(raised.value, TruncatedImageError)


@pytest.mark.parametrize(
    "data", [b"hello, this is a text file\n", b"<!DOCTYPE html><html><body>Not found</body></html>", b"PK\x03\x04..."]
)
def test_non_image_data_is_not_an_image(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "looks_like.jpg"
    path.write_bytes(data)
    with pytest.raises(NotAnImageError, match=r"looks_like.jpg: not an image format Pillow can read") as raised:
        load_image(path)
    assert repr(data[:16]) in str(raised.value)


def _rgb_png_header(width: int, height: int) -> bytes:
    """A PNG that claims ``width`` x ``height`` but carries one short row of pixel data."""
    return png_file(width, height, 8, 2, b"\x00" * 16)


def test_pixel_limit_is_checked_on_the_header_before_decoding() -> None:
    with pytest.raises(
        ImageTooLargeError,
        match=r"8000 x 8000 = 64000000 pixels exceeds the limit of 50000000; downscale the image or raise max_pixels",
    ):
        load_image(_rgb_png_header(8000, 8000))
    bomb = _rgb_png_header(3000, 2000)
    with pytest.raises(ImageTooLargeError, match="exceeds the limit of 5999999"):
        load_image(bomb, max_pixels=5_999_999)
    # Without the limit the (short) pixel data is decoded, and found truncated: the check came first.
    with pytest.raises(TruncatedImageError):
        load_image(bomb, max_pixels=None)


def test_pillow_hard_limit_is_reported_as_too_large() -> None:
    with pytest.raises(ImageTooLargeError, match="Pillow's own hard limit"):
        load_image(_rgb_png_header(100_000, 100_000), max_pixels=None)


def test_pixel_limit_applies_to_arrays_and_pil_images() -> None:
    array = np.zeros((10, 10, 3), dtype=np.uint8)
    assert load_image(array, max_pixels=100).size == (10, 10)
    with pytest.raises(ImageTooLargeError, match=r"<array>: 10 x 10 = 100 pixels exceeds the limit of 99"):
        load_image(array, max_pixels=99)
    with pytest.raises(ImageTooLargeError, match=r"<PIL image>: 10 x 4 = 40 pixels exceeds the limit of 39"):
        load_image(Image.new("RGB", (10, 4)), max_pixels=39)


# ---------------------------------------------------------------------------------------------- PNG output


@pytest.mark.parametrize(
    "array",
    [
        np.arange(12, dtype=np.uint8).reshape(3, 4),
        id_image(STORED_IDS),
        np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4) * 10,
    ],
)
def test_encode_png_round_trips_exactly(array: np.ndarray) -> None:
    data = encode_png(array)
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(data))), array)


def test_encode_png_saves_bool_masks_as_0_and_255() -> None:
    mask = np.array([[True, False], [False, True]])
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(encode_png(mask)))), [[255, 0], [0, 255]])


def test_encode_png_refuses_what_it_cannot_store() -> None:
    with pytest.raises(UnsupportedImageError, match="encode_png takes uint8 or bool arrays, got float32"):
        encode_png(np.zeros((2, 2, 3), dtype=np.float32))
    with pytest.raises(UnsupportedImageError, match=r"got shape \(2, 2, 2\)"):
        encode_png(np.zeros((2, 2, 2), dtype=np.uint8))
    with pytest.raises(EmptyImageError, match="the array has no pixels"):
        encode_png(np.zeros((0, 2, 3), dtype=np.uint8))


def test_encode_jpeg_keeps_size_and_colours_within_jpeg_loss() -> None:
    gradient = np.linspace(0, 255, 64 * 48).reshape(64, 48).astype(np.uint8)
    picture = np.stack([gradient, 255 - gradient, np.full_like(gradient, 128)], axis=2)
    data = encode_jpeg(picture)
    assert data.startswith(b"\xff\xd8\xff")
    decoded = np.asarray(Image.open(io.BytesIO(data)))
    assert decoded.shape == (64, 48, 3)
    assert np.abs(decoded.astype(int) - picture).mean() < 2.0, "quality 90: a smooth picture changes by < 2 levels"
    assert np.asarray(Image.open(io.BytesIO(encode_jpeg(np.ones((8, 8), dtype=bool))))).min() >= 250


def test_encode_jpeg_refuses_alpha_and_floats() -> None:
    with pytest.raises(UnsupportedImageError, match=r"encode_jpeg takes H x W or H x W x 3 arrays, got shape"):
        encode_jpeg(np.zeros((2, 2, 4), dtype=np.uint8))
    with pytest.raises(UnsupportedImageError, match="encode_jpeg takes uint8 or bool arrays, got float64"):
        encode_jpeg(np.zeros((2, 2, 3)))


def test_save_png_writes_replaces_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "out.png"
    first, second = id_image(STORED_IDS), id_image(STORED_IDS[::-1])
    assert save_png(first, target) == target
    assert save_png(second, str(target)) == target
    np.testing.assert_array_equal(load_image(target).pixels, second)
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]


def test_save_png_refuses_other_suffixes_and_cleans_up_on_failure(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"out.jpg: outputs are PNG files; give the path a .png suffix"):
        save_png(id_image(STORED_IDS), tmp_path / "out.jpg")
    with pytest.raises(UnsupportedImageError):
        save_png(np.zeros((2, 2), dtype=np.float64), tmp_path / "bad.png")
    assert list(tmp_path.iterdir()) == []
