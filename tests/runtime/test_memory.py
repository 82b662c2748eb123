"""Peak resident memory of ``sr-deploy upscale``, measured on a real subprocess (issue 13, reliability).

The child's RSS (children included) is polled every 20 ms until it exits; a decompression bomb must be
refused without decoding it, and explicit tiles must stay within the tiling module's memory model.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
from PIL import Image

import sr_deploy as sr
from sr_deploy.data import read_image, write_image
from sr_deploy.data.datasets import embedded_images
from sr_deploy.runtime.tiling import bytes_per_pixel, plan_tiles
from tests.runtime.test_jobs import claim_size

MB = 1024 * 1024
#: What the memory model does not count: the whole image in and out (float32), the allocator's slack.
MARGIN = 300 * MB
POLL_S = 0.02
TIMEOUT_S = 120.0


def rss_tree(process: psutil.Process) -> int:
    """Resident bytes of ``process`` and all its children (0 for any that is gone)."""
    total = 0
    for p in [process, *process.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return total


def upscale_peak(args: list[str], timeout: float = TIMEOUT_S) -> tuple[int, int, str]:
    """Run ``sr-deploy upscale ARGS`` in a subprocess (environment inherited: ``$SR_DEPLOY_CACHE``);
    returns (exit code, peak RSS in bytes of it and its children, stderr + stdout). Killed after ``timeout``."""
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen([sys.executable, "-m", "sr_deploy.cli", "upscale", *args],
                                stdout=log, stderr=subprocess.STDOUT)
        peak = 0
        deadline = time.monotonic() + timeout
        try:
            process = psutil.Process(proc.pid)
            while proc.poll() is None:
                try:
                    peak = max(peak, rss_tree(process))
                except psutil.NoSuchProcess:
                    pass
                if time.monotonic() > deadline:
                    pytest.fail(f"sr-deploy upscale {args} still running after {timeout} s")
                time.sleep(POLL_S)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        log.seek(0)
        output = log.read().decode(errors="replace")
    return proc.returncode, peak, output


def photo_crop(index: int, top: int, left: int, size: int = 48) -> np.ndarray:
    """A ``size x size`` crop of one of the embedded real photos."""
    return read_image(embedded_images("eval")[index])[top : top + size, left : left + size]


def test_a_decompression_bomb_in_a_folder_is_refused_within_2_gb(small_weights: Path, tmp_path: Path) -> None:
    d = tmp_path / "in"
    write_image(d / "a.png", photo_crop(0, 100, 180))
    write_image(d / "bomb.png", photo_crop(1, 200, 200, 16))
    write_image(d / "c.png", photo_crop(2, 150, 100))
    claim_size(d / "bomb.png", 12000, 12000)
    out = tmp_path / "out"
    code, peak, output = upscale_peak([str(d), "-o", str(out), "--model", str(small_weights),
                                       "--backend", "torch", "--no-tune"])
    assert code == 1, output
    assert (out / "a.png").is_file() and (out / "c.png").is_file(), output
    assert not (out / "bomb.png").exists()
    assert "bomb.png" in output and "too large (12000x12000" in output, output
    assert peak < 2 * 1024 * MB, f"peak RSS {peak / MB:.0f} MB"


class TileRuns:
    """The 300 x 200 real photo, the baseline peak (a 16 x 16 image) and the peaks of ``--tile N``, each run once."""

    def __init__(self, weights: Path, folder: Path) -> None:
        astronaut = Image.fromarray(read_image(embedded_images("eval")[0]))
        photo = np.asarray(astronaut.resize((300, 300), Image.Resampling.LANCZOS))[50:250]  # 200 rows x 300 columns
        self.folder = folder
        self.common = ["--model", str(weights), "--backend", "torch", "--no-tune"]
        write_image(folder / "photo.png", photo)
        write_image(folder / "tiny.png", photo_crop(0, 100, 180, 16))
        code, self.baseline, output = upscale_peak([str(folder / "tiny.png"), "-o", str(folder / "tiny-x4.png"),
                                                    *self.common])
        assert code == 0, output
        self.upscaler = sr.load(str(weights), backend="torch", device="cpu")
        self.peaks: dict[int, int] = {}

    def bound(self, tile: int) -> int:
        """The memory model's peak for ``--tile`` on the photo (window pixels x batch of the default plan)
        plus the baseline and :data:`MARGIN`."""
        plan = plan_tiles(self.upscaler, 200, 300, tile)
        per_pixel = bytes_per_pixel(self.upscaler.descriptor, "fp32")  # type: ignore[attr-defined]
        return per_pixel * plan.tile_h * plan.tile_w * plan.batch + self.baseline + MARGIN

    def peak(self, tile: int) -> int:
        if tile not in self.peaks:
            out = self.folder / f"photo-tile{tile}.png"
            code, self.peaks[tile], output = upscale_peak([str(self.folder / "photo.png"), "-o", str(out),
                                                           "--tile", str(tile), *self.common])
            assert code == 0, output
            assert read_image(out).shape == (800, 1200, 3)
        return self.peaks[tile]


#: the tests that use :func:`tile_runs`: one pytest-xdist group, so the baseline and ``--tile 64`` run once per test
#: run (with ``--dist loadgroup``), not once on each worker that gets one of them
tile_group = pytest.mark.xdist_group("tile-runs")


@pytest.fixture(scope="module")
def tile_runs(small_weights: Path, tmp_path_factory: pytest.TempPathFactory) -> TileRuns:
    return TileRuns(small_weights, tmp_path_factory.mktemp("tiles"))


@tile_group
def test_tile_64_stays_within_the_memory_model(tile_runs: TileRuns) -> None:
    peak, bound = tile_runs.peak(64), tile_runs.bound(64)
    assert peak < bound, f"--tile 64: peak RSS {peak / MB:.0f} MB, bound {bound / MB:.0f} MB"


@tile_group
def test_tile_8_never_uses_more_memory_than_tile_64(tile_runs: TileRuns) -> None:
    peak, bound = tile_runs.peak(8), tile_runs.bound(8)
    assert peak < bound, f"--tile 8: peak RSS {peak / MB:.0f} MB, bound {bound / MB:.0f} MB"
    small = tile_runs.peak(64)
    assert peak <= small + MARGIN, f"--tile 8 peak {peak / MB:.0f} MB, --tile 64 {small / MB:.0f} MB"
