"""Reading and writing images, and converting them to and from model tensors.

Images in memory are numpy arrays ``H x W x C`` (``C`` in {1, 3, 4}: grey, RGB, RGBA) of dtype
``uint8`` or ``uint16``, with EXIF orientation already applied. Model tensors are float32 RGB in
``[0, 1]``. Formats: PNG, JPEG, BMP, TIFF, WebP (16-bit PNG/TIFF included).
"""

from __future__ import annotations

import io
import os
import struct
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def printable(path: str | os.PathLike[str]) -> str:
    """``path`` as text that can always be printed or stored: bytes of a file name that are not valid
    UTF-8 (kept by Python as lone surrogates) are shown as ``\\xNN`` escapes."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


class ImageReadError(ValueError):
    """An image file could not be read; the message names the file and the cause."""

    def __init__(self, path: str | os.PathLike[str], cause: str) -> None:
        self.path = Path(path)
        self.cause = cause
        super().__init__(f"cannot read image {printable(self.path)}: {cause}")


def _png_bit_depth(path: Path) -> int:
    with open(path, "rb") as fh:
        header = fh.read(25)
    return header[24] if len(header) == 25 and header[12:16] == b"IHDR" else 8


def _read_high_bit_depth(path: Path) -> np.ndarray:
    """16-bit colour PNG/TIFF: Pillow would silently drop to 8 bits, so OpenCV reads these."""
    import cv2

    arr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise ImageReadError(path, "OpenCV could not decode this 16-bit image")
    if arr.ndim == 3 and arr.shape[2] == 3:
        arr = arr[:, :, ::-1]
    elif arr.ndim == 3 and arr.shape[2] == 4:
        arr = arr[:, :, [2, 1, 0, 3]]
    return np.ascontiguousarray(arr)


def _from_pil(im: Image.Image, path: Path) -> np.ndarray:
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(im)
        if mode == "I" and (arr.min() < 0 or arr.max() > 65535):
            raise ImageReadError(path, f"32-bit integer pixels out of the 16-bit range ({mode})")
        return arr.astype(np.uint16)[:, :, None]
    if mode == "F":
        raise ImageReadError(path, "floating-point images are not supported")
    if mode in ("1", "L"):
        return np.asarray(im.convert("L"))[:, :, None]
    if mode in ("LA", "PA", "RGBA") or (mode == "P" and "transparency" in im.info):
        return np.asarray(im.convert("RGBA"))
    return np.asarray(im.convert("RGB"))


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an image file as ``H x W x C`` uint8/uint16 (C = 1 grey, 3 RGB, 4 RGBA).

    EXIF orientation is applied. Raises :class:`ImageReadError` naming the file and the cause for
    a missing, empty, truncated, corrupt or non-image file.
    """
    p = Path(path)
    if not p.is_file():
        raise ImageReadError(p, "no such file")
    if p.stat().st_size == 0:
        raise ImageReadError(p, "the file is empty")
    try:
        with Image.open(p) as im:
            if getattr(im, "is_animated", False):
                frames = getattr(im, "n_frames", "several")
                raise ImageReadError(p, f"animated image ({frames} frames): not supported, extract the frames first")
            fmt = im.format
            high = (fmt == "PNG" and _png_bit_depth(p) == 16 and im.mode in ("RGB", "RGBA")) or (
                fmt == "TIFF" and im.mode in ("RGB", "RGBA") and _tiff_is_16_bit(im)
            )
            if high:
                return _read_high_bit_depth(p)
            im.load()
            arr = _from_pil(ImageOps.exif_transpose(im), p)
    except UnidentifiedImageError:
        raise ImageReadError(p, "not an image file (or an unsupported format)") from None
    except PermissionError:
        raise ImageReadError(p, "permission denied") from None
    except Image.DecompressionBombError as exc:
        raise ImageReadError(p, f"too large to decode safely ({exc})") from None
    except (OSError, SyntaxError, ValueError, TypeError, KeyError, IndexError, struct.error) as exc:
        # Pillow's decoders raise TypeError / KeyError / IndexError / struct.error on malformed headers (found by
        # tests/test_fuzz.py: a TIFF whose directory lost its width tag)
        if isinstance(exc, ImageReadError):
            raise
        raise ImageReadError(p, f"corrupt or truncated image ({type(exc).__name__}: {exc})") from None
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ImageReadError(p, "the image has no pixels")
    return np.ascontiguousarray(arr)


def _header_exif(im: Image.Image) -> Image.Exif:
    """The EXIF data of an opened image without decoding it (Pillow's ``getexif`` decodes a whole PNG to look
    for an eXIf chunk after the pixels: only one before them counts here)."""
    if im.format != "PNG":
        return im.getexif()
    exif = Image.Exif()
    if isinstance(raw := im.info.get("exif"), bytes):
        exif.load(raw)
    return exif


def image_size(path: str | os.PathLike[str]) -> tuple[int, int]:
    """``(height, width)`` of an image file from its header, without decoding the pixels (EXIF
    orientation applied); :class:`ImageReadError` when the file is not a readable image."""
    p = Path(path)
    try:
        with warnings.catch_warnings():  # the caller judges the size, not Pillow's warning
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(p) as im:
                width, height = im.size
                orientation = _header_exif(im).get(0x0112, 1)
    except PermissionError:
        raise ImageReadError(p, "permission denied") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageReadError(p, f"not a readable image ({exc})") from None
    return (width, height) if orientation in (5, 6, 7, 8) else (height, width)


#: The largest input image read by default (pixels, from the file's header: upscale, evaluate, serve); the
#: output may have :data:`OUTPUT_PIXELS_FACTOR` times as many.
DEFAULT_MAX_PIXELS = 64_000_000
OUTPUT_PIXELS_FACTOR = 16


def check_pixel_limit(source: str | os.PathLike[str], scale: int, max_pixels: int) -> None:
    """Raise :class:`~sr_deploy.data.ImageReadError` ("too large") when the header of ``source`` says it has
    more than ``max_pixels`` pixels, or its ``scale`` times larger output more than ``max_pixels *``
    :data:`OUTPUT_PIXELS_FACTOR`; nothing is decoded. A header that cannot be read passes: reading the
    file says what is wrong with it."""
    try:
        height, width = image_size(source)
    except ImageReadError:
        return
    if width * height > max_pixels:
        raise ImageReadError(source, f"too large ({width}x{height}, limit {max_pixels:,} pixels; see max_pixels)")
    out_limit = max_pixels * OUTPUT_PIXELS_FACTOR
    if width * height * scale**2 > out_limit:
        raise ImageReadError(source, f"too large ({width}x{height} -> {width * scale}x{height * scale}, limit "
                                     f"{out_limit:,} output pixels; see max_pixels)")


def _tiff_is_16_bit(im: Image.Image) -> bool:
    bits = getattr(im, "tag_v2", {}).get(258, (8,))
    return max(bits if isinstance(bits, tuple) else (bits,)) == 16


#: Formats :func:`encode_image` writes, by name, and the file suffixes that name them.
FORMATS = {"png": "PNG", "jpeg": "JPEG", "bmp": "BMP", "tiff": "TIFF", "webp": "WEBP"}
_SUFFIX_FORMATS = {".jpg": "jpeg", ".jpeg": "jpeg", ".png": "png", ".bmp": "bmp", ".tif": "tiff", ".tiff": "tiff",
                   ".webp": "webp"}


def encode_image(img: np.ndarray, fmt: str, quality: int | None = None) -> bytes:
    """``H x W x C`` uint8/uint16 (C in {1, 3, 4}) -> the bytes of an image file in ``fmt`` (a :data:`FORMATS`
    key). 16-bit images need PNG or TIFF; RGBA needs PNG, TIFF or WebP. JPEG gets ``quality`` (default 95);
    WebP is lossless unless a ``quality`` is given (WebP has no grey mode: grey reads back as three equal
    channels). ValueError names the problem."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown image format {fmt!r} (use one of {', '.join(FORMATS)})")
    if img.ndim == 2:
        img = img[:, :, None]
    if img.ndim != 3 or img.shape[2] not in (1, 3, 4):
        raise ValueError(f"expected H x W x C with C in 1, 3, 4, got shape {img.shape}")
    if img.dtype == np.uint16:
        if fmt not in ("png", "tiff"):
            raise ValueError("16-bit images need a .png or .tif file (PNG or TIFF)")
        import cv2

        bgr = img[:, :, 0] if img.shape[2] == 1 else img[:, :, [2, 1, 0, 3][: img.shape[2]]]
        ok, encoded = cv2.imencode(".png" if fmt == "png" else ".tif", np.ascontiguousarray(bgr))
        if not ok:
            raise OSError("OpenCV failed to encode the image")
        return bytes(encoded.tobytes())
    if img.dtype != np.uint8:
        raise ValueError(f"expected uint8 or uint16 pixels, got {img.dtype}")
    if fmt in ("jpeg", "bmp") and img.shape[2] == 4:
        raise ValueError(f"{fmt.upper()} keeps no alpha channel; use .png, .tif or .webp (PNG, TIFF or WebP)")
    im = Image.fromarray(img[:, :, 0] if img.shape[2] == 1 else img)
    options: dict[str, object] = {"quality": 95 if quality is None else quality} if fmt == "jpeg" else {}
    if fmt == "webp":  # exact: keep RGB under transparent pixels
        options = {"lossless": True, "exact": True} if quality is None else {"quality": quality, "exact": True}
    buf = io.BytesIO()
    im.save(buf, format=FORMATS[fmt], **options)
    return buf.getvalue()


def write_image(path: str | os.PathLike[str], img: np.ndarray, quality: int = 95) -> None:
    """Write ``H x W x C`` uint8/uint16 (C in {1, 3, 4}) atomically; the format comes from the suffix
    (:func:`encode_image`: JPEG gets ``quality``, WebP is written lossless)."""
    from sr_deploy.artifacts import atomic_open

    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        raise ValueError(f"cannot write {p}: unknown image suffix {suffix!r} (use one of {IMAGE_SUFFIXES})")
    fmt = _SUFFIX_FORMATS[suffix]
    try:
        data = encode_image(img, fmt, quality if fmt == "jpeg" else None)
    except (ValueError, OSError) as exc:
        raise type(exc)(f"cannot write {p}: {exc}") from None
    with atomic_open(p) as fh:
        fh.write(data)


def max_value(img: np.ndarray) -> int:
    """The white level of an integer image: 255 for uint8, 65535 for uint16."""
    if img.dtype == np.uint8:
        return 255
    if img.dtype == np.uint16:
        return 65535
    raise ValueError(f"expected uint8 or uint16 pixels, got {img.dtype}")


def to_float_rgb(img: np.ndarray) -> np.ndarray:
    """``H x W x C`` uint8/uint16 -> ``H x W x 3`` float32 RGB in [0, 1] (grey replicated, alpha dropped)."""
    x = img.astype(np.float32) / np.float32(max_value(img))
    if x.shape[2] == 1:
        return np.repeat(x, 3, axis=2)
    return np.ascontiguousarray(x[:, :, :3])


#: ITU-R BT.601 luma weights (what Pillow's ``convert("L")`` uses): RGB model outputs -> one grey channel.
LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def rgb_to_channels(rgb: np.ndarray, channels: int) -> np.ndarray:
    """``H x W x 3`` float RGB -> ``H x W x channels``: RGB as it is (3), or grey by the BT.601 luma
    weights (1), for a model that ran on a grey image replicated to RGB (exact for equal channels)."""
    if channels == 3:
        return rgb
    if channels == 1:
        return (rgb @ LUMA_WEIGHTS)[:, :, None]
    raise ValueError(f"expected 1 or 3 output channels, got {channels}")


def to_uint(x: np.ndarray, dtype: type[np.unsignedinteger] | np.dtype = np.uint8) -> np.ndarray:
    """Float image in [0, 1] -> integer image of ``dtype``: clipped, scaled and rounded (half to even)."""
    peak = 255.0 if np.dtype(dtype) == np.uint8 else 65535.0
    return np.clip(np.round(np.asarray(x, dtype=np.float64) * peak), 0, peak).astype(dtype)


def hwc_to_nchw(x: np.ndarray) -> np.ndarray:
    """``H x W x C`` float32 -> ``1 x C x H x W`` float32 (contiguous)."""
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


def nchw_to_hwc(x: np.ndarray) -> np.ndarray:
    """``1 x C x H x W`` -> ``H x W x C``."""
    if x.ndim != 4 or x.shape[0] != 1:
        raise ValueError(f"expected a 1 x C x H x W array, got shape {x.shape}")
    return np.ascontiguousarray(x[0].transpose(1, 2, 0))


def list_images(folder: str | os.PathLike[str]) -> list[Path]:
    """Image files (by suffix, case-insensitive) directly in ``folder``, sorted by name."""
    d = Path(folder)
    if not d.is_dir():
        raise FileNotFoundError(f"image folder {printable(d)} does not exist or is not a folder")
    return sorted(p for p in d.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
