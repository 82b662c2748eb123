"""The bicubic baseline as an upscaler (MATLAB-compatible imresize), so it is scored like a model."""

from __future__ import annotations

import numpy as np

from sr_deploy.backends.base import Upscaler
from sr_deploy.data.imresize import imresize
from sr_deploy.models.descriptor import bicubic_descriptor


class BicubicUpscaler(Upscaler):
    """MATLAB ``imresize(lr, scale, 'bicubic')`` per image, in float64, returned as float32."""

    def __init__(self, scale: int) -> None:
        self.descriptor = bicubic_descriptor(scale)
        self.name, self.device, self.precision = "bicubic", "cpu", "fp64"

    def _run(self, batch: np.ndarray) -> np.ndarray:
        out = [imresize(img.transpose(1, 2, 0).astype(np.float64), float(self.scale)) for img in batch]
        return np.stack([o.transpose(2, 0, 1) for o in out]).astype(np.float32)
