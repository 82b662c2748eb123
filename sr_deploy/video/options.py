"""How an upscaled video is encoded: codec, quality, preset and pixel format, with defaults and limits.

Defaults: H.264 (``libx264``) at CRF 18, preset ``medium``, 8-bit 4:2:0 for 8-bit sources; HEVC
(``libx265``) at CRF 20, 10-bit (``yuv420p10le``) for deeper sources; a container that cannot hold
those (WebM) gets its own default codec (VP9). The source's chroma layout and bit depth are kept when
the encoder supports them (4:4:4 stays 4:4:4, RGB stays RGB with an RGB-capable codec such as FFV1).
Every choice is checked before any frame is decoded: the codec exists and the container takes it, the
pixel format is one the encoder accepts, subsampled formats get even sizes, and the upscaled size is
within the encoder's limits (:data:`SIZE_LIMITS`).
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field

from sr_deploy.video.colour import is_rgb_format
from sr_deploy.video.probe import FRAME_RATE_MUXERS

#: Encoder -> (largest width, largest height, where the limit comes from). Measured with the bundled
#: encoders (FFmpeg refuses to open them beyond these) or taken from the codec's top level.
SIZE_LIMITS: dict[str, tuple[int, int, str]] = {
    "libx264": (16384, 16384, "x264 accepts at most 16384 pixels per side"),
    "libx264rgb": (16384, 16384, "x264 accepts at most 16384 pixels per side"),
    "libx265": (16888, 16888, "HEVC level 6.2 allows at most 16888 pixels per side (sqrt(8 x 35,651,584))"),
    "libsvtav1": (16384, 16384, "SVT-AV1 accepts at most 16384 pixels per side"),
    "libaom-av1": (65536, 65536, "AV1 headers hold at most 65536 pixels per side"),
    "libdav1d": (65536, 65536, "AV1 headers hold at most 65536 pixels per side"),
    "libvpx-vp9": (65536, 65536, "VP9 headers hold at most 65536 pixels per side"),
    "ffv1": (65535, 65535, "FFV1 holds at most 65535 pixels per side"),
}
#: Default CRF per encoder (None: the encoder has no CRF, e.g. lossless FFV1)
DEFAULT_CRF: dict[str, float | None] = {"libx264": 18, "libx264rgb": 18, "libx265": 20, "libsvtav1": 30,
                                        "libaom-av1": 30, "libvpx-vp9": 31, "ffv1": None}
#: The CRF range each encoder takes (the encoders clamp or refuse values outside it; refused here first)
CRF_RANGE: dict[str, tuple[float, float]] = {"libx264": (0, 51), "libx264rgb": (0, 51), "libx265": (0, 51),
                                             "libsvtav1": (1, 63), "libaom-av1": (0, 63), "libvpx-vp9": (0, 63)}
DEFAULT_PRESET: dict[str, str] = {"libx264": "medium", "libx264rgb": "medium", "libx265": "medium",
                                  "libsvtav1": "8"}
DECODE_ERRORS = ("stop", "skip")


@dataclass(frozen=True)
class VideoOptions:
    """What :func:`~sr_deploy.video.upscale.upscale_video` is asked for (None: the default above).

    ``codec``: an FFmpeg encoder name (``libx264``, ``libx265``, ``libsvtav1``, ``libvpx-vp9``, ``ffv1``,
    ``libx264rgb``...); ``crf``: the encoder's constant-quality value (0 with x264: lossless);
    ``preset``: the encoder's speed preset; ``pix_fmt``: the output pixel format; ``encoder_options``:
    more FFmpeg encoder options. ``batch``: frames per model call when a frame is one window;
    ``segment_frames``: frames per independently encoded segment (the unit of ``resume``);
    ``queue_frames``: frames buffered between decoder, model and encoder; ``decode_errors``: ``stop``
    (the default) or ``skip`` a frame the decoder rejects; ``codec_threads``: threads of the decoder and of
    the encoder each (0: FFmpeg's choice, about one per core; 1 leaves the cores to a CPU model); ``resume``:
    continue a killed job from its finished segments; ``tile`` / ``memory_budget``: as for images.
    """

    codec: str | None = None
    crf: float | None = None
    preset: str | None = None
    pix_fmt: str | None = None
    encoder_options: dict[str, str] = field(default_factory=dict)
    batch: int = 4
    segment_frames: int = 250
    queue_frames: int = 8
    decode_errors: str = "stop"
    codec_threads: int = 0
    resume: bool = False
    tile: int | None = None
    memory_budget: int | None = None

    def __post_init__(self) -> None:
        if self.decode_errors not in DECODE_ERRORS:
            raise ValueError(f"decode_errors must be one of {DECODE_ERRORS}, got {self.decode_errors!r}")
        if self.codec_threads < 0:
            raise ValueError(f"codec_threads must be >= 0 (0: automatic), got {self.codec_threads}")
        for name in ("batch", "segment_frames", "queue_frames"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")


@dataclass(frozen=True)
class Encoding:
    """The resolved encoder settings: ``options`` are passed to FFmpeg as they are."""

    codec: str
    pix_fmt: str
    options: dict[str, str]

    def describe(self) -> str:
        return f"{self.codec} {self.pix_fmt}" + "".join(f" {k}={v}" for k, v in sorted(self.options.items()))


def _encoder_formats(codec: str) -> list[str]:
    import av

    try:
        found = av.Codec(codec, "w")
    except (av.FFmpegError, ValueError):
        raise ValueError(f"no video encoder named {codec!r} in this FFmpeg build") from None
    if found.type != "video":
        raise ValueError(f"{codec!r} is not a video encoder")
    return [f.name for f in found.video_formats or ()]


def _default_pix_fmt(source_pix_fmt: str, bit_depth: int, formats: list[str]) -> str:
    if source_pix_fmt in formats:
        return source_pix_fmt
    if is_rgb_format(source_pix_fmt):
        rgb = [f for f in formats if is_rgb_format(f) and ("p" in f or f.endswith("0")) and
               (bit_depth > 8) == any(d in f for d in ("10", "12", "16"))]
        if rgb:
            return rgb[0]
    for name in (["yuv420p10le"] if bit_depth > 8 else []) + ["yuv420p"]:
        if name in formats:
            return name
    return formats[0]


def choose_encoding(options: VideoOptions, source_pix_fmt: str, bit_depth: int, out_width: int, out_height: int,
                    muxer: str) -> Encoding:
    """Resolve ``options`` for a source of ``source_pix_fmt`` (``bit_depth`` bits) upscaled to
    ``out_width x out_height`` in the ``muxer`` container. Raises ValueError naming what does not fit
    (unknown codec or pixel format, a container that cannot hold the codec, odd sizes for subsampled
    chroma, a size beyond the encoder's limit)."""
    import av

    codec = options.codec
    if codec is None:
        codec = "libx265" if bit_depth > 8 else "libx264"
        if muxer == "webm":
            codec = "libvpx-vp9"
    formats = _encoder_formats(codec)
    with av.open(io.BytesIO(), "w", format=muxer) as probe:
        if av.Codec(codec, "w").name not in probe.supported_codecs:
            raise ValueError(f"the {muxer} container cannot hold {codec} video")
    pix_fmt = options.pix_fmt or _default_pix_fmt(source_pix_fmt, bit_depth, formats)
    if formats and pix_fmt not in formats:
        raise ValueError(f"{codec} does not encode {pix_fmt} (it takes {', '.join(formats)})")
    sample = av.VideoFrame(4, 4, pix_fmt)  # chroma planes of 2 pixels on a side: that side is subsampled
    if len(sample.planes) >= 3 and ((sample.planes[1].width < 4 and out_width % 2)
                                    or (sample.planes[1].height < 4 and out_height % 2)):
        raise ValueError(f"{pix_fmt} needs an even width and height, the output is {out_width}x{out_height}: "
                         "choose a 4:4:4 pixel format")
    if codec in SIZE_LIMITS:
        max_w, max_h, why = SIZE_LIMITS[codec]
        if out_width > max_w or out_height > max_h:
            raise ValueError(f"the upscaled size {out_width}x{out_height} is beyond {codec}'s limit of "
                             f"{max_w}x{max_h} ({why}): choose another codec or a smaller input")
    enc: dict[str, str] = {}
    crf = options.crf if options.crf is not None else DEFAULT_CRF.get(codec)
    if options.crf is not None and codec in DEFAULT_CRF and DEFAULT_CRF[codec] is None:
        raise ValueError(f"{codec} is lossless and takes no CRF")
    low, high = CRF_RANGE.get(codec, (-math.inf, math.inf))
    if options.crf is not None and not low <= options.crf <= high:
        raise ValueError(f"{codec} takes a CRF from {low:g} to {high:g}, got {options.crf:g}")
    if crf is not None:
        enc["crf"] = f"{crf:g}"
        if codec == "libvpx-vp9":
            enc["b"] = "0"  # constant quality, not constrained
    preset = options.preset or DEFAULT_PRESET.get(codec)
    if preset is not None:
        enc["preset"] = preset
    if codec == "libx265":
        enc["x265-params"] = "log-level=error"  # x265 prints its settings to stderr otherwise
    if muxer in FRAME_RATE_MUXERS:
        enc["bf"] = "0"  # no B-frames: AVI keeps decode order only (read back, reordered frames came out of order)
    enc.update(options.encoder_options)
    _check_opens(codec, pix_fmt, enc)
    return Encoding(codec, pix_fmt, enc)


def _check_opens(codec: str, pix_fmt: str, options: dict[str, str]) -> None:
    """Open ``codec`` on a small ``pix_fmt`` frame size with ``options`` as the encode will: ValueError naming the
    options when FFmpeg refuses them (a preset the encoder does not know, a value out of range) or leaves some
    unused (``--crf`` for an encoder without one, e.g. mpeg4), so nothing is silently ignored."""
    from fractions import Fraction

    import av

    context = av.CodecContext.create(codec, "w")
    assert isinstance(context, av.VideoCodecContext)  # a video encoder (checked by the caller)
    context.width, context.height, context.pix_fmt = 64, 64, pix_fmt
    context.time_base = Fraction(1, 25)
    context.options = dict(options)
    given = ", ".join(f"{k}={v}" for k, v in sorted(options.items()))
    try:
        context.open(strict=True)
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise ValueError(f"{codec} refuses the options {given} ({type(exc).__name__}: {str(exc).splitlines()[0]})"
                         ) from None
    unused = sorted(set(context.options) & set(options))
    if unused:
        raise ValueError(f"{codec} does not take {', '.join(unused)} (given: {given})")
