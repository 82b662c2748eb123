"""The training state: what a checkpoint holds, how it is written and read, and how a trainer is restored from it.

A checkpoint holds only tensors, numbers, strings and plain containers (model, EMA, optimizer and
scheduler states, RNG state, step, descriptor JSON, config), so it never needs unpickling of
arbitrary objects: it is read with ``torch.load(weights_only=True)`` only. A kill at any moment
leaves the previous checkpoint intact (temp file + ``os.replace``).
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from sr_deploy.artifacts import atomic_open
from sr_deploy.models.descriptor import ModelDescriptor
from sr_deploy.train.config import TrainConfig
from sr_deploy.train.ema import EMA

CHECKPOINT = "checkpoint.pt"


class TrainingParts(Protocol):
    """What a checkpoint is made of and restored into (the :class:`~sr_deploy.train.loop.Trainer`'s parts)."""

    kind: str
    cfg: TrainConfig
    desc: ModelDescriptor
    model: nn.Module
    ema: EMA | None
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    step: int
    best_psnr: float
    elapsed: float

    def extra_state(self) -> dict[str, Any]: ...

    def load_extra_state(self, state: dict[str, Any]) -> None: ...


def training_state(parts: TrainingParts) -> dict[str, Any]:
    """The checkpoint dict of ``parts`` (with the torch RNG state and the subclass's ``extra_state``)."""
    return {
        "kind": parts.kind,
        "step": parts.step,
        "descriptor": parts.desc.to_json(),
        "config": json.dumps(dataclasses.asdict(parts.cfg)),
        "model": parts.model.state_dict(),
        "ema": parts.ema.shadow.state_dict() if parts.ema else None,
        "optimizer": parts.optimizer.state_dict(),
        "scheduler": parts.scheduler.state_dict(),
        "scaler": parts.scaler.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "best_psnr": parts.best_psnr,
        "elapsed": parts.elapsed,
        "extra": parts.extra_state(),
    }


def restore_training_state(parts: TrainingParts, state: dict[str, Any]) -> None:
    """Load a :func:`training_state` dict into ``parts``; ValueError when it is from another kind of run
    or another model architecture. A cosine schedule takes its length from the current ``cfg.steps``."""
    if state.get("kind") != parts.kind:
        raise ValueError(f"checkpoint is from a {state.get('kind')!r} run, not {parts.kind!r}")
    saved = ModelDescriptor.from_json(state["descriptor"])
    if saved != parts.desc:
        raise ValueError(f"checkpoint model {saved.to_json()} differs from the requested {parts.desc.to_json()}")
    parts.model.load_state_dict(state["model"])
    if parts.ema and state.get("ema") is not None:
        parts.ema.shadow.load_state_dict(state["ema"])
    parts.optimizer.load_state_dict(state["optimizer"])
    parts.scheduler.load_state_dict(state["scheduler"])
    if parts.cfg.schedule == "cosine":
        parts.scheduler.T_max = parts.cfg.steps  # type: ignore[attr-defined]
    parts.scaler.load_state_dict(state["scaler"])
    torch.set_rng_state(state["torch_rng"])
    parts.step, parts.best_psnr, parts.elapsed = int(state["step"]), float(state["best_psnr"]), state["elapsed"]
    parts.load_extra_state(state["extra"])


def save_checkpoint(path: str | os.PathLike[str], state: dict[str, Any]) -> None:
    """Atomically ``torch.save`` ``state`` to ``path``."""
    with atomic_open(path, "wb") as fh:
        torch.save(state, fh)


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load a checkpoint safely (``weights_only=True``); ValueError naming the file on failure."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"checkpoint {p} does not exist")
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(f"cannot load checkpoint {p}: {type(exc).__name__}: {exc}") from None
    if not isinstance(state, dict) or "step" not in state:
        raise ValueError(f"{p} is not an sr-deploy training checkpoint")
    return state
