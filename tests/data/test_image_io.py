"""Image files: round trips per format, mode and bit depth; EXIF orientation; unreadable files."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sr_deploy.data import ImageReadError, read_image, to_float_rgb, to_uint, write_image
from sr_deploy.data.image_io import hwc_to_nchw, image_size, list_images, nchw_to_hwc


def random_image(shape: tuple[int, int, int], dtype: type = np.uint8, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, np.iinfo(dtype).max + 1, shape, dtype=np.int64).astype(dtype)


def smooth_image(height: int = 48, width: int = 64, channels: int = 3) -> np.ndarray:
    """Gradients (what JPEG keeps well), ``H x W x C`` uint8."""
    y, x = np.mgrid[0:height, 0:width]
    planes = [x * 255 / (width - 1), y * 255 / (height - 1), (x + y) * 255 / (height + width - 2)]
    return np.round(np.stack(planes[:channels], axis=2)).astype(np.uint8)


LOSSLESS = [(s, c) for s in (".png", ".bmp", ".tif", ".tiff", ".webp") for c in (1, 3, 4) if (s, c) != (".bmp", 4)]


@pytest.mark.parametrize(("suffix", "channels"), LOSSLESS)
def test_lossless_round_trip(tmp_path: Path, suffix: str, channels: int) -> None:
    img = random_image((13, 17, channels))
    if channels == 4:
        img[::3, ::2, 3] = 0  # fully transparent pixels keep their colour too
    path = tmp_path / f"img{suffix}"
    write_image(path, img)
    back = read_image(path)
    assert back.dtype == np.uint8
    if suffix == ".webp" and channels == 1:
        # WebP has no grey mode: a grey image comes back as three equal channels.
        assert back.shape == (13, 17, 3)
        np.testing.assert_array_equal(back, np.repeat(img, 3, axis=2))
    else:
        np.testing.assert_array_equal(back, img)


@pytest.mark.parametrize("suffix", [".jpg", ".jpeg"])
@pytest.mark.parametrize("channels", [1, 3])
def test_jpeg_round_trip_is_close(tmp_path: Path, suffix: str, channels: int) -> None:
    img = smooth_image(channels=channels)
    path = tmp_path / f"img{suffix}"
    write_image(path, img, quality=95)
    back = read_image(path)
    assert back.shape == img.shape and back.dtype == np.uint8
    error = np.abs(back.astype(int) - img.astype(int))
    assert error.mean() < 1.5 and error.max() <= 12


def test_jpeg_quality_is_used(tmp_path: Path) -> None:
    img = random_image((32, 32, 3))
    write_image(tmp_path / "hi.jpg", img, quality=95)
    write_image(tmp_path / "lo.jpg", img, quality=20)
    assert (tmp_path / "lo.jpg").stat().st_size < (tmp_path / "hi.jpg").stat().st_size


@pytest.mark.parametrize("suffix", [".png", ".tif"])
@pytest.mark.parametrize("channels", [1, 3, 4])
def test_16_bit_round_trip_is_exact(tmp_path: Path, suffix: str, channels: int) -> None:
    img = random_image((11, 19, channels), np.uint16, seed=channels)
    img[0, 0] = 65535
    img[0, 1] = 0
    img[0, 2] = 257  # would collapse to 1 in an 8-bit reader
    path = tmp_path / f"deep{suffix}"
    write_image(path, img)
    back = read_image(path)
    assert back.dtype == np.uint16
    np.testing.assert_array_equal(back, img)


def test_16_bit_written_by_pillow_is_read_exactly(tmp_path: Path) -> None:
    img = random_image((9, 8, 1), np.uint16)
    path = tmp_path / "grey16.png"
    Image.fromarray(img[:, :, 0]).save(path)  # Pillow writes mode I;16 as a 16-bit grey PNG
    np.testing.assert_array_equal(read_image(path), img)


def test_2d_array_is_written_as_grey(tmp_path: Path) -> None:
    img = random_image((6, 5, 1))[:, :, 0]
    write_image(tmp_path / "grey.png", img)
    np.testing.assert_array_equal(read_image(tmp_path / "grey.png"), img[:, :, None])


@pytest.mark.parametrize(
    ("name", "shape", "dtype", "message"),
    [
        ("x.gif", (4, 4, 3), np.uint8, "unknown image suffix"),
        ("x.png", (4, 4, 2), np.uint8, "C in 1, 3, 4"),
        ("x.png", (4, 4, 3), np.float32, "uint8 or uint16"),
        ("x.jpg", (4, 4, 3), np.uint16, "16-bit images need a .png or .tif"),
    ],
)
def test_unwritable_arrays(tmp_path: Path, name: str, shape: tuple[int, ...], dtype: type, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        write_image(tmp_path / name, np.zeros(shape, dtype))
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("suffix", [".jpg", ".bmp"])
def test_alpha_is_refused_where_the_format_would_drop_it(tmp_path: Path, suffix: str) -> None:
    with pytest.raises(ValueError, match="alpha"):
        write_image(tmp_path / f"x{suffix}", random_image((4, 4, 4)))


@pytest.mark.parametrize(("orientation", "turn"), [(6, -1), (8, 1), (3, 2)])
def test_exif_orientation_is_applied(tmp_path: Path, orientation: int, turn: int) -> None:
    # A stored 40 x 64 image with a white top-left block; orientation 6 means "rotate 90 degrees
    # clockwise to display", 8 counter-clockwise, 3 by 180 degrees.
    stored = np.full((40, 64, 3), 40, np.uint8)
    stored[:12, :20] = 255
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "phone.jpg"
    Image.fromarray(stored).save(path, exif=exif, quality=95)
    shown = read_image(path)
    expected = np.rot90(stored, k=turn)
    assert shown.shape == expected.shape
    assert np.abs(shown.astype(int) - expected.astype(int)).mean() < 2


def test_grey_with_alpha_and_palette_images(tmp_path: Path) -> None:
    la = random_image((5, 6, 2))
    Image.fromarray(la, mode="LA").save(tmp_path / "la.png")
    back = read_image(tmp_path / "la.png")
    np.testing.assert_array_equal(back, np.dstack([la[:, :, :1]] * 3 + [la[:, :, 1:]]))
    rgb = random_image((5, 6, 3), seed=3) // 64 * 64  # few colours: an exact palette exists
    Image.fromarray(rgb).quantize(colors=64, method=Image.Quantize.FASTOCTREE).save(tmp_path / "p.png")
    assert read_image(tmp_path / "p.png").shape == (5, 6, 3)


def valid_png_bytes() -> bytes:
    import io

    buf = io.BytesIO()
    Image.fromarray(random_image((64, 64, 3))).save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize(
    ("name", "content", "cause"),
    [
        ("empty.png", b"", "empty"),
        ("notes.jpg", b"shopping list: milk, eggs\n" * 20, "not an image"),
        ("garbage.png", bytes(range(256)) * 8, "not an image"),
        ("truncated.png", None, "truncated"),
        ("corrupt.png", "corrupt", "corrupt"),
    ],
)
def test_unreadable_files_raise_image_read_error(
    tmp_path: Path, name: str, content: bytes | str | None, cause: str
) -> None:
    png = valid_png_bytes()
    if content is None:
        content = png[: len(png) // 2]
    elif content == "corrupt":  # valid header and chunk layout, scrambled compressed pixels
        middle = len(png) // 2
        content = png[:middle] + bytes(200) + png[middle + 200 :]
    assert isinstance(content, bytes)
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ImageReadError, match=cause) as info:
        read_image(path)
    assert info.value.path == path
    assert str(path) in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.png"
    with pytest.raises(ImageReadError, match="no such file") as info:
        read_image(path)
    assert str(path) in str(info.value)


def test_a_folder_is_not_an_image(tmp_path: Path) -> None:
    (tmp_path / "folder.png").mkdir()
    with pytest.raises(ImageReadError, match="folder.png"):
        read_image(tmp_path / "folder.png")


def test_float_conversions() -> None:
    grey = np.array([[[0], [255]]], np.uint8)
    np.testing.assert_array_equal(to_float_rgb(grey), [[[0, 0, 0], [1, 1, 1]]])
    deep = np.array([[[0, 32768, 65535, 7]]], np.uint16)
    rgb = to_float_rgb(deep)
    assert rgb.dtype == np.float32 and rgb.shape == (1, 1, 3)  # alpha dropped
    np.testing.assert_allclose(rgb, [[[0, 32768 / 65535, 1]]], rtol=1e-6)
    x = np.array([-0.2, 0.0, 0.5 / 255, 1.5 / 255, 0.5, 1.0, 1.3])
    np.testing.assert_array_equal(to_uint(x), [0, 0, 0, 2, 128, 255, 255])  # round half to even
    assert to_uint(np.array([1.0]), np.uint16).dtype == np.uint16
    assert to_uint(np.array([1.0]), np.uint16)[0] == 65535
    img = random_image((3, 4, 3))
    np.testing.assert_array_equal(to_uint(to_float_rgb(img)), img)
    nchw = hwc_to_nchw(to_float_rgb(img))
    assert nchw.shape == (1, 3, 3, 4) and nchw.flags.c_contiguous
    np.testing.assert_array_equal(nchw_to_hwc(nchw), to_float_rgb(img))


def test_list_images(tmp_path: Path) -> None:
    for name in ("b.PNG", "a.jpg", "c.webp", "notes.txt", "d.tiff"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub.png").mkdir()
    assert [p.name for p in list_images(tmp_path)] == ["a.jpg", "b.PNG", "c.webp", "d.tiff"]
    with pytest.raises(FileNotFoundError, match="does not exist"):
        list_images(tmp_path / "absent")


def test_unreadable_file_is_permission_denied(tmp_path: Path) -> None:
    path = tmp_path / "secret.png"
    write_image(path, random_image((5, 6, 3)))
    path.chmod(0)
    try:
        if os.access(path, os.R_OK):
            pytest.skip("running as root: chmod 000 does not make the file unreadable")
        with pytest.raises(ImageReadError, match="secret.png: permission denied"):
            read_image(path)
    finally:
        path.chmod(0o644)


@pytest.mark.parametrize("fmt", ["GIF", "WEBP"])
def test_animated_images_are_refused(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"anim.{fmt.lower()}"
    frames = [Image.fromarray(random_image((8, 8, 3), seed=s)) for s in (1, 2)]
    frames[0].save(path, format=fmt, save_all=True, append_images=frames[1:], duration=100)
    with pytest.raises(ImageReadError, match=r"animated image \(2 frames\): not supported, extract the frames first"):
        read_image(path)


def test_image_size_of_a_decompression_bomb_is_an_image_read_error(tmp_path: Path) -> None:
    path = tmp_path / "bomb.png"
    write_image(path, random_image((4, 4, 3)))
    data = bytearray(path.read_bytes())
    data[16:24] = struct.pack(">II", 30000, 30000)  # 900 MP: past twice Pillow's limit, an error there
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    path.write_bytes(bytes(data))
    with pytest.raises(ImageReadError, match="bomb.png"):
        image_size(path)
    with pytest.raises(ImageReadError, match="too large to decode safely"):
        read_image(path)
