"""The one interface every backend implements (a Polygraphy-style runner): :class:`Upscaler`.

An :class:`Upscaler` takes a batch ``N x 3 x H x W`` float32 RGB in [0, 1] (numpy, C-contiguous)
and returns ``N x 3 x sH x sW`` float32 (not clamped). It carries the
:class:`~sr_deploy.models.descriptor.ModelDescriptor` of its model, says which shapes it accepts,
and holds its engine's resources until :meth:`Upscaler.close` (or the end of a ``with`` block).
Image modes, tiling and batching sit above this interface and are written once for all backends.
"""

from __future__ import annotations

import abc
import hashlib
from dataclasses import dataclass
from types import TracebackType

import numpy as np

from sr_deploy.errors import BackendUnavailable
from sr_deploy.models.descriptor import ModelDescriptor

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
    """A loaded model ready to run.

    Attributes: ``name`` (e.g. ``onnxruntime-int8[CPU]``), ``device`` (``cpu``, ``cuda`` or
    ``cuda:N``), ``precision`` (``fp32``, ``fp16``, ``bf16``, ``int8``), ``descriptor`` (what the
    model is), ``limits`` (accepted input shapes); ``scale`` is the descriptor's. Use it as a
    context manager (or call :meth:`close`) to free its sessions, buffers and device memory.
    """

    name: str
    device: str
    precision: str
    descriptor: ModelDescriptor
    limits: ShapeLimits = ShapeLimits()
    _closed: bool = False

    @property
    def scale(self) -> int:
        """Upscaling factor of the model."""
        return self.descriptor.scale

    def accepts(self, shape: tuple[int, ...]) -> bool:
        """Whether ``run`` accepts a batch of this NCHW shape (a fixed-size export, ``descriptor.fixed_size``: only
        its own height and width)."""
        fixed = self.descriptor.fixed_size
        return (len(shape) == 4 and shape[1] == 3 and self.limits.accepts(shape)
                and (fixed is None or tuple(shape[2:]) == fixed))

    def weights_digest(self) -> str:
        """sha256 (hex) of what this upscaler runs: its model file's bytes, or its network's tensors (computed once).
        Tells apart weights the descriptor cannot (two checkpoints of one architecture): a resumed job checks it."""
        digest = self.__dict__.get("_weights_digest_value")
        if digest is None:
            digest = self.__dict__["_weights_digest_value"] = self._weights_digest()
        return str(digest)

    def _weights_digest(self) -> str:
        """The backend's :meth:`weights_digest` (default, for an upscaler without weights: its descriptor's)."""
        return hashlib.sha256(self.descriptor.to_json().encode()).hexdigest()

    def run(self, batch: np.ndarray) -> np.ndarray:
        """``N x 3 x H x W`` float32 in [0, 1] -> ``N x 3 x sH x sW`` float32."""
        if self._closed:
            raise RuntimeError(f"{self.name} is closed")
        if batch.ndim != 4 or batch.shape[1] != 3:
            raise ValueError(f"{self.name}: expected an N x 3 x H x W batch, got shape {batch.shape}")
        if not self.accepts(tuple(batch.shape)):
            fixed = self.descriptor.fixed_size
            if fixed is not None and tuple(batch.shape[2:]) != fixed:
                raise ValueError(f"{self.name}: input shape {batch.shape}: this export runs only at {fixed[0]}x"
                                 f"{fixed[1]} (tile images into windows of that size, as upscale does: "
                                 "sr_deploy.runtime.tiling.TiledUpscaler)")
            raise ValueError(f"{self.name}: input shape {batch.shape} is outside the accepted {self.limits}")
        out = self._run(np.ascontiguousarray(batch, dtype=np.float32))
        n, _, height, width = batch.shape
        expected = (n, self.descriptor.out_channels, *self.descriptor.output_shape(height, width))
        if tuple(out.shape) != expected:  # a descriptor that does not describe the network (scale, channels)
            raise ValueError(f"{self.name}: the model returned {tuple(out.shape)} for {tuple(batch.shape)}, its "
                             f"descriptor (x{self.scale}, {self.descriptor.out_channels} channels) says {expected}")
        return out

    @abc.abstractmethod
    def _run(self, batch: np.ndarray) -> np.ndarray: ...

    def close(self) -> None:
        """Release the engine's resources (sessions, buffers, device memory); idempotent. The upscaler
        cannot run afterwards."""
        if not self._closed:
            self._closed = True
            self._release()

    def _release(self) -> None:  # noqa: B027 (optional hook: backends without resources hold nothing)
        """Free what the backend holds (called once, by :meth:`close`)."""

    def __enter__(self) -> Upscaler:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, device={self.device!r}, precision={self.precision!r})"
