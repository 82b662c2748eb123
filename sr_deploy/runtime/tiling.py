"""Seam-free tiled inference: any image size through any :class:`~sr_deploy.backends.base.Upscaler`.

How it works. The image is cut into windows of one fixed size (``tile_h x tile_w`` input pixels,
the whole image along a side that fits). Neighbouring windows overlap by at least twice the
model's receptive-field halo (:attr:`ModelDescriptor.receptive_radius`, LR pixels), and of each
window only its *core* is kept: the part at least ``halo`` pixels away from every window edge that
is not also an image edge. Every kept output pixel therefore saw exactly the input it sees in a
whole-image run (zero padding at image edges included), so the tiled result equals the
whole-image result up to float rounding, for every tile size: there are no seams to blend.

Windows are shifted inwards at the right and bottom edges instead of being cut short, so all
windows have the same shape: they batch together, and fixed-shape backends (TensorRT profiles)
see one shape.

Memory model (an estimate for choosing tile sizes, not a bound). For SRResNet with ``F`` features,
scale ``s`` and activations of ``b`` bytes, the peak per LR input pixel of a window is about
``b * F * (2 * s**2 + 4)`` bytes: the trunk holds about four ``F``-channel maps at LR resolution
(block input, global skip, conv output, activation temporary) and the last upsampling stage holds
its convolution output and the pixel-shuffled copy of it, ``F * s**2`` values per LR pixel each;
plus the float32 input and output tiles, ``4 * 3 * (1 + s**2)`` bytes. The paper model (F=64, x4,
fp32) needs 9420 bytes per LR pixel, so a 1 GiB budget allows windows of about 114,000 LR pixels
(337 x 337, cores of 257 x 257 inside the 40-pixel halo). The default budget is a quarter of the
memory available (1 to 16 GiB: about 5 GiB on a 24 GB machine, enough for a 960 x 540 image in one
window). Among the windows that fit the budget and the backend's
:class:`~sr_deploy.backends.base.ShapeLimits`, the plan takes the one that computes the fewest pixels
in all (each cut adds twice the halo); windows are then batched while the batch fits too and holds
no more pixels than the whole image, whatever the tile size, so smaller tiles never mean more memory
(measured in tests/runtime/test_memory.py). Checked against the peak RSS growth of the torch CPU fp32
backend running the paper model on one 192 x 192 window: 342 MB measured, 331 MB estimated.

Size rules and third-party models. A model whose descriptor asks for sides that are a multiple of
``m``, a minimum side, square inputs or one fixed input size (``fixed_size``: an export that only runs
at its trace size) gets the image padded at the bottom and right (edge pixels repeated) up to
:meth:`ModelDescriptor.fit_size`, windows whose sides are multiples of ``m`` starting at multiples of
``m`` (a pixel-unshuffle or window grid then falls on the same pixels as in a whole-image run) and of
the fixed size where there is one, and the output cropped back. The halo of a third-party model is
measured (:mod:`sr_deploy.models.receptive`); where the descriptor says it is not exact (global
pooling, shifted-window attention), tiled output differs from whole-image output by about the
descriptor's ``tiling_max_error``.

Thread safety: nothing here is shared between calls (each call allocates its own output), so one
upscaler can serve several threads as far as the backend allows (all sr-deploy backends do).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import psutil

from sr_deploy.backends.base import ShapeLimits, Upscaler
from sr_deploy.models.descriptor import ModelDescriptor

MIN_MEMORY_BUDGET, MAX_MEMORY_BUDGET = 1 << 30, 16 << 30
_ITEMSIZE = {"fp32": 4, "bf16": 2, "fp16": 2, "int8": 4, "fp64": 8}  # int8 Q/DQ graphs keep float activations


@dataclass(frozen=True)
class Span:
    """One window along an axis, in input pixels: run ``[start, stop)``, keep ``[keep_start, keep_stop)``."""

    start: int
    stop: int
    keep_start: int
    keep_stop: int


@dataclass(frozen=True)
class TilePlan:
    """Windows of ``tile_h x tile_w`` input pixels (rows ``ys`` x columns ``xs``), run ``batch`` at a time,
    over the image padded by ``pad_h`` rows and ``pad_w`` columns (the model's size rules)."""

    tile_h: int
    tile_w: int
    batch: int
    halo: int
    ys: tuple[Span, ...]
    xs: tuple[Span, ...]
    pad_h: int = 0
    pad_w: int = 0

    @property
    def count(self) -> int:
        return len(self.ys) * len(self.xs)


def axis_spans(length: int, tile: int, halo: int, align: int = 1) -> tuple[Span, ...]:
    """Windows of size ``min(tile, length)`` covering ``[0, length)`` whose kept cores partition it.

    A core stays ``halo`` pixels inside its window except at the image edges. Windows start at
    multiples of ``align`` (``length`` and ``tile`` must then be multiples of it). Needs
    ``tile > 2 * halo + align - 1`` when the axis does not fit in one window.
    """
    if length < 1 or tile < 1 or halo < 0 or align < 1:
        raise ValueError(f"invalid tiling: length {length}, tile {tile}, halo {halo}, align {align}")
    if length <= tile:
        return (Span(0, length, 0, length),)
    if tile <= 2 * halo + align - 1:
        raise ValueError(f"tile {tile} must exceed twice the receptive-field halo ({halo}) to keep a core")
    if length % align or tile % align:
        raise ValueError(f"length {length} and tile {tile} must be multiples of the alignment {align}")
    spans, keep = [], 0
    while keep < length:
        start = min(max(keep - halo, 0) // align * align, length - tile)
        stop = start + tile
        keep_stop = length if stop == length else stop - halo
        spans.append(Span(start, stop, keep, keep_stop))
        keep = keep_stop
    return tuple(spans)


def bytes_per_pixel(desc: ModelDescriptor, precision: str) -> int:
    """Estimated peak bytes per LR input pixel of a window (see the module's memory model)."""
    s2 = desc.scale**2
    return _ITEMSIZE.get(precision, 4) * desc.num_features * (2 * s2 + 4) + 4 * desc.in_channels * (1 + s2)


def default_memory_budget() -> int:
    """A quarter of the memory available now, at least 1 GiB and at most 16 GiB (bytes): large windows
    where memory allows (fewer halo pixels computed twice), a bounded share where it does not."""
    available = psutil.virtual_memory().available
    return int(min(max(available // 4, MIN_MEMORY_BUDGET), MAX_MEMORY_BUDGET))


def auto_window(height: int, width: int, halo: int, max_pixels: int, max_height: int, max_width: int,
                align: int = 1) -> tuple[int, int] | None:
    """The window ``(tile_h, tile_w)`` of at most ``max_pixels`` input pixels (and the backend's maxima)
    that computes the fewest pixels in all for a ``height x width`` image (windows overlap by the
    ``halo`` on each side; sides multiples of ``align``), fewer windows on ties; None when no window
    keeps a core."""
    def sides(length: int, cap: int) -> set[int]:
        def fit(side: int) -> int:
            return min(length, max(align, min(cap, side) // align * align))

        cands = {fit(length)}
        for n in range(2, length // max(1, 2 * halo) + 2):
            cands.add(fit(math.ceil(length / n) + 2 * halo + align - 1))
        return {s for s in cands if s == length or s > 2 * halo + align - 1}

    best: tuple[int, int, int, int] | None = None
    for th in sides(height, max_height):
        ny = len(axis_spans(height, th, halo, align))
        for tw in sides(width, max_width):
            if th * tw > max_pixels:
                continue
            windows = ny * len(axis_spans(width, tw, halo, align))
            key = (windows * th * tw, windows, th, tw)
            if best is None or key < best:
                best = key
    return None if best is None else (best[2], best[3])


def plan_tiles(
    upscaler: Upscaler,
    height: int,
    width: int,
    tile: int | None = None,
    memory_budget: int | None = None,
    halo: int | None = None,
) -> TilePlan:
    """Plan the tiling of a ``height x width`` input for ``upscaler``.

    ``tile``: None chooses the window within ``memory_budget`` (bytes; None:
    :func:`default_memory_budget`) and the backend's limits that computes the fewest pixels
    (:func:`auto_window`); ``0`` ignores the budget (the whole image as one window, unless the
    backend's limits cut it); ``N > 0`` keeps cores of ``N x N`` input pixels (windows of
    ``N + 2 * halo``, the whole image along a side that fits). Whatever the tile, windows are
    batched only while the batch fits the budget. ``halo`` defaults to the model's receptive radius.
    Raises ValueError when no window the backend accepts fits.
    """
    memory_budget = default_memory_budget() if memory_budget is None else memory_budget
    if tile is not None and (isinstance(tile, bool) or not isinstance(tile, int | np.integer)):
        raise TypeError(f"tile must be a whole number of input pixels, got {tile!r}")
    desc = getattr(upscaler, "descriptor", None)
    original, align, fixed = (height, width), 1, None
    if not isinstance(desc, ModelDescriptor):
        if halo is None:
            raise ValueError(f"{upscaler.name} carries no model descriptor: pass halo= explicitly")
        per_pixel = 0
    else:
        halo = desc.receptive_radius if halo is None else halo
        per_pixel = bytes_per_pixel(desc, upscaler.precision)
        height, width = desc.fit_size(height, width)
        align, fixed = desc.size_multiple, desc.fixed_size
    limits = upscaler.limits
    if fixed is not None:
        tile_h, tile_w = fixed
    elif tile is None:
        max_pixels = memory_budget // per_pixel if per_pixel else height * width
        window = auto_window(height, width, halo, max_pixels, limits.max_height or height, limits.max_width or width,
                             align)
        if window is None:
            side = math.isqrt(max_pixels)
            raise ValueError(
                f"a memory budget of {memory_budget} bytes allows {side} x {side} windows, which leave no core "
                f"inside the {halo}-pixel halo: raise the budget or pass an explicit tile size"
            )
        tile_h, tile_w = window
    elif tile == 0:
        tile_h, tile_w = height, width
    elif tile > 0:
        tile_h = tile_w = tile + 2 * halo + (-(tile + 2 * halo)) % align
    else:
        raise ValueError(f"tile must be >= 0 (0: whole image), got {tile}")
    tile_h = min(tile_h, height, limits.max_height or height)
    tile_w = min(tile_w, width, limits.max_width or width)
    if isinstance(desc, ModelDescriptor) and fixed is None:  # windows meet the size rules too
        tile_h, tile_w = (max(desc.min_size, t // align * align) if t < side else t
                          for t, side in ((tile_h, height), (tile_w, width)))
        if desc.square:
            tile_h = tile_w = min(tile_h, tile_w)
    ys, xs = axis_spans(height, tile_h, halo, align), axis_spans(width, tile_w, halo, align)
    count = len(ys) * len(xs)
    batch = 1 if fixed is not None else min(count, limits.max_batch or count)  # fixed exports fix the batch
    if per_pixel:
        batch = min(batch, max(1, memory_budget // (per_pixel * tile_h * tile_w)))
    # a batch never holds more pixels than the whole image: smaller tiles never mean more memory
    batch = min(batch, max(1, (height * width) // (tile_h * tile_w)))
    while batch > 1 and not upscaler.accepts((batch, 3, tile_h, tile_w)):
        batch -= 1
    if not upscaler.accepts((batch, 3, tile_h, tile_w)):
        raise ValueError(
            f"{upscaler.name} does not accept {tile_h} x {tile_w} windows (limits {limits}) for a "
            f"{height} x {width} input"
        )
    return TilePlan(tile_h, tile_w, batch, halo, ys, xs, height - original[0], width - original[1])


def upscale_tiled(upscaler: Upscaler, image: np.ndarray, plan: TilePlan | None = None) -> np.ndarray:
    """``3 x H x W`` float32 in [0, 1] -> ``3 x sH x sW`` float32 (not clamped), tile by tile.

    ``plan``: from :func:`plan_tiles` for this size and upscaler (default: the automatic plan).
    Equal to ``upscaler.run(image[None])[0]`` up to float rounding (for a model with size rules: to
    the run on the image padded as the plan says, cropped; for a model whose descriptor says its halo
    is not exact, within about its ``tiling_max_error``).
    """
    if image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"expected a 3 x H x W image, got shape {image.shape}")
    _, original_h, original_w = image.shape
    plan = plan or plan_tiles(upscaler, original_h, original_w)
    image = plan_input(image, plan)
    if plan.count == 1 and not (plan.pad_h or plan.pad_w):  # one window, the whole image: no copies
        return upscaler.run(image[None])[0]
    _, height, width = image.shape
    s = upscaler.scale
    out = np.empty((3, height * s, width * s), dtype=np.float32)
    windows = plan_windows(plan)
    for first in range(0, len(windows), plan.batch):
        group = windows[first : first + plan.batch]
        result = upscaler.run(np.stack([window_input(image, y, x) for y, x in group]))
        for (y, x), tile_out in zip(group, result, strict=True):
            place_window(out, y, x, tile_out, s)
    return out[:, : original_h * s, : original_w * s] if plan.pad_h or plan.pad_w else out


def plan_input(image: np.ndarray, plan: TilePlan) -> np.ndarray:
    """A ``3 x H x W`` image as the plan's windows read it: padded at the bottom and right as the plan says
    (edge pixels repeated), contiguous float32; ValueError when the plan is for another size. The windows'
    output covers the padded size: crop it to ``scale * (H, W)``."""
    if plan.pad_h or plan.pad_w:
        image = np.pad(image, ((0, 0), (0, plan.pad_h), (0, plan.pad_w)), mode="edge")
    _, height, width = image.shape
    if plan.ys[-1].keep_stop != height or plan.xs[-1].keep_stop != width:
        raise ValueError(f"the tile plan covers {plan.ys[-1].keep_stop} x {plan.xs[-1].keep_stop}, "
                         f"not this {height} x {width} image")
    return np.ascontiguousarray(image, dtype=np.float32)


def plan_windows(plan: TilePlan) -> list[tuple[Span, Span]]:
    """The plan's windows as ``(row span, column span)`` pairs, row by row."""
    return [(y, x) for y in plan.ys for x in plan.xs]


def window_input(image: np.ndarray, y: Span, x: Span) -> np.ndarray:
    """The ``3 x h x w`` input of one window of a ``3 x H x W`` image (a view)."""
    return image[:, y.start : y.stop, x.start : x.stop]


def place_window(out: np.ndarray, y: Span, x: Span, tile_out: np.ndarray, scale: int) -> None:
    """Copy the kept core of one window's ``3 x sh x sw`` output into ``out`` (``3 x sH x sW``)."""
    top, left = (y.keep_start - y.start) * scale, (x.keep_start - x.start) * scale
    rows, cols = (y.keep_stop - y.keep_start) * scale, (x.keep_stop - x.keep_start) * scale
    out[:, y.keep_start * scale : y.keep_stop * scale, x.keep_start * scale : x.keep_stop * scale] = (
        tile_out[:, top : top + rows, left : left + cols]
    )


class TiledUpscaler(Upscaler):
    """``inner`` run window by window within a memory budget: an :class:`Upscaler` that takes any image size
    (the scorer, :func:`sr_deploy.scoring.evaluate`, and the bench's accuracy runs use it, so their peak memory
    is bounded like ``upscale``'s). ``run(N x 3 x H x W)`` tiles each image with :func:`plan_tiles` (``tile``
    and ``memory_budget`` as there) and returns what ``inner.run`` would, up to float rounding. Closing it
    closes ``inner``."""

    def __init__(self, inner: Upscaler, tile: int | None = None, memory_budget: int | None = None) -> None:
        self.inner, self.tile, self.memory_budget = inner, tile, memory_budget
        self.name, self.device, self.precision = f"{inner.name}+tiled", inner.device, inner.precision
        self.descriptor = inner.descriptor
        self.limits = ShapeLimits()

    def _weights_digest(self) -> str:
        return self.inner.weights_digest()

    def accepts(self, shape: tuple[int, ...]) -> bool:
        """Any ``N x 3 x H x W`` batch (a fixed-size ``inner`` too: its windows are of its size)."""
        return len(shape) == 4 and shape[1] == 3

    def _run(self, batch: np.ndarray) -> np.ndarray:
        _, _, height, width = batch.shape
        plan = plan_tiles(self.inner, height, width, self.tile, self.memory_budget)
        return np.stack([upscale_tiled(self.inner, image, plan) for image in batch])

    def _release(self) -> None:
        self.inner.close()
