"""Image collections: the embedded default images and user folders, and LR/HR evaluation pairs.

The embedded default is scikit-image's bundled photos (real images that every install has), split
into a training set and a held-out evaluation set that never overlap.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sr_deploy.data.image_io import ImageReadError, check_pixel_limit, list_images, printable, read_image
from sr_deploy.data.imresize import imresize, modcrop

EMBEDDED_TRAIN = ("chelsea.png", "coffee.png", "rocket.jpg", "ihc.png", "hubble_deep_field.jpg",
                  "motorcycle_left.png", "brick.png", "grass.png", "gravel.png", "moon.png", "page.png")
EMBEDDED_EVAL = ("astronaut.png", "camera.png", "coins.png")


def embedded_images(split: str = "eval") -> list[Path]:
    """Paths of scikit-image's bundled photos for ``split`` ``"train"`` or ``"eval"`` (disjoint)."""
    import skimage

    folder = Path(skimage.__file__).parent / "data"
    names = {"train": EMBEDDED_TRAIN, "eval": EMBEDDED_EVAL}[split]
    paths = [folder / n for n in names]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"scikit-image's bundled images are missing: {missing}")
    return paths


def collect_images(folders: Sequence[str | os.PathLike[str]] | None, split: str = "eval") -> list[Path]:
    """All images in ``folders`` (sorted per folder), or the embedded ``split`` when none are given.

    Raises FileNotFoundError for a missing folder and ValueError for a folder without images.
    """
    if not folders:
        return embedded_images(split)
    paths: list[Path] = []
    for folder in folders:
        found = list_images(folder)
        if not found:
            raise ValueError(f"image folder {printable(folder)} contains no images "
                             "(looked for png, jpg, bmp, tif, webp)")
        paths.extend(found)
    return paths


@dataclass(frozen=True)
class EvalPair:
    """One evaluation image: HR ground truth (modcropped) and its bicubic LR, ``H x W x C`` uint8.

    ``C`` is 1 for grey images (scored on their own channel) and 3 for colour (alpha dropped).
    """

    name: str
    hr: np.ndarray
    lr: np.ndarray


def crop_pair(pair: EvalPair, y: int, x: int, size: int, scale: int, name: str | None = None) -> EvalPair:
    """The ``size x size`` LR crop at ``(y, x)`` of ``pair`` and its aligned HR crop (``scale`` times larger)."""
    return EvalPair(
        name=name or pair.name,
        hr=np.ascontiguousarray(pair.hr[y * scale : (y + size) * scale, x * scale : (x + size) * scale]),
        lr=np.ascontiguousarray(pair.lr[y : y + size, x : x + size]),
    )


def make_eval_pair(path: str | os.PathLike[str], scale: int, max_pixels: int | None = None) -> EvalPair:
    """Read ``path`` and build the standard pair: modcrop(HR, scale), LR = MATLAB bicubic 1/scale.

    16-bit images are reduced to 8 bits (the published protocol is 8-bit). ``max_pixels``: refuse an HR
    image with more pixels than this from its header, before decoding (:class:`ImageReadError`, "too large").
    """
    if max_pixels is not None:
        check_pixel_limit(path, 1, max_pixels)
    img = read_image(path)
    if img.dtype == np.uint16:
        img = np.round(img.astype(np.float64) / 257.0).astype(np.uint8)
    if img.shape[2] == 4:
        img = img[:, :, :3]
    hr = modcrop(img, scale)
    if min(hr.shape[:2]) < scale * 4:
        raise ImageReadError(path, f"too small for x{scale} evaluation ({img.shape[1]}x{img.shape[0]})")
    lr = imresize(hr, 1.0 / scale)
    return EvalPair(printable(Path(path).stem), hr, lr)  # a name that is not UTF-8 still prints
