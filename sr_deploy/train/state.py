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
from collections.abc import Callable
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


#: Settings a resumed run keeps from its checkpoint: they define the model and the optimisation it is in the middle of
#: (``steps``, the cadence, data, device and precision may change; ``init`` no longer matters: the weights are restored)
KEPT_ON_RESUME = ("scale", "num_features", "num_blocks", "batch", "patch", "lr", "schedule", "ema", "seed")


def resumed_config(cfg: TrainConfig, state: dict[str, Any], log: Callable[[str], Any]) -> TrainConfig:
    """``cfg`` with the :data:`KEPT_ON_RESUME` settings of the run in checkpoint ``state``; ``log`` hears which asked
    values were not used (they were silently overridden by the restored optimizer, or crashed a schedule change)."""
    if cfg.steps < int(state["step"]):
        raise ValueError(f"steps {cfg.steps} is below the step the run has reached ({state['step']}): give more steps "
                         "to train longer")
    saved = json.loads(state.get("config") or "{}")
    kept = {name: saved[name] for name in KEPT_ON_RESUME if name in saved}
    changed = [f"{name} {value} (not {getattr(cfg, name)})" for name, value in kept.items()
               if getattr(cfg, name) != value]
    if changed:
        log("resumed with the run's own " + ", ".join(changed) + ": a resumed run keeps its model and optimisation "
            "settings (start a new run to change them)")
    return dataclasses.replace(cfg, **kept)


def scheduler_state(state: dict[str, Any]) -> dict[str, Any]:
    """A saved LR scheduler state for the :class:`torch.optim.lr_scheduler.LambdaLR` every run now uses (a checkpoint
    of an earlier cosine run holds a ``CosineAnnealingLR`` state: its step count and base LRs carry over)."""
    return {"lr_lambdas": [None] * len(state.get("base_lrs", [None])), **state}


def restore_training_state(parts: TrainingParts, state: dict[str, Any]) -> None:
    """Load a :func:`training_state` dict into ``parts``; ValueError when it is from another kind of run
    or another model architecture. The LR schedule follows the current ``cfg.steps``
    (:func:`~sr_deploy.train.config.lr_factor`)."""
    if state.get("kind") != parts.kind:
        raise ValueError(f"checkpoint is from a {state.get('kind')!r} run, not {parts.kind!r}")
    saved = ModelDescriptor.from_json(state["descriptor"])
    if saved != parts.desc:
        raise ValueError(f"checkpoint model {saved.to_json()} differs from the requested {parts.desc.to_json()}")
    parts.model.load_state_dict(state["model"])
    if parts.ema and state.get("ema") is not None:
        parts.ema.shadow.load_state_dict(state["ema"])
    parts.optimizer.load_state_dict(state["optimizer"])
    parts.scheduler.load_state_dict(scheduler_state(state["scheduler"]))
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
