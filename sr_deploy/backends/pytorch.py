"""PyTorch backend: the reference (fp32) and a production option.

Production options: ``channels_last`` (NHWC memory format: oneDNN on CPU, tensor cores on CUDA),
bf16 autocast (CPUs with AVX-512 BF16/AMX, or CUDA), fp16 autocast (CUDA only) and CUDA graphs
(CUDA only: each input shape is captured once and replayed, removing per-layer launch overhead).
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections.abc import Callable

import numpy as np
import torch

from sr_deploy.backends.base import BackendUnavailable, Upscaler
from sr_deploy.models.descriptor import ModelDescriptor

_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
#: Input shapes captured per upscaler; further shapes run eagerly (each graph keeps its own memory).
MAX_CUDA_GRAPHS = 8


class _CudaGraphs:
    """One CUDA graph per input shape, with its static input and output tensors.

    The static tensors are shared state, so replays are serialised by a lock and the result is
    cloned and synchronised before the lock is released (threads may run on different streams).
    After :data:`MAX_CUDA_GRAPHS` shapes, new shapes run eagerly (tiling keeps the shapes few).
    """

    def __init__(self, forward: Callable[[torch.Tensor], torch.Tensor]) -> None:
        self._forward = forward
        self._graphs: dict[tuple[int, ...], tuple[torch.cuda.CUDAGraph, torch.Tensor, torch.Tensor]] = {}
        self._lock = threading.Lock()

    def _capture(self, x: torch.Tensor) -> tuple[torch.cuda.CUDAGraph, torch.Tensor, torch.Tensor]:
        with torch.cuda.device(x.device):
            static_in = x.clone()
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(3):  # warm-up outside the graph: cuDNN algorithm choice, allocator pools
                    self._forward(static_in)
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            # thread_local: CUDA work of other threads during the capture does not invalidate it
            with torch.cuda.graph(graph, capture_error_mode="thread_local"):
                static_out = self._forward(static_in)
        return graph, static_in, static_out

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        key = tuple(x.shape)
        with self._lock:
            entry = self._graphs.get(key)
            if entry is None and len(self._graphs) < MAX_CUDA_GRAPHS:
                entry = self._graphs[key] = self._capture(x)
        if entry is None:
            return self._forward(x)  # too many shapes already captured: run eagerly
        with self._lock:
            graph, static_in, static_out = entry
            static_in.copy_(x)
            graph.replay()
            out = static_out.clone()
            torch.cuda.current_stream(x.device).synchronize()
            return out


class TorchUpscaler(Upscaler):
    """Runs an SR ``nn.Module`` under ``torch.inference_mode``; safe to share between threads.

    ``precision``: ``fp32`` (the reference), ``bf16`` (autocast; CPU or CUDA) or ``fp16`` (autocast,
    CUDA only). ``channels_last``: NHWC memory format. ``cuda_graphs``: capture and replay one CUDA
    graph per input shape (CUDA only; keep the set of shapes small, e.g. by tiling).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        desc: ModelDescriptor,
        device: str = "cpu",
        precision: str = "fp32",
        channels_last: bool = False,
        cuda_graphs: bool = False,
        name: str | None = None,
    ) -> None:
        if precision not in _DTYPES:
            raise BackendUnavailable(f"torch backend supports {sorted(_DTYPES)}, not {precision!r}")
        on_cuda = device.startswith("cuda")
        if precision == "fp16" and not on_cuda:
            raise BackendUnavailable("torch fp16 needs a CUDA device (CPUs here have no fp16 kernels)")
        if cuda_graphs and not on_cuda:
            raise BackendUnavailable("CUDA graphs need a CUDA device")
        if on_cuda and not torch.cuda.is_available():
            raise BackendUnavailable(f"device {device!r} requested but torch sees no CUDA device "
                                     f"(torch {torch.__version__}, CUDA build {torch.version.cuda})")
        self.model = model.eval().to(device)
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.descriptor = desc
        self.device, self.precision, self.channels_last = device, precision, channels_last
        self._graphs = _CudaGraphs(self._forward) if cuda_graphs else None
        suffix = ("+channels_last" if channels_last else "") + ("+cudagraph" if cuda_graphs else "")
        self.name = name or f"torch-{precision}{suffix}"

    def _weights_digest(self) -> str:
        digest = hashlib.sha256()
        for key, tensor in sorted(self.model.state_dict().items()):
            digest.update(key.encode())
            digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
        return digest.hexdigest()

    def _autocast(self) -> contextlib.AbstractContextManager[object]:
        if self.precision == "fp32":
            return contextlib.nullcontext()
        device_type = "cuda" if self.device.startswith("cuda") else "cpu"
        # no weight-cast cache: it is per context anyway, and CUDA graph capture forbids it
        return torch.autocast(device_type, dtype=_DTYPES[self.precision], cache_enabled=False)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        with self._autocast():
            return self.model(x).float()

    def run_tensor(self, x: torch.Tensor) -> torch.Tensor:
        """``N x 3 x H x W`` tensor (any device) -> float32 ``N x 3 x sH x sW`` on this upscaler's device."""
        x = x.to(self.device, torch.float32)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            return self._forward(x) if self._graphs is None else self._graphs(x)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        return self.run_tensor(torch.from_numpy(batch)).cpu().contiguous().numpy()

    def _release(self) -> None:
        """Drop the model and captured CUDA graphs and return cached CUDA memory to the device."""
        del self.model
        self._graphs = None
        if self.device.startswith("cuda"):
            torch.cuda.empty_cache()
