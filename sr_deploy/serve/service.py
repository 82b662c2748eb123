"""The model behind the HTTP service: load it, warm it up, cut images into jobs for the batcher, and say what
it is. Nothing here knows about HTTP, so another front end (a Ray Serve deployment) can drive it unchanged.

An image (``H x W x C`` uint8/uint16, C in 1, 3, 4) becomes the model's ``3 x H x W`` float32 RGB
(:func:`sr_deploy.runtime.images.image_to_model`), is cut into windows of ``window x window`` input pixels
(:func:`sr_deploy.runtime.tiling.plan_tiles`; a side shorter than the window stays whole), runs through the
:class:`~sr_deploy.serve.batcher.Batcher` with the windows of every other request in flight, and comes back
in its own mode and depth (:func:`sr_deploy.runtime.images.image_from_model`). The result equals
``upscale_image(upscaler, image)`` up to the float rounding of tiling and batch size (exactly, on ONNX
Runtime CPU; tests/serve).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from sr_deploy.backends.base import Upscaler
from sr_deploy.runtime.images import image_from_model, image_to_model, model_input_size
from sr_deploy.runtime.load import load_selected
from sr_deploy.runtime.select import Selection
from sr_deploy.runtime.tiling import plan_tiles
from sr_deploy.runtime.tune import measure_drop
from sr_deploy.serve.batcher import Batcher, Job
from sr_deploy.serve.config import ServeConfig, default_window
from sr_deploy.serve.metrics import Metrics


def served_drop(selection: Selection, precision: str, log: Callable[[str], None] | None = None) -> float | None:
    """The Y-PSNR drop (dB) against fp32 of what ``selection`` runs: 0 for fp32 (the export gate's parity),
    the budget search's measured drop for an int8 ONNX file, the drop measured on this machine for weights
    or an fp32 ONNX run in a reduced precision (cached); None where nothing measured it (an engine, an ONNX file
    without a calibration record)."""
    if precision == "fp32":
        return 0.0
    artifact = selection.artifact
    if artifact.chooses_precision:  # weights or an fp32 ONNX, run in a reduced precision
        return measure_drop(artifact.path, selection.route, log=log)
    if artifact.kind == "onnx":
        return artifact.recorded_drop  # read from the file's calibration record by identify
    return None


class UpscaleService:
    """One loaded model shared by all requests, with its batcher and metrics.

    ``window``: the fixed window side (input pixels; None: :func:`~sr_deploy.serve.config.default_window`).
    ``info``: what ``GET /v1/model`` reports besides the descriptor (route, reason, measured drop).
    ``ready`` turns true after :meth:`warm_up`.
    """

    def __init__(self, upscaler: Upscaler, config: ServeConfig, info: dict[str, Any] | None = None) -> None:
        self.upscaler, self.config = upscaler, config
        self.halo = upscaler.descriptor.receptive_radius
        self.window = config.window or default_window(self.halo)
        if self.window <= 2 * self.halo:
            raise ValueError(f"window {self.window} must exceed twice the model's receptive radius ({self.halo})")
        self.info = dict(info or {})
        self.metrics = Metrics(config.max_batch, lambda: self.batcher.pending)
        self.batcher = Batcher(upscaler, config.max_batch, config.batch_wait_ms / 1000.0, config.workers,
                               on_batch=self.metrics.batch, on_drop=self.metrics.dropped.inc)
        self._ready = threading.Event()

    @classmethod
    def open(cls, config: ServeConfig, log: Callable[[str], None] | None = None) -> UpscaleService:
        """Load ``config.model`` as ``load_selected`` does (``backend="auto"``: routes timed on one window of
        ``config.window``, or 128 x 128 when the window is left to the model, whose halo is known only once
        it is loaded)."""
        window = config.window or 128
        upscaler, selection = load_selected(
            config.model, backend=config.backend, precision=config.precision, device=config.device,
            tune_shape=(1, 3, window, window), max_psnr_drop=config.max_psnr_drop, log=log)
        try:
            drop = served_drop(selection, upscaler.precision, log)
            info = {"route": selection.route.label, "reason": selection.reason, "psnr_drop_db": drop,
                    "artifact": selection.artifact.path.name, "artifact_kind": selection.artifact.kind}
            return cls(upscaler, config, info)
        except BaseException:
            upscaler.close()
            raise

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    def warm_up(self) -> None:
        """Run the serving shapes once (a full batch of windows, then one window), then mark ready."""
        plan = plan_tiles(self.upscaler, self.window, self.window, tile=self.window - 2 * self.halo,
                          memory_budget=1 << 62)
        for batch in sorted({self.config.max_batch, 1}, reverse=True):
            shape = (batch, 3, plan.tile_h, plan.tile_w)
            if self.upscaler.accepts(shape):
                self.upscaler.run(np.zeros(shape, dtype=np.float32))
        self._ready.set()

    def submit(self, image: np.ndarray) -> Job:
        """Start upscaling ``image`` (``H x W x C`` uint8/uint16): its windows join the batcher's queue."""
        height, width = model_input_size(image)
        core = self.window - 2 * self.halo
        # the budget covers one window: batching is the batcher's business
        plan = plan_tiles(self.upscaler, height, width, tile=core, memory_budget=1 << 62)
        return self.batcher.submit(Job(image_to_model(image), plan, self.upscaler.scale))

    def result(self, job: Job, image: np.ndarray) -> np.ndarray:
        """The finished ``job``'s output in ``image``'s mode and depth (``sH x sW x C``)."""
        if job.error is not None:
            raise job.error
        return image_from_model(image, job.output, self.upscaler.scale)

    def upscale(self, image: np.ndarray, timeout: float | None = None) -> np.ndarray:
        """:meth:`submit` and wait (blocking; TimeoutError after ``timeout`` s, its windows dropped)."""
        job = self.submit(image)
        if not job.wait(timeout):
            self.batcher.cancel(job)
            raise TimeoutError(f"no result within {timeout} s")
        return self.result(job, image)

    def describe(self) -> dict[str, Any]:
        """What ``GET /v1/model`` answers: descriptor, backend, device, precision, measured drop, serving shape."""
        up = self.upscaler
        return {"descriptor": up.descriptor.to_dict(), "backend": up.name, "device": up.device,
                "precision": up.precision, "scale": up.scale, "window": [self.window, self.window],
                "max_batch": self.config.max_batch, **self.info}

    def close(self, timeout: float | None = None) -> None:
        """Finish the pending windows, stop the batcher and free the model."""
        self._ready.clear()
        self.batcher.close(timeout)
        self.upscaler.close()
