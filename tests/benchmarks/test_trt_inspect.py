"""benchmarks/trt_inspect.py: the summary of IEngineInspector's layer records (pure; the GPU part is not executed)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def _module() -> Any:
    spec = importlib.util.spec_from_file_location("trt_inspect", REPO / "benchmarks" / "trt_inspect.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("trt_inspect", module)
    spec.loader.exec_module(module)
    return module


def _layer(name: str, layer_type: str, formats: list[str]) -> dict[str, Any]:
    """A record shaped like TensorRT's detailed JSON (``Name``, ``LayerType``, ``Inputs[].Format/Datatype``)."""
    return {"Name": name, "LayerType": layer_type, "Inputs": [{"Name": f"in{i}", "Format/Datatype": f}
                                                              for i, f in enumerate(formats)]}


def test_summary_counts_int8_fusions_and_reformats() -> None:
    int8 = "Channel major INT8 format where channel % 32 == 0"
    half = "Row major linear FP16 format"
    layers = [
        _layer("/head/Conv + /head/PRelu", "CaskConvolution", [int8]),
        _layer("/b0/c1/Conv + /b0/PRelu", "CaskConvolution", [int8]),
        _layer("/b0/c2/Conv + /b0/Add", "CaskConvolution", [int8, int8]),  # the Add fused, identity int8
        _layer("/b1/c2/Conv", "CaskConvolution", [int8]),
        _layer("Reformatting CopyNode for Input Tensor 0 to /b1/Add", "Reformat", [int8]),
        _layer("/b1/Add", "PointWiseV2", [half, half]),  # the Add split from its convolution
    ]
    summary = _module().summarize(layers, ["/b0/Add", "/b1/Add"])
    assert summary == {"layers": 6, "int8_layers": 5, "fused_layers": 3, "reformat_layers": 1,
                       "residual_adds_fused_int8": 1, "residual_adds": 2, "adds_not_fused": ["/b1/Add"]}
    assert not _module().runs_int8(layers[-1]) and _module().runs_int8(layers[0])
