"""Truncated, frozen VGG19 feature extractor (the phi_{i,j} of the SRGAN perceptual loss).

``features`` is indexed exactly like torchvision's ``vgg19().features``, so its state-dict keys
(``features.0.weight`` ...) match and torchvision's ``vgg19-dcbb9e9d.pth`` loads from a local file
with :func:`load_vgg19_weights` (torchvision itself is not needed). ImageNet normalisation is
inside: input is NCHW float32 RGB in [0, 1].
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

VGG19_CFG: list[int | str] = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
                              512, 512, 512, 512, "M", 512, 512, 512, 512, "M"]
VGG19_URL = "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"
_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)


def _layer_index(i: int, j: int) -> int:
    """Index in ``features`` of the ReLU after the j-th conv of block i (1-based, as phi_{i,j})."""
    block, conv, = 1, 0
    for idx, item in enumerate(_expanded_cfg()):
        if item == "M":
            block, conv = block + 1, 0
        elif item == "R":
            if block == i and conv == j:
                return idx
        else:
            conv += 1
    raise ValueError(f"VGG19 has no layer phi_{i},{j}")


def _expanded_cfg() -> list[int | str]:
    out: list[int | str] = []
    for item in VGG19_CFG:
        out.extend(["M"] if item == "M" else [item, "R"])
    return out


class VGGFeatureExtractor(nn.Module):
    """phi_{i,j}: VGG19 features up to the ReLU after conv j of block i (default phi_5,4).

    ``forward``: ``N x 3 x H x W`` in [0, 1] -> ``N x C x H/2^(i-1) x W/2^(i-1)``. Frozen (no grad).
    """

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, layer: tuple[int, int] = (5, 4)) -> None:
        super().__init__()
        self.layer = layer
        last = _layer_index(*layer)
        modules: list[nn.Module] = []
        channels = 3
        for item in _expanded_cfg()[: last + 1]:
            if item == "M":
                modules.append(nn.MaxPool2d(2, 2))
            elif item == "R":
                modules.append(nn.ReLU(inplace=False))
            else:
                assert isinstance(item, int)
                modules.append(nn.Conv2d(channels, item, 3, padding=1))
                channels = item
        self.features = nn.Sequential(*modules)
        self.register_buffer("mean", torch.tensor(_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> VGGFeatureExtractor:
        """Always stays in eval mode: the extractor is frozen."""
        return super().train(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features((x - self.mean) / self.std)


def load_vgg19_weights(extractor: VGGFeatureExtractor, path: str | os.PathLike[str]) -> None:
    """Load torchvision VGG19 weights from a local file into ``extractor``.

    Accepts the full torchvision state dict (``features.*`` and ``classifier.*`` keys, like
    ``vgg19-dcbb9e9d.pth``) or a ``features``-only one, as ``.pth`` (loaded with
    ``weights_only=True``) or ``.safetensors``. Layers past the truncation point are ignored.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(
            f"VGG19 weights not found at {p}. Pretrained weights cannot be downloaded at run time; "
            f"download torchvision's file once on a machine with network access ({VGG19_URL}) "
            "and pass its local path."
        )
    if p.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(p))
    else:
        try:
            state = torch.load(p, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise ValueError(f"cannot load VGG19 weights from {p}: {exc}") from None
    state = {k if k.startswith("features.") else f"features.{k}": v for k, v in state.items()
             if not k.startswith("classifier.")}
    wanted = extractor.state_dict()
    missing = [k for k in wanted if k not in state]
    if missing:
        raise ValueError(f"{p} is not a VGG19 state dict: missing {missing[:4]}")
    for k, v in wanted.items():
        if state[k].shape != v.shape:
            raise ValueError(f"{p}: {k} has shape {tuple(state[k].shape)}, expected {tuple(v.shape)}")
    extractor.load_state_dict({k: state[k] for k in wanted})
