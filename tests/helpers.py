"""Shared tiny-model factories of the test suite (one place; fixtures in the conftest files use them).

- :data:`SMALL` / :func:`random_srresnet`: SRResNet(16 features, 2 blocks) x4 with random weights,
  BN statistics and PReLU slopes that are not trivial (backends, runtime).
- :data:`TINY_RANDOM` / :func:`save_tiny_model`: SRResNet(8 features, 1 block) x4, random, saved as
  weights (bench, pipeline: parity, latency and the pipeline need no trained model).
"""

from __future__ import annotations

from pathlib import Path

import torch

from sr_deploy.models import ModelDescriptor, SRResNet, save_weights

SMALL = ModelDescriptor(scale=4, num_features=16, num_blocks=2, name="small-x4")
TINY_RANDOM = ModelDescriptor(scale=4, num_features=8, num_blocks=1, name="bench-tiny-x4")


def random_srresnet(desc: ModelDescriptor = SMALL, seed: int = 0) -> SRResNet:
    """An eval-mode SRResNet with random weights, BN running statistics, BN affines and PReLU slopes."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = SRResNet(desc.scale, num_features=desc.num_features, num_blocks=desc.num_blocks)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(0.2 * torch.randn(n, generator=gen))
                m.running_var.copy_(0.5 + 1.5 * torch.rand(n, generator=gen))
                m.weight.copy_(0.5 + torch.rand(n, generator=gen))
                m.bias.copy_(0.1 * torch.randn(n, generator=gen))
            elif isinstance(m, torch.nn.PReLU):
                m.weight.copy_(0.5 * torch.rand(m.weight.shape, generator=gen))
    return net.eval()


def save_tiny_model(path: Path, seed: int = 0) -> Path:
    """``SRResNet(num_features=8, num_blocks=1)`` x4 in eval mode, BN running stats and affine
    parameters randomised (so folding BN into the convs is exercised), saved to ``path``."""
    torch.manual_seed(seed)
    net = SRResNet(TINY_RANDOM.scale, num_features=TINY_RANDOM.num_features, num_blocks=TINY_RANDOM.num_blocks).eval()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.1, 0.1)
    return save_weights(net, TINY_RANDOM, path)
