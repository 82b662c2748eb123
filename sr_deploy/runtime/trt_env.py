"""Whether TensorRT can work here, and what "here" is (TensorRT version, GPU).

Importing ``tensorrt`` proves nothing: ``tensorrt-stubs`` or a metapackage whose libraries failed
to download leave an importable but empty package. TensorRT is available when the module has the
class the job needs (``Builder`` to build, ``Runtime`` to run) and a CUDA device answers.
"""

from __future__ import annotations

from types import ModuleType

from sr_deploy.export.engine_meta import GpuInfo
from sr_deploy.runtime.base import BackendUnavailable
from sr_deploy.runtime.cuda_memory import cuda_unavailable_reason, gpu_info


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
