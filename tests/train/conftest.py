"""Small real image folders for training tests (crops of scikit-image's bundled photos)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from sr_deploy.data import embedded_images, read_image, write_image
from sr_deploy.train.config import TrainConfig


@pytest.fixture(scope="session")
def tiny_folders(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(train folder: four 64x64 crops, val folder: two 48x48 crops), real photos as PNG."""
    root = tmp_path_factory.mktemp("tiny")
    train, val = root / "train", root / "val"
    for i, path in enumerate(embedded_images("train")[:4]):
        write_image(train / f"t{i}.png", read_image(path)[:64, :64, :3] if read_image(path).shape[2] >= 3
                    else read_image(path)[:64, :64])
    for i, path in enumerate(embedded_images("eval")[:2]):
        write_image(val / f"v{i}.png", read_image(path)[100:148, 100:148])
    return train, val


TINY_ARGS = ["--steps", "6", "--batch", "4", "--patch", "32", "--lr", "1e-3", "--precision", "fp32", "--device",
             "cpu", "--log-every", "1", "--val-every", "3", "--ckpt-every", "3", "--workers", "0",
             "--num-features", "16", "--num-blocks", "2", "--seed", "3"]


@pytest.fixture()
def tiny_config(tiny_folders: tuple[Path, Path]) -> Callable[..., TrainConfig]:
    """Factory of fast configurations (the same as TINY_ARGS): 2 blocks x 16 features, batch 4 of 32 px
    patches, fp32, no loader workers, a log row every step, checkpoints every 3 steps."""

    def make(out: Path, **overrides: object) -> TrainConfig:
        kw: dict[str, object] = dict(out=str(out), data=[str(tiny_folders[0])], val=[str(tiny_folders[1])],
                                     steps=6, batch=4, patch=32, lr=1e-3, precision="fp32", device="cpu",
                                     log_every=1, val_every=3, ckpt_every=3, workers=0, num_features=16,
                                     num_blocks=2, seed=3)
        kw.update(overrides)
        return TrainConfig(**kw)  # type: ignore[arg-type]

    return make
