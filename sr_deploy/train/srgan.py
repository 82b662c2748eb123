"""SRGAN trainer: generator initialised from SRResNet, perceptual loss = VGG feature MSE + 1e-3 x
adversarial loss, discriminator trained alternately with its own optimizer (Ledig et al. 2017)."""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from sr_deploy.models.discriminator import Discriminator
from sr_deploy.models.vgg import VGGFeatureExtractor, load_vgg19_weights
from sr_deploy.train.config import TrainConfig
from sr_deploy.train.loop import Trainer
from sr_deploy.train.losses import PerceptualLoss, adversarial_loss
from sr_deploy.train.state import scheduler_state

RANDOM_VGG = "random"


class SRGANTrainer(Trainer):
    """Alternating D / G updates. ``cfg.init`` (required): SRResNet weights for the generator.

    ``vgg_weights``: a local torchvision VGG19 file, or ``"random"`` (tests only: the perceptual
    loss then means nothing; the CLI refuses it without ``--allow-random-vgg``).
    ``vgg_layer``: phi_{i,j}, default (5, 4); ``adv_weight``: 1e-3 as in the paper.
    """

    kind = "srgan"
    select_best = False

    def __init__(self, cfg: TrainConfig, vgg_weights: str | os.PathLike[str], vgg_layer: tuple[int, int] = (5, 4),
                 adv_weight: float = 1e-3, resume: bool = False, log: Any = print) -> None:
        if not cfg.init:
            raise ValueError("SRGAN training starts from SRResNet weights: give init (a weights file or a shipped "
                             "model name)")
        self.vgg_weights = str(vgg_weights)
        self.vgg_layer, self.adv_weight = vgg_layer, adv_weight
        super().__init__(cfg, resume=resume, log=log)

    def setup(self) -> None:
        extractor = VGGFeatureExtractor(self.vgg_layer)
        if self.vgg_weights != RANDOM_VGG:
            load_vgg19_weights(extractor, self.vgg_weights)
        self.perceptual = self.to_device(PerceptualLoss(extractor))
        self.disc = self.to_device(Discriminator())
        self.d_optimizer = torch.optim.Adam(self.disc.parameters(), lr=self.cfg.lr, betas=(0.9, 0.999))
        self.d_scheduler = self._make_scheduler(self.d_optimizer)
        self.d_net: nn.Module = self.disc
        if self.dist.enabled:
            self.d_net = DistributedDataParallel(self.disc, device_ids=None if self.device == "cpu"
                                                 else [self.dist.local_rank])

    def extra_state(self) -> dict[str, Any]:
        return {"disc": self.disc.state_dict(), "d_optimizer": self.d_optimizer.state_dict(),
                "d_scheduler": self.d_scheduler.state_dict()}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.disc.load_state_dict(state["disc"])
        self.d_optimizer.load_state_dict(state["d_optimizer"])
        self.d_scheduler.load_state_dict(scheduler_state(state["d_scheduler"]))

    def train_step(self, lr: torch.Tensor, hr: torch.Tensor) -> dict[str, float]:
        with self.autocast():
            sr = self.net(lr)
            d_loss = adversarial_loss(self.d_net(hr), True) + adversarial_loss(self.d_net(sr.detach()), False)
        self.optimize(d_loss, self.d_optimizer)
        self.d_scheduler.step()
        with self.autocast():
            content = self.perceptual(sr, hr)
            adv = adversarial_loss(self.d_net(sr), True)
        g_loss = content + self.adv_weight * adv
        self.optimize(g_loss, self.optimizer)
        return {"loss_g": float(g_loss.detach()), "loss_content": float(content.detach()),
                "loss_adv": float(adv.detach()), "loss_d": float(d_loss.detach())}
