"""``load``: a model name or file -> a ready :class:`~sr_deploy.runtime.base.Upscaler`."""

from __future__ import annotations

import os
from pathlib import Path

from sr_deploy.runtime.base import Upscaler

BACKENDS = ("auto", "torch", "onnxruntime")


def load(
    model: str | os.PathLike[str],
    backend: str = "auto",
    precision: str = "fp32",
    device: str = "cpu",
    scale: int = 4,
) -> Upscaler:
    """Load ``model``: ``"bicubic"`` (needs ``scale``), a shipped model name, a ``.safetensors`` or
    ``.pt`` checkpoint (PyTorch backend), or an ``.onnx`` file (ONNX Runtime backend).
    """
    from sr_deploy.models.weights import load_weights
    from sr_deploy.models.zoo import resolve_weights

    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose from {BACKENDS}")
    if str(model) == "bicubic":
        from sr_deploy.runtime.bicubic_backend import BicubicUpscaler

        return BicubicUpscaler(scale)
    path = resolve_weights(model)
    if Path(path).suffix == ".onnx":
        if backend == "torch":
            raise ValueError(f"{path} is an ONNX file; the torch backend needs .safetensors or .pt weights")
        from sr_deploy.runtime.ort_backend import OrtUpscaler

        return OrtUpscaler(path)
    if backend == "onnxruntime":
        raise ValueError(f"{path}: the onnxruntime backend needs an .onnx file (export it first)")
    from sr_deploy.runtime.torch_backend import TorchUpscaler

    net, desc = load_weights(path, device)
    return TorchUpscaler(net, desc, device=device, precision=precision)
