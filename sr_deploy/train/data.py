"""A run's training data: the HR training images with their summary, and the step-exact DataLoader of patches."""

from __future__ import annotations

import hashlib
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from sr_deploy.artifacts import sha256_file
from sr_deploy.data.datasets import collect_images
from sr_deploy.train.config import TrainConfig
from sr_deploy.train.distributed import DistInfo
from sr_deploy.train.patches import HRImages, PatchDataset, StepBatchSampler, load_hr_images


def files_digest(paths: list[str]) -> str:
    """sha256 over the training files' names and contents' sha256, in order: identifies the training set."""
    h = hashlib.sha256()
    for p in paths:
        h.update(f"{Path(p).name}:{sha256_file(p)}\n".encode())
    return h.hexdigest()


def ignore_stop_signals(_worker_id: int) -> None:
    """Loader workers ignore Ctrl-C/SIGTERM (sent to the whole process group): the main process
    handles them, saves a checkpoint and shuts the workers down itself."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def load_training_images(cfg: TrainConfig, log: Callable[[str], object]) -> tuple[HRImages, dict[str, Any]]:
    """The HR images of ``cfg.data`` (the embedded train set when empty) at least ``cfg.patch`` px on a side,
    and the data summary recorded in the weights' metadata. ``log`` hears how many were too small."""
    train_paths = collect_images(cfg.data or None, split="train")
    hr = load_hr_images(train_paths, cfg.patch)
    if hr.skipped_small:
        log(f"skipped {len(hr.skipped_small)} training image(s) smaller than {cfg.patch} px")
    summary = {"folders": cfg.data or ["embedded:train"], "images": len(hr.images),
               "skipped_small": len(hr.skipped_small), "files_sha256": files_digest(hr.names)}
    return hr, summary


def make_loader(hr: HRImages, cfg: TrainConfig, start_step: int, dist: DistInfo,
                pin_memory: bool) -> DataLoader[tuple[torch.Tensor, torch.Tensor]]:
    """The batches of steps ``start_step .. cfg.steps-1`` of this rank, made by ``cfg.workers`` loader workers
    (which ignore stop signals)."""
    dataset = PatchDataset(hr, cfg.patch, cfg.scale, cfg.seed)
    sampler = StepBatchSampler(cfg.batch, start_step, cfg.steps, dist.rank, dist.world)
    workers = cfg.workers
    return DataLoader(dataset, batch_sampler=sampler, num_workers=workers,
                      prefetch_factor=4 if workers else None, persistent_workers=False,
                      pin_memory=pin_memory, worker_init_fn=ignore_stop_signals)
