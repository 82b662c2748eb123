"""``sr-deploy serve``: refusing an open bind without a token, and, as a real process, SIGTERM with a request
in flight (stop accepting, finish it, exit 0)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from sr_deploy.data.image_io import encode_image
from tests.serve.test_app import image

CLI = [sys.executable, "-m", "sr_deploy.cli", "serve"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_open_bind_needs_a_token_or_insecure(onnx_model: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from sr_deploy.cli import app

    refused = CliRunner().invoke(app, ["serve", "--model", str(onnx_model), "--host", "0.0.0.0"])
    assert refused.exit_code == 2 and "needs a token" in refused.output
    empty = tmp_path / "token"
    empty.write_text("\n")
    refused = CliRunner().invoke(app, ["serve", "--model", str(onnx_model), "--token-file", str(empty)])
    assert refused.exit_code == 2 and "is empty" in refused.output


def test_sigterm_finishes_the_request_in_flight(onnx_model: Path) -> None:
    port = free_port()
    server = subprocess.Popen(
        [*CLI, "--model", str(onnx_model), "--backend", "onnxruntime", "--port", str(port), "--window", "32",
         "--max-batch", "64", "--batch-wait-ms", "1500", "--grace", "20"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, server.communicate()[0]
            assert time.monotonic() < deadline, "the server did not become ready"
            try:
                if httpx.get(f"{url}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        payload = encode_image(image((40, 52, 3)), "png")
        with ThreadPoolExecutor(1) as pool:
            in_flight = pool.submit(httpx.post, f"{url}/v1/upscale", content=payload, timeout=60)
            while "sr_deploy_queue_windows 0.0" in httpx.get(f"{url}/metrics").text:
                time.sleep(0.05)
            server.send_signal(signal.SIGTERM)
            # new connections are refused while the request in flight still waits for its batch
            while True:
                try:
                    httpx.get(f"{url}/healthz", timeout=1)
                except httpx.TransportError:
                    break
                assert not in_flight.done()
                time.sleep(0.05)
            response = in_flight.result()
        assert response.status_code == 200 and len(response.content) > 1000
        # uvicorn re-raises the SIGTERM it handled once it has shut down gracefully: the process ends "killed by
        # SIGTERM" as process managers expect, not by a crash or a SIGKILL
        assert server.wait(30) in (0, -signal.SIGTERM)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    log = server.stdout.read() if server.stdout else ""
    assert "Traceback" not in log


if sys.platform == "win32":  # pragma: no cover - SIGTERM semantics differ
    pytest.skip("POSIX signals", allow_module_level=True)
