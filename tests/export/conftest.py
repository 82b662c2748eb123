"""Shared fixtures for the export tests: a tiny SRResNet actually trained on real photos.

Quantization sensitivity only means something for a trained network (random weights put every
layer near zero), so a SRResNet(num_blocks=2, num_features=16) x4 is fitted for a few hundred Adam
steps on LR/HR crops of the embedded training photos (MATLAB bicubic degradation), once per session.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from sr_deploy.data.datasets import embedded_images
from sr_deploy.data.image_io import read_image, to_float_rgb
from sr_deploy.data.imresize import imresize
from sr_deploy.export.onnx import export_onnx
from sr_deploy.models import ModelDescriptor, SRResNet, save_weights

TINY = ModelDescriptor(scale=4, num_features=16, num_blocks=2, name="tiny-x4")


def _training_pairs(count: int, lr_side: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    images = [to_float_rgb(read_image(p)).astype(np.float64) for p in embedded_images("train")]
    images = [im for im in images if min(im.shape[:2]) >= lr_side * 4]
    lrs, hrs = [], []
    for i in range(count):
        im = images[i % len(images)]
        y = int(rng.integers(0, im.shape[0] - lr_side * 4 + 1))
        x = int(rng.integers(0, im.shape[1] - lr_side * 4 + 1))
        hr = im[y : y + lr_side * 4, x : x + lr_side * 4]
        lrs.append(np.clip(imresize(hr, 0.25), 0, 1).transpose(2, 0, 1))
        hrs.append(hr.transpose(2, 0, 1))
    return torch.tensor(np.stack(lrs), dtype=torch.float32), torch.tensor(np.stack(hrs), dtype=torch.float32)


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``tiny-x4.safetensors`` (+ .json): the tiny SRResNet after 300 Adam steps (L1, batch 8 of 12x12 LR crops)."""
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the CPUs are shared: one thread trains faster than two fighting
    lr, hr = _training_pairs(256, 12, seed=0)
    net = SRResNet(TINY.scale, num_features=TINY.num_features, num_blocks=TINY.num_blocks)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    net.train()
    for _ in range(300):
        idx = torch.randint(0, len(lr), (8,), generator=gen)
        loss = torch.nn.functional.l1_loss(net(lr[idx]), hr[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    torch.set_num_threads(threads)
    return save_weights(net.eval(), TINY, tmp_path_factory.mktemp("tiny") / "tiny-x4.safetensors")


@pytest.fixture(scope="session")
def tiny_onnx(tiny_weights: Path) -> Path:
    """The tiny trained model exported to fp32 ONNX (dynamic batch/height/width)."""
    return export_onnx(tiny_weights, tiny_weights.with_suffix(".onnx")).path
