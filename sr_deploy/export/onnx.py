"""PyTorch weights -> verified fp32 ONNX (``sr-deploy export onnx``).

The graph is traced with ``torch.onnx.export(dynamo=False)``: in torch 2.13 the dynamo exporter is
the default but needs ``onnxscript`` (not a dependency) and names the output dims ``4*height``;
the TorchScript exporter gives the same clean graph (Conv / PRelu / Add / DepthToSpace, BN folded
into the convs by constant folding in eval mode) with the readable dim names we want, on every
torch >= 2.2. Identity nodes that the exporter inserts when two parameters are equal (e.g. freshly
initialised PReLU slopes) are replaced by their own initializers so every layer owns its weights
(per-layer quantization and fp16 blocking need that).

Input ``lr``: ``batch x 3 x height x width`` float32 RGB in [0, 1]; output ``sr``:
``batch x 3 x out_height x out_width`` float32 (not clamped).

Any loaded model, third-party checkpoints included: operators TensorRT handles badly are exported
as equivalent supported ones (:mod:`sr_deploy.export.rewrites`), and the gate runs at sizes that meet
the model's size rules. A graph that only runs at its trace size (window attention that bakes the
trace shape into Reshapes: SwinIR, OmniSR) fails the gate at the second size; the export then falls
back to a fixed input size (:func:`fixed_export_size`), recorded in the descriptor (``fixed_size``),
which the runtime pads and tiles to; :attr:`ExportResult.fallback` says why.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import textwrap
import warnings
from dataclasses import dataclass
from pathlib import Path

import onnx
import torch
from onnx import numpy_helper

from sr_deploy._version import __version__
from sr_deploy.artifacts import WrittenFile, sha256_file
from sr_deploy.backends import onnx_metadata as meta
from sr_deploy.backends.pytorch import TorchUpscaler
from sr_deploy.compare import Comparison, Tolerance
from sr_deploy.errors import ExportError, ParityError
from sr_deploy.export.gate import gate_and_write
from sr_deploy.export.rewrites import export_rewrites
from sr_deploy.models.descriptor import ModelDescriptor
from sr_deploy.models.weights import load_weights
from sr_deploy.models.zoo import resolve_weights

DEFAULT_OPSET = 17
MIN_OPSET = 13  # per-channel QuantizeLinear/DequantizeLinear (axis) for the int8 export
#: The fp32 gate: bit-level agreement up to reassociation.
FP32_TOLERANCE = Tolerance(min_psnr_db=100.0, atol=1e-4)


@dataclass(frozen=True)
class ExportResult(WrittenFile):
    """What an export step wrote: ``path``, the model's descriptor and the parity gate it passed.

    A :class:`~sr_deploy.artifacts.WrittenFile`: it goes wherever a path goes (``export_int8(result, ...)``,
    ``load(result)``).
    """

    descriptor: ModelDescriptor
    parity: Comparison
    fallback: str = ""  # why the export has a fixed input size ("" when height and width are dynamic)


def _inline_identity_initializers(model: onnx.ModelProto) -> None:
    """Replace ``Identity(initializer)`` nodes by a copy of the initializer under the output name."""
    inits = {t.name: t for t in model.graph.initializer}
    keep = []
    for node in model.graph.node:
        if node.op_type == "Identity" and node.input[0] in inits:
            copy = numpy_helper.from_array(numpy_helper.to_array(inits[node.input[0]]), node.output[0])
            model.graph.initializer.append(copy)
        else:
            keep.append(node)
    del model.graph.node[:]
    model.graph.node.extend(keep)
    used = {name for node in model.graph.node for name in node.input}
    unused = [t for t in model.graph.initializer if t.name not in used]
    for t in unused:
        model.graph.initializer.remove(t)


def torch_to_onnx(
    net: torch.nn.Module,
    desc: ModelDescriptor,
    opset: int = DEFAULT_OPSET,
    static: tuple[int, int] | None = None,
) -> onnx.ModelProto:
    """Trace ``net`` (eval mode, fp32, CPU) to an ONNX graph with input ``lr`` and output ``sr``.

    Batch is dynamic (fixed at 1 for a descriptor with ``fixed_size``); height and width too unless
    ``static=(H, W)`` fixes them.
    """
    if opset < MIN_OPSET:
        raise ExportError(f"opset {opset} is too old: sr-deploy needs opset >= {MIN_OPSET}")
    h, w = static or desc.fit_size(32, 32)
    example = torch.rand(1, desc.in_channels, h, w)
    lr_axes = {0: "batch"} if static else {0: "batch", 2: "height", 3: "width"}
    sr_axes = {0: "batch"} if static else {0: "batch", 2: "out_height", 3: "out_width"}
    if desc.fixed_size is not None:  # the fixed-shape fallback fixes the batch too (graphs bake it with the size)
        lr_axes, sr_axes = {}, {}
    net = net.eval().float().cpu()
    with warnings.catch_warnings(), tempfile.TemporaryDirectory(prefix="sr-deploy-export.") as tmp:
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.onnx")
        warnings.filterwarnings("ignore", message=r".*legacy TorchScript-based ONNX export.*")
        try:
            with export_rewrites(opset):
                torch.onnx.export(
                    net,
                    (example,),
                    str(Path(tmp) / "traced.onnx"),
                    dynamo=False,
                    opset_version=opset,
                    do_constant_folding=True,
                    input_names=[meta.INPUT_NAME],
                    output_names=[meta.OUTPUT_NAME],
                    dynamic_axes={meta.INPUT_NAME: lr_axes, meta.OUTPUT_NAME: sr_axes},
                )
        except Exception as exc:
            raise ExportError(
                f"torch.onnx.export failed at opset {opset}: {type(exc).__name__}: {exc}"
            ) from None
        model = onnx.load(str(Path(tmp) / "traced.onnx"))
    _inline_identity_initializers(model)
    model.producer_name, model.producer_version = "sr-deploy", __version__
    return model


def export_onnx(
    model: str | os.PathLike[str] | torch.nn.Module,
    output: str | os.PathLike[str],
    *,
    descriptor: ModelDescriptor | None = None,
    opset: int = DEFAULT_OPSET,
    static: tuple[int, int] | None = None,
) -> ExportResult:
    """Export ``model`` to fp32 ONNX at ``output``; returns an :class:`ExportResult` (usable as the path).

    ``model``: a shipped model name, ``.safetensors``/``.pt`` weights, or an ``nn.Module`` (then
    ``descriptor`` says what it is). ``static``: fix the input ``(height, width)`` (batch stays
    dynamic). The graph passes ``onnx.checker`` (full check) and the parity gate (ONNX Runtime CPU vs
    PyTorch fp32 on real images at two sizes: PSNR >= 100 dB and max-abs <= 1e-4) before it is
    written atomically; otherwise :class:`~sr_deploy.errors.ExportError` /
    :class:`~sr_deploy.errors.ParityError` and nothing is written.
    """
    if isinstance(model, torch.nn.Module):
        if descriptor is None:
            raise ExportError("exporting an nn.Module needs its descriptor (descriptor=ModelDescriptor(...))")
        net, desc, source, source_sha = model, descriptor, f"in-memory {type(model).__name__}", ""
    else:
        if descriptor is not None:
            raise ExportError(f"descriptor is for an nn.Module; {model} carries its own (it would be ignored)")
        weights = resolve_weights(model)
        if weights.suffix == ".onnx":
            raise ExportError(f"{weights} is already ONNX; export_onnx takes .safetensors/.pt weights or a model name")
        net, desc = load_weights(weights)
        source, source_sha = str(model), sha256_file(weights)
    def gated(d: ModelDescriptor, size: tuple[int, int] | None) -> Comparison:
        graph = torch_to_onnx(net, d, opset, size)
        meta.write_props(graph, meta.provenance(d, "fp32", source, source_sha))
        with TorchUpscaler(net, d) as reference:
            return gate_and_write(reference, graph, output, d, FP32_TOLERANCE, "ONNX Runtime fp32 vs PyTorch fp32",
                                  size)

    if static is not None and min(static) <= 2 * desc.receptive_radius:
        raise ExportError(f"a static input of {static[0]}x{static[1]} leaves no core inside the model's "
                          f"{desc.receptive_radius}-pixel halo: the runtime tiles images into windows of the static "
                          f"size, so each side must exceed {2 * desc.receptive_radius}")
    if static is not None or desc.loader != "spandrel":  # sr-deploy's own networks export dynamic or fail
        return ExportResult(Path(output), desc, gated(desc, static))
    try:
        return ExportResult(Path(output), desc, gated(desc, None))
    except Exception as exc:  # e.g. ONNX Runtime refusing a Reshape baked at the trace size
        size = fixed_export_size(desc)
        first = textwrap.shorten(str(exc).splitlines()[0], 200, placeholder=" ...")  # whole words and numbers
        failed = f"dynamic height/width failed the gate ({type(exc).__name__}: {first})"
        fixed = dataclasses.replace(desc, fixed_size=size)
        try:
            report = gated(fixed, size)
        except Exception as second:
            message = (f"{output}: {failed}, and the fixed {size[0]}x{size[1]} fallback failed too "
                       f"({type(second).__name__}: {second})")
            if isinstance(second, ParityError):
                raise ParityError(message, second.report) from None
            raise ExportError(message) from None
        note = f"{failed}; exported at a fixed {size[0]}x{size[1]} input (batch 1), tiled to by the runtime"
        return ExportResult(Path(output), fixed, report, note)


def fixed_export_size(desc: ModelDescriptor) -> tuple[int, int]:
    """The input size of a fixed-shape fallback export: 64 x 64, or larger where the halo needs it (a
    window keeps a core of at least 32 pixels inside twice the halo), fitted to the size rules."""
    side = max(64, 2 * desc.receptive_radius + 32)
    return desc.fit_size(side, side)
