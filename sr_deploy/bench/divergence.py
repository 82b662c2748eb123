"""Localise where an ONNX model first diverges from its PyTorch fp32 source, layer by layer.

ONNX side: every ``Conv`` node's output is marked as a graph output and the graph runs on ONNX
Runtime CPU. PyTorch side: forward hooks on the ``nn.Conv2d`` modules, in module order. The k-th
Conv node of the graph (graph order) is matched to the k-th ``nn.Conv2d`` (module order = execution
order for SRResNet); the export folds BatchNorm into the preceding convolution, so a conv directly
followed by a ``BatchNorm2d`` in the same parent is compared through the BN's output. The first
layer whose relative L2 error ``||onnx - torch|| / ||torch||`` exceeds the precision's limit is
named. Marking intermediate outputs keeps ORT from fusing across them (an int8 Q/DQ graph then runs
its convolutions in emulated precision), which is what makes every layer observable.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
import torch
from torch import nn

from sr_deploy.backends import onnxrt

#: Relative L2 error a single layer may show before it counts as diverged, per precision.
LAYER_LIMITS = {"fp32": 1e-4, "fp16": 1e-2, "bf16": 3e-2, "int8": 0.15}


@dataclass(frozen=True)
class LayerError:
    """One matched layer: ``index`` (k-th conv), the ONNX node and torch module names, the output
    shape and the relative L2 / max-abs error of the ONNX tensor against the torch one."""

    index: int
    onnx_node: str
    torch_module: str
    shape: tuple[int, ...]
    rel_l2: float
    max_abs: float


@dataclass
class DivergenceReport:
    """Per-layer errors of an ONNX graph against torch fp32, and the first layer past ``limit``."""

    limit: float
    layers: list[LayerError] = field(default_factory=list)

    @property
    def first(self) -> LayerError | None:
        """The first diverging layer (None when every layer is within ``limit``)."""
        return next((layer for layer in self.layers if not layer.rel_l2 <= self.limit), None)

    def summary(self) -> str:
        f = self.first
        if f is None:
            return f"no layer diverges (all {len(self.layers)} convolutions within rel. L2 {self.limit:g})"
        return (f"first diverging layer: conv #{f.index} = ONNX node {f.onnx_node!r} = torch module "
                f"{f.torch_module!r} (rel. L2 {f.rel_l2:.3g} > {self.limit:g}, max-abs {f.max_abs:.3g})")

    def to_dict(self) -> dict[str, Any]:
        first = self.first
        return {
            "limit": self.limit,
            "first": None if first is None else first.__dict__,
            "summary": self.summary(),
            "layers": [layer.__dict__ for layer in self.layers],
        }


def observed_modules(net: nn.Module) -> list[tuple[str, str, nn.Module]]:
    """``(conv name, observed name, observed module)`` per ``nn.Conv2d`` of ``net`` in module order;
    the observed module is the conv itself or the ``BatchNorm2d`` that directly follows it."""
    named = list(net.named_modules())
    found: list[tuple[str, str, nn.Module]] = []
    for i, (name, module) in enumerate(named):
        if not isinstance(module, nn.Conv2d):
            continue
        watch_name: str = name
        watch: nn.Module = module
        if i + 1 < len(named):
            next_name, next_module = named[i + 1]
            if isinstance(next_module, nn.BatchNorm2d) and next_name.rpartition(".")[0] == name.rpartition(".")[0]:
                watch_name, watch = next_name, next_module
        found.append((name, watch_name, watch))
    return found


def torch_conv_outputs(net: nn.Module, batch: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """Run ``net`` (fp32, eval) on ``batch`` and return ``(module name, output)`` per observed conv."""
    outputs: list[tuple[str, np.ndarray]] = []
    handles = []
    for _, watch_name, module in observed_modules(net):
        def hook(_m: nn.Module, _i: object, out: torch.Tensor, key: str = watch_name) -> None:
            outputs.append((key, out.detach().float().cpu().numpy()))

        handles.append(module.register_forward_hook(hook))
    try:
        with torch.inference_mode():
            net.eval().float()(torch.from_numpy(batch))
    finally:
        for h in handles:
            h.remove()
    return outputs


def onnx_conv_outputs(onnx_path: str | os.PathLike[str], batch: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """Run the ONNX graph on ORT CPU with every Conv output exposed; ``(node name, output)`` in graph order."""
    model = onnx.load(str(onnx_path))
    convs = [(node.name or node.output[0], node.output[0]) for node in model.graph.node if node.op_type == "Conv"]
    existing = {o.name for o in model.graph.output}
    model.graph.output.extend(onnx.ValueInfoProto(name=t) for _, t in convs if t not in existing)
    session = onnxrt.session(model.SerializeToString())
    values = session.run([t for _, t in convs], {session.get_inputs()[0].name: batch})
    return [(name, np.asarray(v, dtype=np.float32)) for (name, _), v in zip(convs, values, strict=True)]


def localize_divergence(
    onnx_path: str | os.PathLike[str], net: nn.Module, batch: np.ndarray, precision: str = "fp32"
) -> DivergenceReport:
    """Compare ``onnx_path`` with ``net`` conv by conv on ``batch`` (``N x 3 x H x W`` float32 in [0, 1]).

    Raises ValueError when the graph and the module do not have matching convolutions (count or shapes).
    """
    limit = LAYER_LIMITS.get(precision, LAYER_LIMITS["fp32"])
    batch = np.ascontiguousarray(batch, dtype=np.float32)
    theirs = onnx_conv_outputs(onnx_path, batch)
    ours = torch_conv_outputs(net, batch)
    if len(theirs) != len(ours):
        raise ValueError(f"{onnx_path} has {len(theirs)} Conv nodes but the PyTorch model has {len(ours)} "
                         "nn.Conv2d modules: they are not the same network")
    report = DivergenceReport(limit)
    for k, ((node, got), (module, want)) in enumerate(zip(theirs, ours, strict=True)):
        if got.shape != want.shape:
            raise ValueError(f"conv #{k}: ONNX node {node!r} gives {got.shape} but torch module {module!r} "
                             f"gives {want.shape}: the graph does not match the model")
        diff = got.astype(np.float64) - want
        norm = float(np.linalg.norm(want))
        rel = float(np.linalg.norm(diff)) / norm if norm > 0 else (0.0 if not diff.any() else math.inf)
        report.layers.append(LayerError(k, node, module, tuple(got.shape), rel, float(np.abs(diff).max())))
    return report
