"""Image-level upscaling: grey, RGB and RGBA, 8 and 16 bits, EXIF orientation, formats from file names."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sr_deploy.backends.pytorch import TorchUpscaler
from sr_deploy.data import read_image, write_image
from sr_deploy.data.image_io import LUMA_WEIGHTS, to_float_rgb, to_uint
from sr_deploy.data.imresize import imresize
from sr_deploy.runtime.images import upscale_file, upscale_image
from sr_deploy.runtime.tiling import upscale_tiled
from tests.helpers import SMALL, random_srresnet


@pytest.fixture(scope="module")
def up() -> TorchUpscaler:
    return TorchUpscaler(random_srresnet(), SMALL)


def photo(h: int, w: int, channels: int, dtype: type[np.unsignedinteger], seed: int = 0) -> np.ndarray:
    """A smooth random image (so the model output stays inside the value range) with a varied alpha."""
    rng = np.random.default_rng(seed)
    peak = np.iinfo(dtype).max
    base = imresize(rng.random((h // 3 + 2, w // 3 + 2, channels)), output_shape=(h, w))
    return np.clip(np.round(np.clip(base, 0, 1) * peak), 0, peak).astype(dtype)


def model_rgb(up: TorchUpscaler, img: np.ndarray) -> np.ndarray:
    """The model on the image's colour, H x W x 3 float."""
    return upscale_tiled(up, to_float_rgb(img).transpose(2, 0, 1)).transpose(1, 2, 0)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("channels", [1, 3, 4])
def test_every_mode_keeps_its_mode_and_depth(up: TorchUpscaler, channels: int, dtype: type) -> None:
    img = photo(19, 26, channels, dtype, seed=channels)
    out = upscale_image(up, img)
    assert out.shape == (76, 104, channels) and out.dtype == dtype
    rgb = model_rgb(up, img)
    if channels == 1:
        expected = to_uint((rgb @ LUMA_WEIGHTS)[:, :, None], dtype)
    else:
        expected = to_uint(rgb, dtype)
    np.testing.assert_array_equal(out[:, :, : min(channels, 3)], expected[:, :, : min(channels, 3)])
    if channels == 4:
        alpha = img[:, :, 3].astype(np.float64) / np.iinfo(dtype).max
        np.testing.assert_array_equal(out[:, :, 3], to_uint(np.clip(imresize(alpha, 4.0), 0, 1), dtype))


def test_sixteen_bit_output_is_really_sixteen_bit(up: TorchUpscaler) -> None:
    img8 = photo(16, 16, 3, np.uint8, seed=5)
    out16 = upscale_image(up, img8.astype(np.uint16) * 257)
    out8 = upscale_image(up, img8)
    assert np.abs(out16.astype(np.int64) - out8.astype(np.int64) * 257).max() <= 257
    assert np.count_nonzero(out16 % 257) > out16.size // 2  # values between the 8-bit levels


def test_alpha_is_bicubic_not_the_model(up: TorchUpscaler) -> None:
    img = photo(12, 12, 4, np.uint8, seed=6)
    img[:, :, 3] = 255
    img[:, :6, 3] = 0  # hard edge: bicubic overshoots and must be clipped
    out = upscale_image(up, img)
    assert out[:, :20, 3].max() == 0 and out[:, 28:, 3].min() == 255
    assert 0 < out[5, 24, 3] < 255


@pytest.mark.parametrize(
    ("channels", "dtype", "name"),
    [(1, np.uint8, "g.png"), (3, np.uint8, "c.png"), (4, np.uint8, "a.png"), (1, np.uint16, "g16.png"),
     (3, np.uint16, "c16.png"), (4, np.uint16, "a16.tif"), (3, np.uint8, "c.bmp"), (4, np.uint8, "a.webp")],
)
def test_file_round_trip(up: TorchUpscaler, tmp_path: Path, channels: int, dtype: type, name: str) -> None:
    img = photo(10, 13, channels, dtype, seed=7)
    src = tmp_path / f"in-{name}"
    write_image(src, img)
    dst = tmp_path / "out" / name
    assert upscale_file(up, src, dst) == (52, 40)
    back = read_image(dst)
    assert back.shape == (40, 52, channels) and back.dtype == dtype
    np.testing.assert_array_equal(back, upscale_image(up, img))


def test_output_format_follows_the_file_name(up: TorchUpscaler, tmp_path: Path) -> None:
    src = tmp_path / "in.png"
    write_image(src, photo(8, 8, 4, np.uint8))
    upscale_file(up, src, tmp_path / "out.webp")
    with Image.open(tmp_path / "out.webp") as im:
        assert im.format == "WEBP" and im.size == (32, 32) and im.mode == "RGBA"
    with pytest.raises(ValueError, match="keeps no alpha"):
        upscale_file(up, src, tmp_path / "out.jpg")
    assert not (tmp_path / "out.jpg").exists()
    write_image(src, photo(8, 8, 3, np.uint16))
    with pytest.raises(ValueError, match="16-bit images need a .png or .tif"):
        upscale_file(up, src, tmp_path / "out16.jpg")


def test_exif_orientation_is_honoured(up: TorchUpscaler, tmp_path: Path) -> None:
    pixels = photo(12, 20, 3, np.uint8, seed=8)  # stored 20 wide, 12 high
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    src = tmp_path / "rotated.jpg"
    Image.fromarray(pixels).save(src, exif=exif.tobytes(), quality=95)
    assert upscale_file(up, src, tmp_path / "out.png") == (48, 80)  # displayed 12 wide, 20 high, x4


def test_bad_images_are_refused(up: TorchUpscaler) -> None:
    with pytest.raises(ValueError, match="C in 1, 3, 4"):
        upscale_image(up, np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(ValueError, match="uint8 or uint16"):
        upscale_image(up, np.zeros((4, 4, 3), np.float32))
