"""TensorRT backend: :class:`TrtEngine` (loader: sidecar check, then deserialise) and
:class:`TrtUpscaler` (runner: numpy in/out through pinned staging, or CUDA arrays zero-copy).

Execution uses the TensorRT 10/11 tensor API: per call ``set_input_shape``, ``set_tensor_address``
and ``execute_async_v3`` on a CUDA stream from ``cuda-python``. Optionally each input shape is
captured once into a CUDA graph and replayed.

Thread safety: a :class:`TrtUpscaler` may be shared by threads. Each thread gets its own execution
context, CUDA stream and buffers (one context per stream, as TensorRT requires; contexts of one
engine run concurrently). A single :class:`_Context` is not thread-safe and is never shared.
"""

from __future__ import annotations

import hashlib
import math
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sr_deploy.artifacts import sha256_file
from sr_deploy.backends.base import ShapeLimits, Upscaler
from sr_deploy.backends.cuda_memory import (
    DeviceArray,
    Stream,
    cuda_array_view,
    device_buffers,
    host_view,
    pinned_buffers,
)
from sr_deploy.backends.trt_metadata import EngineMetadataError, check_compatible, read_metadata
from sr_deploy.backends.trt_profiles import Profile, Shape, format_shape, select_profile
from sr_deploy.hardware import cuda_call, cudart, tensorrt_environment
from sr_deploy.models.descriptor import ModelDescriptor

if TYPE_CHECKING:
    import tensorrt as trt


#: TensorRT ``DataType`` names -> numpy dtypes (types without a numpy equivalent are left out).
_NUMPY_DTYPES = {"FLOAT": "float32", "HALF": "float16", "INT8": "int8", "INT32": "int32", "INT64": "int64",
                 "UINT8": "uint8", "BOOL": "bool"}


def numpy_dtype(trt_dtype_name: str) -> np.dtype[Any]:
    """The numpy dtype of a TensorRT ``DataType`` by name (``"HALF"`` -> float16)."""
    if trt_dtype_name not in _NUMPY_DTYPES:
        raise ValueError(f"engine I/O of TensorRT type {trt_dtype_name} has no numpy equivalent")
    return np.dtype(_NUMPY_DTYPES[trt_dtype_name])


def dims_to_shape(dims: trt.Dims) -> Shape:
    """A TensorRT ``Dims`` of rank 4 as a tuple."""
    return dims4(tuple(dims[i] for i in range(len(dims))))


class TrtEngine:
    """A deserialised engine, checked against its sidecar before deserialisation.

    Fails with :class:`EngineMetadataError` (what differs + the rebuild command) when the engine was
    built for another TensorRT version or GPU, and never deserialises such an engine.
    """

    def __init__(self, path: str | os.PathLike[str], device: int = 0) -> None:
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"TensorRT engine {p} does not exist")
        self.path, self.device = p, device
        self.meta = read_metadata(p)
        version, gpu = tensorrt_environment(builder=False, device=device)
        check_compatible(p, self.meta, version, gpu)
        data = p.read_bytes()
        if self.meta.engine_sha256 and hashlib.sha256(data).hexdigest() != self.meta.engine_sha256:
            raise EngineMetadataError(f"{p} does not match the sha256 in its sidecar (overwritten or truncated?)")
        import tensorrt as trt

        cuda_call(cudart().cudaSetDevice(device), f"cudaSetDevice({device})")
        self.logger = trt.Logger(trt.Logger.WARNING)
        self.runtime = trt.Runtime(self.logger)
        if self.meta.options.version_compatible:
            self.runtime.engine_host_code_allowed = True  # the embedded lean runtime is host code
        engine = self.runtime.deserialize_cuda_engine(data)
        if engine is None:
            raise EngineMetadataError(f"TensorRT could not deserialise {p} (see the TensorRT log above)")
        self.engine: trt.ICudaEngine = engine
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if n not in inputs]
        if len(inputs) != 1 or len(outputs) != 1:
            raise EngineMetadataError(f"{p}: expected one input and one output tensor, got {inputs} -> {outputs}")
        self.input_name, self.output_name = inputs[0], outputs[0]
        self.input_dtype = numpy_dtype(engine.get_tensor_dtype(self.input_name).name)
        self.output_dtype = numpy_dtype(engine.get_tensor_dtype(self.output_name).name)
        self.profiles = tuple(
            Profile(*(dims_to_shape(d) for d in engine.get_tensor_profile_shape(self.input_name, i)))
            for i in range(engine.num_optimization_profiles)
        )


class _Context:
    """One execution context, its CUDA stream, device buffers, pinned staging and captured graphs."""

    def __init__(self, engine: TrtEngine, cuda_graphs: bool) -> None:
        cuda_call(cudart().cudaSetDevice(engine.device), f"cudaSetDevice({engine.device})")
        self.engine, self.cuda_graphs = engine, cuda_graphs
        self.context: trt.IExecutionContext = engine.engine.create_execution_context()
        self.stream = Stream()
        self.device = device_buffers()
        self.pinned = pinned_buffers()
        self.graphs: dict[tuple[Shape, int], Any] = {}

    def enqueue(self, shape: Shape, out_shape: Shape, in_ptr: int, out_ptr: int) -> None:
        """Queue one inference of an input of ``shape`` at ``in_ptr`` into ``out_ptr`` (device pointers,
        256-byte aligned as TensorRT requires; ``out_ptr`` holds ``out_shape``, checked against the engine)."""
        eng, ctx = self.engine, self.context
        index = select_profile(eng.profiles, shape)
        if ctx.active_optimization_profile != index:
            if not ctx.set_optimization_profile_async(index, self.stream.handle):
                raise RuntimeError(f"TensorRT refused optimization profile {index}")
        if not ctx.set_input_shape(eng.input_name, shape):
            raise RuntimeError(f"TensorRT refused input shape {format_shape(shape)} for profile {index}")
        engine_out = dims_to_shape(ctx.get_tensor_shape(eng.output_name))
        if engine_out != out_shape:  # the output buffer was sized from the sidecar's descriptor
            raise RuntimeError(f"engine output shape {format_shape(engine_out)} for input {format_shape(shape)}, "
                               f"the sidecar's model descriptor says {format_shape(out_shape)}")
        for name, ptr in ((eng.input_name, in_ptr), (eng.output_name, out_ptr)):
            if not ctx.set_tensor_address(name, ptr):
                raise RuntimeError(f"TensorRT refused address {ptr:#x} for tensor {name!r} (must be 256-byte aligned)")
        if not ctx.execute_async_v3(self.stream.handle):
            raise RuntimeError(f"TensorRT execute_async_v3 failed for input {format_shape(shape)}")

    def run_internal(self, shape: Shape, out_shape: Shape) -> tuple[int, int]:
        """Run on the context's own device buffers ``in``/``out`` (a CUDA graph per shape if enabled)."""
        in_ptr = self.device.get("in", math.prod(shape) * self.engine.input_dtype.itemsize)
        out_ptr = self.device.get("out", math.prod(out_shape) * self.engine.output_dtype.itemsize)
        if not self.cuda_graphs:
            self.enqueue(shape, out_shape, in_ptr, out_ptr)
            return in_ptr, out_ptr
        if any(gen != self.device.generation for _, gen in self.graphs):
            self.drop_graphs()  # buffers moved: graphs captured the old addresses
        key = (shape, self.device.generation)
        if key not in self.graphs:
            self.enqueue(shape, out_shape, in_ptr, out_ptr)  # TensorRT needs one run before capture
            self.graphs[key] = self.stream.capture(lambda: self.enqueue(shape, out_shape, in_ptr, out_ptr))
        else:
            self.stream.launch(self.graphs[key])
        return in_ptr, out_ptr

    def drop_graphs(self) -> None:
        for graph in self.graphs.values():
            self.stream.destroy_graph(graph)
        self.graphs.clear()

    def close(self) -> None:
        self.stream.synchronize()
        self.drop_graphs()
        self.device.release()
        self.pinned.release()
        self.stream.close()
        del self.context


class TrtUpscaler(Upscaler):
    """A TensorRT engine as an :class:`Upscaler` (numpy ``run``) plus :meth:`run_device` for CUDA arrays.

    ``cuda_graphs``: capture each input shape once into a CUDA graph and replay it (lower launch
    overhead; device inputs are then copied device-to-device into the captured buffers).
    """

    def __init__(self, path: str | os.PathLike[str], device: int = 0, cuda_graphs: bool = False) -> None:
        self.engine = TrtEngine(path, device)
        desc = ModelDescriptor.from_dict(self.engine.meta.descriptor)
        self.descriptor, self.cuda_graphs = desc, cuda_graphs
        self.precision = self.engine.meta.precision
        self.device = f"cuda:{device}"
        self.name = f"tensorrt-{self.precision}" + ("+cudagraph" if cuda_graphs else "")
        profiles = self.engine.profiles
        self.limits = ShapeLimits(
            max_batch=max(p.max[0] for p in profiles),
            min_side=min(min(p.min[2], p.min[3]) for p in profiles),
            max_height=max(p.max[2] for p in profiles),
            max_width=max(p.max[3] for p in profiles),
        )
        self._local = threading.local()
        self._contexts: list[_Context] = []
        self._lock = threading.Lock()

    def _context(self) -> _Context:
        ctx: _Context | None = getattr(self._local, "ctx", None)
        if ctx is None:
            ctx = _Context(self.engine, self.cuda_graphs)
            self._local.ctx = ctx
            with self._lock:
                self._contexts.append(ctx)
        else:  # CUDA's current device is per thread, and other code (torch.cuda.set_device) may change it
            cuda_call(cudart().cudaSetDevice(self.engine.device), f"cudaSetDevice({self.engine.device})")
        return ctx

    def accepts(self, shape: tuple[int, ...]) -> bool:
        return super().accepts(shape) and any(p.contains(shape) for p in self.engine.profiles)

    def _weights_digest(self) -> str:
        return sha256_file(self.engine.path)

    def output_shape(self, shape: Shape) -> Shape:
        n, _, h, w = shape
        oh, ow = self.descriptor.output_shape(h, w)
        return (n, self.descriptor.out_channels, oh, ow)

    def run(self, batch: np.ndarray) -> np.ndarray:
        if batch.ndim == 4:
            select_profile(self.engine.profiles, tuple(batch.shape))  # names the allowed ranges
        return super().run(batch)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        ctx, eng = self._context(), self.engine
        shape = dims4(batch.shape)
        out_shape = self.output_shape(shape)
        in_bytes = batch.size * eng.input_dtype.itemsize
        out_bytes = math.prod(out_shape) * eng.output_dtype.itemsize
        staging_in = ctx.pinned.get("in", in_bytes)
        np.copyto(host_view(staging_in, shape, eng.input_dtype), batch, casting="same_kind")
        staging_out = ctx.pinned.get("out", out_bytes)
        in_ptr = ctx.device.get("in", in_bytes)
        ctx.stream.copy(in_ptr, staging_in, in_bytes, "h2d")
        _, out_ptr = ctx.run_internal(shape, out_shape)
        ctx.stream.copy(staging_out, out_ptr, out_bytes, "d2h")
        ctx.stream.synchronize()
        return host_view(staging_out, out_shape, eng.output_dtype).astype(np.float32)

    def run_device(self, x: object, out: object | None = None) -> object:
        """Upscale a CUDA array zero-copy: ``x`` and ``out`` expose ``__cuda_array_interface__``.

        ``x``: ``N x 3 x H x W`` of the engine's input dtype (float32 for sr-deploy engines),
        C-contiguous, on this device. ``out``: where to write ``N x 3 x sH x sW`` (allocated as a
        :class:`DeviceArray` when None). Arrays not 256-byte aligned (views at an offset) go through
        the context's own buffers. Work on the producers' streams is waited for; the call returns
        after the result is complete. Returns ``out`` (or the new array).
        """
        ctx, eng = self._context(), self.engine
        xv = cuda_array_view(x)
        if len(xv.shape) != 4 or xv.shape[1] != self.descriptor.in_channels:
            raise ValueError(f"{self.name}: expected an N x {self.descriptor.in_channels} x H x W CUDA array, "
                             f"got {xv.shape}")
        if xv.dtype != eng.input_dtype:
            raise ValueError(f"{self.name}: input dtype {xv.dtype} but the engine takes {eng.input_dtype}")
        shape = dims4(xv.shape)
        select_profile(eng.profiles, shape)
        out_shape = self.output_shape(shape)
        result = DeviceArray(out_shape, eng.output_dtype) if out is None else out
        ov = cuda_array_view(result)
        if ov.shape != out_shape or ov.dtype != eng.output_dtype or ov.readonly:
            raise ValueError(f"{self.name}: out must be a writable {eng.output_dtype} CUDA array of shape "
                             f"{out_shape}, got {ov.dtype} {ov.shape}{' (read-only)' if ov.readonly else ''}")
        ctx.stream.wait_for(xv.stream)
        ctx.stream.wait_for(ov.stream)
        if self.cuda_graphs or not tensorrt_aligned(xv.ptr, ov.ptr):  # via the context's own buffers
            in_ptr = ctx.device.get("in", xv.nbytes)
            ctx.stream.copy(in_ptr, xv.ptr, xv.nbytes, "d2d")
            _, out_ptr = ctx.run_internal(shape, out_shape)
            ctx.stream.copy(ov.ptr, out_ptr, ov.nbytes, "d2d")
        else:
            ctx.enqueue(shape, out_shape, xv.ptr, ov.ptr)
        ctx.stream.synchronize()
        return result

    def _release(self) -> None:
        """Release every thread's context, stream, buffers and graphs (the upscaler is unusable after)."""
        with self._lock:
            for ctx in self._contexts:
                ctx.close()
            self._contexts.clear()
        self._local = threading.local()


#: TensorRT requires every I/O tensor address to be aligned to this many bytes (``setTensorAddress``).
TENSOR_ALIGNMENT = 256


def tensorrt_aligned(*pointers: int) -> bool:
    """Whether every device pointer can be given to TensorRT directly (else copy through aligned buffers)."""
    return all(ptr % TENSOR_ALIGNMENT == 0 for ptr in pointers)


def dims4(shape: tuple[int, ...]) -> Shape:
    """A rank-4 shape tuple, typed as such."""
    if len(shape) != 4:
        raise ValueError(f"expected an N x C x H x W shape, got {shape}")
    return (int(shape[0]), int(shape[1]), int(shape[2]), int(shape[3]))
