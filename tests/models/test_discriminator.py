"""SRGAN discriminator: any patch size from 16 px gives one logit per image."""

from __future__ import annotations

import pytest
import torch

from sr_deploy.models import Discriminator


@pytest.mark.parametrize(("height", "width"), [(96, 96), (16, 16), (24, 40), (128, 64)])
def test_patch_sizes_give_one_logit_per_image(height: int, width: int) -> None:
    net = Discriminator().eval()
    with torch.no_grad():
        out = net(torch.rand(3, 3, height, width))
    assert out.shape == (3, 1)
    assert torch.isfinite(out).all()


def test_batch_elements_are_scored_independently_in_eval_mode() -> None:
    net = Discriminator(base=16).eval()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        both = net(x)
        first = net(x[:1])
    torch.testing.assert_close(both[:1], first)


def test_training_step_reaches_every_parameter() -> None:
    net = Discriminator(base=8).train()
    net(torch.rand(2, 3, 48, 48)).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())


@pytest.mark.parametrize(("height", "width"), [(15, 15), (15, 96), (96, 8)])
def test_too_small_patch_is_refused(height: int, width: int) -> None:
    with pytest.raises(ValueError, match="at least 16x16"):
        Discriminator(base=8)(torch.rand(1, 3, height, width))
