"""``sr-deploy serve``: the HTTP upscaling service (:mod:`sr_deploy.serve`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from sr_deploy.cli.common import AUTO_DEVICE_CHOICES, choices, console, fail, log_text
from sr_deploy.cluster import INSTALL_HINT
from sr_deploy.cluster.deployment import Scaling, serve_cluster
from sr_deploy.errors import BackendUnavailable
from sr_deploy.serve import ServeConfig, UpscaleService, read_token
from sr_deploy.serve import serve as run_server
from sr_deploy.serve.config import (
    DEFAULT_BATCH_WAIT_MS,
    DEFAULT_GRACE_S,
    DEFAULT_MAX_BATCH,
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_PIXELS,
    DEFAULT_MAX_QUEUE,
    DEFAULT_REQUEST_TIMEOUT_S,
)
from sr_deploy.vocabulary import AUTO, BACKENDS, PRECISIONS


def serve(
    model: Annotated[str, typer.Option(help="Shipped model name, weights, .onnx or .engine")] = "srresnet-x4",
    backend: Annotated[str, typer.Option(help=choices((AUTO, *BACKENDS)))] = AUTO,
    precision: Annotated[str | None, typer.Option(help=choices(PRECISIONS))] = None,
    device: Annotated[str | None, typer.Option(help=AUTO_DEVICE_CHOICES)] = None,
    max_psnr_drop: Annotated[float | None, typer.Option(
        min=0.0, help="As upscale's: with weights or an fp32 ONNX, also allow bf16 / int8 whose Y-PSNR drop against "
        "fp32, measured here, is within this many dB (reported by /v1/model); another model file is held to the drop "
        "it records")] = None,
    host: Annotated[str, typer.Option(help="Address to bind; other than loopback needs --token-file or "
                                           "--insecure")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Threads running batches on the one loaded model")] = 1,
    max_batch: Annotated[int, typer.Option(min=1, help="Most windows in one batch")] = DEFAULT_MAX_BATCH,
    batch_wait_ms: Annotated[float, typer.Option(min=0.0, help="Longest wait for a batch to fill (ms)")]
    = DEFAULT_BATCH_WAIT_MS,
    window: Annotated[int | None, typer.Option(min=1, help="Window side in input pixels (default: from the model's "
                                                    "receptive field, at least 128)")] = None,
    max_pixels: Annotated[int, typer.Option(min=1, help="Largest input image (pixels, from its header; 413 above)")]
    = DEFAULT_MAX_PIXELS,
    max_queue: Annotated[int, typer.Option(min=1, help="Requests in flight before 503 + Retry-After")
                         ] = DEFAULT_MAX_QUEUE,
    max_body_bytes: Annotated[int, typer.Option(min=1, help="Largest request body (413 above)")
                              ] = DEFAULT_MAX_BODY_BYTES,
    request_timeout: Annotated[float, typer.Option(min=0.001, help="Per-request timeout (s, > 0; 504 after it)")]
    = DEFAULT_REQUEST_TIMEOUT_S,
    grace: Annotated[float, typer.Option(min=0.0, help="On SIGTERM, seconds to finish requests in flight")
                     ] = DEFAULT_GRACE_S,
    token_file: Annotated[Path | None, typer.Option(help="File holding the bearer token requests must carry")]
    = None,
    insecure: Annotated[bool, typer.Option(help="Allow a non-loopback --host without a token")] = False,
    cluster: Annotated[str | None, typer.Option(
        help="Serve as a Ray Serve deployment: 'auto' ($RAY_ADDRESS, the cluster 'ray start' began here, else a "
        f"new local one) or the cluster's address (needs {escape(INSTALL_HINT)})")] = None,
    replicas: Annotated[int, typer.Option(min=1, help="With --cluster: replicas, one model each")] = 1,
    min_replicas: Annotated[int | None, typer.Option(
        min=0, help="With --cluster: autoscale on requests in flight, down to this many replicas")] = None,
    max_replicas: Annotated[int | None, typer.Option(
        min=1, help="With --cluster: autoscale on requests in flight, up to this many replicas")] = None,
) -> None:
    """Serve POST /v1/upscale (with cross-request batching), /healthz, /readyz, /metrics, /v1/model, /docs.

    Example: sr-deploy serve --model srresnet-x4 --port 8000 --max-batch 8 --batch-wait-ms 5
    then: curl --data-binary @photo.png -H 'content-type: image/png' http://127.0.0.1:8000/v1/upscale -o big.png

    On Ray: sr-deploy serve --cluster auto --min-replicas 1 --max-replicas 4 --device cuda
    """
    try:
        config = ServeConfig(
            model=model, backend=backend, precision=precision, device=None if device == AUTO else device,
            max_psnr_drop=max_psnr_drop or 0.0, host=host, port=port, workers=workers, max_batch=max_batch,
            batch_wait_ms=batch_wait_ms, window=window, max_pixels=max_pixels, max_queue=max_queue,
            max_body_bytes=max_body_bytes, request_timeout_s=request_timeout, grace_s=grace,
            token=read_token(token_file) if token_file else None, insecure=insecure)
        if cluster is not None:
            scaling = Scaling(replicas, min_replicas, max_replicas, gpus=1.0 if (device or "").startswith("cuda")
                              else 0.0)
            console.print(f"serving {model} on Ray Serve ({cluster}): {scaling.options(config)}: "
                          f"http://{host}:{port}", highlight=False)
            serve_cluster(config, scaling, cluster)
            return
        service = UpscaleService.open(config, log=log_text)
    except (FileNotFoundError, ValueError, BackendUnavailable) as exc:
        raise fail(str(exc).replace("(token_file)", "(--token-file)").replace("insecure=True", "--insecure")) from None
    info = service.describe()
    drop = info.get("psnr_drop_db")
    console.print(f"serving {info['artifact']} on {info['backend']} ({info['precision']}, Y-PSNR drop "
                  f"{'not measured' if drop is None else f'{drop:.3f} dB'}), windows of {service.window} x "
                  f"{service.window}, batches up to {config.max_batch}: http://{host}:{port}", highlight=False)
    run_server(service)
