"""Operators that TensorRT or ONNX Runtime handle badly, exported as equivalent supported ones.

- ``pixel_unshuffle`` (Real-ESRGAN x2 and x1 put it in front of the RRDB trunk): torch exports it as a
  6-D Reshape -> Transpose -> Reshape chain whose shapes are computed at run time, which TensorRT
  rejects. It is exported instead as one ``Conv`` with stride ``r`` and a constant one-hot
  ``(C * r * r) x C x r x r`` kernel: output channel ``c * r * r + i * r + j`` copies input channel ``c`` at
  offset ``(i, j)`` of each ``r x r`` block, exactly PixelUnshuffle's channel order. Each output is one
  input times 1.0 plus zeros, so the result is bit-identical; the export's parity gate checks it.

:func:`export_rewrites` registers these symbolics for the TorchScript exporter for the duration of one
export (``with export_rewrites(opset): torch.onnx.export(...)``) and removes them afterwards.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch

#: What each rewrite replaces, for reports: ``aten`` operator -> what it is exported as.
REWRITES = {"aten::pixel_unshuffle": "Conv (stride r, one-hot kernel)"}


def unshuffle_kernel(channels: int, factor: int) -> torch.Tensor:
    """The ``(C * r * r) x C x r x r`` one-hot convolution kernel equal to ``pixel_unshuffle(x, r)``."""
    kernel = torch.zeros(channels * factor * factor, channels, factor, factor)
    for c in range(channels):
        for i in range(factor):
            for j in range(factor):
                kernel[c * factor * factor + i * factor + j, c, i, j] = 1.0
    return kernel


def _pixel_unshuffle(g: Any, x: Any, downscale_factor: Any) -> Any:
    from torch.onnx import symbolic_helper

    factor = symbolic_helper._get_const(downscale_factor, "i", "downscale_factor")
    channels = symbolic_helper._get_tensor_dim_size(x, 1)
    if channels is None:
        return symbolic_helper._unimplemented("pixel_unshuffle", "unknown channel count", x)
    weight = g.op("Constant", value_t=unshuffle_kernel(channels, factor))
    return g.op("Conv", x, weight, kernel_shape_i=[factor, factor], strides_i=[factor, factor])


@contextlib.contextmanager
def export_rewrites(opset: int) -> Iterator[None]:
    """Register the rewrites' ONNX symbolics (at ``opset``) while the block runs."""
    torch.onnx.register_custom_op_symbolic("aten::pixel_unshuffle", _pixel_unshuffle, opset)
    try:
        yield
    finally:
        torch.onnx.unregister_custom_op_symbolic("aten::pixel_unshuffle", opset)
