"""The HTTP API end to end: real uvicorn on loopback, real requests (tests/serve/conftest.py)."""

from __future__ import annotations

import io
import re
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

from sr_deploy.backends.base import Upscaler
from sr_deploy.data.image_io import encode_image, read_image
from sr_deploy.runtime.images import upscale_image
from sr_deploy.serve import UpscaleService
from tests.runtime.test_jobs import claim_size
from tests.serve.conftest import running

MODES = {
    "grey8": ((40, 52, 1), np.uint8),
    "rgb8": ((40, 52, 3), np.uint8),
    "rgba8": ((36, 44, 4), np.uint8),
    "rgb16": ((40, 52, 3), np.uint16),
    "grey16": ((30, 38, 1), np.uint16),
}


def image(shape: tuple[int, int, int], dtype: type = np.uint8, seed: int = 0) -> np.ndarray:
    """Smooth random content (noise plus gradients), so the model's output is not saturated."""
    rng = np.random.default_rng(seed)
    h, w, c = shape
    peak = np.iinfo(dtype).max
    base = np.linspace(0.2, 0.8, w)[None, :, None] * np.linspace(0.5, 1.0, h)[:, None, None]
    values = np.clip(base + 0.15 * rng.standard_normal((h, w, c)), 0, 1)
    return np.round(values * peak).astype(dtype)


def decode(data: bytes, tmp_path: Path, suffix: str = ".png") -> np.ndarray:
    path = tmp_path / f"response{suffix}"
    path.write_bytes(data)
    return read_image(path)


def bomb_png(tmp_path: Path, width: int, height: int) -> bytes:
    """A small real PNG whose header claims ``width x height`` pixels (about a hundred bytes)."""
    path = tmp_path / f"bomb-{width}.png"
    path.write_bytes(encode_image(image((4, 4, 3)), "png"))
    claim_size(path, width, height)
    return path.read_bytes()


def port_of(client: httpx.Client) -> int:
    return int(str(client.base_url).rstrip("/").rsplit(":", 1)[1])


def metric(text: str, name: str) -> float:
    """The value of the sample ``name`` (with its labels, if any) in Prometheus text."""
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    assert match, f"{name} not in the metrics"
    return float(match.group(1))


def test_round_trip_equals_upscale_image(serve_model: Callable[..., UpscaleService],
                                         open_upscaler: Callable[[], Upscaler], tmp_path: Path) -> None:
    service = serve_model(max_batch=4)
    with running(service) as client, open_upscaler() as reference:
        for mode, (shape, dtype) in MODES.items():
            img = image(shape, dtype)
            expected = upscale_image(reference, img)  # the whole image as one window
            response = client.post("/v1/upscale", content=encode_image(img, "png"),
                                   headers={"content-type": "image/png"})
            assert response.status_code == 200, (mode, response.text)
            assert response.headers["content-type"] == "image/png"
            got = decode(response.content, tmp_path)
            assert got.dtype == expected.dtype and got.shape == expected.shape, mode
            np.testing.assert_array_equal(got, expected, err_msg=mode)
    assert service.batcher.stats.windows > 5 * len(MODES)  # each image really was cut into windows


def test_formats_multipart_and_model_info(serve_model: Callable[..., UpscaleService],
                                          open_upscaler: Callable[[], Upscaler], tmp_path: Path) -> None:
    img = image((40, 52, 3))
    with open_upscaler() as reference:
        expected = upscale_image(reference, img)
    with running(serve_model()) as client:
        # multipart upload of a JPEG-free lossless input (TIFF), WebP answer chosen by Accept, lossless
        files = {"file": ("x.tif", encode_image(img, "tiff"), "image/tiff")}
        webp = client.post("/v1/upscale", files=files, headers={"accept": "image/jpeg;q=0.5, image/webp"})
        assert webp.status_code == 200 and webp.headers["content-type"] == "image/webp"
        np.testing.assert_array_equal(decode(webp.content, tmp_path, ".webp"), expected)
        # lossy answers with a quality option are smaller, and close
        small = client.post("/v1/upscale?format=jpg&quality=40", content=encode_image(img, "webp"))
        big = client.post("/v1/upscale?format=jpeg&quality=95", content=encode_image(img, "png"))
        assert small.status_code == big.status_code == 200 and small.headers["content-type"] == "image/jpeg"
        assert len(small.content) < len(big.content)
        error = decode(big.content, tmp_path, ".jpg").astype(float) - expected
        assert 10 * np.log10(255**2 / np.mean(error**2)) > 30  # dB: JPEG q95 of the same pixels
        # refusals that name the problem
        assert client.post("/v1/upscale?format=gif", content=b"x").status_code == 406
        rgba = encode_image(image((20, 20, 4)), "png")
        refused = client.post("/v1/upscale?format=jpeg", content=rgba)
        assert refused.status_code == 406 and "alpha" in refused.json()["detail"]
        assert client.post("/v1/upscale", content=b"").status_code == 400
        not_image = client.post("/v1/upscale", content=b"hello, not an image")
        assert not_image.status_code == 415 and "not an image" in not_image.json()["detail"]
        truncated = client.post("/v1/upscale", content=encode_image(img, "png")[:200])
        assert truncated.status_code == 400
        assert "/tmp" not in truncated.text and "upload-" not in truncated.text  # no server paths
        info = client.get("/v1/model").json()
        assert info["descriptor"]["scale"] == 4 and info["backend"].startswith("onnxruntime")
        assert info["precision"] == "fp32" and info["window"] == [32, 32]
        assert "/v1/upscale" in client.get("/openapi.json").json()["paths"]


def test_limits_413(serve_model: Callable[..., UpscaleService], tmp_path: Path) -> None:
    with running(serve_model(max_pixels=10_000, max_body_bytes=50_000)) as client:
        bomb = bomb_png(tmp_path, 12_000, 12_000)
        assert len(bomb) < 200
        too_big = client.post("/v1/upscale", content=bomb)
        assert too_big.status_code == 413 and "12000x12000" in too_big.json()["detail"]
        beyond_pillow = bomb_png(tmp_path, 60_000, 60_000)  # Pillow's own limit refuses this one
        assert client.post("/v1/upscale", content=beyond_pillow).status_code == 413
        over = client.post("/v1/upscale", content=encode_image(image((120, 100, 3)), "png"))
        assert over.status_code == 413 and "too large" in over.json()["detail"]
        body = client.post("/v1/upscale", content=b"\0" * 60_000)
        assert body.status_code == 413 and "body" in body.json()["detail"]
        chunked = client.post("/v1/upscale", content=iter([b"\0" * 30_000] * 2))  # no Content-Length
        assert chunked.status_code == 413
        files = {"file": ("x.png", b"\0" * 60_000, "image/png")}
        assert client.post("/v1/upscale", files=files).status_code == 413
        assert client.post("/v1/upscale", content=encode_image(image((40, 52, 3)), "png")).status_code == 200


def test_queue_full_503_timeout_504_and_metrics(serve_model: Callable[..., UpscaleService]) -> None:
    service = serve_model(max_queue=1)
    payload = encode_image(image((40, 52, 3)), "png")
    with running(service) as client:
        before = client.get("/metrics").text
        # the one admitted request stays in flight while its body is half sent
        raw = socket.create_connection(("127.0.0.1", port_of(client)))
        raw.sendall(b"POST /v1/upscale HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
                    + f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n".encode()
                    + payload[:100])
        while metric(during := client.get("/metrics").text, "sr_deploy_queue_requests") == 0:
            time.sleep(0.01)
        refused = client.post("/v1/upscale", content=payload)
        assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
        raw.sendall(payload[100:])
        raw.settimeout(60)
        answer = b""
        while chunk := raw.recv(1 << 16):
            answer += chunk
        raw.close()
        assert answer.startswith(b"HTTP/1.1 200")
        after = client.get("/metrics").text
    assert metric(during, "sr_deploy_queue_requests") == 1 and metric(after, "sr_deploy_queue_requests") == 0
    for status, count in (("200", 1), ("503", 1)):
        name = f'sr_deploy_requests_total{{status="{status}"}}'
        assert metric(after, name) - metric(before, name) == count
    assert metric(after, "sr_deploy_request_seconds_count") == 1  # admitted requests only
    assert metric(after, "sr_deploy_model_seconds_total") > 0
    assert metric(after, "sr_deploy_batch_size_count") == service.batcher.stats.batches > 0
    assert metric(after, "sr_deploy_batch_size_sum") == service.batcher.stats.windows > 1

    slow = serve_model(batch_wait_ms=30_000, max_batch=64, request_timeout_s=0.3)
    with running(slow) as client:
        late = client.post("/v1/upscale", content=payload)
        assert late.status_code == 504
        assert slow.batcher.pending == 0 and slow.batcher.stats.dropped > 0 and slow.batcher.stats.windows == 0


def test_token_required(serve_model: Callable[..., UpscaleService]) -> None:
    payload = encode_image(image((20, 20, 3)), "png")
    with running(serve_model(token="s3cret-token")) as client:
        assert client.get("/healthz").status_code == 200 and client.get("/readyz").status_code == 200
        for path in ("/v1/model", "/metrics", "/openapi.json"):
            assert client.get(path).status_code == 401
        denied = client.post("/v1/upscale", content=payload)
        assert denied.status_code == 401 and denied.headers["www-authenticate"] == "Bearer"
        wrong = client.post("/v1/upscale", content=payload, headers={"authorization": "Bearer s3cret-tokem"})
        assert wrong.status_code == 401
        ok = client.post("/v1/upscale", content=payload, headers={"authorization": "Bearer s3cret-token"})
        assert ok.status_code == 200


class FailsOnMarker(Upscaler):
    """Fault injection around a real upscaler: a batch holding a window whose first pixel is exactly 1.0
    makes the backend raise, as a broken engine would."""

    def __init__(self, inner: Upscaler) -> None:
        self.inner = inner
        self.name, self.device, self.precision = inner.name, inner.device, inner.precision
        self.descriptor, self.limits = inner.descriptor, inner.limits

    def _run(self, batch: np.ndarray) -> np.ndarray:
        if (batch[:, :, 0, 0] == 1.0).all(axis=1).any():
            raise RuntimeError("injected backend failure at /secret/path/engine.plan")
        return self.inner.run(batch)

    def _release(self) -> None:
        self.inner.close()


def test_backend_failure_is_500_for_that_request_only(serve_model: Callable[..., UpscaleService],
                                                      open_upscaler: Callable[[], Upscaler]) -> None:
    good, bad = image((40, 52, 3), seed=1), image((40, 52, 3), seed=2)
    bad[0, 0] = 255  # the marker: its first window fails
    service = serve_model(FailsOnMarker(open_upscaler()), max_batch=16, batch_wait_ms=300)
    with running(service) as client, ThreadPoolExecutor(4) as pool:
        # both in one batch: the batch fails, then each request's windows run alone; only the bad one fails
        futures = [pool.submit(client.post, "/v1/upscale", content=encode_image(x, "png")) for x in (good, bad, good)]
        statuses = [f.result().status_code for f in futures]
        failed = futures[1].result()
        assert statuses == [200, 500, 200]
        assert failed.json() == {"detail": "the model failed on this image"}
        assert "Traceback" not in failed.text and "secret" not in failed.text
        assert client.post("/v1/upscale", content=encode_image(good, "png")).status_code == 200


def test_disconnected_client_has_its_windows_dropped(serve_model: Callable[..., UpscaleService]) -> None:
    service = serve_model(max_batch=64, batch_wait_ms=30_000)
    payload = encode_image(image((40, 52, 3)), "png")
    with running(service) as client:
        raw = socket.create_connection(("127.0.0.1", port_of(client)))
        raw.sendall(b"POST /v1/upscale HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
                    + f"Content-Length: {len(payload)}\r\n\r\n".encode() + payload)
        while service.batcher.pending == 0:
            time.sleep(0.005)
        queued = service.batcher.pending
        raw.close()
        stopped = threading.Event()
        for _ in range(200):
            if service.batcher.pending == 0:
                break
            stopped.wait(0.02)
        assert service.batcher.pending == 0 and service.batcher.stats.dropped == queued
        assert service.batcher.stats.windows == 0  # none of them ran
        assert metric(client.get("/metrics").text, "sr_deploy_dropped_windows_total") == queued


def test_ready_only_after_warm_up(serve_model: Callable[..., UpscaleService]) -> None:
    service = serve_model()
    with running(service, ready=False) as client:
        assert client.get("/healthz").status_code == 200
        # warm-up runs in the background; once ready, it has run the serving shapes
        while (status := client.get("/readyz").status_code) != 200:
            assert status == 503
        assert service.ready


def test_image_bytes_are_png_by_default(serve_model: Callable[..., UpscaleService]) -> None:
    with running(serve_model()) as client:
        response = client.post("/v1/upscale", content=encode_image(image((20, 24, 3)), "jpeg"),
                               headers={"accept": "*/*"})
    assert Image.open(io.BytesIO(response.content)).format == "PNG"
