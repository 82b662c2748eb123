"""Facts about this machine that several stages decide on: CPU features (training precision, backend
choice), CUDA devices through ``cuda-python`` (``cuda.bindings.runtime``), and whether TensorRT can work.

Importing ``tensorrt`` proves nothing: ``tensorrt-stubs`` or a metapackage whose libraries failed
to download leave an importable but empty package. TensorRT is available when the module has the
class the job needs (``Builder`` to build, ``Runtime`` to run) and a CUDA device answers.
Every ``cudart`` call returns ``(error, *values)``; :func:`cuda_call` turns a non-zero error into a
:class:`CudaError` naming the call and the CUDA error.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from sr_deploy.errors import BackendUnavailable


def cpu_has_bf16() -> bool:
    """Whether this x86 CPU has native bf16 dot products (AVX-512 BF16 or AMX)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


@dataclass(frozen=True)
class GpuInfo:
    """A CUDA device: marketing name (``NVIDIA H100 80GB HBM3``) and compute capability (major, minor)."""

    name: str
    compute_capability: tuple[int, int]

    @property
    def sm(self) -> str:
        """``sm_90`` style architecture tag."""
        return f"sm_{self.compute_capability[0]}{self.compute_capability[1]}"


class CudaError(RuntimeError):
    """A CUDA runtime call failed."""


def cudart() -> ModuleType:
    """``cuda.bindings.runtime``; :class:`BackendUnavailable` when cuda-python is not installed."""
    try:
        return importlib.import_module("cuda.bindings.runtime")
    except ImportError as exc:
        raise BackendUnavailable(f"cuda-python is not installed ({exc}): pip install 'sr-deploy[gpu]'") from None


def error_name(err: Any) -> str:
    """``cudaErrorInsufficientDriver (35)`` for a ``cudaError_t``."""
    rt = cudart()
    status, name = rt.cudaGetErrorName(err)
    label = name.decode() if int(status) == 0 else "unknown CUDA error"
    return f"{label} ({int(err)})"


def cuda_call(result: tuple[Any, ...], what: str) -> Any:
    """Unpack a ``cudart`` result: raise :class:`CudaError` on error, return the value(s) (None if none)."""
    err, *values = result
    if int(err) != 0:
        raise CudaError(f"{what} failed: {error_name(err)}")
    if not values:
        return None
    return values[0] if len(values) == 1 else tuple(values)


def cuda_unavailable_reason(device: int = 0) -> str | None:
    """Why CUDA device ``device`` cannot be used here (None when it can)."""
    try:
        rt = cudart()
    except BackendUnavailable as exc:
        return str(exc)
    err, count = rt.cudaGetDeviceCount()
    if int(err) != 0:
        return f"no usable CUDA driver or device (cudaGetDeviceCount: {error_name(err)})"
    if device >= count:
        return f"CUDA device {device} requested, {count} present"
    return None


def gpu_info(device: int = 0) -> GpuInfo:
    """Name and compute capability of CUDA device ``device``."""
    rt = cudart()
    props = cuda_call(rt.cudaGetDeviceProperties(device), f"cudaGetDeviceProperties({device})")
    name = props.name.decode(errors="replace") if isinstance(props.name, bytes) else str(props.name)
    return GpuInfo(name.rstrip("\x00").strip(), (int(props.major), int(props.minor)))


def require_tensorrt(builder: bool = False, device: int = 0) -> ModuleType:
    """The ``tensorrt`` module, or :class:`BackendUnavailable` saying plainly why TensorRT cannot run.

    ``builder``: the job builds engines (needs ``tensorrt.Builder``); otherwise it only runs them
    (needs ``tensorrt.Runtime``). Either way CUDA device ``device`` must be usable.
    """
    try:
        import tensorrt
    except ImportError as exc:
        raise BackendUnavailable(
            f"TensorRT is not available: the tensorrt Python package is not installed ({exc}); "
            "pip install 'sr-deploy[gpu]' on a machine with an NVIDIA GPU"
        ) from None
    needed = "Builder" if builder else "Runtime"
    if not hasattr(tensorrt, needed):
        where = getattr(tensorrt, "__file__", None) or list(getattr(tensorrt, "__path__", []))
        raise BackendUnavailable(
            f"TensorRT is not available: the importable 'tensorrt' package ({where}) has no {needed} "
            "(a stubs-only, lean/dispatch-only or incomplete install); install the full tensorrt wheels"
        )
    reason = cuda_unavailable_reason(device)
    if reason is not None:
        raise BackendUnavailable(f"TensorRT is not available: {reason}")
    return tensorrt


def tensorrt_environment(builder: bool = False, device: int = 0) -> tuple[str, GpuInfo]:
    """``(TensorRT version, GPU info of device)`` after :func:`require_tensorrt` (same errors)."""
    trt = require_tensorrt(builder, device)
    return str(trt.__version__), gpu_info(device)


def tensorrt_unavailable_reason(builder: bool = False, device: int = 0) -> str | None:
    """Why TensorRT cannot build (``builder``) or run engines here; None when it can."""
    try:
        require_tensorrt(builder, device)
    except BackendUnavailable as exc:
        return str(exc)
    return None
