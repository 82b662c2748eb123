"""Training patches: deterministic per index, correct shapes and LR, bad folders give clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from sr_deploy.data import collect_images, imresize, write_image
from sr_deploy.train.patches import PatchDataset, StepBatchSampler, load_hr_images


def test_patch_pairs_are_deterministic_and_consistent(tiny_folders: tuple[Path, Path]) -> None:
    hr = load_hr_images(collect_images([tiny_folders[0]]), 32)
    ds = PatchDataset(hr, patch=32, scale=4, seed=7)
    lr1, hr1 = ds[12345]
    lr2, hr2 = ds[12345]
    assert torch.equal(lr1, lr2) and torch.equal(hr1, hr2)
    assert lr1.shape == (3, 8, 8) and hr1.shape == (3, 32, 32)
    assert not torch.equal(ds[1][1], ds[2][1])
    hr_u8 = np.round(hr1.numpy().transpose(1, 2, 0) * 255).astype(np.uint8)
    expected = imresize(hr_u8, 0.25)
    np.testing.assert_array_equal(np.round(lr1.numpy().transpose(1, 2, 0) * 255).astype(np.uint8), expected)
    assert PatchDataset(hr, 32, 4, seed=8)[12345][1].ne(hr1).any()


def test_patch_must_be_a_multiple_of_scale(tiny_folders: tuple[Path, Path]) -> None:
    hr = load_hr_images(collect_images([tiny_folders[0]]), 30)
    with pytest.raises(ValueError, match="multiple of the scale"):
        PatchDataset(hr, patch=30, scale=4, seed=0)


def test_sampler_gives_each_rank_disjoint_indices() -> None:
    r0 = list(StepBatchSampler(4, 2, 5, rank=0, world=2))
    r1 = list(StepBatchSampler(4, 2, 5, rank=1, world=2))
    assert len(r0) == len(r1) == 3
    flat0, flat1 = {i for b in r0 for i in b}, {i for b in r1 for i in b}
    assert not flat0 & flat1
    assert r0[0] == [16, 17, 18, 19]  # step 2, world 2, rank 0: ((2 * 2 + 0) * 4)
    assert list(StepBatchSampler(4, 2, 5))[0] == list(StepBatchSampler(4, 0, 5))[2]


def test_small_images_are_skipped_and_counted(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    write_image(tmp_path / "big.png", rng.integers(0, 255, (40, 50, 3), dtype=np.uint8))
    write_image(tmp_path / "small.png", rng.integers(0, 255, (20, 50, 3), dtype=np.uint8))
    write_image(tmp_path / "grey.png", rng.integers(0, 255, (48, 48, 1), dtype=np.uint8))
    hr = load_hr_images(collect_images([tmp_path]), 32)
    assert hr.skipped_small == ["small.png"]
    assert len(hr.images) == 2 and all(img.shape[2] == 3 for img in hr.images)
    with pytest.raises(ValueError, match="no training image is at least 64 px"):
        load_hr_images(collect_images([tmp_path]), 64)


def test_unreadable_files_are_named(tmp_path: Path) -> None:
    write_image(tmp_path / "ok.png", np.zeros((40, 40, 3), dtype=np.uint8))
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(ValueError, match="broken.png"):
        load_hr_images(collect_images([tmp_path]), 32)


def test_empty_and_missing_folders(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="contains no images"):
        collect_images([tmp_path / "empty"])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        collect_images([tmp_path / "missing"])
