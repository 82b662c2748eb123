"""SRResNet generator of Ledig et al. 2017 (also the SRGAN generator). Architecture only.

Input and output: NCHW float32 RGB with values in [0, 1]. The output is the raw last convolution
(not clamped, no tanh); callers clamp to [0, 1] when they turn it into an image.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class ResidualBlock(nn.Module):
    """conv3x3 - BN - PReLU - conv3x3 - BN, plus the identity skip."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(num_features, num_features, 3, padding=1),
            nn.BatchNorm2d(num_features),
            nn.PReLU(num_features),
            nn.Conv2d(num_features, num_features, 3, padding=1),
            nn.BatchNorm2d(num_features),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class UpsampleBlock(nn.Module):
    """Sub-pixel x2 upsampler: conv3x3 (C -> 4C), PixelShuffle(2), PReLU."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(num_features, num_features * 4, 3, padding=1)
        self.shuffle = nn.PixelShuffle(2)
        self.act = nn.PReLU(num_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.shuffle(self.conv(x)))


class SRResNet(nn.Module):
    """SRResNet: 9x9 conv + PReLU, ``num_blocks`` residual blocks, conv-BN + global skip,
    log2(scale) sub-pixel x2 upsamplers, 9x9 conv out.

    ``forward``: ``N x in_channels x H x W`` -> ``N x out_channels x (scale*H) x (scale*W)``.
    """

    def __init__(
        self,
        scale: int = 4,
        in_channels: int = 3,
        out_channels: int = 3,
        num_features: int = 64,
        num_blocks: int = 16,
    ) -> None:
        super().__init__()
        if scale not in (2, 4, 8):
            raise ValueError(f"SRResNet scale must be 2, 4 or 8, got {scale}")
        self.scale = scale
        self.head = nn.Sequential(nn.Conv2d(in_channels, num_features, 9, padding=4), nn.PReLU(num_features))
        self.blocks = nn.Sequential(*[ResidualBlock(num_features) for _ in range(num_blocks)])
        self.trunk_tail = nn.Sequential(
            nn.Conv2d(num_features, num_features, 3, padding=1), nn.BatchNorm2d(num_features)
        )
        self.upsample = nn.Sequential(*[UpsampleBlock(num_features) for _ in range(int(math.log2(scale)))])
        self.tail = nn.Conv2d(num_features, out_channels, 9, padding=4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.head(x)
        feat = feat + self.trunk_tail(self.blocks(feat))
        return self.tail(self.upsample(feat))
