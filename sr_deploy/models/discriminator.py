"""SRGAN discriminator of Ledig et al. 2017. Architecture only.

Eight 3x3 convolutions 64 -> 512 (stride 2 every second layer), BN (not on the first), LeakyReLU
0.2, dense 1024, LeakyReLU, dense 1 (a logit). The paper flattens a 96x96 patch's 6x6 features;
an adaptive average pool to 6x6 keeps exactly that for 96 px and accepts any patch size >= 16.
"""

from __future__ import annotations

import torch
from torch import nn


class Discriminator(nn.Module):
    """``N x 3 x H x W`` float32 in [0, 1] -> ``N x 1`` logits (real > 0)."""

    def __init__(self, in_channels: int = 3, base: int = 64) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_channels
        widths = [base, base, base * 2, base * 2, base * 4, base * 4, base * 8, base * 8]
        for i, width in enumerate(widths):
            stride = 2 if i % 2 == 1 else 1
            layers.append(nn.Conv2d(channels, width, 3, stride=stride, padding=1))
            if i > 0:
                layers.append(nn.BatchNorm2d(width))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            channels = width
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(6)
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(channels * 36, 1024), nn.LeakyReLU(0.2, inplace=True), nn.Linear(1024, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if min(x.shape[-2:]) < 16:
            raise ValueError(f"discriminator patches must be at least 16x16, got {tuple(x.shape[-2:])}")
        return self.classifier(self.pool(self.features(x)))
