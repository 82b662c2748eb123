"""CUDA bookkeeping without a GPU: __cuda_array_interface__ parsing, grow-only buffers over real host
memory, host views, and the real cuda-python error path on a machine without a CUDA driver."""

from __future__ import annotations

import ctypes
from typing import Any

import numpy as np
import pytest

from sr_deploy.backends.base import BackendUnavailable
from sr_deploy.backends.cuda_memory import (
    DeviceArray,
    GrowingBuffers,
    contiguous_strides,
    cuda_array_view,
    host_view,
)
from sr_deploy.hardware import CudaError, cuda_call, cuda_unavailable_reason, cudart


class Cai:
    """Something exporting a given ``__cuda_array_interface__`` (what torch/CuPy tensors expose)."""

    def __init__(self, **cai: Any) -> None:
        self.__cuda_array_interface__ = {"version": 3, "strides": None, "stream": None, **cai}


def test_cuda_array_view_reads_pointer_shape_dtype_and_stream() -> None:
    v = cuda_array_view(Cai(shape=(2, 3, 8, 8), typestr="<f4", data=(0x7F0000001000, False), stream=2))
    assert (v.ptr, v.shape, v.dtype, v.readonly, v.stream) == (0x7F0000001000, (2, 3, 8, 8), np.float32, False, 2)
    assert v.nbytes == 2 * 3 * 8 * 8 * 4
    half = cuda_array_view(Cai(shape=(1, 3, 4, 4), typestr="<f2", data=(4096, True), strides=(96, 32, 8, 2)))
    assert half.dtype == np.float16 and half.readonly and half.stream is None
    v2 = cuda_array_view(Cai(shape=(1,), typestr="<f4", data=(4096, False), version=2, stream=99))
    assert v2.stream is None  # version 2 has no stream semantics


def test_cuda_array_view_rejects_what_cannot_be_used_zero_copy() -> None:
    with pytest.raises(TypeError, match="ndarray has no __cuda_array_interface__: pass a numpy array"):
        cuda_array_view(np.zeros(3))
    with pytest.raises(ValueError, match="not C-contiguous"):
        # a transposed (channels-last view) tensor: strides of N x H x W x C memory
        cuda_array_view(Cai(shape=(1, 3, 4, 4), typestr="<f4", data=(4096, False), strides=(192, 4, 48, 12)))
    with pytest.raises(ValueError, match="masked"):
        cuda_array_view(Cai(shape=(2,), typestr="<f4", data=(4096, False), mask=object()))
    with pytest.raises(ValueError, match="stream 0"):
        cuda_array_view(Cai(shape=(2,), typestr="<f4", data=(4096, False), stream=0))
    with pytest.raises(ValueError, match="malformed"):
        cuda_array_view(Cai(shape=(2,), typestr="<f4"))


def test_contiguous_strides_match_numpy() -> None:
    for shape in [(2, 3, 5, 7), (1,), (4, 1, 3)]:
        assert contiguous_strides(shape, 4) == np.zeros(shape, np.float32).strides


class HostHeap:
    """A real allocator over host memory (ctypes buffers), standing in for cudaMalloc's bookkeeping."""

    def __init__(self) -> None:
        self.live: dict[int, ctypes.Array[ctypes.c_char]] = {}
        self.allocs = 0

    def alloc(self, n: int) -> int:
        buf = ctypes.create_string_buffer(n)
        self.live[ctypes.addressof(buf)] = buf
        self.allocs += 1
        return ctypes.addressof(buf)

    def free(self, ptr: int) -> None:
        del self.live[ptr]


def test_growing_buffers_reuse_grow_and_release() -> None:
    heap = HostHeap()
    bufs = GrowingBuffers(heap.alloc, heap.free, granule=1024)
    a = bufs.get("in", 100)
    assert bufs.capacity("in") == 1024 and bufs.get("in", 1024) == a and heap.allocs == 1
    gen = bufs.generation
    b = bufs.get("in", 1025)
    assert bufs.capacity("in") == 2048 and heap.allocs == 2 and bufs.generation == gen + 1
    assert a not in heap.live and b in heap.live  # the old block was freed
    bufs.get("out", 5000)
    assert bufs.total_bytes == 2048 + 5120 and len(heap.live) == 2
    bufs.release()
    assert heap.live == {} and bufs.total_bytes == 0 and bufs.capacity("in") == 0


def test_host_view_is_zero_copy() -> None:
    heap = HostHeap()
    bufs = GrowingBuffers(heap.alloc, heap.free, granule=4096)
    ptr = bufs.get("staging", 2 * 3 * 4 * 4 * 2)
    view = host_view(ptr, (2, 3, 4, 4), np.dtype(np.float16))
    src = np.random.default_rng(0).random((2, 3, 4, 4), dtype=np.float32)
    np.copyto(view, src, casting="same_kind")  # what the runner does for an fp16-input engine
    again = host_view(ptr, (2, 3, 4, 4), np.dtype(np.float16))
    np.testing.assert_array_equal(again, src.astype(np.float16))
    assert again.ctypes.data == ptr


def test_cuda_unavailable_reason_and_errors_on_this_machine() -> None:
    try:
        rt = cudart()
    except BackendUnavailable as exc:
        pytest.skip(str(exc))
    reason = cuda_unavailable_reason()
    if reason is None:
        assert cuda_unavailable_reason(device=1 << 20) == f"CUDA device {1 << 20} requested, " + reason_count(rt)
        return
    assert "no usable CUDA driver or device" in reason and "cudaError" in reason
    with pytest.raises(CudaError, match=r"cudaMalloc\(64\) failed: cudaError\w+ \(\d+\)"):
        DeviceArray((4, 4), np.dtype(np.float32))
    with pytest.raises(CudaError, match="cudaStreamSynchronize failed"):
        cuda_call(rt.cudaStreamSynchronize(0), "cudaStreamSynchronize")


def reason_count(rt: Any) -> str:
    return f"{rt.cudaGetDeviceCount()[1]} present"


def test_runtime_calls_exist_in_cuda_python() -> None:
    """Every cudart function and constant the runtime uses exists in the installed cuda-python."""
    import ast
    from pathlib import Path

    import sr_deploy.backends.cuda_memory as mod

    try:
        rt = cudart()
    except BackendUnavailable as exc:
        pytest.skip(str(exc))
    tree = ast.parse(Path(mod.__file__).read_text())
    used = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute) and n.attr.startswith("cuda")}
    assert {"cudaMalloc", "cudaMemcpyAsync", "cudaStreamBeginCapture", "cudaGraphLaunch"} <= used
    missing = {name for name in used if not hasattr(rt, name)}
    missing -= {n for n in missing for owner in ("cudaMemcpyKind", "cudaStreamCaptureMode")
                if hasattr(getattr(rt, owner), n)}
    assert not missing, f"not in cuda.bindings.runtime: {sorted(missing)}"
