"""The HTTP API (FastAPI): :func:`create_app` builds it around an :class:`~sr_deploy.serve.service.UpscaleService`.

Endpoints: ``POST /v1/upscale`` (an image as the raw body or as the one file of a multipart form -> the
upscaled image; ``format`` query or ``Accept`` header: PNG (default), JPEG, WebP, TIFF; ``quality`` 1-100
for JPEG and WebP), ``GET /healthz`` (the process answers), ``GET /readyz`` (503 until the model ran the
serving shapes once), ``GET /metrics`` (Prometheus text), ``GET /v1/model`` (what is served), and the
framework's ``/docs`` and ``/openapi.json``.

Limits, in the order they apply: a bearer token when one is set (every path but the two probes; compared
in constant time), admission (503 with ``Retry-After`` when ``max_queue`` requests are in flight, before the
body is read), the body size (413, from ``Content-Length`` and while reading), the pixel limit from the image
header (413, before decoding), the per-request timeout (504, the request's windows dropped). A client that
disconnects has its pending windows dropped. Errors are JSON ``{"detail": ...}`` without tracebacks; an
unexpected one is logged with its traceback on the server and answered 500. No endpoint takes a path:
uploads go to private temporary files the server names.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sr_deploy._version import __version__
from sr_deploy.data.image_io import encode_image
from sr_deploy.serve.batcher import Job, JobFailed
from sr_deploy.serve.codec import MEDIA_TYPES, RequestError, choose_format, decode_upload
from sr_deploy.serve.metrics import CONTENT_TYPE
from sr_deploy.serve.service import UpscaleService

logger = logging.getLogger("sr_deploy.serve")

#: paths answered without a token (orchestrators' probes)
OPEN_PATHS = ("/healthz", "/readyz")
#: seconds a refused client is told to wait (``Retry-After``)
RETRY_AFTER_S = 1
_CHUNK = 1 << 20
_POLL_S = 0.1
_CLIENT_GONE = 499  # nginx's code for "client closed the request": counted, never sent


class _ClientGone(Exception):
    pass


def _error(status: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


class _Guard:
    """Pure ASGI middleware: the bearer token, and the request counter by status (every path but /metrics)."""

    def __init__(self, app: ASGIApp, service: UpscaleService) -> None:
        self.app, self.service = app, service
        token = service.config.token
        self.expected = f"Bearer {token}".encode() if token else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        status = 500

        async def counting_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            if self.expected is not None and path not in OPEN_PATHS:
                given = dict(scope["headers"]).get(b"authorization", b"")
                if not hmac.compare_digest(given, self.expected):
                    response = _error(401, "a valid bearer token is required", {"WWW-Authenticate": "Bearer"})
                    await response(scope, receive, counting_send)
                    return
            await self.app(scope, receive, counting_send)
        finally:
            if path != "/metrics":
                self.service.metrics.requests.labels(str(status)).inc()


def _capped(receive: Receive, limit: int) -> Receive:
    """``receive`` that raises RequestError 413 once the body passes ``limit`` bytes."""
    seen = 0

    async def capped_receive() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise RequestError(413, f"request body over {limit:,} bytes")
        return message

    return capped_receive


async def _save_body(request: Request, folder: Path, limit: int) -> Path:
    """The uploaded image (raw body, or the file part of a multipart form) in a new file under ``folder``."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise RequestError(413, f"request body over {limit:,} bytes ({int(length):,})")
    fd, name = tempfile.mkstemp(prefix="upload-", dir=folder)
    path = Path(name)
    size = 0
    try:
        with os.fdopen(fd, "wb") as fh:
            if request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
                capped = Request(request.scope, _capped(request.receive, limit))
                async with capped.form(max_files=1, max_fields=8) as form:
                    uploads = [v for v in form.values() if isinstance(v, UploadFile)]
                    if not uploads:
                        raise RequestError(400, "the multipart form has no file part")
                    while chunk := await uploads[0].read(_CHUNK):
                        size += len(chunk)
                        fh.write(chunk)
            else:
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > limit:
                        raise RequestError(413, f"request body over {limit:,} bytes")
                    fh.write(chunk)
        if size == 0:
            raise RequestError(400, "the request has no image (empty body)")
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path


async def _wait(job: Job, request: Request, service: UpscaleService, timeout: float) -> None:
    """Wait for ``job``; drop its windows when the client goes (_ClientGone) or ``timeout`` s pass (504)."""
    loop = asyncio.get_running_loop()
    finished = asyncio.Event()

    def wake(_job: Job) -> None:
        try:
            loop.call_soon_threadsafe(finished.set)
        except RuntimeError:  # the loop is gone: nobody is waiting
            pass

    job.add_done_callback(wake)
    deadline = loop.time() + timeout
    while not finished.is_set():
        remaining = deadline - loop.time()
        if remaining <= 0:
            service.batcher.cancel(job)
            raise RequestError(504, f"no result within the request timeout ({timeout:g} s)")
        try:
            await asyncio.wait_for(finished.wait(), min(_POLL_S, remaining))
        except asyncio.TimeoutError:  # an alias of TimeoutError from Python 3.11 on; distinct on 3.10
            if await request.is_disconnected():
                service.batcher.cancel(job)
                raise _ClientGone from None


def create_app(service: UpscaleService, *, close_service: bool = True) -> FastAPI:
    """The FastAPI application serving ``service`` (limits and token from ``service.config``).

    On startup the serving shapes are warmed up in a background thread (``/readyz`` says when it is done);
    on shutdown, after the server has finished its in-flight requests, the service is closed unless
    ``close_service`` is False (the caller owns it).
    """
    config = service.config
    uploads = Path(tempfile.mkdtemp(prefix="sr-deploy-serve-"))
    in_flight = 0
    scale = service.upscaler.scale

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        warm = threading.Thread(target=_warm_up, args=(service,), name="sr-deploy-warm-up", daemon=True)
        warm.start()
        try:
            yield
        finally:
            if close_service:
                await run_in_threadpool(service.close, config.grace_s)
            shutil.rmtree(uploads, ignore_errors=True)

    app = FastAPI(title="sr-deploy", version=__version__, lifespan=lifespan,
                  description="Super-resolution upscaling with cross-request batching.")
    app.add_middleware(_Guard, service=service)

    @app.exception_handler(RequestError)
    async def refused(_request: Request, exc: RequestError) -> JSONResponse:
        return _error(exc.status, str(exc))

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, exc: Exception) -> JSONResponse:
        logger.error("unexpected error", exc_info=exc)
        return _error(500, "internal error")

    @app.get("/healthz", summary="The process answers")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", summary="Ready once the model is loaded and warmed up for the serving shapes",
             responses={503: {"description": "still warming up"}})
    async def readyz() -> JSONResponse:
        if service.ready:
            return JSONResponse({"status": "ready"})
        return _error(503, "warming up", {"Retry-After": str(RETRY_AFTER_S)})

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def metrics() -> Response:
        return Response(service.metrics.render(), media_type=CONTENT_TYPE)

    @app.get("/v1/model", summary="What is served: descriptor, backend, precision, measured accuracy drop")
    async def model() -> dict[str, Any]:
        return service.describe()

    image_types = {media: {"schema": {"type": "string", "format": "binary"}} for media in MEDIA_TYPES.values()}
    body_doc = {"requestBody": {"required": True, "content": {
        **image_types,
        "multipart/form-data": {"schema": {"type": "object", "properties": {
            "file": {"type": "string", "format": "binary"}}}},
    }}}

    @app.post("/v1/upscale", summary="Upscale one image", response_class=Response, openapi_extra=body_doc,
              responses={200: {"content": image_types, "description": "the upscaled image"},
                         413: {"description": "body or image too large"}, 503: {"description": "queue full"}})
    async def upscale(
        request: Request,
        format: str | None = Query(None, description="png | jpeg | webp | tiff (default: from Accept, else png)"),
        quality: int | None = Query(None, ge=1, le=100, description="JPEG/WebP quality (WebP: lossless if unset)"),
    ) -> Response:
        nonlocal in_flight
        fmt = choose_format(format, request.headers.get("accept"))
        busy = {"Retry-After": str(RETRY_AFTER_S)}
        if not service.ready:
            return _error(503, "the model is warming up", busy)
        if in_flight >= config.max_queue:
            return _error(503, f"queue full ({config.max_queue} requests in flight)", busy)
        in_flight += 1
        service.metrics.queue.inc()
        start = time.perf_counter()
        try:
            return await _upscale(request, fmt, quality)
        except _ClientGone:
            return Response(status_code=_CLIENT_GONE)
        finally:
            in_flight -= 1
            service.metrics.queue.dec()
            service.metrics.latency.observe(time.perf_counter() - start)

    async def _upscale(request: Request, fmt: str, quality: int | None) -> Response:
        path = await _save_body(request, uploads, config.max_body_bytes)
        try:
            image = await run_in_threadpool(decode_upload, path, scale, config.max_pixels)
        finally:
            path.unlink(missing_ok=True)
        job = await run_in_threadpool(service.submit, image)
        await _wait(job, request, service, config.request_timeout_s)
        try:
            out = await run_in_threadpool(service.result, job, image)
        except JobFailed as exc:
            logger.error("model failure on one request: %s", exc, exc_info=exc.__cause__)
            raise RequestError(500, "the model failed on this image") from None
        try:
            data = await run_in_threadpool(encode_image, out, fmt, quality)
        except ValueError as exc:
            raise RequestError(406, f"cannot answer in {fmt}: {exc}") from None
        return Response(data, media_type=MEDIA_TYPES[fmt])

    return app


def _warm_up(service: UpscaleService) -> None:
    try:
        service.warm_up()
    except Exception:
        logger.exception("warm-up failed: the service stays not ready")
