"""Decoded video frames <-> the model's RGB, with the source's colour matrix, range and transfer.

The model takes ``3 x H x W`` float32 RGB in [0, 1] (the non-linear, transfer-encoded values, as for
images). A Y'CbCr frame is converted with its own matrix (BT.601, BT.709, BT.2020 non-constant
luminance, SMPTE 240M, FCC) and range (limited: Y' 16-235, C 16-240, scaled by ``2**(bits - 8)``; full:
0 to ``2**bits - 1``), in float32, with no intermediate rounding; the model's output is converted back
with the same matrix and range and rounded once to the output's bit depth. The transfer and primaries
are not converted (the model works on the encoded signal) and the output carries the same tags; only where
the output crosses between RGB and Y'CbCr does its matrix and range change (:func:`output_colour`).

Tags a source leaves unspecified are resolved the way players do (FFmpeg, mpv): the matrix from the
primaries (BT.2020) or the frame size (BT.709 from 1280 x 720 up, BT.601 below), the range from the
pixel format (``yuvj*``: full, other Y'CbCr: limited); primaries and transfer then follow the matrix.
The output is always tagged explicitly, because a player would guess from the *upscaled* size.

Chroma: 4:2:0 / 4:2:2 planes are upsampled linearly with MPEG-2/H.264 siting (horizontally co-sited
with the even luma column, vertically centred) and downsampled with the matching filter; planar
Y'CbCr (8-16 bit, little-endian) and grey are converted here, RGB formats are exact channel shuffles
through FFmpeg, and any other format (NV12, P010, packed 4:2:2, ...) is first reshuffled by FFmpeg to
planar 4:4:4 without colour maths.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from sr_deploy.data.image_io import to_uint

# FFmpeg's enum values (AVColorSpace, AVColorRange, AVColorPrimaries, AVColorTransferCharacteristic)
RGB, BT709, UNSPECIFIED, FCC, BT470BG, SMPTE170M, SMPTE240M, BT2020_NCL = 0, 1, 2, 4, 5, 6, 7, 9
RANGE_LIMITED, RANGE_FULL = 1, 2
TRC_SRGB, TRC_BT2020_10 = 13, 14

#: (Kr, Kb) of each supported matrix, and its name
MATRICES: dict[int, tuple[str, float, float]] = {
    BT709: ("BT.709", 0.2126, 0.0722),
    FCC: ("FCC", 0.30, 0.11),
    BT470BG: ("BT.601", 0.299, 0.114),
    SMPTE170M: ("BT.601", 0.299, 0.114),
    SMPTE240M: ("SMPTE 240M", 0.212, 0.087),
    BT2020_NCL: ("BT.2020", 0.2627, 0.0593),
}
_OWN_YUV = re.compile(r"yuvj?(420|422|444|440)p(9le|10le|12le|14le|16le)?|gray(9le|10le|12le|14le|16le)?")


@dataclass(frozen=True)
class Colour:
    """How a video's pixels encode colour (FFmpeg enum values; ``matrix`` 0 is RGB)."""

    matrix: int
    full_range: bool
    primaries: int
    transfer: int

    def describe(self) -> str:
        """E.g. ``BT.709 limited range (primaries 1, transfer 1)``."""
        name = "RGB" if self.matrix == RGB else MATRICES[self.matrix][0]
        rng = "full" if self.full_range else "limited"
        return f"{name} {rng} range (primaries {self.primaries}, transfer {self.transfer})"


def is_rgb_format(pix_fmt: str) -> bool:
    """Whether ``pix_fmt`` stores R, G, B (packed or planar), not Y'CbCr or grey."""
    import av

    fmt = av.VideoFormat(pix_fmt)
    return bool(fmt.is_rgb) and len(fmt.components) >= 3


def resolve_colour(pix_fmt: str, width: int, height: int, matrix: int, color_range: int, primaries: int,
                   transfer: int) -> Colour:
    """The colour of a source from its frame tags, unspecified ones resolved as players do (module docstring).

    Raises ValueError for a matrix this module cannot invert (BT.2020 constant luminance, YCgCo, ICtCp).
    """
    if is_rgb_format(pix_fmt):
        return Colour(RGB, True, BT709 if primaries == UNSPECIFIED else primaries,
                      TRC_SRGB if transfer == UNSPECIFIED else transfer)
    if matrix in (UNSPECIFIED, RGB, 3):  # 3: reserved; RGB tags on a Y'CbCr format are a muxing error
        matrix = BT2020_NCL if primaries == BT2020_NCL else BT709 if width >= 1280 or height > 576 else SMPTE170M
    if matrix not in MATRICES:
        raise ValueError(f"colour matrix {matrix} (FFmpeg AVColorSpace) is not supported: only BT.601, BT.709, "
                         "BT.2020 non-constant luminance, SMPTE 240M and FCC")
    full = color_range == RANGE_FULL or (color_range != RANGE_LIMITED and pix_fmt.startswith("yuvj"))
    family = {BT709: (BT709, BT709), BT2020_NCL: (BT2020_NCL, TRC_BT2020_10), BT470BG: (BT470BG, SMPTE170M),
              SMPTE240M: (SMPTE240M, SMPTE240M)}.get(matrix, (SMPTE170M, SMPTE170M))
    return Colour(matrix, full, family[0] if primaries == UNSPECIFIED else primaries,
                  family[1] if transfer == UNSPECIFIED else transfer)


def output_colour(source: Colour, pix_fmt: str) -> Colour:
    """The colour an output in ``pix_fmt`` is encoded and tagged with: the source's, except across the RGB /
    Y'CbCr boundary. RGB output is tagged RGB (matrix 0), full range: a decoder reads RGB planes as Y'CbCr
    otherwise. Y'CbCr output of an RGB source gets the matrix of its primaries (BT.2020, BT.601 or SMPTE 240M
    where the primaries are those, else BT.709), limited range, as delivery formats use. Primaries and transfer
    are kept."""
    if is_rgb_format(pix_fmt):
        return Colour(RGB, True, source.primaries, source.transfer)
    if source.matrix != RGB:
        return source
    matrix = source.primaries if source.primaries in (BT2020_NCL, BT470BG, SMPTE170M, SMPTE240M) else BT709
    return Colour(matrix, False, source.primaries, source.transfer)


def _plane(plane: Any, dtype: type[np.unsignedinteger]) -> np.ndarray:
    """A frame plane as a ``height x width`` array view (line padding dropped)."""
    itemsize = np.dtype(dtype).itemsize
    rows = np.frombuffer(plane, dtype=dtype).reshape(plane.height, plane.line_size // itemsize)
    return rows[:, : plane.width]


def _bits(fmt: Any) -> int:
    return int(max(c.bits for c in fmt.components))


def _up(c: np.ndarray, axis: int, length: int, cosited: bool) -> np.ndarray:
    """Double ``c`` along ``axis`` by linear interpolation, trimmed to ``length`` (extrapolated linearly
    at the edges, so a ramp stays a ramp up to the last pixel)."""
    n = c.shape[axis]
    first, last = np.take(c, [0], axis=axis), np.take(c, [n - 1], axis=axis)
    before = 2 * first - np.take(c, [min(1, n - 1)], axis=axis)
    after = 2 * last - np.take(c, [max(n - 2, 0)], axis=axis)
    prev = np.concatenate([before, np.take(c, np.arange(n - 1), axis=axis)], axis=axis)
    nxt = np.concatenate([np.take(c, np.arange(1, n), axis=axis), after], axis=axis)
    if cosited:  # even samples sit on the chroma sample, odd ones half-way to the next
        even, odd = c, 0.5 * (c + nxt)
    else:  # chroma sits between two luma rows
        even, odd = 0.75 * c + 0.25 * prev, 0.75 * c + 0.25 * nxt
    out = np.stack([even, odd], axis=axis + 1).reshape(*c.shape[:axis], 2 * n, *c.shape[axis + 1:])
    return np.take(out, np.arange(length), axis=axis)


def _down(x: np.ndarray, axis: int, cosited: bool) -> np.ndarray:
    """Halve ``x`` along ``axis`` with the filter matching :func:`_up` (odd lengths: edge replicated)."""
    n = x.shape[axis]
    if n % 2:
        x = np.concatenate([x, np.take(x, [n - 1], axis=axis)], axis=axis)
        n += 1
    even = np.take(x, np.arange(0, n, 2), axis=axis)
    odd = np.take(x, np.arange(1, n, 2), axis=axis)
    if not cosited:
        return np.asarray(0.5 * (even + odd), dtype=np.float32)
    prev_odd = np.concatenate([np.take(even, [0], axis=axis), np.take(odd, np.arange(odd.shape[axis] - 1),
                                                                      axis=axis)], axis=axis)  # x[-1] = x[0]
    return np.asarray(0.5 * even + 0.25 * (odd + prev_odd), dtype=np.float32)


def _matrix(colour: Colour) -> tuple[float, float, float]:
    _, kr, kb = MATRICES[colour.matrix]
    return kr, 1.0 - kr - kb, kb


def _levels(colour: Colour, bits: int) -> tuple[float, float, float, float]:
    """(Y offset, Y scale, C offset, C scale) from normalised values to code values at ``bits``."""
    if colour.full_range:
        peak = float((1 << bits) - 1)
        return 0.0, peak, float(1 << (bits - 1)), peak
    k = float(1 << (bits - 8))
    return 16.0 * k, 219.0 * k, 128.0 * k, 224.0 * k


def frame_to_rgb(frame: Any, colour: Colour) -> np.ndarray:
    """A decoded ``av.VideoFrame`` -> ``3 x H x W`` float32 RGB in [0, 1] (see the module docstring)."""
    fmt = frame.format
    if re.fullmatch(r"gbrp(9le|10le|12le|14le|16le)?", fmt.name):  # planar G, B, R: read at their own depth
        bits = _bits(fmt)
        g, b, r = (_plane(p, np.uint16 if bits > 8 else np.uint8) for p in frame.planes[:3])
        return np.stack([r, g, b]).astype(np.float32) / np.float32((1 << bits) - 1)
    if colour.matrix == RGB or is_rgb_format(fmt.name):
        deep = _bits(fmt) > 8
        rgb = frame.to_ndarray(format="rgb48le" if deep else "rgb24")
        return np.ascontiguousarray((rgb.astype(np.float32) / np.float32(65535 if deep else 255)).transpose(2, 0, 1))
    if not _OWN_YUV.fullmatch(fmt.name):
        frame = frame.reformat(format="yuv444p16le" if _bits(fmt) > 8 else "yuv444p")
        fmt = frame.format
    bits = _bits(fmt)
    dtype = np.uint16 if bits > 8 else np.uint8
    y_off, y_scale, c_off, c_scale = _levels(colour, bits)
    y = (_plane(frame.planes[0], dtype).astype(np.float32) - y_off) / np.float32(y_scale)
    if len(frame.planes) < 3:  # grey
        return np.ascontiguousarray(np.clip(np.broadcast_to(y, (3, *y.shape)), 0.0, 1.0), dtype=np.float32)
    height, width = y.shape
    chroma = []
    for plane in frame.planes[1:3]:
        c = (_plane(plane, dtype).astype(np.float32) - c_off) / np.float32(c_scale)
        if c.shape[1] != width:
            c = _up(c, 1, width, cosited=True)
        if c.shape[0] != height:
            c = _up(c, 0, height, cosited=False)
        chroma.append(c)
    cb, cr = chroma
    kr, kg, kb = _matrix(colour)
    r = y + np.float32(2 * (1 - kr)) * cr
    b = y + np.float32(2 * (1 - kb)) * cb
    g = (y - np.float32(kr) * r - np.float32(kb) * b) / np.float32(kg)
    return np.clip(np.stack([r, g, b]), 0.0, 1.0).astype(np.float32, copy=False)


def _fill(frame: Any, planes: list[np.ndarray]) -> None:
    for plane, data in zip(frame.planes, planes, strict=False):
        itemsize = data.dtype.itemsize
        padded = np.zeros((plane.height, plane.line_size // itemsize), dtype=data.dtype)
        padded[:, : data.shape[1]] = data
        plane.update(padded.tobytes())


def rgb_to_frame(rgb: np.ndarray, pix_fmt: str, colour: Colour) -> Any:
    """``3 x H x W`` float RGB (values outside [0, 1] are clipped) -> an ``av.VideoFrame`` in ``pix_fmt``,
    tagged with ``colour`` (see the module docstring)."""
    import av

    rgb = np.clip(rgb, 0.0, 1.0)
    _, height, width = rgb.shape
    fmt = av.VideoFormat(pix_fmt)
    if is_rgb_format(pix_fmt):
        bits = _bits(fmt)
        hwc = rgb.transpose(1, 2, 0)
        if bits > 8 and pix_fmt in av.video.frame.supported_np_pix_fmts and pix_fmt.startswith("gbrp"):
            peak = (1 << bits) - 1  # rounded once at the target depth
            frame = av.VideoFrame.from_ndarray(np.round(hwc * np.float32(peak)).astype(np.uint16), format=pix_fmt)
        else:  # 8-bit (or 16-bit) RGB, then an exact channel shuffle to the target layout
            frame = av.VideoFrame.from_ndarray(to_uint(hwc, np.uint16 if bits > 8 else np.uint8),
                                               format="rgb48le" if bits > 8 else "rgb24")
            if pix_fmt != frame.format.name:
                frame = frame.reformat(format=pix_fmt)
    else:
        own = pix_fmt if _OWN_YUV.fullmatch(pix_fmt) else ("yuv444p16le" if _bits(fmt) > 8 else "yuv444p")
        target = av.VideoFormat(own)
        bits = _bits(target)
        dtype = np.uint16 if bits > 8 else np.uint8
        peak = (1 << bits) - 1
        y_off, y_scale, c_off, c_scale = _levels(colour, bits)
        kr, kg, kb = _matrix(colour)
        r, g, b = rgb.astype(np.float32, copy=False)
        y = np.float32(kr) * r + np.float32(kg) * g + np.float32(kb) * b

        def code(v: np.ndarray, off: float, scale: float) -> np.ndarray:
            return np.clip(np.round(v * np.float32(scale) + np.float32(off)), 0, peak).astype(dtype)

        planes = [code(y, y_off, y_scale)]
        if len(target.components) >= 3:
            frame = av.VideoFrame(width, height, own)
            for c in ((b - y) / np.float32(2 * (1 - kb)), (r - y) / np.float32(2 * (1 - kr))):
                cw, ch = frame.planes[1].width, frame.planes[1].height
                if cw != width:
                    c = _down(c, 1, cosited=True)
                if ch != height:
                    c = _down(c, 0, cosited=False)
                planes.append(code(c, c_off, c_scale))
        else:
            frame = av.VideoFrame(width, height, own)
        _fill(frame, planes)
        if own != pix_fmt:
            frame = frame.reformat(format=pix_fmt)
    frame.colorspace = colour.matrix
    frame.color_range = RANGE_FULL if colour.full_range else RANGE_LIMITED
    frame.color_primaries = colour.primaries
    frame.color_trc = colour.transfer
    return frame
