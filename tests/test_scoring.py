"""The evaluation protocol reproduces the published bicubic baselines (the proof that our numbers
are comparable to papers), plus the protocol's handling of grey images."""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pytest

from sr_deploy import export_onnx
from sr_deploy.data import EvalPair, embedded_images, imresize, read_image, write_image
from sr_deploy.data.datasets import make_eval_pair
from sr_deploy.data.image_io import ImageReadError
from sr_deploy.metrics import psnr
from sr_deploy.runtime import load
from sr_deploy.scoring import evaluate, image_names, super_resolve_pair, upscale_pair
from tests.helpers import save_third_party

# Bicubic x4, Y channel, shave 4 (e.g. Kim et al., VDSR, CVPR 2016, Table 2; Lim et al., EDSR).
PUBLISHED_X4 = {"Set5": (28.42, 0.8104), "Set14": (26.00, 0.7027)}
EXPECTED_COUNT = {"Set5": 5, "Set14": 14}


@pytest.mark.parametrize("name", ["Set5", "Set14"])
def test_bicubic_x4_reproduces_published_baselines(datasets_dir: Path, name: str) -> None:
    folder = datasets_dir / name / "HR"
    images = sorted(folder.glob("*.png"))
    if len(images) != EXPECTED_COUNT[name]:
        pytest.skip(f"{folder} holds {len(images)} PNG images, expected {EXPECTED_COUNT[name]}")
    df = evaluate(load("bicubic", scale=4), images)
    assert df.height == EXPECTED_COUNT[name]
    psnr_y, ssim_y = df["psnr_y"].to_numpy().mean(), df["ssim_y"].to_numpy().mean()
    expected_psnr, expected_ssim = PUBLISHED_X4[name]
    assert psnr_y == pytest.approx(expected_psnr, abs=0.02), df
    assert ssim_y == pytest.approx(expected_ssim, abs=0.002), df


def test_grey_image_is_scored_on_its_own_channel(tmp_path: Path) -> None:
    y, x = np.mgrid[0:48, 0:40]
    grey = ((np.sin(x / 3.0) * np.cos(y / 5.0) + 1) * 120).astype(np.uint8)[:, :, None]
    write_image(tmp_path / "grey.png", grey)
    upscaler = load("bicubic", scale=4)
    row = evaluate(upscaler, [tmp_path / "grey.png"]).row(0, named=True)
    lr = imresize(grey, 0.25)
    sr = super_resolve_pair(upscaler, EvalPair("grey", grey, lr))
    assert sr.shape == grey.shape
    # the replicated-RGB round trip is exact for grey: same as resizing the single channel
    np.testing.assert_array_equal(sr, imresize(lr, 4.0))
    assert row["psnr_y"] == pytest.approx(psnr(sr, read_image(tmp_path / "grey.png"), crop_border=4))


def folder_with_a_bad_image(folder: Path) -> list[Path]:
    """Two crops of real photos (64x64 and 80x72) and one corrupt PNG between them, in name order."""
    photos = [read_image(p) for p in embedded_images("eval")[:2]]
    write_image(folder / "a_good.png", photos[0][128:192, 128:192])
    (folder / "b_broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    write_image(folder / "c_good.png", photos[1][128:200, 128:208])
    return sorted(folder.glob("*.png"))


def test_evaluate_skips_a_bad_image_when_asked(tmp_path: Path) -> None:
    images = folder_with_a_bad_image(tmp_path)
    skipped: list[tuple[str, str]] = []
    df = evaluate(load("bicubic", scale=4), images, on_skip=lambda name, reason: skipped.append((name, reason)))
    assert df["name"].to_list() == ["a_good", "c_good"]
    assert all(15 < p < 45 for p in df["psnr_y"]) and all(0.2 < s < 1 for s in df["ssim_y"])
    assert [name for name, _ in skipped] == ["b_broken"] and skipped[0][1]


def test_images_are_named_apart(tmp_path: Path) -> None:
    photo = read_image(embedded_images("eval")[0])[:64, :64]
    for name in ("in.png", "in.bmp", "other/in.png", "baby.png"):
        write_image(tmp_path / name, photo)
    paths = [tmp_path / n for n in ("in.png", "in.bmp", "other/in.png", "baby.png")]
    assert image_names(paths) == [str(tmp_path / "in.png"), "in.bmp", str(tmp_path / "other/in.png"), "baby"]
    df = evaluate(load("bicubic", scale=4), paths[1:])  # the table tells them apart (it said "in" twice)
    assert df["name"].to_list() == ["in.bmp", "in.png", "baby"] and df["psnr_y"].n_unique() == 1


def test_evaluate_raises_on_a_bad_image_by_default(tmp_path: Path) -> None:
    with pytest.raises(ImageReadError, match="b_broken.png"):
        evaluate(load("bicubic", scale=4), folder_with_a_bad_image(tmp_path))


def test_too_small_image_is_skipped(tmp_path: Path) -> None:
    write_image(tmp_path / "tiny.png", np.zeros((8, 8, 3), np.uint8))
    skipped: list[tuple[str, str]] = []
    df = evaluate(load("bicubic", scale=4), [tmp_path / "tiny.png"],
                  on_skip=lambda name, reason: skipped.append((name, reason)))
    assert df.height == 0 and skipped[0][0] == "tiny" and "too small" in skipped[0][1]


def test_a_model_with_size_rules_is_scored_on_any_image_size(tmp_path: Path) -> None:
    """Real-ESRGAN x2's ONNX takes sides that are multiples of 4: a 27 x 33 LR image is padded and cropped back."""
    if find_spec("spandrel") is None:
        pytest.skip("needs the [models] extra (spandrel)")
    onnx_path = export_onnx(save_third_party("esrgan-x2-unshuffle", tmp_path / "x2.pth"), tmp_path / "x2.onnx")
    hr = (np.random.default_rng(0).random((54, 66, 3)) * 255).astype(np.uint8)
    write_image(tmp_path / "hr.png", hr)
    pair = make_eval_pair(tmp_path / "hr.png", 2)
    assert pair.lr.shape[:2] == (27, 33)
    with load(onnx_path) as up:
        assert up.descriptor.size_multiple == 4
        out = upscale_pair(up, pair)
    assert out.shape == pair.hr.shape and np.isfinite(out).all()
