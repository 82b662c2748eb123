"""sr-deploy: super-resolution models from training to verified, fast inference.

The public API (everything else is machinery and may move)::

    import sr_deploy as sr
    onnx_path = sr.export_onnx("srresnet-x4", "m.onnx")          # parity-gated against PyTorch
    int8_path = sr.export_int8(onnx_path, "m.int8.onnx", target="ort-cpu", max_psnr_drop=0.1)
    with sr.load(int8_path) as up:                               # the fastest route on this machine
        hr = sr.upscale_image(up, image)                         # H x W x C uint8 -> 4H x 4W x C uint8

- models: :class:`ModelDescriptor` (what a model is and can do), :func:`load_weights`, :func:`save_weights`
  (every call that takes a model also takes a third-party ``.pth/.pt/.ckpt/.safetensors`` checkpoint:
  ESRGAN, Real-ESRGAN, SwinIR, SPAN, OmniSR, RCAN... identified by spandrel, the ``[models]`` extra)
- running: :func:`load` / :func:`load_selected` -> an :class:`Upscaler` (``run`` on N x 3 x H x W
  float32 in [0, 1]); :func:`tune` times every route here (cached); :func:`upscale_image` /
  :func:`upscale_file` (modes, bit depths, tiling); :func:`upscale_video` with :class:`VideoOptions` (any
  file FFmpeg demuxes: timestamps, audio, colour kept; resumable); :func:`upscale_cluster` runs the
  ``upscale`` job on a Ray cluster (the ``[cluster]`` extra; same files byte for byte)
- exporting: :func:`export_onnx`, :func:`export_fp16`, :func:`export_int8` (each verified before it
  writes), :func:`build_engine` (TensorRT) with typed :class:`Profile` shapes
- evidence: :func:`evaluate` (Y-PSNR/SSIM against ground truth), :func:`compare` with a
  :class:`Tolerance` (:func:`tolerance_for` a precision), :func:`run_bench` with a :class:`BenchConfig`,
  :func:`run_pipeline` with a :class:`PipelineConfig`
- errors: :class:`BackendUnavailable`, :class:`ModelFileError`, :class:`ExportError`, :class:`ParityError`
"""

from sr_deploy._version import __version__
from sr_deploy.backends.base import ShapeLimits, Upscaler
from sr_deploy.backends.trt_profiles import Profile
from sr_deploy.bench.config import BenchConfig
from sr_deploy.bench.run import run_bench
from sr_deploy.cluster import upscale_cluster
from sr_deploy.compare import Comparison, Tolerance, compare, tolerance_for
from sr_deploy.errors import BackendUnavailable, ExportError, ModelFileError, ParityError
from sr_deploy.export.fp16 import export_fp16
from sr_deploy.export.int8 import export_int8
from sr_deploy.export.onnx import export_onnx
from sr_deploy.export.tensorrt import build_engine
from sr_deploy.models.descriptor import ModelDescriptor
from sr_deploy.models.weights import load_weights, save_weights
from sr_deploy.pipeline import PipelineConfig, run_pipeline
from sr_deploy.runtime.images import upscale_file, upscale_image
from sr_deploy.runtime.load import load, load_selected
from sr_deploy.runtime.tune import Tuning, tune
from sr_deploy.scoring import evaluate
from sr_deploy.video import VideoOptions, VideoResult, upscale_video

__all__ = [
    "BackendUnavailable",
    "BenchConfig",
    "Comparison",
    "ExportError",
    "ModelDescriptor",
    "ModelFileError",
    "ParityError",
    "PipelineConfig",
    "Profile",
    "ShapeLimits",
    "Tolerance",
    "Tuning",
    "Upscaler",
    "VideoOptions",
    "VideoResult",
    "__version__",
    "build_engine",
    "compare",
    "evaluate",
    "export_fp16",
    "export_int8",
    "export_onnx",
    "load",
    "load_selected",
    "load_weights",
    "run_bench",
    "run_pipeline",
    "save_weights",
    "tolerance_for",
    "tune",
    "upscale_cluster",
    "upscale_file",
    "upscale_image",
    "upscale_video",
]
