"""Which layers a TensorRT engine runs fused and in INT8: build with detailed profiling verbosity, read
``IEngineInspector``'s JSON, summarise it. Used by ``benchmarks/gpu_check.py`` to compare the INT8 engines of
the project's ``tensorrt`` Q/DQ layout and of NVIDIA ModelOpt's on one GPU, beside FP16.

Written against the TensorRT 10/11 Python API and type-checked with ``tests/typecheck_tensorrt.sh
benchmarks/trt_inspect.py`` (mypy --strict against NVIDIA's stubs); :func:`summarize` is pure and unit-tested.
The GPU part is **not executed** on the machines this project is developed on (no GPU).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from typing import Any


def build_detailed(onnx_path: str | os.PathLike[str], shape: tuple[int, int, int, int]) -> bytes:
    """A strongly typed engine for ``onnx_path`` at exactly ``shape`` (NCHW), built with
    ``ProfilingVerbosity.DETAILED`` so the inspector reports every layer's tactic and tensor formats."""
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(os.fspath(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"{onnx_path}: TensorRT cannot parse it: {errors}")
    config = builder.create_builder_config()
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
    profile = builder.create_optimization_profile()
    name = network.get_input(0).name
    dims = trt.Dims(list(shape))
    profile.set_shape(name, dims, dims, dims)
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(f"{onnx_path}: TensorRT engine build failed")
    return bytes(serialized)


def engine_layers(serialized: bytes) -> list[dict[str, Any]]:
    """``IEngineInspector``'s JSON layer records of a serialized engine (one dict per engine layer)."""
    import tensorrt as trt

    runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
    engine = runtime.deserialize_cuda_engine(serialized)
    if engine is None:
        raise RuntimeError("TensorRT cannot deserialize the engine")
    inspector = engine.create_engine_inspector()
    info = json.loads(inspector.get_engine_information(trt.LayerInformationFormat.JSON))
    layers = info.get("Layers", [])
    return [layer if isinstance(layer, dict) else {"Name": str(layer)} for layer in layers]


def _formats(tensors: Sequence[dict[str, Any]]) -> list[str]:
    return [str(t.get("Format/Datatype", "")) for t in tensors]


def runs_int8(layer: dict[str, Any]) -> bool:
    """Whether a layer record reads INT8 data (its input format names Int8)."""
    return any(re.search(r"int8", f, re.I) for f in _formats(layer.get("Inputs", [])))


def summarize(layers: Sequence[dict[str, Any]], add_nodes: Sequence[str] = ()) -> dict[str, Any]:
    """Counts from inspector records: engine layers, those reading INT8, fused ones (TensorRT names a fused
    layer by its ONNX nodes joined with `` + ``), reformat layers (each one a precision or layout change a
    better placement avoids), and which of the ONNX ``add_nodes`` (residual Adds) ran inside a convolution
    kernel that reads INT8 (the fusion the Q/DQ placement is for)."""
    fused_adds = []
    for add in add_nodes:
        for layer in layers:
            parts = [p.strip() for p in str(layer.get("Name", "")).split(" + ")]
            if add in parts and len(parts) > 1 and runs_int8(layer) and "Conv" in str(layer.get("Name", "")):
                fused_adds.append(add)
                break
    return {
        "layers": len(layers),
        "int8_layers": sum(runs_int8(layer) for layer in layers),
        "fused_layers": sum(" + " in str(layer.get("Name", "")) for layer in layers),
        "reformat_layers": sum(str(layer.get("LayerType", "")) == "Reformat" for layer in layers),
        "residual_adds_fused_int8": len(fused_adds),
        "residual_adds": len(add_nodes),
        "adds_not_fused": [a for a in add_nodes if a not in fused_adds],
    }
