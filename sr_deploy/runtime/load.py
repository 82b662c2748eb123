"""``load``: a model (shipped name, weights, ONNX, engine or ``"bicubic"``) -> a ready
:class:`~sr_deploy.backends.base.Upscaler` on the fastest route here, with the reason.

The route comes from the static ranking (:func:`~sr_deploy.runtime.select.decide`), or, with
``tune=True``, from timing every usable route on this machine once (:func:`~sr_deploy.runtime.tune.tune`,
cached). When the chosen route fails to start, the next candidate is tried and the reason says so.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import ParamSpec

from sr_deploy.backends.base import Upscaler
from sr_deploy.backends.bicubic import BicubicUpscaler
from sr_deploy.errors import BackendUnavailable
from sr_deploy.runtime.select import Artifact, Route, Selection, decide, identify, machine_facts, open_route
from sr_deploy.runtime.tune import tune
from sr_deploy.vocabulary import AUTO

P = ParamSpec("P")

#: The bicubic baseline (``load("bicubic")``): no file, one route.
BICUBIC_ROUTE = Route("bicubic", "cpu", "fp64", "bicubic")


def load_selected(
    model: str | os.PathLike[str] | None = None,
    *,
    backend: str = AUTO,
    precision: str | None = None,
    device: str | None = None,
    scale: int = 4,
    convert: bool | None = None,
    tune_shape: tuple[int, int, int, int] | None = None,
    log: Callable[[str], None] | None = None,
) -> tuple[Upscaler, Selection]:
    """:func:`load` that also returns the :class:`~sr_deploy.runtime.select.Selection` (with the reason to print).

    ``tune_shape``: with ``backend="auto"``, choose by timing every usable route on inputs of this NCHW
    shape (the tile shape the job will run) instead of by the static ranking; measured once per model,
    shape and machine, then read from the cache. ``convert``: whether a weights file may run on an ONNX
    or engine backend through a file made on first use (None: yes when ``backend`` names one or when
    tuning). ``log`` hears about conversions and timings.
    """
    if model is not None and os.fspath(model) == "bicubic":
        artifact = Artifact(Path("bicubic"), "bicubic")
        selection = Selection(artifact, BICUBIC_ROUTE, f"bicubic x{scale}: MATLAB imresize, the baseline",
                              (BICUBIC_ROUTE,))
        return BicubicUpscaler(scale), selection
    artifact = identify(model)
    tuning = tune_shape is not None and backend == AUTO
    if convert is None:
        convert = backend != AUTO or tuning
    selection = decide(artifact, machine_facts(), backend, precision, device, convert)
    if tuning:
        assert tune_shape is not None
        measured = tune(artifact.path, precision=precision, device=device, shape=tune_shape, log=log)
        best = measured.route()
        rest = tuple(r for r in selection.candidates if r != best)
        selection = Selection(artifact, best, measured.summary(), (best, *rest))
    failures: list[str] = []
    for route in selection.candidates:
        try:
            upscaler = open_route(route, artifact, device, log)
        except BackendUnavailable as exc:
            failures.append(f"{route.label} failed to start: {exc}")
            continue
        if failures:
            reason = f"{route.label} ({'; '.join(failures)}); planned: {selection.reason}"
            selection = Selection(artifact, route, reason, selection.candidates)
        return upscaler, selection
    raise BackendUnavailable("; ".join(failures))


def _upscaler_only(select: Callable[P, tuple[Upscaler, Selection]]) -> Callable[P, Upscaler]:
    """``select`` returning only the upscaler (same parameters)."""

    def load(*args: P.args, **kwargs: P.kwargs) -> Upscaler:
        return select(*args, **kwargs)[0]

    return load


#: Load ``model`` on the fastest route for ``precision``; use the result as a context manager (or call
#: ``close()``) to free it. Takes what :func:`load_selected` takes: ``model`` a shipped model name (None:
#: the shipped default), ``.safetensors``/``.pt`` weights (PyTorch), an ``.onnx`` file (ONNX Runtime on
#: CPU, CUDA or the TensorRT EP; OpenVINO on the CPU), an ``.engine``/``.plan`` TensorRT engine, or
#: ``"bicubic"`` (the baseline, ``scale`` times); ``backend`` ``auto``, ``torch``, ``onnxruntime``,
#: ``openvino`` or ``tensorrt``; ``device`` ``cpu``, ``cuda`` or ``cuda:N`` (None: the fastest here).
load = _upscaler_only(load_selected)
