"""Training checkpoints: written atomically, read with ``torch.load(weights_only=True)`` only.

A checkpoint holds only tensors, numbers, strings and plain containers (model, EMA, optimizer and
scheduler states, RNG state, step, descriptor JSON, config), so it never needs unpickling of
arbitrary objects. A kill at any moment leaves the previous checkpoint intact (temp file +
``os.replace``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from sr_deploy.artifacts import atomic_open


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
