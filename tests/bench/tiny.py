"""A tiny SRResNet x4 with non-trivial BatchNorm statistics, saved as real weights (shared by the
bench and pipeline tests; random weights are enough for parity, latency and the pipeline)."""

from __future__ import annotations

from pathlib import Path

import torch

from sr_deploy.models import ModelDescriptor, SRResNet, save_weights

TINY = ModelDescriptor(scale=4, num_features=8, num_blocks=1, name="bench-tiny-x4")


def save_tiny_model(path: Path, seed: int = 0) -> Path:
    """``SRResNet(num_features=8, num_blocks=1)`` x4 in eval mode, BN running stats and affine
    parameters randomised (so folding BN into the convs is exercised), saved to ``path``."""
    torch.manual_seed(seed)
    net = SRResNet(TINY.scale, num_features=TINY.num_features, num_blocks=TINY.num_blocks).eval()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.1, 0.1)
    return save_weights(net, TINY, path)
