"""sr-deploy metadata in ONNX ``metadata_props``: what an exported file is and where it came from.

Keys (read by the ONNX Runtime and TensorRT backends; keep the names stable):

- ``sr_deploy.descriptor``: the :class:`~sr_deploy.models.descriptor.ModelDescriptor` JSON
- ``sr_deploy.precision``: ``fp32``, ``fp16`` or ``int8``
- ``sr_deploy.version``: the sr-deploy version that wrote the file
- ``sr_deploy.source``: what the model was exported from (weights path or parent ONNX)
- ``sr_deploy.source_sha256``: sha256 of the weights file the graph was exported from
- ``sr_deploy.calibration``: (int8 only) JSON: method, images, crops, layout, bins, excluded nodes...
- ``sr_deploy.fp32_nodes``: (fp16 only) JSON: the nodes kept in fp32 (``nodes``: name -> reason, tensor,
  ``max_abs``, ``input`` shape or ``drop_db``; see :class:`sr_deploy.export.fp16_search.Fp32Node`), the
  overflow ``margin`` and ``limit``, the ``calibration`` inputs and, with a budget, ``max_psnr_drop_db``,
  ``emulated_drop_db`` and ``ort_cpu_drop_db``
- ``sr_deploy.libraries``: JSON of the library versions that produced the file
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path, PureWindowsPath
from typing import Any

import onnx
from onnx.external_data_helper import load_external_data_for_model

from sr_deploy._version import __version__
from sr_deploy.artifacts import library_versions
from sr_deploy.errors import ModelFileError
from sr_deploy.models.descriptor import ModelDescriptor

DESCRIPTOR = "sr_deploy.descriptor"
PRECISION = "sr_deploy.precision"
VERSION = "sr_deploy.version"
SOURCE = "sr_deploy.source"
SOURCE_SHA256 = "sr_deploy.source_sha256"
CALIBRATION = "sr_deploy.calibration"
FP32_NODES = "sr_deploy.fp32_nodes"
LIBRARIES = "sr_deploy.libraries"

INPUT_NAME = "lr"
OUTPUT_NAME = "sr"


def read_props(model: onnx.ModelProto) -> dict[str, str]:
    """``metadata_props`` as a dict."""
    return {p.key: p.value for p in model.metadata_props}


def write_props(model: onnx.ModelProto, props: dict[str, Any]) -> None:
    """Set (or replace) ``metadata_props`` entries in place; non-string values are stored as JSON."""
    merged = read_props(model)
    merged.update({k: v if isinstance(v, str) else json.dumps(v, sort_keys=True) for k, v in props.items()})
    del model.metadata_props[:]
    for key in sorted(merged):
        model.metadata_props.add(key=key, value=merged[key])


def provenance(desc: ModelDescriptor, precision: str, source: str, source_sha256: str) -> dict[str, str]:
    """The metadata every sr-deploy ONNX file carries."""
    return {
        DESCRIPTOR: desc.to_json(),
        PRECISION: precision,
        VERSION: __version__,
        SOURCE: source,
        SOURCE_SHA256: source_sha256,
        LIBRARIES: json.dumps(library_versions(), sort_keys=True),
    }


def _external_tensors(model: onnx.ModelProto) -> Iterator[onnx.TensorProto]:
    """Every tensor of the model (graph and subgraph initializers, constant attributes) that may hold data."""
    graphs = [model.graph]
    while graphs:
        graph = graphs.pop()
        yield from graph.initializer
        yield from (s.values for s in graph.sparse_initializer)
        for node in graph.node:
            for attr in node.attribute:
                if attr.HasField("t"):
                    yield attr.t
                yield from attr.tensors
                if attr.HasField("g"):
                    graphs.append(attr.g)
                graphs.extend(attr.graphs)


def check_external_data(model: onnx.ModelProto, path: str | os.PathLike[str]) -> None:
    """Refuse external-data locations that are not files inside the folder of the model file ``path``.

    Every tensor stored outside the ``.onnx`` file must name, by ``location``, a relative path with no
    ``..`` component that (symlinks resolved) stays inside the model's folder and exists. Raises
    :class:`ModelFileError` naming the model file and the offending location; loads no data.
    """
    folder = Path(path).resolve().parent
    for tensor in _external_tensors(model):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        entries = {e.key: e.value for e in tensor.external_data}
        location = entries.get("location", "")
        where = f"ONNX model {path}: tensor {tensor.name!r} has external data location {location!r}"
        if not location or "\0" in location:
            raise ModelFileError(f"{where}: not a file name")
        rel = Path(location)
        if rel.is_absolute() or PureWindowsPath(location).anchor:
            raise ModelFileError(f"{where}: an absolute path (external data must lie beside the model)")
        if ".." in re.split(r"[\\/]", location):
            raise ModelFileError(f"{where}: a '..' component (external data must lie beside the model)")
        try:
            target = (folder / rel).resolve()
        except (OSError, RuntimeError) as exc:
            raise ModelFileError(f"{where}: cannot be resolved ({exc})") from None
        if not target.is_relative_to(folder):
            raise ModelFileError(f"{where}: outside the model's folder ({target} is not in {folder})")
        if not target.is_file():
            raise ModelFileError(f"{where}: does not exist ({target})")


def _load_checked(path: Path) -> onnx.ModelProto:
    """``path`` parsed without its external data, with its external-data locations checked."""
    if not path.is_file():
        raise ModelFileError(f"ONNX model {path} does not exist")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise ModelFileError(f"{path} is not a readable ONNX file ({type(exc).__name__}: {exc})") from None
    for prop in model.metadata_props:  # protobuf hands undecodable (non-UTF-8) strings back as bytes
        if not isinstance(prop.key, str) or not isinstance(prop.value, str):
            raise ModelFileError(f"{path} is not a readable ONNX file (metadata_props {prop.key!r} is not UTF-8 text)")
    check_external_data(model, path)
    return model


def file_props(path: str | os.PathLike[str]) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX file, read without its external weights (locations checked).

    Raises :class:`ModelFileError` for a missing or unreadable file or an unsafe external-data location.
    """
    return read_props(_load_checked(Path(path)))


def sr_file_props(
    path: str | os.PathLike[str], descriptor: ModelDescriptor | None = None
) -> tuple[dict[str, str], ModelDescriptor]:
    """The ``metadata_props`` of the sr-deploy ONNX file ``path`` (read without its weights) and the model's
    descriptor: ``descriptor`` when given, else the file's own. Raises FileNotFoundError when there is no file and
    :class:`ModelFileError` naming the file when it is unreadable or carries no valid descriptor (and none is given)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"ONNX model {p} does not exist")
    model = _load_checked(p)
    props = read_props(model)
    if descriptor is not None:
        return props, descriptor
    if DESCRIPTOR not in props:
        raise ModelFileError(f"{p} has no sr-deploy metadata (metadata_props '{DESCRIPTOR}'): export it with "
                             "sr_deploy.export_onnx (`sr-deploy export onnx`)")
    try:
        return props, with_static_size(ModelDescriptor.from_json(props[DESCRIPTOR]), model)
    except (ValueError, TypeError) as exc:
        raise ModelFileError(f"{p}: invalid '{DESCRIPTOR}' metadata ({exc})") from None


def with_static_size(desc: ModelDescriptor, model: onnx.ModelProto) -> ModelDescriptor:
    """``desc`` with ``fixed_size`` set to the graph's input height and width when the graph fixes them (an export
    with ``static=(H, W)``): such a file runs only at that size, so the runtime pads and tiles to it (one window
    per run) and the int8/fp16 exports calibrate at it."""
    size = static_size(model)
    return desc if size is None or desc.fixed_size is not None else dataclasses.replace(desc, fixed_size=size)


def static_size(model: onnx.ModelProto) -> tuple[int, int] | None:
    """``(H, W)`` of a model exported with a fixed input size, None when height and width are dynamic."""
    dims = model.graph.input[0].type.tensor_type.shape.dim if model.graph.input else []
    if len(dims) != 4:
        return None
    h, w = dims[2].dim_value, dims[3].dim_value
    return (h, w) if h and w else None


def load_sr_onnx(
    model: str | os.PathLike[str] | onnx.ModelProto, precision: str | None = "fp32"
) -> tuple[onnx.ModelProto, ModelDescriptor]:
    """Load (from a path) and validate an sr-deploy ONNX model, weights included.

    Checks: the file exists and parses as ONNX, carries ``sr_deploy.descriptor``, has one
    ``N x 3 x H x W`` float input and, when ``precision`` is given, is of that precision.
    Raises :class:`ModelFileError` naming the file (or "the in-memory model") and the problem.
    """
    if isinstance(model, onnx.ModelProto):
        where = f"the in-memory ONNX model {model.graph.name!r}"
    else:
        p = Path(model)
        where = str(p)
        model = _load_checked(p)
        try:
            load_external_data_for_model(model, str(p.resolve().parent))
        except Exception as exc:
            raise ModelFileError(f"{p}: cannot read its external data ({type(exc).__name__}: {exc})") from None
    if not model.graph.node:
        raise ModelFileError(f"{where} is not a readable ONNX file (the graph has no nodes)")
    props = read_props(model)
    if DESCRIPTOR not in props:
        raise ModelFileError(
            f"{where} was not written by sr-deploy (no metadata_props '{DESCRIPTOR}'); "
            "export it with sr_deploy.export_onnx (`sr-deploy export onnx`)"
        )
    try:
        desc = with_static_size(ModelDescriptor.from_json(props[DESCRIPTOR]), model)
    except (ValueError, TypeError) as exc:
        raise ModelFileError(f"{where}: invalid '{DESCRIPTOR}' metadata ({exc})") from None
    inputs = [i for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
    if len(inputs) != 1:
        raise ModelFileError(f"{where}: expected exactly one graph input, found {[i.name for i in inputs]}")
    dims = inputs[0].type.tensor_type.shape.dim
    if len(dims) != 4 or dims[1].dim_value not in (0, desc.in_channels):
        raise ModelFileError(
            f"{where}: input {inputs[0].name!r} must be N x {desc.in_channels} x H x W, "
            f"got rank {len(dims)} ({[d.dim_param or d.dim_value for d in dims]})"
        )
    found = props.get(PRECISION, "fp32")
    if precision is not None and found != precision:
        raise ModelFileError(f"{where} is a {found} model; this step needs the {precision} export")
    return model, desc
