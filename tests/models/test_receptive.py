"""measure_halo: the measured receptive halo of known networks, and "approximate" for global ones."""

from __future__ import annotations

import torch
from torch import nn

from sr_deploy.models.receptive import measure_halo


def _convs(*kernels: int) -> nn.Sequential:
    torch.manual_seed(0)
    layers: list[nn.Module] = []
    for i, k in enumerate(kernels):
        layers += [nn.Conv2d(3 if i == 0 else 8, 8, k, padding=k // 2), nn.ReLU()]
    return nn.Sequential(*layers, nn.Conv2d(8, 3 * 4, 3, padding=1), nn.PixelShuffle(2))


def test_a_conv_stack_measures_its_exact_radius() -> None:
    net = _convs(3, 5, 3).eval()  # radius 1 + 2 + 1 + 1 (the last 3x3) = 5 LR pixels
    halo = measure_halo(net, 2)
    assert halo.radius == 5
    assert halo.exact and halo.max_error <= 1e-5


class _GlobalGate(nn.Module):
    """A conv network whose output is scaled by the image mean: its influence never ends."""

    def __init__(self) -> None:
        super().__init__()
        self.body = _convs(3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.body(x) * torch.sigmoid(4 * x.mean(dim=(1, 2, 3), keepdim=True))
        return out


def test_global_pooling_is_reported_approximate_with_its_error() -> None:
    halo = measure_halo(_GlobalGate().eval(), 2, max_radius=16)
    assert not halo.exact
    assert halo.max_error > 1e-4  # what tiling at this halo costs, measured
