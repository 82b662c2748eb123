"""Validation during training: the validation pairs, the eval model's Y-PSNR/SSIM on them, and
``best.safetensors`` kept at the best validation Y-PSNR."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from sr_deploy.backends.pytorch import TorchUpscaler
from sr_deploy.data.datasets import EvalPair, collect_images, make_eval_pair
from sr_deploy.models.descriptor import ModelDescriptor
from sr_deploy.models.weights import save_weights
from sr_deploy.scoring import score, super_resolve_pair
from sr_deploy.train.config import TrainConfig

BEST_WEIGHTS = "best.safetensors"


def validation_pairs(cfg: TrainConfig) -> list[EvalPair]:
    """The evaluation pairs of ``cfg.val`` (the embedded eval set when empty), the first
    ``cfg.max_val_images`` of them when that is set."""
    val_paths = collect_images(cfg.val or None, split="eval")
    if cfg.max_val_images:
        val_paths = val_paths[: cfg.max_val_images]
    return [make_eval_pair(p, cfg.scale) for p in val_paths]


def evaluate(model: nn.Module, desc: ModelDescriptor, pairs: Sequence[EvalPair], device: str) -> dict[str, float]:
    """Mean ``psnr_y`` and ``ssim_y`` of ``model`` over ``pairs`` (it is left in eval mode)."""
    upscaler = TorchUpscaler(model, desc, device=device)
    scores = [score(super_resolve_pair(upscaler, p), p.hr, desc.scale) for p in pairs]
    return {k: float(np.mean([s[k] for s in scores])) for k in ("psnr_y", "ssim_y")}


def keep_best(val: dict[str, float], best_psnr: float, model: nn.Module, desc: ModelDescriptor, run_dir: Path,
              metadata: dict[str, Any], val_folders: Sequence[str]) -> float:
    """Write ``run_dir/best.safetensors`` when ``val["psnr_y"]`` beats ``best_psnr``, with ``metadata`` plus the
    validation scores under ``training.val``; returns the best validation Y-PSNR so far."""
    if val["psnr_y"] > best_psnr:
        meta = {**metadata, "training": {**metadata["training"], "val": {"images": list(val_folders) or
                                                                         ["embedded:eval"], **val}}}
        save_weights(model, desc, run_dir / BEST_WEIGHTS, **meta)
        return val["psnr_y"]
    return best_psnr
