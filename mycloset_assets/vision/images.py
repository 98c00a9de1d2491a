"""The one image loader of every entry point, and the PNG writer of every output.

``load_image`` turns a path, encoded bytes, a Pillow image or a numpy array into RGB uint8 H x W x 3 in the
photo's *display* orientation (EXIF orientation applied), recording every conversion it made, so nothing
downstream ever sees a grayscale, transparent, palette, 16-bit, CMYK or float image. Results computed on
``LoadedImage.pixels`` are therefore in display orientation too; ``undo_orientation`` maps one back to the
stored orientation when a caller needs the file's own pixel grid.

Conventions:
- Transparency is composited on white (garment photos of the try-on datasets are on white backgrounds).
- 16-bit samples keep their high byte (``v >> 8``), as Pillow does itself for 16-bit RGB PNGs.
- Float samples must lie in [0, 1] and map to ``round(v * 255)``; anything else is refused, not guessed.
- Two-channel arrays are grayscale + alpha, three-channel arrays RGB (not OpenCV's BGR), four RGBA.
- The pixel limit and the working-size rule are checked on the size in the file header, before any pixel is
  decoded.

The working-size rule bounds every network input: a photo whose longer side is more than
``MAX_ASPECT_RATIO`` times its shorter side is refused (``WorkingSizeError``), because the networks scale a
photo by one side (OpenPose to a box height, DeepLab's shorter side to 520 pixels) and the other side then
grows with the ratio (a 695-byte 20000 x 10 PNG would make a 184 x 368000 pose input); with the ratio
bounded, ``working_size`` gives the bounded size the pipelines work at.
"""

from __future__ import annotations

import io
import os
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, UnidentifiedImageError

DEFAULT_MAX_PIXELS = 50_000_000
"""Default pixel limit (50 Mpx, e.g. 8660 x 5773): far above any photo the networks need."""

MAX_ASPECT_RATIO = 4.0
"""Longest / shortest side of a usable photo: person and garment photos are about 1:1 to 1:3."""

EXIF_ORIENTATION_TAG = 0x0112

ImageSource = str | os.PathLike[str] | bytes | bytearray | memoryview | Image.Image | np.ndarray

_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"BM", "BMP"),
)


class ImageError(ValueError):
    """Base class of every error of the image loader and writer."""


class EmptyImageError(ImageError):
    """The file or buffer holds no bytes, or the array has no pixels."""


class NotAnImageError(ImageError):
    """The data is not an image format Pillow can read (text, HTML, a checkpoint, ...)."""


class CorruptImageError(ImageError):
    """A recognised image format whose data cannot be decoded."""


class TruncatedImageError(CorruptImageError):
    """A recognised image format whose data ends before the image does (an interrupted copy or download)."""


class ImageTooLargeError(ImageError):
    """The image has more pixels than the configured limit (protection against decompression bombs)."""


class UnsupportedImageError(ImageError):
    """An image or array whose layout, dtype or value range cannot be interpreted as a picture."""


class WorkingSizeError(ImageError):
    """The photo's proportions would put the networks' inputs out of bounds (see ``check_working_size``)."""


def check_working_size(
    height: int, width: int, *, max_aspect_ratio: float = MAX_ASPECT_RATIO, name: str = "<image>"
) -> None:
    """Refuse a photo whose longer side exceeds ``max_aspect_ratio`` times its shorter side (or that has
    no pixels): the rule that keeps every network input bounded."""
    if min(height, width) < 1:
        raise EmptyImageError(f"{name}: the image has no pixels ({width} x {height})")
    ratio = max(height, width) / min(height, width)
    if ratio > max_aspect_ratio:
        raise WorkingSizeError(
            f"{name}: {width} x {height} pixels is {ratio:.1f} times longer than wide, beyond the limit of "
            f"{max_aspect_ratio:g}: not a person or garment photo the networks can use; crop it closer to the "
            "subject"
        )


def working_size(height: int, width: int, max_side: int | None) -> tuple[int, int]:
    """The (height, width) the pipelines work at: the photo's own when ``max_side`` is None or not exceeded,
    else scaled (aspect kept, each side at least 1) so the longer side is ``max_side``. Raises
    ``WorkingSizeError`` for a photo ``check_working_size`` refuses."""
    check_working_size(height, width)
    longer = max(height, width)
    if max_side is None or longer <= max_side:
        return height, width
    factor = max_side / longer
    return max(1, round(height * factor)), max(1, round(width * factor))


@dataclass
class LoadedImage:
    """A decoded image, ready for every network and drawing function.

    ``pixels``: RGB uint8 H x W x 3, C-contiguous, in display orientation.
    ``original_size``: (height, width) as stored in the file, before the EXIF orientation.
    ``orientation``: the EXIF orientation (1-8) that was applied; 1 when there was none.
    ``conversions``: what was converted, in order, e.g. ``"exif-orientation 6 applied"``, ``"16-bit -> 8-bit"``.
    ``format``: the file format Pillow recognised (``"JPEG"``, ``"PNG"``, ...); None for arrays.
    """

    pixels: np.ndarray
    original_size: tuple[int, int]
    orientation: int = 1
    conversions: list[str] = field(default_factory=list)
    format: str | None = None

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of ``pixels``, in display orientation."""
        return int(self.pixels.shape[0]), int(self.pixels.shape[1])


_ORIENTATIONS: dict[int, Callable[[np.ndarray], np.ndarray]] = {
    1: lambda a: a,
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: a[::-1, ::-1].swapaxes(0, 1),
    8: lambda a: np.rot90(a, 1),
}
_INVERSE_ORIENTATION = {1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 8, 7: 7, 8: 6}


def _check_orientation(orientation: int) -> None:
    if orientation not in _ORIENTATIONS:
        raise ValueError(f"EXIF orientation must be an integer 1-8, got {orientation!r}")


def apply_orientation(array: np.ndarray, orientation: int) -> np.ndarray:
    """Stored pixels -> display pixels for EXIF ``orientation`` (1-8); works on H x W and H x W x C arrays."""
    _check_orientation(orientation)
    return np.ascontiguousarray(_ORIENTATIONS[orientation](array))


def undo_orientation(array: np.ndarray, orientation: int) -> np.ndarray:
    """Display pixels -> stored pixels: the inverse of ``apply_orientation`` (e.g. for a mask of the file)."""
    _check_orientation(orientation)
    return np.ascontiguousarray(_ORIENTATIONS[_INVERSE_ORIENTATION[orientation]](array))


def load_image(
    source: ImageSource,
    *,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    max_aspect_ratio: float | None = MAX_ASPECT_RATIO,
) -> LoadedImage:
    """Decode ``source`` to RGB uint8 in display orientation, recording every conversion.

    ``source``: a path (``str`` is always a path), encoded bytes, a Pillow image or a numpy array
    (H x W, H x W x 1/2/3/4; uint8, uint16, bool, small integers, or floats in [0, 1]).
    ``max_pixels``: refuse images with more pixels (None: only Pillow's own hard limit, 2 x
    ``Image.MAX_IMAGE_PIXELS``, remains). ``max_aspect_ratio``: the working-size rule
    (``check_working_size``; None for images that are not photos for the networks). Raises an
    ``ImageError`` subclass naming the problem; a missing path raises ``FileNotFoundError``.
    """
    limits = (max_pixels, max_aspect_ratio)
    if isinstance(source, np.ndarray):
        return _load_array(source, limits)
    if isinstance(source, Image.Image):
        return _load_pil(source, "<PIL image>", limits)
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
        if not data:
            raise EmptyImageError("<bytes>: the image data is empty (0 bytes)")
        return _open_and_load(io.BytesIO(data), data[:16], "<bytes>", limits)
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        with path.open("rb") as stream:
            return load_image_file(stream, str(path), max_pixels=max_pixels, max_aspect_ratio=max_aspect_ratio)
    raise TypeError(f"load_image takes a path, bytes, a PIL image or a numpy array, not {type(source).__name__}")


def load_image_file(
    stream: BinaryIO,
    name: str,
    *,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    max_aspect_ratio: float | None = MAX_ASPECT_RATIO,
) -> LoadedImage:
    """``load_image`` of an open, seekable binary file (a local one, or an fsspec one: ``s3://``, ``memory://``),
    read from its current position; ``name`` (its path or URL) names it in the error messages."""
    start = stream.tell()
    head = stream.read(16)
    if not head:
        raise EmptyImageError(f"{name}: the file is empty (0 bytes)")
    stream.seek(start)
    return _open_and_load(stream, head, name, (max_pixels, max_aspect_ratio))


_Limits = tuple[int | None, float | None]


def _open_and_load(stream: BinaryIO, head: bytes, name: str, limits: _Limits) -> LoadedImage:
    """Open with Pillow (header only), then hand over to ``_load_pil``, mapping Pillow's errors."""
    try:
        with warnings.catch_warnings():
            # The project's own limit below is the authority; Pillow's lower warning threshold is noise.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(stream)
    except Image.DecompressionBombError as error:
        raise ImageTooLargeError(f"{name}: {error} (Pillow's own hard limit); downscale the image") from error
    except UnidentifiedImageError as error:
        kind = _recognised_signature(head)
        if kind is not None:
            raise TruncatedImageError(
                f"{name}: starts like a {kind} file but its header is truncated or damaged; re-copy or re-export it"
            ) from error
        raise NotAnImageError(f"{name}: not an image format Pillow can read (data starts with {head!r})") from error
    except OSError as error:
        raise _decode_error(name, error) from error
    with image:
        return _load_pil(image, name, limits)


def _recognised_signature(head: bytes) -> str | None:
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WebP"
    return next((kind for magic, kind in _SIGNATURES if head.startswith(magic)), None)


def _decode_error(name: str, error: Exception) -> CorruptImageError:
    """Pillow reports cut data as ``OSError('image file is truncated ...' / 'Truncated File Read')``."""
    if "truncated" in str(error).lower():
        return TruncatedImageError(f"{name}: the image data is truncated ({error}); re-copy or re-export the file")
    return CorruptImageError(f"{name}: the image data cannot be decoded ({error})")


def _check_pixels(name: str, height: int, width: int, limits: _Limits) -> None:
    max_pixels, max_aspect_ratio = limits
    if height * width == 0:
        raise EmptyImageError(f"{name}: the image has no pixels ({width} x {height})")
    if max_aspect_ratio is not None:
        check_working_size(height, width, max_aspect_ratio=max_aspect_ratio, name=name)
    if max_pixels is not None and height * width > max_pixels:
        raise ImageTooLargeError(
            f"{name}: {width} x {height} = {height * width} pixels exceeds the limit of {max_pixels}; "
            "downscale the image or raise max_pixels"
        )


def _load_pil(image: Image.Image, name: str, limits: _Limits) -> LoadedImage:
    width, height = image.size
    _check_pixels(name, height, width, limits)
    conversions: list[str] = []
    # The decoder's raw mode is the only trace of 16-bit RGB(A) samples; read it before anything loads.
    sixteen_bit = any(";16" in str(tile.args) for tile in getattr(image, "tile", ()) or ())
    try:
        image.load()
    except (OSError, SyntaxError, ValueError) as error:
        raise _decode_error(name, error) from error
    # After ``load``: a PNG's eXIf chunk may follow the pixel data.
    orientation = _exif_orientation(image, conversions)
    frames = getattr(image, "n_frames", 1)
    if frames > 1:
        conversions.append(f"frame {image.tell() + 1} of {frames} used")
    if sixteen_bit and image.mode in ("RGB", "RGBA"):
        conversions.append("16-bit -> 8-bit")
    array = _pil_to_array(image, name, conversions)
    pixels = _array_to_rgb(array, name, conversions)
    if orientation != 1:
        pixels = apply_orientation(pixels, orientation)
        conversions.append(f"exif-orientation {orientation} applied")
    return LoadedImage(pixels, (height, width), orientation, conversions, image.format)


def _exif_orientation(image: Image.Image, conversions: list[str]) -> int:
    """The EXIF orientation (1 when absent); an invalid value is ignored and recorded."""
    try:
        value = image.getexif().get(EXIF_ORIENTATION_TAG, 1)
    except (OSError, SyntaxError, ValueError, KeyError, IndexError, TypeError) as error:
        conversions.append(f"unreadable EXIF ignored ({error})")
        return 1
    if value in _ORIENTATIONS:
        return int(value)
    conversions.append(f"invalid exif-orientation {value!r} ignored")
    return 1


def _pil_to_array(image: Image.Image, name: str, conversions: list[str]) -> np.ndarray:
    """A numpy array of the image in a layout ``_array_to_rgb`` understands (L, LA, RGB, RGBA, 16-bit, float)."""
    mode = image.mode
    if mode in ("L", "LA", "RGB", "RGBA", "F") or mode.startswith("I;16"):
        return np.asarray(image)
    if mode == "P":
        if "transparency" in image.info:
            conversions.append("palette with transparency -> RGBA")
            return np.asarray(image.convert("RGBA"))
        conversions.append("palette -> RGB")
        return np.asarray(image.convert("RGB"))
    if mode == "PA":
        conversions.append("palette+alpha -> RGBA")
        return np.asarray(image.convert("RGBA"))
    if mode == "1":
        conversions.append("1-bit -> 8-bit")
        return np.asarray(image.convert("L"))
    if mode == "I":
        values = np.asarray(image)
        if values.min() < 0 or values.max() > 0xFFFF:
            conversions.append("32-bit integer clipped to 0..65535")
        conversions.append("32-bit integer -> 16-bit")
        return np.clip(values, 0, 0xFFFF).astype(np.uint16)
    if mode in ("RGBa", "La"):
        target = "RGBA" if mode == "RGBa" else "LA"
        conversions.append(f"premultiplied {mode} -> {target}")
        return np.asarray(image.convert(target))
    try:
        converted = image.convert("RGB")
    except ValueError as error:
        raise UnsupportedImageError(f"{name}: cannot convert Pillow mode {mode!r} to RGB ({error})") from error
    conversions.append(f"{mode} -> RGB")
    return np.asarray(converted)


def _load_array(array: np.ndarray, limits: _Limits) -> LoadedImage:
    name = "<array>"
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (1, 2, 3, 4)):
        raise UnsupportedImageError(
            f"{name}: expected H x W or H x W x C with C in 1-4 (RGB order), got shape {array.shape}"
        )
    height, width = int(array.shape[0]), int(array.shape[1])
    _check_pixels(name, height, width, limits)
    conversions: list[str] = []
    pixels = _array_to_rgb(array, name, conversions)
    return LoadedImage(pixels, (height, width), 1, conversions, None)


def _to_uint8(array: np.ndarray, name: str, conversions: list[str]) -> np.ndarray:
    """Samples of any supported dtype -> uint8 (see the module docstring for the rules)."""
    dtype = array.dtype
    if dtype == np.uint8:
        return array
    if dtype == np.bool_:
        conversions.append("bool -> 8-bit")
        return array.astype(np.uint8) * 255
    if dtype == np.uint16 or (dtype.kind == "u" and dtype.itemsize == 2):
        conversions.append("16-bit -> 8-bit")
        return (array.astype(np.uint16) >> 8).astype(np.uint8)
    if dtype.kind in "iu":
        low, high = int(array.min()), int(array.max())
        if low < 0 or high > 255:
            raise UnsupportedImageError(
                f"{name}: {dtype} samples in [{low}, {high}] are ambiguous; pass uint8 (0..255) or uint16 (0..65535)"
            )
        conversions.append(f"{dtype} -> 8-bit")
        return array.astype(np.uint8)
    if dtype.kind == "f":
        if not np.isfinite(array).all():
            raise UnsupportedImageError(f"{name}: float samples contain NaN or infinity")
        low, high = float(array.min()), float(array.max())
        if low < 0.0 or high > 1.0:
            raise UnsupportedImageError(
                f"{name}: float samples must lie in [0, 1], got [{low:g}, {high:g}]; "
                "convert 0..255 data to uint8 before loading"
            )
        conversions.append("float -> 8-bit")
        return np.rint(array.astype(np.float64) * 255.0).astype(np.uint8)
    raise UnsupportedImageError(f"{name}: unsupported sample dtype {dtype}")


def _composite_on_white(color: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """``color * a + 255 * (1 - a)`` with a = alpha / 255, rounded to nearest, in integers."""
    a = alpha.astype(np.uint32)[..., None]
    blended = (color.astype(np.uint32) * a + 255 * (255 - a) + 127) // 255
    return blended.astype(np.uint8)


def _array_to_rgb(array: np.ndarray, name: str, conversions: list[str]) -> np.ndarray:
    """H x W / H x W x C array of any supported dtype -> a fresh C-contiguous RGB uint8 H x W x 3 array."""
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    samples = _to_uint8(array, name, conversions)
    if samples.ndim == 2:
        conversions.append("grayscale -> RGB")
        return np.repeat(samples[:, :, None], 3, axis=2)
    channels = samples.shape[2]
    if channels == 2:
        conversions.append("grayscale+alpha composited on white -> RGB")
        gray = np.repeat(samples[:, :, :1], 3, axis=2)
        return _composite_on_white(gray, samples[:, :, 1])
    if channels == 4:
        conversions.append("RGBA composited on white -> RGB")
        return _composite_on_white(samples[:, :, :3], samples[:, :, 3])
    return np.array(samples, dtype=np.uint8, order="C", copy=True)


def _encodable(array: np.ndarray, encoder: str, channels: tuple[int, ...]) -> Image.Image:
    """``array`` (uint8, or bool saved as 0/255) as a PIL image after checking what ``encoder`` can write."""
    if array.dtype == np.bool_:
        array = array.astype(np.uint8) * 255
    if array.dtype != np.uint8:
        raise UnsupportedImageError(f"{encoder} takes uint8 or bool arrays, got {array.dtype}; convert first")
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] in channels)):
        shapes = ", ".join(f"H x W x {count}" for count in channels)
        raise UnsupportedImageError(f"{encoder} takes H x W or {shapes} arrays, got shape {array.shape}")
    if array.size == 0:
        raise EmptyImageError(f"{encoder}: the array has no pixels (shape {array.shape})")
    return Image.fromarray(np.ascontiguousarray(array))


def encode_png(array: np.ndarray) -> bytes:
    """PNG bytes of a uint8 (or bool) H x W, H x W x 3 (RGB) or H x W x 4 (RGBA) array; bool is saved as 0/255."""
    buffer = io.BytesIO()
    _encodable(array, "encode_png", (3, 4)).save(buffer, format="PNG")
    return buffer.getvalue()


def encode_jpeg(array: np.ndarray, quality: int = 90) -> bytes:
    """JPEG bytes of a uint8 (or bool) H x W or H x W x 3 (RGB) array: for pictures people look at (previews),
    about ten times faster to encode than PNG at 512 pixels; stored outputs stay PNG."""
    buffer = io.BytesIO()
    _encodable(array, "encode_jpeg", (3,)).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def save_png(array: np.ndarray, path: str | os.PathLike[str]) -> Path:
    """Write ``array`` (as ``encode_png``) to ``path`` atomically (readers never see a half-written file),
    with the mode the user's umask gives new files."""
    target = Path(path)
    if target.suffix.lower() != ".png":
        raise ValueError(f"{target}: outputs are PNG files; give the path a .png suffix")
    data = encode_png(array)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(descriptor, "wb") as stream:
            stream.write(data)
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target
