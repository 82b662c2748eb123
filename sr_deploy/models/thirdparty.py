"""Third-party SR checkpoints (ESRGAN, Real-ESRGAN, SwinIR, SPAN, OmniSR, RCAN...) through spandrel.

A checkpoint file (``.pth``, ``.pt``, ``.ckpt``, ``.safetensors``) is read without executing anything:
safetensors as such, everything else with ``torch.load(weights_only=True)`` (a pickle that holds
anything but tensors and plain containers is refused; spandrel's own file reader, a restricted
unpickler, and its TorchScript path are not used). spandrel then identifies the architecture from
the state dict's keys and shapes and builds the network. The :class:`ModelDescriptor` carries
spandrel's facts (scale, channels, ``supports_half``, ``supports_bfloat16``, size rules, tiling
advice), the architecture id, the checkpoint's sha256 and the receptive halo measured on the model
(:func:`sr_deploy.models.receptive.measure_halo`; once per set of weights and process). The size
multiple is spandrel's times the attention window where the network has one (``window_size``: inputs
are padded to it and tiles start on its grid, so tiles see the windows the whole image sees).

torchvision. spandrel imports ``torchvision.transforms.functional`` at import time, for two
architectures that are not super-resolution (LaMa inpainting and RestoreFormer face restoration).
Where torchvision is installed and works, spandrel gets it. Where it cannot be imported (e.g. a
torchvision wheel built for another torch: ``operator torchvision::nms does not exist``),
:func:`import_spandrel` lends spandrel, for the duration of its import only, a placeholder module
with the three names those two architectures import (``InterpolationMode``, ``rotate``,
``normalize``); calling the placeholders raises an error saying torchvision is missing. SR
architectures never call them. The placeholder is removed from ``sys.modules`` afterwards, so
nothing else in the process sees it.
"""

from __future__ import annotations

import enum
import functools
import hashlib
import math
import os
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import torch
from torch import nn

from sr_deploy.artifacts import sha256_file
from sr_deploy.errors import ModelFileError
from sr_deploy.models.descriptor import MAX_FEATURES, ModelDescriptor
from sr_deploy.models.receptive import Halo, measure_halo
from sr_deploy.vocabulary import PRECISIONS

#: File types a third-party checkpoint may come in.
SUFFIXES = (".pth", ".pt", ".ckpt", ".safetensors")
#: spandrel purposes sr-deploy runs: upscalers and same-size restoration (scale 1).
PURPOSES = ("SR", "Restoration")
_TORCHVISION_NAMES = ("torchvision", "torchvision.transforms", "torchvision.transforms.functional")


class CheckpointError(ModelFileError):
    """A third-party checkpoint is unreadable, unsafe, unidentified or not an RGB SR model; names the file."""


def _torchvision_problem() -> str | None:
    """None when ``torchvision.transforms.functional`` imports, else why not (one line)."""
    try:
        import torchvision.transforms.functional  # noqa: F401
    except Exception as exc:  # a broken wheel raises RuntimeError, not ImportError
        return f"{type(exc).__name__}: {exc}".splitlines()[0]
    return None


class InterpolationMode(enum.Enum):
    """Placeholder for ``torchvision.transforms.functional.InterpolationMode`` (its members, no behaviour)."""

    NEAREST = "nearest"
    NEAREST_EXACT = "nearest-exact"
    BILINEAR = "bilinear"
    BICUBIC = "bicubic"
    BOX = "box"
    HAMMING = "hamming"
    LANCZOS = "lanczos"


def _placeholder_torchvision(problem: str) -> dict[str, types.ModuleType]:
    """Modules standing in for torchvision while spandrel imports (see the module docstring)."""

    def unavailable(name: str) -> Callable[..., NoReturn]:
        def call(*_args: Any, **_kwargs: Any) -> NoReturn:
            raise RuntimeError(f"torchvision.transforms.functional.{name} is not available here ({problem}); "
                               "spandrel's LaMa and RestoreFormer architectures need a working torchvision")
        return call

    root, transforms, functional = (types.ModuleType(n) for n in _TORCHVISION_NAMES)
    functional.InterpolationMode = InterpolationMode  # type: ignore[attr-defined]
    functional.rotate = unavailable("rotate")  # type: ignore[attr-defined]
    functional.normalize = unavailable("normalize")  # type: ignore[attr-defined]
    root.transforms = transforms  # type: ignore[attr-defined]
    transforms.functional = functional  # type: ignore[attr-defined]
    for module in (root, transforms, functional):
        module.__dict__["__sr_deploy_placeholder__"] = problem
    return dict(zip(_TORCHVISION_NAMES, (root, transforms, functional), strict=True))


@functools.cache
def import_spandrel() -> types.ModuleType:
    """``import spandrel``, with a placeholder torchvision during the import when the real one cannot be
    imported (see the module docstring). Raises :class:`CheckpointError` when spandrel is not installed."""
    if "spandrel" in sys.modules:
        return sys.modules["spandrel"]
    problem = _torchvision_problem()
    placeholders = _placeholder_torchvision(problem) if problem else {}  # none: spandrel gets the real one
    saved = {name: sys.modules.pop(name) for name in placeholders if name in sys.modules}
    sys.modules.update(placeholders)
    try:
        import spandrel
    except ImportError as exc:
        raise CheckpointError(f"third-party checkpoints need spandrel: pip install 'sr-deploy[models]' ({exc})"
                              ) from None
    finally:
        for name in placeholders:
            sys.modules.pop(name, None)
        sys.modules.update(saved)
    return spandrel


def read_checkpoint(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """The state dict of a checkpoint file (tensors only, canonicalised: ``params_ema`` / ``state_dict``
    unwrapped, ``module.`` prefixes removed), read without executing pickled code."""
    p = Path(path)
    if p.suffix.lower() not in SUFFIXES:
        raise CheckpointError(f"{p}: not a checkpoint file ({p.suffix or 'no suffix'}; expected {', '.join(SUFFIXES)})")
    if not p.is_file():
        raise CheckpointError(f"checkpoint {p} does not exist")
    try:
        if p.suffix.lower() == ".safetensors":
            from safetensors.torch import load_file

            raw: Any = load_file(str(p))
        else:
            raw = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:
        first = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
        if "weights_only" in str(exc) or "Unsupported global" in str(exc):
            raise CheckpointError(f"{p}: refused, the pickle holds objects other than tensors (nothing of it "
                                  f"was executed; only plain state dicts are read): {first}") from None
        raise CheckpointError(f"{p}: cannot read the checkpoint ({first})") from None
    return _state_dict(raw, p)


def _state_dict(raw: Any, path: Path) -> dict[str, torch.Tensor]:
    if not isinstance(raw, dict):
        raise CheckpointError(f"{path}: holds a {type(raw).__name__}, not a state dict (a mapping of names to tensors)")
    state = import_spandrel().canonicalize_state_dict(raw)
    tensors = {k: v for k, v in state.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}
    if not tensors:
        raise CheckpointError(f"{path}: no tensors found (top-level keys: {_first_keys(raw)})")
    return tensors


def _first_keys(state: dict[Any, Any], count: int = 6) -> str:
    keys = [str(k) for k in list(state)[:count]]
    return ", ".join(keys) + (f", ... ({len(state)} in all)" if len(state) > count else "")


def _widest(model: nn.Module) -> int:
    """The largest channel count of any convolution or linear layer (the tiling memory estimate's width)."""
    widths = [max(m.weight.shape[0], m.weight.shape[1]) for m in model.modules()
              if isinstance(m, nn.Conv2d | nn.Linear) and m.weight.dim() >= 2]
    return min(max(widths, default=64), MAX_FEATURES)


class InputSafe(nn.Module):
    """A spandrel network that runs on a copy of its input: some (RCAN: ``x *= rgb_range``) scale their
    input tensor in place, which would change the caller's batch. ``inner``: the network."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``N x 3 x H x W`` float32 in [0, 1] -> ``N x 3 x sH x sW`` float32 (``x`` is left as it was)."""
        out: torch.Tensor = self.inner(x.clone())
        return out


#: Halos measured in this process, by :func:`weights_digest` (the same weights measure the same, whatever the file).
_HALOS: dict[str, Halo] = {}


def weights_digest(state: dict[str, torch.Tensor]) -> str:
    """sha256 over the state dict's names, dtypes, shapes and values (the same weights in any file format)."""
    digest = hashlib.sha256()
    for key in sorted(state):
        tensor = state[key].detach().cpu().contiguous()
        digest.update(f"{key}:{tensor.dtype}:{tuple(tensor.shape)};".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def load_checkpoint(path: str | os.PathLike[str]) -> tuple[nn.Module, ModelDescriptor]:
    """Load a third-party checkpoint through spandrel: the network (:class:`InputSafe`, eval mode, CPU, float32)
    and its descriptor.

    Raises :class:`CheckpointError` naming the file: unreadable or unsafe, unknown to spandrel (with the
    first keys found), or not an RGB upscaling/restoration model.
    """
    p = Path(path)
    state = read_checkpoint(p)
    spandrel = import_spandrel()
    try:
        loaded = spandrel.ModelLoader().load_from_state_dict(state)
    except spandrel.UnsupportedModelError:
        raise CheckpointError(f"{p}: spandrel does not recognise this checkpoint's architecture "
                              f"({len(state)} tensors; first keys: {_first_keys(state)})") from None
    except Exception as exc:
        raise CheckpointError(f"{p}: spandrel could not build the network ({type(exc).__name__}: {exc}; first keys: "
                              f"{_first_keys(state)})") from None
    arch = loaded.architecture
    if not isinstance(loaded, spandrel.ImageModelDescriptor) or loaded.purpose not in PURPOSES:
        raise CheckpointError(f"{p}: a {arch.name} {loaded.purpose} model; sr-deploy runs image upscaling and "
                              "restoration models")
    if loaded.input_channels != 3 or loaded.output_channels != 3:
        raise CheckpointError(f"{p}: a {arch.name} model with {loaded.input_channels} input and "
                              f"{loaded.output_channels} output channels; sr-deploy runs RGB (3 -> 3) models")
    model = InputSafe(loaded.model).eval().float()
    rules = loaded.size_requirements
    # window attention (SwinIR, OmniSR, HAT...) partitions the image on a grid from its top-left corner: sizes
    # and tile starts on multiples of the window put every tile's windows where the whole image has them
    window = getattr(loaded.model, "window_size", 1)
    window = window if isinstance(window, int) and 1 <= window <= 64 else 1
    multiple, minimum = math.lcm(rules.multiple_of, window), max(1, rules.minimum)
    sha = sha256_file(p)
    key = weights_digest(state)
    halo = _HALOS.get(key) or measure_halo(model, loaded.scale, 3, min_size=minimum, multiple_of=multiple)
    _HALOS[key] = halo
    precisions = tuple(pr for pr in PRECISIONS if (pr != "fp16" or loaded.supports_half)
                       and (pr != "bf16" or loaded.supports_bfloat16))
    desc = ModelDescriptor(
        architecture=arch.id, scale=loaded.scale, in_channels=3, out_channels=3, num_features=_widest(model),
        num_blocks=0, size_multiple=multiple, min_size=minimum, precisions=precisions, name=p.stem,
        loader="spandrel", square=rules.square, supports_half=loaded.supports_half,
        supports_bfloat16=loaded.supports_bfloat16, tiling=loaded.tiling.name.lower(), halo=halo.radius,
        halo_exact=halo.exact, halo_tolerance=halo.tolerance, tiling_max_error=halo.max_error, source_sha256=sha,
        training={"tags": list(loaded.tags), "purpose": loaded.purpose, "architecture_name": arch.name},
    )
    return model, desc
