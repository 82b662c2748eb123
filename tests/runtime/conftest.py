"""Shared fixtures of the runtime tests: a small random SRResNet that is not trivial, as weights and ONNX."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from sr_deploy.models import ModelDescriptor, SRResNet, save_weights

SMALL = ModelDescriptor(scale=4, num_features=16, num_blocks=2, name="small-x4")


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


@pytest.fixture(scope="session")
def small_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``small-x4.safetensors`` (+ .json) of :func:`random_srresnet`."""
    return save_weights(random_srresnet(), SMALL, tmp_path_factory.mktemp("small") / "small-x4.safetensors")


@pytest.fixture(scope="session")
def small_onnx(small_weights: Path) -> Path:
    """The same weights exported to fp32 ONNX with sr-deploy metadata (``export_onnx``: parity-gated)."""
    from sr_deploy.export.onnx import export_onnx

    return export_onnx(small_weights, small_weights.with_suffix(".onnx")).path
