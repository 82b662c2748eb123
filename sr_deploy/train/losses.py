"""Losses of Ledig et al. 2017: pixel MSE (SRResNet), VGG feature MSE + adversarial (SRGAN)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sr_deploy.models.vgg import VGGFeatureExtractor


class PerceptualLoss(nn.Module):
    """``weight * MSE(phi(sr), phi(hr))`` on a frozen truncated VGG19.

    The paper rescales the VGG feature maps by 1/12.75, i.e. the MSE by 1/12.75^2 (about 0.006),
    to make it comparable to the pixel MSE; that is the default ``weight``. Inputs: NCHW in [0, 1].
    """

    def __init__(self, extractor: VGGFeatureExtractor, weight: float = 1.0 / 12.75**2) -> None:
        super().__init__()
        self.extractor, self.weight = extractor, weight

    def forward(self, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            target = self.extractor(hr)
        return self.weight * F.mse_loss(self.extractor(sr).float(), target.float())


def adversarial_loss(logits: torch.Tensor, real: bool) -> torch.Tensor:
    """Binary cross-entropy of discriminator logits against the label real (1) or fake (0)."""
    target = torch.ones_like(logits) if real else torch.zeros_like(logits)
    return F.binary_cross_entropy_with_logits(logits.float(), target.float())
