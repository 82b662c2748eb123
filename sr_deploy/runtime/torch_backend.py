"""PyTorch backend: the reference (fp32) and a production option (channels_last, bf16/fp16)."""

from __future__ import annotations

import contextlib

import numpy as np
import torch

from sr_deploy.models.descriptor import ModelDescriptor
from sr_deploy.runtime.base import BackendUnavailable, Upscaler

_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


class TorchUpscaler(Upscaler):
    """Runs an SR ``nn.Module`` under ``torch.inference_mode``.

    ``precision``: ``fp32`` (the reference), ``bf16`` (autocast; CPU with AVX-512 BF16 or CUDA) or
    ``fp16`` (CUDA only). ``channels_last`` uses NHWC memory format (faster on CPU and tensor cores).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        desc: ModelDescriptor,
        device: str = "cpu",
        precision: str = "fp32",
        channels_last: bool = False,
        name: str | None = None,
    ) -> None:
        if precision not in _DTYPES:
            raise BackendUnavailable(f"torch backend supports {sorted(_DTYPES)}, not {precision!r}")
        if precision == "fp16" and not device.startswith("cuda"):
            raise BackendUnavailable("torch fp16 needs a CUDA device (CPUs here have no fp16 kernels)")
        self.model = model.eval().to(device)
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.desc, self.scale = desc, desc.scale
        self.device, self.precision, self.channels_last = device, precision, channels_last
        suffix = "+channels_last" if channels_last else ""
        self.name = name or f"torch-{precision}{suffix}"

    def _autocast(self) -> contextlib.AbstractContextManager[object]:
        if self.precision == "fp32":
            return contextlib.nullcontext()
        device_type = "cuda" if self.device.startswith("cuda") else "cpu"
        return torch.autocast(device_type, dtype=_DTYPES[self.precision])

    def run_tensor(self, x: torch.Tensor) -> torch.Tensor:
        """Tensor in, tensor out (same device), float32."""
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), self._autocast():
            return self.model(x).float()

    def _run(self, batch: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(batch).to(self.device)
        return self.run_tensor(x).cpu().contiguous().numpy()
