"""CUDA memory, streams and graphs through ``cuda-python`` (``cuda.bindings.runtime``), plus the
GPU-free bookkeeping around them: ``__cuda_array_interface__`` parsing and grow-only buffers.

CUDA calls go through :func:`sr_deploy.hardware.cuda_call`. Pointers and stream handles are plain ints.
"""

from __future__ import annotations

import ctypes
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from sr_deploy.hardware import cuda_call, cudart

#: Device and pinned buffers grow in steps of this many bytes (fewer reallocations as sizes vary).
GRANULE = 1 << 20


# -- __cuda_array_interface__ ---------------------------------------------------------------------


@dataclass(frozen=True)
class DeviceArrayView:
    """A device array described by ``__cuda_array_interface__`` (version 2 or 3), C-contiguous.

    ``ptr``: device address; ``stream``: the producer's stream handle to wait on before reading
    (None: no synchronisation needed; 1 and 2 are CUDA's legacy and per-thread default streams).
    """

    ptr: int
    shape: tuple[int, ...]
    dtype: np.dtype[Any]
    readonly: bool
    stream: int | None

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize


def cuda_array_view(obj: object) -> DeviceArrayView:
    """Parse ``obj.__cuda_array_interface__`` (torch CUDA tensors, CuPy, Numba, pycuda GPUArray).

    Raises TypeError when ``obj`` has no interface, ValueError when it is masked, not C-contiguous
    or malformed (the message says what to do).
    """
    cai = getattr(obj, "__cuda_array_interface__", None)
    if not isinstance(cai, dict):
        raise TypeError(
            f"{type(obj).__name__} has no __cuda_array_interface__: pass a numpy array (host) or a CUDA "
            "array (torch CUDA tensor, CuPy array, pycuda GPUArray)"
        )
    try:
        shape = tuple(int(d) for d in cai["shape"])
        dtype = np.dtype(cai["typestr"])
        ptr, readonly = cai["data"]
        version = int(cai["version"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"malformed __cuda_array_interface__ {cai!r} ({type(exc).__name__}: {exc})") from None
    if cai.get("mask") is not None:
        raise ValueError("masked CUDA arrays are not supported")
    strides = cai.get("strides")
    if strides is not None and tuple(strides) != contiguous_strides(shape, dtype.itemsize) and math.prod(shape) > 1:
        raise ValueError(
            f"CUDA array of shape {shape} has strides {tuple(strides)}, not C-contiguous "
            f"{contiguous_strides(shape, dtype.itemsize)}: make it contiguous first (e.g. tensor.contiguous())"
        )
    stream = cai.get("stream") if version >= 3 else None
    if stream == 0:
        raise ValueError("__cuda_array_interface__ stream 0 is ambiguous and disallowed by the protocol")
    return DeviceArrayView(int(ptr or 0), shape, dtype, bool(readonly), None if stream is None else int(stream))


def contiguous_strides(shape: tuple[int, ...], itemsize: int) -> tuple[int, ...]:
    """Byte strides of a C-contiguous array of ``shape``."""
    strides, step = [], itemsize
    for d in reversed(shape):
        strides.append(step)
        step *= d
    return tuple(reversed(strides))


class DeviceArray:
    """Device memory this package allocated, exposed zero-copy through ``__cuda_array_interface__``.

    ``torch.as_tensor(arr, device="cuda")`` or ``cupy.asarray(arr)`` wrap it without a copy; the
    memory is freed by :meth:`free` or when the object is collected (keep it alive while wrapped).
    """

    def __init__(self, shape: tuple[int, ...], dtype: np.dtype[Any], stream: int | None = None) -> None:
        self.shape, self.dtype, self.stream = shape, dtype, stream
        nbytes = max(1, math.prod(shape) * dtype.itemsize)
        self.ptr: int = int(cuda_call(cudart().cudaMalloc(nbytes), f"cudaMalloc({nbytes})"))

    @property
    def __cuda_array_interface__(self) -> dict[str, Any]:
        return {
            "shape": self.shape,
            "typestr": self.dtype.str,
            "data": (self.ptr, False),
            "version": 3,
            "strides": None,
            "stream": self.stream,
        }

    def free(self) -> None:
        if self.ptr:
            cuda_call(cudart().cudaFree(self.ptr), "cudaFree")
            self.ptr = 0

    def __del__(self) -> None:
        if getattr(self, "ptr", 0):
            cudart().cudaFree(self.ptr)


# -- grow-only buffers ----------------------------------------------------------------------------


class GrowingBuffers:
    """Named allocations reused while large enough and reallocated (rounded up to ``granule``) when not.

    ``alloc(nbytes) -> pointer`` and ``free(pointer)`` do the memory (cudaMalloc/cudaFree for device
    buffers, cudaMallocHost/cudaFreeHost for pinned staging). ``generation`` increases whenever a
    pointer changes, so anything that baked pointers in (CUDA graphs, tensor addresses) can tell.
    Not thread-safe: one instance per runner.
    """

    def __init__(self, alloc: Callable[[int], int], free: Callable[[int], None], granule: int = GRANULE) -> None:
        self._alloc, self._free, self.granule = alloc, free, granule
        self._buffers: dict[str, tuple[int, int]] = {}
        self.generation = 0

    def get(self, name: str, nbytes: int) -> int:
        """Pointer to at least ``nbytes`` bytes for ``name`` (contents undefined after a reallocation)."""
        ptr, capacity = self._buffers.get(name, (0, 0))
        if nbytes <= capacity:
            return ptr
        size = max(self.granule, -(-nbytes // self.granule) * self.granule)
        if ptr:
            self._free(ptr)
            del self._buffers[name]
        ptr = self._alloc(size)
        self._buffers[name] = (ptr, size)
        self.generation += 1
        return ptr

    def capacity(self, name: str) -> int:
        """Bytes currently held for ``name`` (0 if none)."""
        return self._buffers.get(name, (0, 0))[1]

    @property
    def total_bytes(self) -> int:
        return sum(size for _, size in self._buffers.values())

    def release(self) -> None:
        """Free every buffer."""
        for ptr, _ in self._buffers.values():
            self._free(ptr)
        self._buffers.clear()
        self.generation += 1


def host_view(ptr: int, shape: tuple[int, ...], dtype: np.dtype[Any]) -> np.ndarray:
    """A numpy array over host memory at ``ptr`` (e.g. pinned staging) without copying."""
    nbytes = math.prod(shape) * dtype.itemsize
    raw = np.ctypeslib.as_array((ctypes.c_byte * nbytes).from_address(ptr))
    return raw.view(dtype).reshape(shape)


def device_buffers() -> GrowingBuffers:
    """Grow-only device memory (cudaMalloc / cudaFree)."""
    rt = cudart()
    return GrowingBuffers(
        lambda n: int(cuda_call(rt.cudaMalloc(n), f"cudaMalloc({n})")),
        lambda p: cuda_call(rt.cudaFree(p), "cudaFree"),
    )


def pinned_buffers() -> GrowingBuffers:
    """Grow-only page-locked host memory (cudaMallocHost / cudaFreeHost) for fast async copies."""
    rt = cudart()
    return GrowingBuffers(
        lambda n: int(cuda_call(rt.cudaMallocHost(n), f"cudaMallocHost({n})")),
        lambda p: cuda_call(rt.cudaFreeHost(p), "cudaFreeHost"),
    )


# -- streams, events, copies, graphs --------------------------------------------------------------


class Stream:
    """A non-blocking CUDA stream with one event for cross-stream waits. ``handle``: the cudaStream_t int."""

    def __init__(self) -> None:
        self.rt = cudart()
        stream = cuda_call(self.rt.cudaStreamCreateWithFlags(self.rt.cudaStreamNonBlocking), "cudaStreamCreate")
        self.handle = int(stream)
        event = cuda_call(self.rt.cudaEventCreateWithFlags(self.rt.cudaEventDisableTiming), "cudaEventCreate")
        self._event = event

    def wait_for(self, producer: int | None) -> None:
        """Make this stream wait for the work queued so far on ``producer`` (None: nothing to wait for)."""
        if producer is None or producer == self.handle:
            return
        cuda_call(self.rt.cudaEventRecord(self._event, producer), "cudaEventRecord")
        cuda_call(self.rt.cudaStreamWaitEvent(self.handle, self._event, 0), "cudaStreamWaitEvent")

    def copy(self, dst: int, src: int, nbytes: int, kind: str) -> None:
        """Queue a copy; ``kind``: ``"h2d"``, ``"d2h"`` or ``"d2d"``."""
        kinds = {
            "h2d": self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice,
            "d2h": self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost,
            "d2d": self.rt.cudaMemcpyKind.cudaMemcpyDeviceToDevice,
        }
        cuda_call(self.rt.cudaMemcpyAsync(dst, src, nbytes, kinds[kind], self.handle), f"cudaMemcpyAsync({kind})")

    def synchronize(self) -> None:
        cuda_call(self.rt.cudaStreamSynchronize(self.handle), "cudaStreamSynchronize")

    def capture(self, enqueue: Callable[[], None]) -> Any:
        """Record what ``enqueue`` queues on this stream into an instantiated CUDA graph (a graph exec)."""
        mode = self.rt.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal
        cuda_call(self.rt.cudaStreamBeginCapture(self.handle, mode), "cudaStreamBeginCapture")
        try:
            enqueue()
        finally:
            graph = cuda_call(self.rt.cudaStreamEndCapture(self.handle), "cudaStreamEndCapture")
        try:
            return cuda_call(self.rt.cudaGraphInstantiate(graph, 0), "cudaGraphInstantiate")
        finally:
            cuda_call(self.rt.cudaGraphDestroy(graph), "cudaGraphDestroy")

    def launch(self, graph_exec: Any) -> None:
        cuda_call(self.rt.cudaGraphLaunch(graph_exec, self.handle), "cudaGraphLaunch")

    def destroy_graph(self, graph_exec: Any) -> None:
        cuda_call(self.rt.cudaGraphExecDestroy(graph_exec), "cudaGraphExecDestroy")

    def close(self) -> None:
        if self.handle:
            cuda_call(self.rt.cudaEventDestroy(self._event), "cudaEventDestroy")
            cuda_call(self.rt.cudaStreamDestroy(self.handle), "cudaStreamDestroy")
            self.handle = 0
