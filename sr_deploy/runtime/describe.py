"""What a model file is and how it would run on this machine (``sr-deploy info MODEL``), without running it."""

from __future__ import annotations

import os
from typing import Any

from sr_deploy.backends import onnx_metadata
from sr_deploy.backends.trt_metadata import read_metadata
from sr_deploy.errors import BackendUnavailable
from sr_deploy.models.descriptor import ModelDescriptor
from sr_deploy.models.weights import load_weights
from sr_deploy.runtime.select import Artifact, decide, identify, int8_expectation, machine_facts


def descriptor_of(artifact: Artifact) -> ModelDescriptor:
    """The model descriptor of ``artifact``: from an ONNX file's metadata or an engine's sidecar, else by building
    the network from its weights (third-party checkpoints through spandrel). Raises the readers' errors, each
    naming the file."""
    if artifact.kind == "onnx":
        return onnx_metadata.sr_file_props(artifact.path)[1]
    if artifact.kind == "engine":
        return ModelDescriptor.from_dict(read_metadata(artifact.path).descriptor)
    return load_weights(artifact.path)[1]


def describe(model: str | os.PathLike[str] | None) -> dict[str, Any]:
    """``model`` (a shipped name or a file; None: the shipped default) as a dict: ``path``, ``kind`` (weights, onnx,
    engine), ``precision`` (None: weights, which run in any float precision), ``descriptor``
    (:meth:`ModelDescriptor.to_dict`), ``receptive_radius_lr_px`` (the tiling halo), ``auto`` (the route
    ``--backend auto --no-tune`` takes here and why, or why none can) and, for an int8 file, ``int8``: its Q/DQ
    layout, weights width, the CPU class it was validated on (ISA, VNNI) and the engine, the Y-PSNR drop
    recorded there (dB) and what to expect on this CPU (:func:`~sr_deploy.runtime.select.int8_expectation`)."""
    artifact = identify(model)
    facts = machine_facts()
    try:
        selection = decide(artifact, facts)
        auto: dict[str, str | None] = {"route": selection.route.label, "reason": selection.reason}
    except (BackendUnavailable, ValueError) as exc:
        auto = {"route": None, "reason": str(exc)}
    desc = descriptor_of(artifact)
    facts_out: dict[str, Any] = {"path": str(artifact.path), "kind": artifact.kind, "precision": artifact.precision,
                                 "descriptor": desc.to_dict(), "receptive_radius_lr_px": desc.receptive_radius,
                                 "auto": auto}
    if artifact.precision == "int8" and artifact.kind == "onnx":
        if artifact.validated_isa is None:
            here = "its file records no validation CPU: re-export it here to measure its drop"
        else:
            here = int8_expectation(artifact, facts) or (
                f"validated on this CPU class ({facts.cpu_isa}): expect its recorded drop")
        facts_out["int8"] = {"layout": artifact.layout, "weight_bits": 7 if artifact.seven_bit else 8,
                             "validated_isa": artifact.validated_isa, "validated_vnni": artifact.validated_vnni,
                             "validated_engine": artifact.validated_engine,
                             "recorded_drop_db": artifact.recorded_drop, "here": here}
    return facts_out
