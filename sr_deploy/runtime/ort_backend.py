"""ONNX Runtime backend: loader (session from an ONNX file) plus runner."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from sr_deploy.export.profiles import Profile, format_shape
from sr_deploy.runtime.base import BackendUnavailable, Upscaler


def onnx_descriptor_props(path: str | os.PathLike[str]) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX file (without loading weights into memory twice)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in model.metadata_props}


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


class OrtUpscaler(Upscaler):
    """An ``onnxruntime.InferenceSession`` over an sr-deploy ONNX file (fp32 I/O for every precision).

    ``providers``: ORT execution providers, default CPU. ``threads``: intra-op threads (0 = ORT default).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        providers: list[str | tuple[str, dict[str, str]]] | None = None,
        threads: int = 0,
    ) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise BackendUnavailable(
                "onnxruntime is not installed: pip install 'sr-deploy[cpu]' (or [gpu])"
            ) from None
        from sr_deploy.models.descriptor import ModelDescriptor

        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"ONNX model {p} does not exist")
        props = onnx_descriptor_props(p)
        if "sr_deploy.descriptor" not in props:
            raise ValueError(f"{p} has no sr-deploy metadata (metadata_props 'sr_deploy.descriptor')")
        self.desc = ModelDescriptor.from_json(props["sr_deploy.descriptor"])
        self.props = props
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        providers = providers or ["CPUExecutionProvider"]
        wanted = [pr if isinstance(pr, str) else pr[0] for pr in providers]
        missing = [name for name in wanted if name not in ort.get_available_providers()]
        if missing:
            raise BackendUnavailable(
                f"onnxruntime {ort.__version__} has no {', '.join(missing)} (available: "
                f"{', '.join(ort.get_available_providers())}); GPU providers need onnxruntime-gpu and a CUDA device"
            )
        self.session = ort.InferenceSession(str(p), options, providers=providers)
        if self.session.get_providers()[0] != wanted[0]:
            raise BackendUnavailable(f"onnxruntime could not start {wanted[0]} for {p} "
                                     f"(session runs on {self.session.get_providers()}); see the ORT log")
        self.input_name = self.session.get_inputs()[0].name
        self.scale = self.desc.scale
        self.precision = props.get("sr_deploy.precision", "fp32")
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
        out = self.session.run(None, {self.input_name: batch})[0]
        return np.asarray(out, dtype=np.float32)
