"""Training options: :class:`TrainConfig` with its validation, and how ``auto`` device and precision resolve."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from sr_deploy.hardware import cpu_has_bf16
from sr_deploy.vocabulary import AUTO, TRAIN_PRECISIONS


@dataclass
class TrainConfig:
    """Options of a training run (see ``sr-deploy train srresnet --help``)."""

    out: str
    data: list[str] = field(default_factory=list)
    val: list[str] = field(default_factory=list)
    scale: int = 4
    steps: int = 100_000
    batch: int = 16
    patch: int = 96
    lr: float = 1e-4
    schedule: str = "constant"
    device: str = AUTO
    precision: str = AUTO
    seed: int = 0
    ema: float = 0.999
    log_every: int = 100
    val_every: int = 1000
    ckpt_every: int = 500
    workers: int = 1
    num_features: int = 64
    num_blocks: int = 16
    max_val_images: int = 0
    init: str = ""

    def __post_init__(self) -> None:
        precisions = (AUTO, *TRAIN_PRECISIONS)
        if self.precision not in precisions:
            raise ValueError(f"precision must be one of {precisions}, got {self.precision!r}")
        if self.schedule not in ("constant", "cosine"):
            raise ValueError(f"schedule must be 'constant' or 'cosine', got {self.schedule!r}")
        if not 0.0 <= self.ema < 1.0:
            raise ValueError(f"ema decay must be in [0, 1), got {self.ema}")
        for name in ("steps", "batch", "patch", "log_every", "val_every", "ckpt_every"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")


#: The cosine schedule's last learning rate as a fraction of ``lr`` (1e-7 for the default 1e-4)
COSINE_FLOOR = 1e-3


def lr_factor(cfg: TrainConfig, step: int) -> float:
    """The learning rate after ``step`` steps as a fraction of ``cfg.lr``: 1 for the constant schedule; for
    ``cosine``, from 1 down to :data:`COSINE_FLOOR` over ``cfg.steps`` (closed form: a run resumed with more steps
    follows the cosine over its new length)."""
    if cfg.schedule != "cosine":
        return 1.0
    done = min(step, cfg.steps) / cfg.steps
    return COSINE_FLOOR + (1.0 - COSINE_FLOOR) * 0.5 * (1.0 + math.cos(math.pi * done))


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when available, else ``cpu``."""
    if device == AUTO:
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available")
    return device


def resolve_precision(precision: str, device: str) -> str:
    """``auto`` -> bf16 on CUDA with bf16 or a bf16 CPU, fp16 on older CUDA, else fp32."""
    if precision == "fp16" and not device.startswith("cuda"):
        raise ValueError("fp16 training needs CUDA (CPUs here have no fp16 kernels); use bf16 or fp32")
    if precision != AUTO:
        return precision
    if device.startswith("cuda"):
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if cpu_has_bf16() else "fp32"
