"""The words every layer shares, defined once: precisions, backends and devices.

- :data:`PRECISIONS`: what a model, an ONNX file or an engine computes in. ``fp32``: float32
  (the reference); ``fp16`` / ``bf16``: half precision (I/O stays float32); ``int8``: Q/DQ
  quantized (activations 8-bit, I/O float32).
- :data:`TRAIN_PRECISIONS`: the autocast dtypes training can use (no int8).
- :data:`BACKENDS`: the inference engines behind :class:`~sr_deploy.backends.base.Upscaler`.
- :data:`AUTO`: "choose for me" (the fastest usable backend, the training precision the hardware runs best).
- :data:`DEVICES`: device kinds; ``cuda:N`` picks a GPU.
"""

from __future__ import annotations

PRECISIONS = ("fp32", "fp16", "bf16", "int8")
TRAIN_PRECISIONS = ("fp32", "bf16", "fp16")
BACKENDS = ("torch", "onnxruntime", "openvino", "tensorrt")
AUTO = "auto"
DEVICES = ("cpu", "cuda")


def check_choice(value: str, allowed: tuple[str, ...], what: str) -> str:
    """``value`` when it is one of ``allowed``; else ValueError naming ``what`` and the choices."""
    if value not in allowed:
        raise ValueError(f"unknown {what} {value!r}; choose from {', '.join(allowed)}")
    return value


def check_device(device: str) -> str:
    """``cpu``, ``cuda`` or ``cuda:N``; else ValueError."""
    kind, _, index = device.partition(":")
    if kind not in DEVICES or (index and (kind != "cuda" or not index.isdigit())):
        raise ValueError(f"unknown device {device!r}; use cpu, cuda or cuda:N")
    return device
