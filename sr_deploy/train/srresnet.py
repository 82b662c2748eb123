"""SRResNet trainer: pixel-wise MSE (Ledig et al. 2017, section 3.2 baseline)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from sr_deploy.train.loop import Trainer


class SRResNetTrainer(Trainer):
    """Minimises MSE(G(lr), hr) with Adam."""

    kind = "srresnet"

    def train_step(self, lr: torch.Tensor, hr: torch.Tensor) -> dict[str, float]:
        with self.autocast():
            sr = self.net(lr)
        loss = F.mse_loss(sr.float(), hr)
        self.optimize(loss, self.optimizer)
        return {"loss": float(loss.detach())}
