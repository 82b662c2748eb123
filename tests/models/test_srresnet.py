"""SRResNet: output shapes, the paper configuration's parameter count, bad scales."""

from __future__ import annotations

import pytest
import torch

from sr_deploy.models import SRResNet


def expected_parameter_count(scale: int, channels: int, features: int, blocks: int) -> int:
    """Learnable parameters of SRResNet from Ledig et al. 2017, Fig. 4, counted layer by layer."""

    def conv(k: int, cin: int, cout: int) -> int:
        return k * k * cin * cout + cout

    bn = 2 * features  # gamma and beta (running statistics are buffers, not parameters)
    prelu = features  # one slope per channel
    head = conv(9, channels, features) + prelu
    block = 2 * conv(3, features, features) + 2 * bn + prelu
    trunk = conv(3, features, features) + bn
    upsampler = conv(3, features, 4 * features) + prelu  # PixelShuffle has no parameters
    ups = {2: 1, 4: 2, 8: 3}[scale]
    tail = conv(9, features, channels)
    return head + blocks * block + trunk + ups * upsampler + tail


@pytest.mark.parametrize("scale", [2, 4, 8])
def test_small_model_output_shape(scale: int) -> None:
    net = SRResNet(scale, num_features=8, num_blocks=2).eval()
    with torch.no_grad():
        out = net(torch.rand(2, 3, 5, 7))
    assert out.shape == (2, 3, 5 * scale, 7 * scale)
    assert out.dtype == torch.float32


@pytest.mark.parametrize("scale", [2, 4, 8])
def test_paper_model_output_shape(scale: int) -> None:
    net = SRResNet(scale).eval()
    with torch.no_grad():
        out = net(torch.rand(1, 3, 6, 4))
    assert out.shape == (1, 3, 6 * scale, 4 * scale)


def test_paper_configuration_parameter_count() -> None:
    net = SRResNet(scale=4, num_features=64, num_blocks=16)
    count = sum(p.numel() for p in net.parameters())
    assert count == expected_parameter_count(4, 3, 64, 16)
    assert 1.5e6 < count < 1.6e6  # "about 1.5 M" as in the paper


@pytest.mark.parametrize("scale", [2, 8])
def test_parameter_count_other_scales(scale: int) -> None:
    net = SRResNet(scale=scale, num_features=16, num_blocks=3)
    assert sum(p.numel() for p in net.parameters()) == expected_parameter_count(scale, 3, 16, 3)


@pytest.mark.parametrize("scale", [0, 1, 3, 6, 16])
def test_invalid_scale_is_refused(scale: int) -> None:
    with pytest.raises(ValueError, match=f"scale must be 2, 4 or 8, got {scale}"):
        SRResNet(scale)
