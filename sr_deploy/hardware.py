"""Facts about this machine that several stages decide on: the CPU and its instruction-set class
(training precision, backend choice, int8 arithmetic), CUDA devices through ``cuda-python``
(``cuda.bindings.runtime``), and whether TensorRT can work.

Importing ``tensorrt`` proves nothing: ``tensorrt-stubs`` or a metapackage whose libraries failed
to download leave an importable but empty package. TensorRT is available when the module has the
class the job needs (``Builder`` to build, ``Runtime`` to run) and a CUDA device answers.
Every ``cudart`` call returns ``(error, *values)``; :func:`cuda_call` turns a non-zero error into a
:class:`CudaError` naming the call and the CUDA error.
"""

from __future__ import annotations

import functools
import importlib
import os
import platform
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from sr_deploy.errors import BackendUnavailable

#: x86 instruction-set classes, from the least to the most capable for SR inference. What differs
#: between them: ``avx2`` has no 8-bit dot products (u8s8 int8 can saturate: ONNX Runtime's documented
#: limit) and emulates bf16; ``avx2_vnni`` / ``avx512_vnni`` have VNNI int8 dot products;
#: ``avx512_bf16`` adds native bf16; ``amx`` adds AMX tiles (int8 and bf16 matrix units).
ISA_CLASSES = ("baseline", "avx2", "avx2_vnni", "avx512", "avx512_vnni", "avx512_bf16", "amx")
#: Why bf16 is not run on a CPU without native bf16 (:attr:`CpuInfo.bf16`).
BF16_EMULATED = "this CPU has no AVX-512 BF16 or AMX: bf16 would be emulated, slower than fp32"


def isa_class(flags: frozenset[str] | set[str]) -> str:
    """The instruction-set class (one of :data:`ISA_CLASSES`) of a CPU with these ``/proc/cpuinfo`` flags."""
    if flags & {"amx_tile", "amx_int8", "amx_bf16"}:
        return "amx"
    if "avx512_bf16" in flags:
        return "avx512_bf16"
    if "avx512_vnni" in flags:
        return "avx512_vnni"
    if "avx512f" in flags:
        return "avx512"
    if "avx_vnni" in flags:
        return "avx2_vnni"
    return "avx2" if "avx2" in flags else "baseline"


@dataclass(frozen=True)
class CpuInfo:
    """The CPU: marketing ``model`` name and its feature ``flags`` (``/proc/cpuinfo``)."""

    model: str
    flags: frozenset[str]

    @property
    def isa(self) -> str:
        """The instruction-set class (:func:`isa_class`)."""
        return isa_class(self.flags)

    @property
    def vnni(self) -> bool:
        """8-bit dot products (VNNI or AMX int8): u8s8 int8 arithmetic does not saturate."""
        return bool(self.flags & {"avx512_vnni", "avx_vnni", "amx_int8"})

    @property
    def bf16(self) -> bool:
        """Native bf16 dot products (AVX-512 BF16 or AMX); without them bf16 is emulated, slower than fp32."""
        return bool(self.flags & {"avx512_bf16", "amx_bf16"})


def read_cpu(cpuinfo: str | os.PathLike[str] = "/proc/cpuinfo") -> CpuInfo:
    """The CPU described by a ``/proc/cpuinfo`` file (model name and the first processor's flags); the
    platform's processor name and no flags where there is no such file."""
    model, flags = platform.processor() or platform.machine(), frozenset[str]()
    path = Path(cpuinfo)
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return CpuInfo(model, flags)
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and value.strip():
            model = value.strip()
        elif key in ("flags", "Features") and not flags:
            flags = frozenset(value.split())
    return CpuInfo(model, flags)


@functools.cache
def this_cpu() -> CpuInfo:
    """This machine's CPU (read once per process)."""
    return read_cpu()


def cpu_has_bf16() -> bool:
    """Whether this x86 CPU has native bf16 dot products (AVX-512 BF16 or AMX)."""
    return this_cpu().bf16


def cpu_has_vnni() -> bool:
    """Whether this CPU has 8-bit dot products (VNNI or AMX int8)."""
    return this_cpu().vnni


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
