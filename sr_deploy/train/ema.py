"""Exponential moving average of model weights (as BasicSR: decay 0.999, buffers copied)."""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """Keeps ``shadow`` = decay * shadow + (1 - decay) * params after each :meth:`update`.

    Buffers (BatchNorm running statistics) are copied, not averaged.
    """

    def __init__(self, model: nn.Module, decay: float = 0.999) -> None:
        self.decay = decay
        self.shadow = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        params = dict(model.named_parameters())
        for name, p in self.shadow.named_parameters():
            p.lerp_(params[name].detach(), 1.0 - self.decay)
        bufs = dict(model.named_buffers())
        for name, b in self.shadow.named_buffers():
            b.copy_(bufs[name])
