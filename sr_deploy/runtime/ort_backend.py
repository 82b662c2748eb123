"""ONNX Runtime backend: loader (session from an ONNX file) plus runner."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from sr_deploy.runtime.base import BackendUnavailable, Upscaler


def onnx_descriptor_props(path: str | os.PathLike[str]) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX file (without loading weights into memory twice)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in model.metadata_props}


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
        self.session = ort.InferenceSession(str(p), options, providers=providers or ["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.scale = self.desc.scale
        self.precision = props.get("sr_deploy.precision", "fp32")
        provider = self.session.get_providers()[0]
        self.device = "cpu" if provider == "CPUExecutionProvider" else "cuda"
        self.name = f"onnxruntime-{self.precision}[{provider.removesuffix('ExecutionProvider')}]"

    def _run(self, batch: np.ndarray) -> np.ndarray:
        out = self.session.run(None, {self.input_name: batch})[0]
        return np.asarray(out, dtype=np.float32)
