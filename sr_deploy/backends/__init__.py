"""Backends: the :class:`Upscaler` interface and one module per engine, each owning its file format.

- :mod:`.base`: ``Upscaler``, ``ShapeLimits``
- :mod:`.pytorch`: PyTorch (the fp32 reference; channels_last, bf16/fp16 autocast, CUDA graphs)
- :mod:`.onnxrt` + :mod:`.onnx_metadata`: ONNX Runtime sessions (the one place they are created)
  and the sr-deploy keys in ONNX ``metadata_props``
- :mod:`.trt` + :mod:`.trt_metadata` + :mod:`.trt_profiles` + :mod:`.cuda_memory`: TensorRT
  engines, their JSON sidecars, optimization profiles and CUDA buffers
- :mod:`.bicubic`: the MATLAB bicubic baseline as an upscaler
"""

from sr_deploy.backends.base import ShapeLimits, Upscaler

__all__ = ["ShapeLimits", "Upscaler"]
