"""Saving and loading model weights safely.

Released weights: ``NAME.safetensors`` plus ``NAME.json`` (the descriptor and metadata) beside it.
Training checkpoints (``.pt``) are read with ``torch.load(weights_only=True)`` only; nothing is
ever unpickled. Shipped models are addressed by name (``srresnet-x4``) through :mod:`.zoo`. A
file without sr-deploy's descriptor (a third-party ``.pth/.pt/.ckpt/.safetensors`` checkpoint) is
loaded through spandrel by :func:`load_weights` (:mod:`.thirdparty`).
"""

from __future__ import annotations

import json
import os
import pickle
import warnings
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save

from sr_deploy.artifacts import atomic_write_bytes, atomic_write_json, library_versions, sha256_file
from sr_deploy.errors import ModelFileError
from sr_deploy.models.descriptor import ModelDescriptor, build_model
from sr_deploy.models.thirdparty import CheckpointError, load_checkpoint


class WeightsError(ModelFileError):
    """A weights file is missing, unreadable or does not match its descriptor."""


class ForeignWeights(WeightsError):
    """A readable weights file that sr-deploy did not write (no descriptor): a third-party checkpoint."""


def save_weights(
    model: torch.nn.Module, desc: ModelDescriptor, path: str | os.PathLike[str], **metadata: Any
) -> Path:
    """Write ``path`` (.safetensors) and its ``.json`` sidecar atomically; returns the safetensors path."""
    p = Path(path)
    if p.suffix != ".safetensors":
        raise ValueError(f"released weights are written as .safetensors, got {p}")
    state = {k: v.detach().float().cpu().contiguous() for k, v in model.state_dict().items()
             if v.is_floating_point()}
    atomic_write_bytes(p, save(state, metadata={"descriptor": desc.to_json()}))
    sidecar = {"descriptor": desc.to_dict(), "sha256": sha256_file(p),
               "versions": library_versions(), **metadata}
    atomic_write_json(p.with_suffix(".json"), sidecar)
    return p


def _descriptor_for(p: Path, embedded: str | None) -> ModelDescriptor:
    sidecar = p.with_suffix(".json")
    if sidecar.is_file():
        try:
            return ModelDescriptor.from_dict(json.loads(sidecar.read_text())["descriptor"])
        except (KeyError, ValueError, TypeError) as exc:
            raise WeightsError(f"{sidecar}: not a valid sr-deploy weights config ({exc})") from None
    if embedded:
        return ModelDescriptor.from_json(embedded)
    raise ForeignWeights(f"{p}: no descriptor (expected {sidecar.name} beside it)")


#: First bytes of what torch.save writes: a zip archive (the default) or a bare pickle (protocol 2+)
ZIP_MAGIC, PICKLE_MAGIC = b"PK\x03\x04", b"\x80"


def _unpickler_cause(message: str) -> str:
    """The cause in torch's weights-only unpickler error, without its advice to load the file unsafely."""
    cause = message.split("WeightsUnpickler error:", 1)[-1].split("Check the documentation", 1)[0].strip()
    cause = " ".join(cause.split()).split(". Please", 1)[0][:300] or "an unsupported pickle"  # no allowlisting advice
    if cause.startswith("Unsupported global"):
        return f"the pickle holds objects other than tensors ({cause})"
    return f"not a checkpoint torch can read safely ({cause})"


def read_state(path: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], ModelDescriptor]:
    """Read weights and descriptor from a ``.safetensors`` file or a training checkpoint ``.pt``.

    For a checkpoint the EMA weights are used when present. Raises :class:`WeightsError` with the
    file name and the cause on any problem.
    """
    p = Path(path)
    if not p.is_file():
        raise WeightsError(f"weights file {p} does not exist")
    try:
        if p.suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(p), framework="pt") as fh:
                embedded = (fh.metadata() or {}).get("descriptor")
            return load_file(str(p)), _descriptor_for(p, embedded)
        with p.open("rb") as fh:
            magic = fh.read(4)
        if not magic.startswith((ZIP_MAGIC, PICKLE_MAGIC)):
            raise WeightsError(f"cannot read weights {p}: not a PyTorch checkpoint (neither a zip archive nor a "
                               "pickle); weights are .safetensors, .pt, .pth or .ckpt files")
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*TorchScript archive.*")
            ckpt = torch.load(p, map_location="cpu", weights_only=True)
    except WeightsError:
        raise
    except pickle.UnpicklingError as exc:
        raise WeightsError(f"cannot read weights {p}: refused, {_unpickler_cause(str(exc))} (torch.load("
                           "weights_only=True): nothing of it was executed)") from None
    except RuntimeError as exc:
        if "TorchScript" in str(exc):
            raise WeightsError(f"cannot read weights {p}: a TorchScript archive (a compiled program, not weights): "
                               "save the network's state_dict with torch.save or safetensors and load that") from None
        raise WeightsError(f"cannot read weights {p}: {type(exc).__name__}: {exc}") from None
    except Exception as exc:
        raise WeightsError(f"cannot read weights {p}: {type(exc).__name__}: {exc}") from None
    if not isinstance(ckpt, dict) or "descriptor" not in ckpt or "model" not in ckpt:
        raise ForeignWeights(f"{p} is not an sr-deploy checkpoint (needs 'model' and 'descriptor' entries)")
    ema = ckpt.get("ema")
    state = ema if isinstance(ema, dict) and ema else ckpt["model"]
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in state.items()):
        raise WeightsError(f"{p}: the checkpoint's weights are not a mapping of names to tensors")
    try:
        desc = ModelDescriptor.from_json(ckpt["descriptor"])
    except (ValueError, TypeError, AttributeError, RecursionError) as exc:
        raise WeightsError(f"{p}: invalid descriptor in the checkpoint ({type(exc).__name__}: {exc})") from None
    return state, desc


def load_weights(path: str | os.PathLike[str], device: str | torch.device = "cpu") -> tuple[
    torch.nn.Module, ModelDescriptor
]:
    """Build the network described beside ``path``, load its weights, return it in eval mode.

    A file sr-deploy did not write (no descriptor beside or inside it) is a third-party checkpoint:
    spandrel identifies and builds it (:func:`~sr_deploy.models.thirdparty.load_checkpoint`); a file
    it cannot read or identify is a :class:`WeightsError` naming the file and what was found.
    """
    try:
        state, desc = read_state(path)
    except ForeignWeights:
        try:
            model, desc = load_checkpoint(path)
        except CheckpointError as exc:  # one error type for every weights file (its message names the file)
            raise WeightsError(str(exc)) from None
        return model.to(device), desc
    try:
        model = build_model(desc)
    except (ValueError, TypeError, RuntimeError) as exc:
        raise WeightsError(f"{path}: cannot build the network of {desc} ({type(exc).__name__}: {exc})") from None
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise WeightsError(f"{path}: weights do not match the descriptor {desc.to_json()}: {exc}") from None
    return model.eval().to(device), desc
