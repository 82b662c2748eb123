"""Cross-request batching without HTTP: windows of several images in one batch give the same pixels as one
window at a time and as the whole image."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from sr_deploy.backends.base import Upscaler
from sr_deploy.runtime.images import upscale_image
from sr_deploy.runtime.load import load
from sr_deploy.runtime.tiling import plan_tiles
from sr_deploy.serve import ServeConfig, UpscaleService
from sr_deploy.serve.batcher import Batcher, Job, JobFailed
from tests.helpers import nearest_onnx
from tests.serve.conftest import WINDOW
from tests.serve.test_app import FailsOnMarker, image


def jobs(up: Upscaler, images: list[np.ndarray]) -> list[Job]:
    halo = up.descriptor.receptive_radius
    return [Job(x, plan_tiles(up, x.shape[1], x.shape[2], tile=WINDOW - 2 * halo), up.scale) for x in images]


def test_batched_equals_unbatched(open_upscaler: Callable[[], Upscaler]) -> None:
    rng = np.random.default_rng(0)
    # every image has fewer than 8 windows, so a batch of 8 holds windows of several images; the last
    # image's windows are 20 x 32 and batch only among themselves
    images = [rng.random((3, h, w), dtype=np.float32) for h, w in ((32, 40), (32, 52), (40, 40), (33, 44), (20, 44))]
    with open_upscaler() as up:
        sizes: list[int] = []
        batched = Batcher(up, max_batch=8, batch_wait_s=0.5, on_batch=lambda n, _s: sizes.append(n))
        together = [batched.submit(j) for j in jobs(up, images)]  # submitted at once: batches mix images
        assert all(j.wait(60) for j in together)
        batched.close()
        single = Batcher(up, max_batch=1, batch_wait_s=0.0)
        alone = [single.submit(j) for j in jobs(up, images)]
        assert all(j.wait(60) for j in alone)
        single.close()
        whole = [up.run(x[None])[0] for x in images]
    windows = sum(len(j.windows) for j in together)
    assert max(sizes) == 8 and sum(sizes) == windows == batched.stats.windows
    assert single.stats.batches == windows  # one window per batch
    assert max(len(j.windows) for j in together) < 8
    for a, b, c in zip(together, alone, whole, strict=True):
        assert a.error is None and b.error is None
        np.testing.assert_array_equal(a.output, b.output)  # batch size does not change pixels (ORT CPU)
        np.testing.assert_allclose(a.output, c, atol=1e-5)  # tiling: the whole-image result


def test_service_upscale_equals_upscale_image(serve_model: Callable[..., UpscaleService],
                                              open_upscaler: Callable[[], Upscaler]) -> None:
    service = serve_model(max_batch=4, batch_wait_ms=50)
    img = image((45, 61, 3))
    try:
        got = service.upscale(img, timeout=60)
    finally:
        service.close()
    with open_upscaler() as up:
        np.testing.assert_array_equal(got, upscale_image(up, img))


def test_cancel_drops_pending_windows(open_upscaler: Callable[[], Upscaler]) -> None:
    with open_upscaler() as up:
        batcher = Batcher(up, max_batch=64, batch_wait_s=30)
        job = batcher.submit(jobs(up, [np.zeros((3, 40, 52), dtype=np.float32)])[0])
        ended: list[Job] = []
        job.add_done_callback(ended.append)
        batcher.cancel(job)
        batcher.close(10)
    assert ended == [job] and job.cancelled and batcher.stats.dropped == len(job.windows) and batcher.pending == 0
    assert batcher.stats.windows == 0


def test_size_rules_pad_and_crop(tmp_path: Path) -> None:
    """A model whose sides must be multiples of 2: an odd image is padded for its windows and cropped back,
    as ``upscale_image`` does."""
    with load(nearest_onnx(tmp_path / "nearest.onnx"), backend="onnxruntime") as up:
        service = UpscaleService(up, ServeConfig(model="test", window=40, max_batch=4, batch_wait_ms=20))
        img = image((33, 47, 3))
        try:
            got = service.upscale(img, timeout=60)
        finally:
            service.batcher.close()
        np.testing.assert_array_equal(got, upscale_image(up, img))
        assert got.shape == (132, 188, 3)


def test_a_failing_batch_fails_only_the_job_whose_windows_fail(open_upscaler: Callable[[], Upscaler]) -> None:
    rng = np.random.default_rng(1)
    good, bad = (rng.random((3, 32, 40), dtype=np.float32) for _ in range(2))
    bad[:, 0, 0] = 1.0  # FailsOnMarker's marker: the batch holding this window raises
    with FailsOnMarker(open_upscaler()) as up:
        sizes: list[int] = []
        batcher = Batcher(up, max_batch=8, batch_wait_s=60, on_batch=lambda n, _s: sizes.append(n))
        ok, failing = (batcher.submit(j) for j in jobs(up, [good, bad]))
        batcher.close(60)  # closing runs what is pending at once: one batch holding both jobs' windows
        reference = up.inner.run(good[None])[0]
    assert failing.done and isinstance(failing.error, JobFailed) and "injected" in str(failing.error.__cause__)
    assert ok.error is None
    np.testing.assert_allclose(ok.output, reference, atol=1e-5)
    assert sizes == [len(ok.windows)]  # the mixed batch failed (not counted), then each job ran alone
