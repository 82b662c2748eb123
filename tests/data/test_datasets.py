"""Image collections and standard LR/HR evaluation pairs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sr_deploy.data import ImageReadError, collect_images, embedded_images, imresize, make_eval_pair, write_image


def test_embedded_splits_are_real_and_disjoint() -> None:
    train, evaluation = embedded_images("train"), embedded_images("eval")
    assert train and evaluation
    assert not {p.name for p in train} & {p.name for p in evaluation}
    assert all(p.is_file() for p in train + evaluation)


def test_collect_images(tmp_path: Path) -> None:
    assert collect_images(None) == embedded_images("eval")
    assert collect_images([], split="train") == embedded_images("train")
    a, b = tmp_path / "a", tmp_path / "b"
    for folder, names in ((a, ["2.png", "1.png"]), (b, ["0.bmp"])):
        folder.mkdir()
        for name in names:
            write_image(folder / name, np.zeros((4, 4, 3), np.uint8))
    assert collect_images([b, a]) == [b / "0.bmp", a / "1.png", a / "2.png"]


def test_collect_images_errors(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("no images here")
    with pytest.raises(ValueError, match="contains no images"):
        collect_images([tmp_path])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        collect_images([tmp_path / "absent"])


def test_eval_pair_is_modcropped_hr_and_its_bicubic_lr(tmp_path: Path) -> None:
    img = np.random.default_rng(0).integers(0, 256, (50, 37, 3), dtype=np.uint8)
    write_image(tmp_path / "photo.png", img)
    pair = make_eval_pair(tmp_path / "photo.png", 4)
    assert pair.name == "photo"
    np.testing.assert_array_equal(pair.hr, img[:48, :36])
    np.testing.assert_array_equal(pair.lr, imresize(img[:48, :36], 0.25))
    assert pair.lr.shape == (12, 9, 3) and pair.lr.dtype == np.uint8


def test_eval_pair_modes(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    grey = rng.integers(0, 256, (32, 32, 1), dtype=np.uint8)
    write_image(tmp_path / "grey.png", grey)
    assert make_eval_pair(tmp_path / "grey.png", 2).hr.shape == (32, 32, 1)
    rgba = rng.integers(0, 256, (32, 32, 4), dtype=np.uint8)
    write_image(tmp_path / "rgba.png", rgba)
    np.testing.assert_array_equal(make_eval_pair(tmp_path / "rgba.png", 2).hr, rgba[:, :, :3])
    deep = rng.integers(0, 65536, (32, 32, 3), dtype=np.uint16)
    write_image(tmp_path / "deep.png", deep)
    hr = make_eval_pair(tmp_path / "deep.png", 2).hr
    assert hr.dtype == np.uint8
    np.testing.assert_array_equal(hr, np.round(deep / 257.0).astype(np.uint8))


def test_eval_pair_too_small(tmp_path: Path) -> None:
    write_image(tmp_path / "tiny.png", np.zeros((12, 40, 3), np.uint8))
    with pytest.raises(ImageReadError, match="too small for x4") as info:
        make_eval_pair(tmp_path / "tiny.png", 4)
    assert "tiny.png" in str(info.value)
