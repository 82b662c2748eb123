"""``sr-deploy serve``: an HTTP upscaling service with cross-request batching, limits and metrics.

:class:`ServeConfig` (settings) -> :class:`UpscaleService` (the model, its batcher and metrics; no HTTP) ->
:func:`create_app` (the FastAPI app; another front end can reuse it unchanged) -> :func:`serve` (uvicorn).
"""

from sr_deploy.serve.app import create_app
from sr_deploy.serve.config import ServeConfig, read_token
from sr_deploy.serve.server import make_server, serve
from sr_deploy.serve.service import UpscaleService

__all__ = ["ServeConfig", "UpscaleService", "create_app", "make_server", "read_token", "serve"]
