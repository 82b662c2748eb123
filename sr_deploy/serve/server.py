"""Run the service under uvicorn: one process, one model, the batcher's threads.

Lifecycle: SIGTERM or SIGINT stops accepting connections, lets the requests in flight finish for up to
``grace_s`` seconds, then closes the service (pending windows run, model freed) and returns.
"""

from __future__ import annotations

import math
import socket

import uvicorn

from sr_deploy.serve.app import create_app
from sr_deploy.serve.service import UpscaleService


def make_server(service: UpscaleService, *, log_level: str = "info") -> uvicorn.Server:
    """A uvicorn server for ``service`` on ``service.config``'s host and port (not started)."""
    config = service.config
    return uvicorn.Server(uvicorn.Config(
        create_app(service), host=config.host, port=config.port, log_level=log_level, access_log=False,
        server_header=False, timeout_graceful_shutdown=math.ceil(config.grace_s), lifespan="on",
    ))


def serve(service: UpscaleService, *, sockets: list[socket.socket] | None = None, log_level: str = "info") -> None:
    """Serve until SIGTERM/SIGINT (see the module docstring); ``sockets``: already bound listening sockets to
    use instead of binding the configured host and port."""
    make_server(service, log_level=log_level).run(sockets=sockets)
