"""Rewrites: pixel-unshuffle exported as a strided one-hot Conv, bit-identical, no 6-D reshapes."""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path

import onnx
import pytest
import torch

import sr_deploy as sr
from sr_deploy.export.rewrites import unshuffle_kernel
from tests.helpers import save_third_party

pytestmark = pytest.mark.skipif(find_spec("spandrel") is None, reason="needs the [models] extra (spandrel)")


@pytest.mark.parametrize(("channels", "factor"), [(3, 2), (3, 4), (5, 2)])
def test_the_one_hot_conv_is_pixel_unshuffle(channels: int, factor: int) -> None:
    x = torch.rand(2, channels, 4 * factor, 3 * factor)
    conv = torch.nn.functional.conv2d(x, unshuffle_kernel(channels, factor), stride=factor)
    assert torch.equal(conv, torch.pixel_unshuffle(x, factor))


def test_real_esrgan_x2_exports_without_reshape_transpose(tmp_path: Path) -> None:
    weights = save_third_party("esrgan-x2-unshuffle", tmp_path / "realesrgan-x2.pth")
    result = sr.export_onnx(weights, tmp_path / "x2.onnx")
    graph = onnx.load(result.path).graph
    ops = [n.op_type for n in graph.node]
    assert "Transpose" not in ops and "Reshape" not in ops and "SpaceToDepth" not in ops
    first = next(n for n in graph.node if n.op_type == "Conv")
    assert [list(a.ints) for a in first.attribute if a.name == "strides"] == [[2, 2]]
    assert result.parity.passed and not result.fallback  # dynamic H/W, equal to PyTorch at both sizes
