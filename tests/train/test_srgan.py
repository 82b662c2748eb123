"""SRGAN trainer: generator from SRResNet weights, alternating D/G, resume; the CLI's random-VGG guard."""

from __future__ import annotations

import math
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from sr_deploy.models import load_weights
from sr_deploy.train.config import TrainConfig
from sr_deploy.train.srgan import RANDOM_VGG, SRGANTrainer
from sr_deploy.train.srresnet import SRResNetTrainer


@pytest.fixture()
def srresnet_weights(tiny_config: Callable[..., TrainConfig], tmp_path: Path) -> Path:
    SRResNetTrainer(tiny_config(tmp_path / "pre", steps=2)).run()
    return tmp_path / "pre" / "best.safetensors"


def test_srgan_starts_from_srresnet_and_trains(tiny_config: Callable[..., TrainConfig], srresnet_weights: Path,
                                               tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path / "gan", steps=2, init=str(srresnet_weights), val_every=2, ckpt_every=1, ema=0.0)
    trainer = SRGANTrainer(cfg, vgg_weights=RANDOM_VGG, vgg_layer=(2, 2))
    init, _ = load_weights(srresnet_weights)
    for (name, a), b in zip(init.state_dict().items(), trainer.model.state_dict().values(), strict=False):
        assert torch.equal(a, b), name
    d_before = [p.detach().clone() for p in trainer.disc.parameters()]
    summary = trainer.run()
    assert summary["step"] == 2
    assert any(not torch.equal(a, b) for a, b in zip(d_before, trainer.disc.parameters(), strict=True))
    log = (tmp_path / "gan" / "log.csv").read_text().splitlines()
    assert log[0].startswith("step,loss_g,loss_content,loss_adv,loss_d")
    assert all(math.isfinite(float(v)) for v in log[-1].split(",")[1:5])
    resumed = SRGANTrainer(tiny_config(tmp_path / "gan", steps=3, init=str(srresnet_weights), ema=0.0),
                           vgg_weights=RANDOM_VGG, vgg_layer=(2, 2), resume=True)
    assert resumed.step == 2
    for a, b in zip(trainer.disc.state_dict().values(), resumed.disc.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_srgan_needs_init(tiny_config: Callable[..., TrainConfig], tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="give init"):
        SRGANTrainer(tiny_config(tmp_path / "gan"), vgg_weights=RANDOM_VGG)


def test_srgan_missing_vgg_file_says_where_to_get_it(tiny_config: Callable[..., TrainConfig],
                                                     srresnet_weights: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="vgg19-dcbb9e9d.pth"):
        SRGANTrainer(tiny_config(tmp_path / "gan", init=str(srresnet_weights)), vgg_weights=tmp_path / "nope.pth")


def test_srgan_init_must_match_architecture(tiny_config: Callable[..., TrainConfig], srresnet_weights: Path,
                                            tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not match"):
        SRGANTrainer(tiny_config(tmp_path / "gan", init=str(srresnet_weights), num_features=8),
                     vgg_weights=RANDOM_VGG)


def test_cli_refuses_random_vgg_without_the_test_flag(srresnet_weights: Path, tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "sr_deploy.cli", "train", "srgan", "--init", str(srresnet_weights),
                           "--vgg-weights", "random", "--out", str(tmp_path / "g")], capture_output=True, text=True)
    assert done.returncode != 0
    assert "--allow-random-vgg" in done.stderr
    assert not (tmp_path / "g").exists()
