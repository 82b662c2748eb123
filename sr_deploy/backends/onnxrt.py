"""ONNX Runtime backend: the session factory (every ORT session sr-deploy opens comes from :func:`session`),
execution-provider options, and :class:`OrtUpscaler`, the runner."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from sr_deploy.artifacts import sha256_file
from sr_deploy.backends import onnx_metadata
from sr_deploy.backends.base import Upscaler
from sr_deploy.backends.trt_profiles import Profile, format_shape
from sr_deploy.errors import BackendUnavailable
from sr_deploy.models.descriptor import ModelDescriptor

if TYPE_CHECKING:
    import onnxruntime as ort


CUDNN_CONV_ALGO_SEARCH = ("EXHAUSTIVE", "HEURISTIC", "DEFAULT")


def cuda_provider(device_id: int = 0, cudnn_conv_algo_search: str = "EXHAUSTIVE") -> tuple[str, dict[str, str]]:
    """The CUDA execution provider with its options.

    ``cudnn_conv_algo_search``: ``EXHAUSTIVE`` benchmarks every cuDNN convolution algorithm on the
    first run of each input shape (slow first run, fastest after: warm up every shape you serve),
    ``HEURISTIC`` picks by cuDNN's heuristics, ``DEFAULT`` uses implicit-precomp GEMM.
    """
    if cudnn_conv_algo_search not in CUDNN_CONV_ALGO_SEARCH:
        raise ValueError(
            f"cudnn_conv_algo_search must be one of {CUDNN_CONV_ALGO_SEARCH}, got {cudnn_conv_algo_search!r}"
        )
    return "CUDAExecutionProvider", {
        "device_id": str(device_id),
        "cudnn_conv_algo_search": cudnn_conv_algo_search,
        "do_copy_in_default_stream": "1",
    }


def tensorrt_provider(
    cache_dir: str | os.PathLike[str],
    device_id: int = 0,
    input_name: str = "lr",
    profile: Profile | None = None,
    opt_level: int = 3,
) -> tuple[str, dict[str, str]]:
    """ONNX Runtime's TensorRT execution provider with a persistent engine and timing cache in ``cache_dir``.

    ``profile``: the input shape range engines are built for (``trt_profile_*_shapes``); without it
    the EP builds one engine per new input shape. Precision comes from the ONNX graph (no fp16 flag).
    """
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    options = {
        "device_id": str(device_id),
        "trt_engine_cache_enable": "True",
        "trt_engine_cache_path": str(cache_dir),
        "trt_timing_cache_enable": "True",
        "trt_timing_cache_path": str(cache_dir),
        "trt_builder_optimization_level": str(opt_level),
    }
    if profile is not None:
        for key, shape in (("min", profile.min), ("opt", profile.opt), ("max", profile.max)):
            options[f"trt_profile_{key}_shapes"] = f"{input_name}:{format_shape(shape)}"
    return "TensorrtExecutionProvider", options


Provider = str | tuple[str, dict[str, str]]


def session(
    model: bytes | str | os.PathLike[str],
    providers: Sequence[Provider] | None = None,
    threads: int = 0,
    priority_order: bool = False,
) -> ort.InferenceSession:
    """An ``onnxruntime.InferenceSession`` over ``model`` (serialized bytes or a path): the one place
    sr-deploy creates ONNX Runtime sessions.

    ``providers``: execution providers, best first (default CPU); a provider this onnxruntime build
    lacks, or one that fails to start first, is :class:`BackendUnavailable`. ``threads``: intra-op
    threads (0: ONNX Runtime's default). ``priority_order``: run the nodes in ONNX Runtime's priority-based
    order, which frees each activation as soon as its consumers ran (for graphs with many side outputs,
    such as the fp16 export's per-tensor reductions, where the default order keeps large activations
    alive: measured 2.96 GB instead of 1.43 GB for SRResNet x4 at 256 x 256, plain inference 1.17 GB).
    """
    try:
        import onnxruntime as ort
    except ImportError:
        raise BackendUnavailable("onnxruntime is not installed: pip install 'sr-deploy[cpu]' (or [gpu])") from None
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    if priority_order:
        options.execution_order = ort.ExecutionOrder.PRIORITY_BASED
    providers = list(providers or ["CPUExecutionProvider"])
    wanted = [pr if isinstance(pr, str) else pr[0] for pr in providers]
    missing = [name for name in wanted if name not in ort.get_available_providers()]
    if missing:
        raise BackendUnavailable(
            f"onnxruntime {ort.__version__} has no {', '.join(missing)} (available: "
            f"{', '.join(ort.get_available_providers())}); GPU providers need onnxruntime-gpu and a CUDA device"
        )
    source = model if isinstance(model, bytes) else str(model)
    sess = ort.InferenceSession(source, options, providers=providers)
    if sess.get_providers()[0] != wanted[0]:
        where = "the in-memory model" if isinstance(model, bytes) else str(model)
        raise BackendUnavailable(f"onnxruntime could not start {wanted[0]} for {where} "
                                 f"(session runs on {sess.get_providers()}); see the ORT log")
    return sess


class OrtUpscaler(Upscaler):
    """An ONNX Runtime session over an sr-deploy ONNX model (fp32 I/O for every precision).

    ``model``: a path, or serialized bytes (then ``descriptor`` is required unless the bytes carry
    sr-deploy metadata). ``descriptor``: the model's :class:`ModelDescriptor` (default: read from
    the file's ``metadata_props``); ``precision``: default from the metadata too. ``providers``: ORT
    execution providers, default CPU. ``threads``: intra-op threads (0 = ORT default).
    """

    def __init__(
        self,
        model: bytes | str | os.PathLike[str],
        providers: Sequence[Provider] | None = None,
        threads: int = 0,
        descriptor: ModelDescriptor | None = None,
        precision: str | None = None,
    ) -> None:
        props: dict[str, str] = {}
        if not isinstance(model, bytes):
            props, descriptor = onnx_metadata.sr_file_props(model, descriptor)
        elif descriptor is None:
            raise ValueError("an ONNX model given as bytes needs its descriptor")
        self.descriptor, self.props, self._source = descriptor, props, model
        self.session: ort.InferenceSession | None = session(model, providers, threads)
        self.input_name = self.session.get_inputs()[0].name
        self.precision = precision or props.get(onnx_metadata.PRECISION, "fp32")
        provider = self.session.get_providers()[0]
        self.device = "cpu" if provider == "CPUExecutionProvider" else "cuda"
        self.name = f"onnxruntime-{self.precision}[{provider.removesuffix('ExecutionProvider')}]"

    def warmup(self, shapes: list[tuple[int, int, int, int]], runs: int = 1) -> None:
        """Run each NCHW input shape ``runs`` times so per-shape setup (cuDNN algorithm search, TensorRT
        EP engine builds) happens now instead of on the first real request."""
        for shape in shapes:
            for _ in range(runs):
                self.run(np.zeros(shape, dtype=np.float32))

    def _run(self, batch: np.ndarray) -> np.ndarray:
        assert self.session is not None  # run() refuses a closed upscaler
        out = self.session.run(None, {self.input_name: batch})[0]
        return np.asarray(out, dtype=np.float32)

    def _weights_digest(self) -> str:
        source = self._source
        return hashlib.sha256(source).hexdigest() if isinstance(source, bytes) else sha256_file(source)

    def _release(self) -> None:
        """Drop the session (its memory arenas go with it)."""
        self.session = None
