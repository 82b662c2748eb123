"""Measured receptive field: how far a model's output sees, and whether tiling at that halo is exact.

For architectures whose halo cannot be derived from the layer list (third-party checkpoints), it is
measured on the model itself (pure: the model, its scale and its size rules in, a :class:`Halo` out):

1. **Reach.** On a random image (seeded, uniform in [0, 1]) one LR pixel is flipped (``x -> 1 - x``,
   all channels) and the output is recomputed; every output pixel that changed by more than
   ``tolerance`` times ``max(1, largest output magnitude)`` counts as influenced (outputs of a trained
   model lie in about [0, 1], where this is absolute; random weights can give outputs of 100). The reach is the largest
   distance, in LR pixels (output distance divided by the scale, rounded up), of an influenced pixel.
   It is measured along both axes on strips (``strip x (2R + 1)`` and transposed, ``strip`` the model's
   minimum size or 16), doubling ``R`` from 8 until the influence stays inside the strip, up to
   ``max_radius``. Not contained at ``max_radius`` (global pooling, attention): the halo is the
   distance beyond which the flip changed the output by less than ``practical_tolerance``.
2. **Window check.** The model runs on the whole strip and on a window of it whose core keeps the halo
   from every window edge that is not an image edge (window starts aligned to the size multiple); the
   max-abs difference over the core is :attr:`Halo.max_error`. Exact means: the reach was contained
   and the difference is at most ``exact_tolerance`` (relative as above: float reassociation between
   shapes). Otherwise
   tiling at this halo is "approximate" and ``max_error`` is what it costs.

Cost: a dozen forward passes on strips of at most ``16 x (2 * max_radius + 1)`` LR pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

#: An output change (absolute, outputs in [0, 1]) below this is float noise, not influence.
REACH_TOLERANCE = 1e-6
#: For models whose influence never ends: the halo where a flipped pixel moves the output less than this.
PRACTICAL_TOLERANCE = 1e-3
#: Tiled and whole-image cores within this max-abs difference count as equal (float reassociation).
EXACT_TOLERANCE = 1e-5
MAX_RADIUS = 64


@dataclass(frozen=True)
class Halo:
    """A measured halo: ``radius`` (LR pixels), ``exact`` (tiling at it reproduces the whole image),
    ``tolerance`` (the relative output change that counted as influence), ``max_error`` (max-abs core difference
    between a window and the whole image at this radius, outputs in [0, 1] units)."""

    radius: int
    exact: bool
    tolerance: float
    max_error: float


def _round_up(value: int, multiple: int) -> int:
    return value + (-value) % multiple


def _run(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return model(x).float()


def _reach_along_width(model: nn.Module, scale: int, channels: int, strip: int, radius: int, multiple: int,
                       tolerance: float, generator: torch.Generator) -> tuple[int | None, torch.Tensor]:
    """Flip the middle pixel of a ``strip x width`` image; the reach in LR pixels along the width
    (None: the influence reached the strip's ends), and the per-distance max change (LR pixels)."""
    width = _round_up(2 * radius + 1, multiple)
    centre_y, centre_x = strip // 2, width // 2
    x = torch.rand(1, channels, strip, width, generator=generator)
    flipped = x.clone()
    flipped[..., centre_y, centre_x] = 1 - flipped[..., centre_y, centre_x]
    base = _run(model, x)
    change = (_run(model, flipped) - base).abs().amax(dim=(0, 1, 2))  # per output column
    tolerance *= max(1.0, float(base.abs().max()))
    columns = torch.arange(change.numel())
    lr_distance = torch.where(columns < centre_x * scale, centre_x * scale - columns,
                              torch.clamp(columns - (centre_x * scale + scale - 1), min=0))
    lr_distance = torch.div(lr_distance + scale - 1, scale, rounding_mode="floor")
    profile = torch.zeros(int(lr_distance.max()) + 1)
    profile.scatter_reduce_(0, lr_distance, change, reduce="amax")
    influenced = torch.nonzero(profile > tolerance).flatten()
    reach = int(influenced.max()) if influenced.numel() else 0
    touches_end = bool((change[0] > tolerance) or (change[-1] > tolerance))
    return (None if touches_end else reach), profile


def _window_error(model: nn.Module, scale: int, channels: int, strip: int, radius: int, multiple: int,
                  generator: torch.Generator) -> tuple[float, float]:
    """Max-abs difference between the core of a window and the whole strip's output, both axes, and
    ``max(1, largest output magnitude)``."""
    core = max(multiple, 8)
    worst, magnitude = 0.0, 1.0
    for transpose in (False, True):
        start = _round_up(radius + core, multiple)  # aligned window start, with a core's worth before it
        window = _round_up(2 * radius + core, multiple)
        width = _round_up(start + window + radius + core, multiple)
        x = torch.rand(1, channels, strip, width, generator=generator)
        x = x.transpose(2, 3) if transpose else x
        whole = _run(model, x)
        part = x[..., start : start + window] if not transpose else x[..., start : start + window, :]
        tiled = _run(model, part.contiguous())
        keep = slice(radius * scale, (window - radius) * scale)
        if transpose:
            a = whole[..., start * scale : (start + window) * scale, :][..., keep, :]
            b = tiled[..., keep, :]
        else:
            a = whole[..., start * scale : (start + window) * scale][..., keep]
            b = tiled[..., keep]
        worst = max(worst, float((a - b).abs().max()))
        magnitude = max(magnitude, float(whole.abs().max()))
    return worst, magnitude


def measure_halo(
    model: nn.Module,
    scale: int,
    in_channels: int = 3,
    *,
    min_size: int = 1,
    multiple_of: int = 1,
    tolerance: float = REACH_TOLERANCE,
    practical_tolerance: float = PRACTICAL_TOLERANCE,
    exact_tolerance: float = EXACT_TOLERANCE,
    max_radius: int = MAX_RADIUS,
    seed: int = 0,
) -> Halo:
    """Measure the receptive halo of ``model`` (eval mode, CPU, float32 in [0, 1] NCHW input; ``scale`` its
    upscaling factor) as described in the module docstring; ``min_size`` / ``multiple_of``: its size rules."""
    generator = torch.Generator().manual_seed(seed)
    strip = _round_up(max(16, min_size), multiple_of)
    model = model.eval()
    radius, contained, profile = 8, False, torch.zeros(1)
    while True:
        reaches = []
        for transpose in (False, True):
            net = model if not transpose else _Transposed(model)
            reaches.append(_reach_along_width(net, scale, in_channels, strip, max(radius, strip), multiple_of,
                                              tolerance, generator))
        found = [r for r, _ in reaches]
        length = max(p.numel() for _, p in reaches)
        profile = torch.maximum(_pad_to(reaches[0][1], length), _pad_to(reaches[1][1], length))
        if all(r is not None for r in found):
            contained, halo = True, max(r for r in found if r is not None)
            break
        if radius >= max_radius:
            above = torch.nonzero(profile > practical_tolerance).flatten()
            halo = min(max_radius, int(above.max()) + 1 if above.numel() else 0)
            break
        radius = min(2 * radius, max_radius)
    error, magnitude = _window_error(model, scale, in_channels, strip, halo, multiple_of, generator)
    exact = contained and error <= exact_tolerance * magnitude
    return Halo(halo, exact, tolerance if contained else practical_tolerance, error)


def _pad_to(profile: torch.Tensor, length: int) -> torch.Tensor:
    return torch.nn.functional.pad(profile, (0, length - profile.numel()))


class _Transposed(nn.Module):
    """``model`` seen through a height/width swap (measures the reach along the height on a wide strip)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.inner = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x.transpose(2, 3).contiguous()).transpose(2, 3)
