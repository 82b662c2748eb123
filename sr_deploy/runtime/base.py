"""The one interface every backend implements (a Polygraphy-style runner).

An :class:`Upscaler` takes a batch ``N x 3 x H x W`` float32 RGB in [0, 1] (numpy, C-contiguous)
and returns ``N x 3 x sH x sW`` float32 (not clamped). Image modes, tiling and batching sit above
this interface and are written once for all backends.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass

import numpy as np

from sr_deploy.hardware import BackendUnavailable

__all__ = ["BackendUnavailable", "ShapeLimits", "Upscaler"]


@dataclass(frozen=True)
class ShapeLimits:
    """Input sizes a backend accepts: batch and spatial bounds (inclusive), in input pixels."""

    max_batch: int | None = None
    min_side: int = 1
    max_height: int | None = None
    max_width: int | None = None

    def accepts(self, shape: tuple[int, ...]) -> bool:
        n, _, h, w = shape
        return (
            (self.max_batch is None or n <= self.max_batch)
            and min(h, w) >= self.min_side
            and (self.max_height is None or h <= self.max_height)
            and (self.max_width is None or w <= self.max_width)
        )


class Upscaler(abc.ABC):
    """A loaded model ready to run. Attributes: ``name``, ``device``, ``precision``, ``scale``."""

    name: str
    device: str
    precision: str
    scale: int
    limits: ShapeLimits = ShapeLimits()

    def accepts(self, shape: tuple[int, ...]) -> bool:
        """Whether ``run`` accepts a batch of this NCHW shape."""
        return len(shape) == 4 and shape[1] == 3 and self.limits.accepts(shape)

    def run(self, batch: np.ndarray) -> np.ndarray:
        """``N x 3 x H x W`` float32 in [0, 1] -> ``N x 3 x sH x sW`` float32."""
        if batch.ndim != 4 or batch.shape[1] != 3:
            raise ValueError(f"{self.name}: expected an N x 3 x H x W batch, got shape {batch.shape}")
        if not self.accepts(tuple(batch.shape)):
            raise ValueError(f"{self.name}: input shape {batch.shape} is outside the accepted {self.limits}")
        return self._run(np.ascontiguousarray(batch, dtype=np.float32))

    @abc.abstractmethod
    def _run(self, batch: np.ndarray) -> np.ndarray: ...

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, device={self.device!r}, precision={self.precision!r})"
