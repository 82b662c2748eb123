"""A real server for the serve tests: uvicorn in a thread on a free loopback port, the small random model
on ONNX Runtime CPU (batch size does not change its pixels), real HTTP with httpx."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

pytest.importorskip("fastapi")  # the [serve] extra
httpx = pytest.importorskip("httpx")  # the [dev] extra

from sr_deploy.backends.base import Upscaler  # noqa: E402
from sr_deploy.runtime.load import load  # noqa: E402
from sr_deploy.serve import ServeConfig, UpscaleService, make_server  # noqa: E402

#: a window of 32 input pixels: the small model's receptive radius is 12, so windows keep 8-pixel cores and
#: the test images are cut into many windows
WINDOW = 32


@pytest.fixture(scope="session")
def onnx_model(small_onnx: Path) -> Path:
    return small_onnx


@pytest.fixture
def open_upscaler(onnx_model: Path) -> Callable[[], Upscaler]:
    return lambda: load(onnx_model, backend="onnxruntime")


@contextmanager
def running(service: UpscaleService, ready: bool = True) -> Iterator[httpx.Client]:
    """Serve ``service`` on a free 127.0.0.1 port in a thread; an httpx client for it (stopped on exit)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = make_server(service, log_level="warning")
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60)
    try:
        deadline = time.monotonic() + 30
        while not server.started or (ready and client.get("/readyz").status_code != 200):
            assert time.monotonic() < deadline, "the server did not become ready"
            time.sleep(0.02)
        yield client
    finally:
        client.close()
        server.should_exit = True
        thread.join(30)
        sock.close()


@pytest.fixture
def serve_model(open_upscaler: Callable[[], Upscaler]) -> Callable[..., UpscaleService]:
    """``serve_model(**config)``: a service on the small model, window :data:`WINDOW` unless given."""

    def make(upscaler: Upscaler | None = None, **settings: object) -> UpscaleService:
        settings.setdefault("window", WINDOW)
        return UpscaleService(upscaler or open_upscaler(), ServeConfig(model="test", **settings))  # type: ignore[arg-type]

    return make
