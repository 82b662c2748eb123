"""The model descriptor: what a model is and what it can do, carried by every artifact.

Like spandrel's descriptors, callers read scale, value range, size rules, receptive field and
supported precisions from here instead of guessing. It travels as JSON beside safetensors weights,
in ONNX ``metadata_props`` and in TensorRT engine sidecars.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from sr_deploy.vocabulary import PRECISIONS

#: ``srresnet``: SRResNet / the SRGAN generator; ``bicubic``: the MATLAB bicubic baseline (no weights).
#: Third-party checkpoints (``loader="spandrel"``) carry spandrel's architecture id instead (``ESRGAN``, ``SwinIR``...).
ARCHITECTURES = ("srresnet", "bicubic")
#: Who builds the network: ``sr-deploy`` (:func:`build_model`) or ``spandrel`` (a third-party checkpoint,
#: :mod:`sr_deploy.models.thirdparty`).
LOADERS = ("sr-deploy", "spandrel")
#: spandrel's tiling advice (``ModelTiling``): tiling is fine, works but is discouraged, or done inside the model.
TILING_ADVICE = ("supported", "discouraged", "internal")
#: Largest scale and receptive halo (LR pixels) a third-party descriptor may state.
MAX_SCALE, MAX_HALO = 16, 4096
#: Bounds on the network size a descriptor may ask for (a hand-edited JSON must not build a huge network).
MAX_FEATURES, MAX_BLOCKS = 1024, 256
#: Receptive radius of MATLAB's bicubic upscaling kernel (support 4) in input pixels.
BICUBIC_RADIUS = 2


@dataclass(frozen=True)
class ModelDescriptor:
    """Architecture and I/O contract of an SR model.

    Attributes:
        architecture: ``"srresnet"`` (the SRGAN generator is the same network) or ``"bicubic"``
            (the interpolation baseline; ``num_features`` / ``num_blocks`` are 0).
        scale: upscaling factor (2, 4 or 8; bicubic: any integer >= 2).
        in_channels / out_channels: 3 (RGB).
        num_features / num_blocks: SRResNet width and depth (paper: 64 / 16).
        value_range: input and output value range, ``(0.0, 1.0)``: float32 RGB.
        size_multiple: input height and width must be multiples of this (1: any size).
        min_size: smallest input side in pixels.
        precisions: precisions the model is meant to run in.
        name: a human-readable name (e.g. ``srresnet-x4``); ``training``: free-form provenance.
        loader: ``sr-deploy`` (the project's own networks) or ``spandrel`` (a third-party checkpoint; then
            ``architecture`` is spandrel's id, e.g. ``ESRGAN``, and ``num_features`` is the widest layer's
            channel count, used only by the tiling memory estimate).
        square: inputs must be square (spandrel's size rule).
        supports_half / supports_bfloat16: spandrel's word on whether fp16 / bf16 inference works.
        tiling: spandrel's tiling advice, one of :data:`TILING_ADVICE`.
        halo: measured receptive radius in LR pixels (third-party models; None: derived from the
            architecture); ``halo_exact``: whether tiles overlapping by it reproduce the whole-image result
            (False: "approximate", e.g. shifted-window attention or global pooling); ``halo_tolerance``: the
            output change (absolute, on outputs in [0, 1]) below which a pixel counted as uninfluenced;
            ``tiling_max_error``: the measured max-abs difference between a window's core and the
            whole-image output at this halo.
        source_sha256: sha256 of the checkpoint file the model was loaded from (third-party models).
        fixed_size: ``(height, width)`` of an export that only runs at one input size (an architecture
            whose graph bakes in its trace size): inputs are padded up to it and tiled into windows of it.
    """

    architecture: str = "srresnet"
    scale: int = 4
    in_channels: int = 3
    out_channels: int = 3
    num_features: int = 64
    num_blocks: int = 16
    value_range: tuple[float, float] = (0.0, 1.0)
    size_multiple: int = 1
    min_size: int = 1
    precisions: tuple[str, ...] = PRECISIONS
    name: str = ""
    training: dict[str, Any] = field(default_factory=dict, compare=False)
    loader: str = "sr-deploy"
    square: bool = False
    supports_half: bool = True
    supports_bfloat16: bool = True
    tiling: str = "supported"
    halo: int | None = None
    halo_exact: bool = True
    halo_tolerance: float | None = None
    tiling_max_error: float | None = None
    source_sha256: str = ""
    fixed_size: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if self.loader not in LOADERS:
            raise ValueError(f"unknown loader {self.loader!r}; known: {LOADERS}")
        if self.tiling not in TILING_ADVICE:
            raise ValueError(f"unknown tiling advice {self.tiling!r}; known: {TILING_ADVICE}")
        if self.halo is not None and (not isinstance(self.halo, int) or not 0 <= self.halo <= MAX_HALO):
            raise ValueError(f"halo must be an integer in 0..{MAX_HALO}, got {self.halo!r}")
        for name, side in (("size_multiple", self.size_multiple), ("min_size", self.min_size)):
            if not isinstance(side, int) or not 1 <= side <= MAX_HALO:
                raise ValueError(f"{name} must be an integer in 1..{MAX_HALO}, got {side!r}")
        if self.fixed_size is not None and (len(self.fixed_size) != 2 or not all(
                isinstance(v, int) and 1 <= v <= MAX_HALO for v in self.fixed_size)):
            raise ValueError(f"fixed_size must be (height, width) in 1..{MAX_HALO}, got {self.fixed_size!r}")
        if self.loader == "spandrel":
            if not isinstance(self.architecture, str) or not self.architecture.isidentifier():
                raise ValueError(f"a third-party architecture must be spandrel's id, got {self.architecture!r}")
            if not isinstance(self.scale, int) or not 1 <= self.scale <= MAX_SCALE:
                raise ValueError(f"scale must be an integer in 1..{MAX_SCALE}, got {self.scale!r}")
            if self.halo is None:
                raise ValueError(f"a third-party {self.architecture} descriptor needs its measured halo")
        elif self.architecture not in ARCHITECTURES:
            raise ValueError(f"unknown architecture {self.architecture!r}; known: {ARCHITECTURES}")
        elif self.architecture == "bicubic":
            if not isinstance(self.scale, int) or self.scale < 2:
                raise ValueError(f"bicubic scale must be an integer >= 2, got {self.scale}")
        elif self.scale not in (2, 4, 8):
            raise ValueError(f"scale must be 2, 4 or 8, got {self.scale}")
        for name, value, limit in (("num_features", self.num_features, MAX_FEATURES),
                                   ("num_blocks", self.num_blocks, MAX_BLOCKS)):
            if not isinstance(value, int) or not 0 <= value <= limit:
                raise ValueError(f"{name} must be an integer in 0..{limit}, got {value!r}")
        bad = [p for p in self.precisions if p not in PRECISIONS]
        if bad:
            raise ValueError(f"unknown precisions {bad}; known: {PRECISIONS}")

    @property
    def receptive_radius(self) -> int:
        """Receptive-field halo in input (LR) pixels: how far an output pixel sees on each side.

        Head 9x9 (4) + two 3x3 per block + trunk 3x3 (1) + one 3x3 per upsampler at its own
        resolution + the 9x9 tail (4) at output resolution, rounded up. Tiles overlapping by at
        least this much give exactly the whole-image result. Third-party models: the measured
        :attr:`halo` (exact only when :attr:`halo_exact`).
        """
        if self.halo is not None:
            return self.halo
        if self.architecture == "srresnet":
            ups = int(math.log2(self.scale))
            radius = 4 + 2 * self.num_blocks + 1 + sum(1 / 2**i for i in range(ups)) + 4 / self.scale
            return math.ceil(radius)
        return BICUBIC_RADIUS

    def output_shape(self, height: int, width: int) -> tuple[int, int]:
        """Output (height, width) for an input of (height, width)."""
        return height * self.scale, width * self.scale

    def check_input_size(self, height: int, width: int) -> None:
        """Raise ValueError if an input of this size breaks the model's size rules."""
        if height < self.min_size or width < self.min_size:
            raise ValueError(f"input {height}x{width} is smaller than the model's minimum {self.min_size}")
        if height % self.size_multiple or width % self.size_multiple:
            raise ValueError(f"input {height}x{width} is not a multiple of {self.size_multiple}")
        if self.square and height != width:
            raise ValueError(f"input {height}x{width} is not square (the model takes square inputs only)")

    def fit_size(self, height: int, width: int) -> tuple[int, int]:
        """The smallest ``(height, width)`` at least this large that meets the size rules (pad up to it)."""
        m = self.size_multiple
        h, w = max(height, self.min_size), max(width, self.min_size)
        if self.fixed_size is not None:
            h, w = max(h, self.fixed_size[0]), max(w, self.fixed_size[1])
        h, w = h + (-h) % m, w + (-w) % m
        return (max(h, w), max(h, w)) if self.square else (h, w)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["value_range"] = list(self.value_range)
        d["precisions"] = list(self.precisions)
        if self.fixed_size is not None:
            d["fixed_size"] = list(self.fixed_size)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelDescriptor:
        known = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in d.items() if k in known}
        if "value_range" in kwargs:
            kwargs["value_range"] = tuple(kwargs["value_range"])
        if "precisions" in kwargs:
            kwargs["precisions"] = tuple(kwargs["precisions"])
        if isinstance(kwargs.get("fixed_size"), list):
            kwargs["fixed_size"] = tuple(kwargs["fixed_size"])
        return cls(**kwargs)

    @classmethod
    def from_json(cls, text: str) -> ModelDescriptor:
        return cls.from_dict(json.loads(text))


def bicubic_descriptor(scale: int) -> ModelDescriptor:
    """The descriptor of the bicubic baseline at ``scale`` (ValueError for a scale below 2)."""
    return ModelDescriptor(architecture="bicubic", scale=scale, num_features=0, num_blocks=0, precisions=("fp32",),
                           name=f"bicubic-x{scale}")


def build_model(desc: ModelDescriptor) -> nn.Module:
    """A freshly initialised network for ``desc`` (ValueError for the weightless bicubic baseline)."""
    from sr_deploy.models.srresnet import SRResNet

    if desc.architecture != "srresnet":
        raise ValueError(f"{desc.architecture} has no network to build")
    return SRResNet(desc.scale, desc.in_channels, desc.out_channels, desc.num_features, desc.num_blocks)
