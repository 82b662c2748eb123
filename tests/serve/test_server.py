"""``sr-deploy serve``: refusing an open bind without a token, and, as a real process, SIGTERM with a request
in flight (stop accepting, finish it, exit 0)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
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
         "--grace", "30"],
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
        # a request in flight: headers and half of the body sent, the rest held back until after SIGTERM
        client = socket.create_connection(("127.0.0.1", port))
        client.sendall(b"POST /v1/upscale HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
                       + f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n".encode()
                       + payload[: len(payload) // 2])
        while 'sr_deploy_queue_requests 1.0' not in httpx.get(f"{url}/metrics").text:
            time.sleep(0.05)
        server.send_signal(signal.SIGTERM)
        while True:  # new connections are refused while the request in flight is still open
            try:
                httpx.get(f"{url}/healthz", timeout=1)
            except httpx.TransportError:
                break
            time.sleep(0.05)
        assert server.poll() is None
        client.sendall(payload[len(payload) // 2 :])
        client.settimeout(60)
        response = b""
        while chunk := client.recv(1 << 16):
            response += chunk
        client.close()
        head, _, body = response.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200") and body.startswith(b"\x89PNG"), head
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
