"""Input shapes and TensorRT optimization profiles: parsing, validation and selection.

A shape is ``N x C x H x W`` written ``1x3x256x256`` (batch, channels, height, width, in input pixels).
An optimization profile is three such shapes, ``min <= opt <= max`` in every dimension; an engine
accepts exactly the inputs inside one of its profiles. Everything here is pure Python (no TensorRT),
shared by the builder (:mod:`sr_deploy.export.tensorrt`) and the runtime
(:mod:`sr_deploy.backends.trt`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sr_deploy.models.descriptor import ModelDescriptor

Shape = tuple[int, int, int, int]

#: TensorRT indexes tensors with 32-bit signed integers: no tensor may reach 2**31 elements.
MAX_ELEMENTS = 2**31 - 1


class ProfileError(ValueError):
    """A shape or profile is malformed or breaks the model's or TensorRT's rules."""


def parse_shape(text: str) -> Shape:
    """``"1x3x256x256"`` -> ``(1, 3, 256, 256)``; every dimension a positive integer."""
    parts = text.strip().lower().split("x")
    if len(parts) != 4 or not all(p.isdigit() for p in parts):
        raise ProfileError(f"shape {text!r} is not N x C x H x W written like 1x3x256x256")
    shape = (int(parts[0]), int(parts[1]), int(parts[2]), int(parts[3]))
    if min(shape) < 1:
        raise ProfileError(f"shape {text!r} has a zero dimension")
    return shape


def format_shape(shape: tuple[int, ...]) -> str:
    """``(1, 3, 256, 256)`` -> ``"1x3x256x256"``."""
    return "x".join(str(d) for d in shape)


@dataclass(frozen=True)
class Profile:
    """One optimization profile: the smallest, the tuned-for and the largest input shape (NCHW)."""

    min: Shape
    opt: Shape
    max: Shape

    @classmethod
    def parse(cls, text: str) -> Profile:
        """``"MIN:OPT:MAX"``, e.g. ``"1x3x32x32:1x3x256x256:4x3x720x1280"`` (a single shape = fixed)."""
        parts = text.split(":")
        if len(parts) == 1:
            shape = parse_shape(parts[0])
            return cls(shape, shape, shape)
        if len(parts) != 3:
            raise ProfileError(f"profile {text!r} is not MIN:OPT:MAX (three shapes separated by ':')")
        return cls(parse_shape(parts[0]), parse_shape(parts[1]), parse_shape(parts[2]))

    def __str__(self) -> str:
        return f"{format_shape(self.min)}:{format_shape(self.opt)}:{format_shape(self.max)}"

    def contains(self, shape: tuple[int, ...]) -> bool:
        """Whether an input of this NCHW shape is inside the profile (bounds inclusive)."""
        return len(shape) == 4 and all(lo <= s <= hi for lo, s, hi in zip(self.min, shape, self.max, strict=True))

    def validate(self, desc: ModelDescriptor, where: str = "profile") -> None:
        """Raise :class:`ProfileError` unless the profile is usable for ``desc``.

        Rules: ``min <= opt <= max`` per dimension; channels equal ``desc.in_channels``; every
        height and width a multiple of ``desc.size_multiple`` and at least ``desc.min_size``; for a
        fixed-shape export (``desc.fixed_size``) every shape exactly ``1 x C x H x W`` of it; for a square
        model square shapes; the largest output (``N x out_channels x sH x sW``) below 2**31 elements.
        """
        named = {"min": self.min, "opt": self.opt, "max": self.max}
        for a, b in (("min", "opt"), ("opt", "max")):
            bad = [i for i in range(4) if named[a][i] > named[b][i]]
            if bad:
                dims = ", ".join("NCHW"[i] for i in bad)
                raise ProfileError(f"{where} {self}: {a} > {b} in {dims} (need min <= opt <= max)")
        for label, shape in named.items():
            n, c, h, w = shape
            if c != desc.in_channels:
                raise ProfileError(f"{where} {self}: {label} has {c} channels, the model takes {desc.in_channels}")
            if h % desc.size_multiple or w % desc.size_multiple:
                raise ProfileError(
                    f"{where} {self}: {label} {h}x{w} is not a multiple of {desc.size_multiple} "
                    "(the model's size_multiple)"
                )
            if min(h, w) < desc.min_size:
                raise ProfileError(f"{where} {self}: {label} {h}x{w} is below the model's minimum side {desc.min_size}")
            if desc.square and h != w:
                raise ProfileError(f"{where} {self}: {label} {h}x{w} is not square (the model takes square inputs)")
            if desc.fixed_size is not None and (n, h, w) != (1, *desc.fixed_size):
                fh, fw = desc.fixed_size
                raise ProfileError(f"{where} {self}: {label} {n}x{c}x{h}x{w} differs from the export's fixed input "
                                   f"1x{c}x{fh}x{fw} (the runtime tiles images into windows of that size)")
        n, _, h, w = self.max
        out_h, out_w = desc.output_shape(h, w)
        elements = n * desc.out_channels * out_h * out_w
        if elements > MAX_ELEMENTS:
            raise ProfileError(
                f"{where} {self}: the largest output {n}x{desc.out_channels}x{out_h}x{out_w} has {elements:,} "
                f"elements, over TensorRT's 2**31 - 1 limit; lower the max batch or size (or tile the image)"
            )


def default_profile(desc: ModelDescriptor) -> Profile:
    """``1x3x32x32 : 1x3x256x256 : 4x3x720x1280`` rounded to the model's size rules (and 2**31); square
    models get square shapes (``720x720`` at most: the runtime tiles to square windows), fixed-shape exports
    their one shape."""
    def fit(side: int) -> int:
        m = desc.size_multiple
        return max(desc.min_size + (-desc.min_size) % m, side - side % m)

    c = desc.in_channels
    if desc.fixed_size is not None:
        fixed = (1, c, *desc.fixed_size)
        return Profile(fixed, fixed, fixed)
    if desc.square:
        return Profile((1, c, fit(32), fit(32)), (1, c, fit(256), fit(256)), (1, c, fit(720), fit(720)))
    batch = 4
    while batch > 1 and batch * desc.out_channels * fit(720) * fit(1280) * desc.scale**2 > MAX_ELEMENTS:
        batch -= 1
    return Profile((1, c, fit(32), fit(32)), (1, c, fit(256), fit(256)), (batch, c, fit(720), fit(1280)))


def plan_profiles(
    desc: ModelDescriptor,
    min_shape: Shape | None = None,
    opt_shape: Shape | None = None,
    max_shape: Shape | None = None,
    profiles: Sequence[Profile] = (),
) -> tuple[Profile, ...]:
    """The validated profiles of a build request.

    Either ``profiles`` or ``min_shape`` / ``opt_shape`` / ``max_shape`` (NCHW tuples; a missing
    one taken from :func:`default_profile`), not both. Raises :class:`ProfileError` naming the bad profile.
    """
    if profiles and (min_shape or opt_shape or max_shape):
        raise ProfileError("give either profiles or min/opt/max shapes, not both")
    if profiles:
        planned = tuple(profiles)
    else:
        base = default_profile(desc)
        planned = (Profile(min_shape or base.min, opt_shape or base.opt, max_shape or base.max),)
    for i, profile in enumerate(planned):
        profile.validate(desc, where=f"profile {i}")
    return planned


def select_profile(profiles: tuple[Profile, ...], shape: tuple[int, ...]) -> int:
    """Index of the first profile containing ``shape``; :class:`ProfileError` naming the allowed ranges."""
    for i, profile in enumerate(profiles):
        if profile.contains(shape):
            return i
    allowed = "; ".join(f"profile {i}: {format_shape(p.min)} to {format_shape(p.max)}" for i, p in enumerate(profiles))
    raise ProfileError(f"input shape {format_shape(shape)} is outside every optimization profile of the engine "
                       f"({allowed}); rebuild with a profile that covers it or tile the input")
