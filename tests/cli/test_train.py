"""``sr-deploy train srresnet | srgan | release``: options -> TrainConfig, errors with their flags, the exit
codes, the release's recorded scores. Real training through the CLI is in tests/train (subprocess, torchrun)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

import sr_deploy as sr
from sr_deploy.cli import app
from sr_deploy.cli import train as train_cli
from sr_deploy.data import embedded_images, read_image, write_image
from sr_deploy.train.config import TrainConfig

runner = CliRunner()


class FakeTrainer:
    """Records what the command passed; its run ends as ``stopped`` says."""

    seen: dict[str, Any] = {}
    stopped = False
    select_best = True  # as Trainer: the best validated weights are kept

    def __init__(self, cfg: TrainConfig, resume: bool = False, log: Any = print, **extra: Any) -> None:
        FakeTrainer.seen = {"cfg": cfg, "resume": resume, "extra": extra}

    def run(self) -> dict[str, Any]:
        return {"step": 6, "best_val_psnr_y": 25.0, "last_val_psnr_y": 24.0, "seconds": 90.0, "device": "cpu",
                "precision": "fp32", "run_dir": "r", "stopped_by_signal": self.stopped}


@pytest.fixture()
def fake_trainers(monkeypatch: pytest.MonkeyPatch) -> type[FakeTrainer]:
    monkeypatch.setattr(train_cli, "SRResNetTrainer", FakeTrainer)
    monkeypatch.setattr(train_cli, "SRGANTrainer", FakeTrainer)
    monkeypatch.setattr(FakeTrainer, "stopped", False)
    monkeypatch.setattr(FakeTrainer, "seen", {})
    return FakeTrainer


EVERY_OPTION = ["--data", "d1", "--data", "d2", "--val", "v", "--scale", "2", "--steps", "7", "--batch", "3",
                "--patch", "48", "--lr", "0.002", "--schedule", "cosine", "--resume", "--device", "cpu",
                "--precision", "fp32", "--seed", "5", "--ema", "0.5", "--log-every", "2", "--val-every", "4",
                "--ckpt-every", "6", "--workers", "0", "--num-features", "8", "--num-blocks", "3"]
EVERY_VALUE = dict(data=["d1", "d2"], val=["v"], scale=2, steps=7, batch=3, patch=48, lr=0.002, schedule="cosine",
                   device="cpu", precision="fp32", seed=5, ema=0.5, log_every=2, val_every=4, ckpt_every=6,
                   workers=0, num_features=8, num_blocks=3)


def test_srresnet_defaults_are_the_train_configs(fake_trainers: type[FakeTrainer], tmp_path: Path) -> None:
    result = runner.invoke(app, ["train", "srresnet", "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    assert fake_trainers.seen == {"cfg": TrainConfig(out=str(tmp_path / "r")), "resume": False, "extra": {}}
    assert "done: step 6, val Y-PSNR 25.00 dB" in result.stderr


def test_srresnet_every_option_reaches_the_config(fake_trainers: type[FakeTrainer], tmp_path: Path) -> None:
    result = runner.invoke(app, ["train", "srresnet", "--out", str(tmp_path / "r"), *EVERY_OPTION,
                                 "--init", str(tmp_path / "w.safetensors")])
    assert result.exit_code == 0, result.output
    expected = TrainConfig(out=str(tmp_path / "r"), init=str(tmp_path / "w.safetensors"), **EVERY_VALUE)
    assert fake_trainers.seen == {"cfg": expected, "resume": True, "extra": {}}


def test_srgan_every_option_reaches_the_config(fake_trainers: type[FakeTrainer], tmp_path: Path) -> None:
    result = runner.invoke(app, ["train", "srgan", "--out", str(tmp_path / "g"), "--init", "srresnet-x4",
                                 "--vgg-weights", "random", "--allow-random-vgg", "--vgg-layer", "2,2",
                                 "--adv-weight", "0.01", *EVERY_OPTION])
    assert result.exit_code == 0, result.output
    assert fake_trainers.seen == {"cfg": TrainConfig(out=str(tmp_path / "g"), init="srresnet-x4", **EVERY_VALUE),
                                  "resume": True,
                                  "extra": {"vgg_weights": "random", "vgg_layer": (2, 2), "adv_weight": 0.01}}


def test_invalid_option_values_exit_2(fake_trainers: type[FakeTrainer], tmp_path: Path) -> None:
    srgan = ["srgan", "--init", "w", "--vgg-weights", "v"]
    for args in (["srresnet", "--schedule", "linear"], [*srgan, "--vgg-layer", "5"], [*srgan, "--ema", "1"]):
        result = runner.invoke(app, ["train", *args, "--out", str(tmp_path / "r")])
        assert result.exit_code == 2, result.output
        assert "error:" in result.stderr
    assert fake_trainers.seen == {}  # refused before any trainer was made


def test_stopped_by_a_signal_exits_130(fake_trainers: type[FakeTrainer], tmp_path: Path) -> None:
    fake_trainers.stopped = True
    result = runner.invoke(app, ["train", "srresnet", "--out", str(tmp_path / "r")])
    assert result.exit_code == 130
    assert "continue with --resume" in result.stderr


def test_existing_run_error_names_the_flags(tmp_path: Path) -> None:
    """The library names parameters (resume=True, out); the command line says --resume and --out."""
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "checkpoint.pt").write_bytes(b"")
    result = runner.invoke(app, ["train", "srresnet", "--out", str(tmp_path / "r"), "--device", "cpu",
                                 "--precision", "fp32"])
    assert result.exit_code == 2
    assert "already holds a run" in result.stderr and "--resume" in result.stderr and "--out" in result.stderr
    assert "resume=True" not in result.stderr


def test_release_records_the_mean_scores(small_weights: Path, monkeypatch: pytest.MonkeyPatch,
                                         tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(small_weights, run / "best.safetensors")
    shutil.copy(small_weights.with_suffix(".json"), run / "best.json")
    hr = tmp_path / "Set1" / "HR"
    write_image(hr / "crop.png", read_image(embedded_images("eval")[0])[:64, :64])
    released: dict[str, Any] = {}

    def fake_release(run_dir: Path, name: str, evaluation: dict[str, Any]) -> Path:
        released.update(run=run_dir, name=name, evaluation=evaluation)
        return tmp_path / f"{name}.safetensors"

    monkeypatch.setattr(train_cli, "release_run", fake_release)  # the real one writes into the package
    result = runner.invoke(app, ["train", "release", str(run), "--name", "small-x4", "--eval", str(hr)])
    assert result.exit_code == 0, result.output
    with sr.load(run / "best.safetensors") as up:
        df = sr.evaluate(up, [hr / "crop.png"])
    assert released["name"] == "small-x4" and released["run"] == run
    assert released["evaluation"] == {"Set1": {"psnr_y": pytest.approx(np.mean(df["psnr_y"].to_list())),
                                               "ssim_y": pytest.approx(np.mean(df["ssim_y"].to_list())),
                                               "images": 1}}
    assert "released" in result.stderr
