"""A real local Ray for the cluster tests (2 CPUs, no dashboard), started once and shut down at the end of the
session, and a folder of real photos (crops of scikit-image's bundled images: RGB PNG, grey PNG, RGBA PNG,
JPEG) with one corrupt file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from sr_deploy.data.datasets import embedded_images
from sr_deploy.data.image_io import read_image, write_image

#: the corrupt file among the photos
CORRUPT = "corrupt.png"


#: the tests that use :func:`ray_local`: one pytest-xdist group (with ``--dist loadgroup``, one Ray per run)
ray_group = pytest.mark.xdist_group("ray")


@pytest.fixture(scope="session")
def ray_local(private_cache: Path) -> Iterator[ModuleType]:
    """``ray``, initialised as a 2-CPU local instance (its workers inherit the tests' private cache, and Serve's
    proxy readiness timeout of 60 s instead of 5 s: on 2 cores busy with the other tests, the Serve controller killed
    its HTTP proxy before the proxy's process had started, and ``serve.start`` failed with ActorDiedError)."""
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.data")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S", "60")  # read by the controller, a child of this Ray
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()


@pytest.fixture(scope="session")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four small real photos in several modes and formats, and :data:`CORRUPT` (a truncated PNG)."""
    folder = tmp_path_factory.mktemp("photos")
    photo = next(img[:, :, :3] for img in map(read_image, embedded_images("eval")) if img.shape[2] >= 3)
    rgb = photo[:40, :48]
    write_image(folder / "rgb.png", np.ascontiguousarray(rgb))
    grey = np.round(rgb.astype(np.float64) @ [0.299, 0.587, 0.114]).astype(np.uint8)[:, :, None]
    write_image(folder / "grey.png", grey)
    alpha = np.linspace(0, 255, 36 * 44).reshape(36, 44, 1).astype(np.uint8)
    write_image(folder / "rgba.png", np.concatenate([photo[40:76, 48:92], alpha], axis=2))
    write_image(folder / "photo.jpg", np.ascontiguousarray(photo[76:108, :40]))
    (folder / CORRUPT).write_bytes((folder / "rgb.png").read_bytes()[:120])
    return folder
