"""OpenVINO backend (CPU): an sr-deploy ONNX model compiled by OpenVINO's CPU plugin, plus its runner.

The model comes from the project's own ONNX files: fp32 from the fp32 ONNX (computed in float32:
``INFERENCE_PRECISION_HINT=f32``, so it matches ONNX Runtime and PyTorch), bf16 from the same fp32
ONNX where the CPU has native bf16 (AVX-512 BF16 or AMX: the hint ``bf16``), fp16 from the fp16
ONNX (computed in float32 on CPUs: OpenVINO upcasts), and int8 from a Q/DQ ONNX (OpenVINO fuses
the Q/DQ pairs into int8 kernels; the rest runs in float32). Compiled models are cached on disk
(``CACHE_DIR``) so the second load of a model skips compilation. The model keeps its dynamic batch,
height and width, so any tile shape runs without recompiling; each thread gets its own infer
request. Installed by the ``openvino`` extra; absent, :class:`~sr_deploy.errors.BackendUnavailable`
says how to install it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Collection
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from sr_deploy.artifacts import sha256_file
from sr_deploy.backends import onnx_metadata
from sr_deploy.backends.base import Upscaler
from sr_deploy.errors import BackendUnavailable
from sr_deploy.hardware import BF16_EMULATED, CpuInfo, cpu_has_bf16, this_cpu
from sr_deploy.models.descriptor import ModelDescriptor

#: Inference precision -> OpenVINO ``INFERENCE_PRECISION_HINT`` for each ONNX file precision it runs from.
HINTS = {("fp32", "fp32"): "f32", ("fp32", "bf16"): "bf16", ("fp16", "fp16"): "f32", ("int8", "int8"): "f32"}
INSTALL = "OpenVINO is not installed: pip install 'sr-deploy[openvino]'"


def openvino_module() -> Any:
    """The ``openvino`` module; :class:`BackendUnavailable` saying how to install it when it is missing."""
    try:
        import openvino
    except ImportError as exc:
        raise BackendUnavailable(f"{INSTALL} ({exc})") from None
    return openvino


def openvino_unavailable_reason() -> str | None:
    """Why OpenVINO cannot run here (None when it can)."""
    try:
        openvino_module()
    except BackendUnavailable as exc:
        return str(exc)
    return None


def symmetric_int8_refusal(flags: Collection[str]) -> str | None:
    """Why OpenVINO must not run a model with symmetric (signed int8) activations on a CPU with these
    ``/proc/cpuinfo`` ``flags``; None when it may. Pure: a function of the flags alone.

    Such models (the ``tensorrt`` Q/DQ layout, NVIDIA ModelOpt's int8) need 8-bit dot products (AVX-512 VNNI,
    AVX-VNNI or AMX-INT8): on an AVX2-only CPU OpenVINO ran srresnet-x4 at 23.15 dB Set5 against 31.09 dB for
    the uint8-activation ``ort-cpu`` layout (issue 18). sr-deploy refuses rather than converts: the file is the
    user's, and the fix (an ``ort-cpu`` export, or ONNX Runtime) is named in the message."""
    cpu = CpuInfo("", frozenset(flags))
    return symmetric_int8_refusal_for(cpu.vnni, cpu.isa)


def symmetric_int8_refusal_for(vnni: bool, isa: str | None) -> str | None:
    """:func:`symmetric_int8_refusal` of a CPU known by whether it has VNNI and its ISA class."""
    if vnni:
        return None
    return (f"OpenVINO on symmetric int8 activations (the tensorrt Q/DQ layout) collapses accuracy on CPUs without "
            f"VNNI (this one is of the {isa or 'unknown'} class; 23.15 dB Set5 measured on an AVX2 CPU): export it "
            "with target='ort-cpu' (uint8 activations) or run it on ONNX Runtime")


def symmetric_int8_activations(model: onnx.ModelProto) -> bool:
    """Whether a Q/DQ ``model`` quantizes activations to signed int8: a QuantizeLinear on a computed tensor (not
    an initializer) with an int8 zero point."""
    inits = {t.name: t for t in model.graph.initializer}
    return any(n.op_type == "QuantizeLinear" and n.input[0] not in inits and len(n.input) > 2
               and n.input[2] in inits and inits[n.input[2]].data_type == onnx.TensorProto.INT8
               for n in model.graph.node)


class OvUpscaler(Upscaler):
    """An sr-deploy ONNX file compiled by OpenVINO for the CPU.

    ``precision``: what to compute in (default: the file's own precision); ``bf16`` runs an fp32
    file with bf16 compute and needs a CPU with native bf16. ``threads``: inference threads (0:
    OpenVINO's default, every core). ``cache_dir``: compiled-model cache (None: no cache).
    ``descriptor``: the model's :class:`ModelDescriptor` when the file carries no sr-deploy metadata
    (an intermediate file of an export; the file's precision is then its own, fp32 metadata-wise).
    A model with symmetric int8 activations is refused on a CPU without VNNI (:func:`symmetric_int8_refusal`).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        precision: str | None = None,
        threads: int = 0,
        cache_dir: str | os.PathLike[str] | None = None,
        descriptor: ModelDescriptor | None = None,
    ) -> None:
        ov = openvino_module()
        p = Path(path)
        props, self.descriptor = onnx_metadata.sr_file_props(p, descriptor)
        stored = props.get(onnx_metadata.PRECISION, "fp32")
        self.precision = precision or stored
        hint = HINTS.get((stored, self.precision))
        if hint is None:
            runs = ", ".join(want for have, want in HINTS if have == stored)
            raise ValueError(f"OpenVINO runs {p} ({stored}) in {runs}, not {self.precision}")
        if hint == "bf16" and not cpu_has_bf16():
            raise BackendUnavailable(f"OpenVINO: {BF16_EMULATED}")
        refusal = symmetric_int8_refusal(this_cpu().flags)
        if refusal and symmetric_int8_activations(onnx.load(str(p), load_external_data=False)):
            raise BackendUnavailable(f"{p}: {refusal}")
        core = ov.Core()
        if cache_dir is not None:
            Path(cache_dir).mkdir(parents=True, exist_ok=True)
            core.set_property({"CACHE_DIR": str(cache_dir)})
        config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": hint, "PERFORMANCE_HINT": "LATENCY"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        self._compiled: Any = core.compile_model(core.read_model(str(p)), "CPU", config)
        self._local = threading.local()
        self.device, self.path = "cpu", p
        self.name = f"openvino-{self.precision}[CPU]"

    def _weights_digest(self) -> str:
        return sha256_file(self.path)

    def _request(self) -> Any:
        request = getattr(self._local, "request", None)
        if request is None:
            request = self._local.request = self._compiled.create_infer_request()
        return request

    def _run(self, batch: np.ndarray) -> np.ndarray:
        request = self._request()
        request.infer({0: batch})
        return np.array(request.get_output_tensor(0).data, dtype=np.float32)  # a copy: the request reuses its buffer

    def _release(self) -> None:
        """Drop the compiled model and every thread's infer request."""
        self._compiled, self._local = None, threading.local()
