"""The training loop shared by the SRResNet and SRGAN trainers: the :class:`Trainer`, its hooks, its progress bar
and its stopping cleanly on Ctrl-C/SIGTERM.

The Trainer puts the parts together: device and precision (:mod:`~sr_deploy.train.config`), DDP, EMA, data
(:mod:`~sr_deploy.train.data`), validation and keep-best (:mod:`~sr_deploy.train.validation`), logging, and
checkpoints and resume (:mod:`~sr_deploy.train.state`). Subclasses implement :meth:`Trainer.train_step` and add
their own state (e.g. the discriminator).

Run folder: ``checkpoint.pt`` (latest, atomic), ``best.safetensors`` + ``.json`` (best validation
Y-PSNR; EMA weights when EMA is on), ``last.safetensors``, ``log.csv``, ``curves.png``, ``config.json``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import signal
import time
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from sr_deploy.artifacts import atomic_write_json
from sr_deploy.models.descriptor import ModelDescriptor, build_model
from sr_deploy.models.weights import read_state, save_weights
from sr_deploy.models.zoo import resolve_weights
from sr_deploy.train.config import TrainConfig, lr_factor, resolve_device, resolve_precision
from sr_deploy.train.data import load_training_images, make_loader
from sr_deploy.train.distributed import barrier, init_distributed, shutdown
from sr_deploy.train.ema import EMA
from sr_deploy.train.logbook import Logbook
from sr_deploy.train.state import (
    CHECKPOINT,
    load_checkpoint,
    restore_training_state,
    resumed_config,
    save_checkpoint,
    training_state,
)
from sr_deploy.train.validation import evaluate, keep_best, validation_pairs

_ModuleT = TypeVar("_ModuleT", bound=nn.Module)


class Trainer:
    """Base trainer. Subclasses set ``kind`` and implement :meth:`train_step`."""

    kind = "base"
    select_best = True

    def __init__(self, cfg: TrainConfig, resume: bool = False, log: Any = print) -> None:
        self.cfg, self.log = cfg, log
        self.run_dir = Path(cfg.out)
        self.device = resolve_device(cfg.device)
        self.precision = resolve_precision(cfg.precision, self.device)
        self.dist = init_distributed(self.device)
        if self.device == "cuda" and self.dist.enabled:
            self.device = f"cuda:{self.dist.local_rank}"
        ckpt_path = self.run_dir / CHECKPOINT
        if ckpt_path.exists() and not resume:
            raise ValueError(f"{self.run_dir} already holds a run ({CHECKPOINT}); continue it with resume=True "
                             "or choose another out folder")
        checkpoint = load_checkpoint(ckpt_path) if resume and ckpt_path.exists() else None
        if checkpoint is not None:  # the run's own model and optimisation settings; the rest as asked now
            self.cfg = cfg = resumed_config(cfg, checkpoint, log)
        torch.manual_seed(cfg.seed)
        self.desc = ModelDescriptor(scale=cfg.scale, num_features=cfg.num_features, num_blocks=cfg.num_blocks,
                                    name=f"{self.kind}-x{cfg.scale}")
        self.model = self.to_device(self.build_generator())
        self.ema = EMA(self.model, cfg.ema) if cfg.ema > 0 else None
        self.optimizer: torch.optim.Optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.lr, betas=(0.9, 0.999))
        self.scheduler = self._make_scheduler(self.optimizer)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.precision == "fp16")
        self.setup()
        self.step, self.best_psnr, self.elapsed = 0, -math.inf, 0.0
        self.resumed_from: int | None = None
        if checkpoint is not None:
            restore_training_state(self, checkpoint)
            self.resumed_from = self.step
        self.net: nn.Module = (
            DistributedDataParallel(self.model, device_ids=[self.dist.local_rank] if self.device != "cpu" else None)
            if self.dist.enabled else self.model
        )
        self.logbook = Logbook(self.run_dir, self.resumed_from)
        self._stop_signal: int | None = None

    # ---- hooks for subclasses -------------------------------------------------------------
    def build_generator(self) -> nn.Module:
        """A fresh network, or the weights of ``cfg.init`` (a file or a shipped model name; it must match
        the requested architecture)."""
        net = build_model(self.desc)
        if self.cfg.init:
            state, desc = read_state(resolve_weights(self.cfg.init))
            mine = (self.desc.scale, self.desc.num_features, self.desc.num_blocks)
            if (desc.scale, desc.num_features, desc.num_blocks) != mine:
                raise ValueError(f"init {self.cfg.init} is {desc.to_json()}, which does not match the requested "
                                 f"scale/width/depth {mine}")
            net.load_state_dict(state)
        return net

    def to_device(self, module: _ModuleT) -> _ModuleT:
        """``module``, moved in place to the training device in channels_last (NHWC) memory format."""
        # torch's stubs leave memory_format out of Module.to's overloads; the runtime accepts it
        module.to(self.device, memory_format=torch.channels_last)  # type: ignore[call-overload]
        return module

    def setup(self) -> None:
        """Create extra modules/optimizers (called before resume)."""

    def extra_state(self) -> dict[str, Any]:
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`extra_state` saved."""

    def train_step(self, lr: torch.Tensor, hr: torch.Tensor) -> dict[str, float]:
        """One optimisation step on a batch; returns named loss values."""
        raise NotImplementedError

    # ---- machinery ----------------------------------------------------------------------------
    def _make_scheduler(self, optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LRScheduler:
        """The LR schedule of ``optimizer``: a factor of the step, read from ``cfg`` at each step (closed form), so a
        resumed run with more ``steps`` follows the cosine over its new length."""
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(self.cfg, step))

    def autocast(self) -> contextlib.AbstractContextManager[object]:
        if self.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast("cuda" if self.device.startswith("cuda") else "cpu", dtype=dtype)

    def optimize(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        """Backward + step with the fp16 grad scaler when needed."""
        optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(optimizer)
        self.scaler.update()

    def save(self) -> None:
        """Write ``checkpoint.pt`` (main process only)."""
        if self.dist.is_main:
            save_checkpoint(self.run_dir / CHECKPOINT, training_state(self))

    def eval_model(self) -> nn.Module:
        return self.ema.shadow if self.ema else self.model

    def _metadata(self) -> dict[str, Any]:
        return {"training": {"kind": self.kind, "step": self.step, "data": self.data_summary,
                             "seconds": round(self.elapsed), "precision": self.precision,
                             "device": self.device, "world_size": self.dist.world, "ema": self.cfg.ema,
                             "batch": self.cfg.batch, "patch": self.cfg.patch, "lr": self.cfg.lr}}

    def validate(self) -> dict[str, float]:
        """Mean validation ``psnr_y``/``ssim_y`` of :meth:`eval_model`; the model is back in train mode after."""
        val = evaluate(self.eval_model(), self.desc, self.val_pairs, self.device)
        self.model.train()
        if self.ema:
            self.ema.shadow.eval()
        return val

    def _validate_and_keep(self, row: dict[str, Any]) -> None:
        if not self.dist.is_main:
            return
        val = self.validate()
        row["val_psnr_y"], row["val_ssim_y"] = val["psnr_y"], val["ssim_y"]
        if self.select_best:
            self.best_psnr = keep_best(val, self.best_psnr, self.eval_model(), self.desc, self.run_dir,
                                       self._metadata(), self.cfg.val)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self._stop_signal = signum

    def _prepare_data(self) -> DataLoader[tuple[torch.Tensor, torch.Tensor]]:
        """The loader from the current step on; sets ``data_summary`` and ``val_pairs``."""
        hr, self.data_summary = load_training_images(self.cfg, self.log)
        self.val_pairs = validation_pairs(self.cfg)
        return make_loader(hr, self.cfg, self.step, self.dist, pin_memory=self.device.startswith("cuda"))

    def _train_batch(self, lr: torch.Tensor, hr: torch.Tensor) -> dict[str, float]:
        """One step on a loader batch: to the device (channels_last), :meth:`train_step`, the LR schedule and
        the EMA; counts the step and its time."""
        t0 = time.perf_counter()
        lr = lr.to(self.device, non_blocking=True).contiguous(memory_format=torch.channels_last)
        hr = hr.to(self.device, non_blocking=True).contiguous(memory_format=torch.channels_last)
        losses = self.train_step(lr, hr)
        self.scheduler.step()
        if self.ema:
            self.ema.update(self.model)
        self.step += 1
        self.elapsed += time.perf_counter() - t0
        return losses

    def run(self) -> dict[str, Any]:
        """Train until ``cfg.steps`` (or a stop signal); returns a summary dict."""
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        cfg = self.cfg
        loader = self._prepare_data()
        if self.dist.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_json(self.run_dir / "config.json", {"kind": self.kind, **dataclasses.asdict(cfg)})
        old = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        self.model.train()
        sums: dict[str, float] = {}
        count, t_interval, images = 0, time.perf_counter(), 0
        progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                            TextColumn("{task.completed}/{task.total}"), TextColumn("{task.fields[info]}"),
                            TimeElapsedColumn(), TimeRemainingColumn(), disable=not self.dist.is_main)
        stopped = False
        try:
            with progress:
                task = progress.add_task(f"train {self.kind}", total=cfg.steps, completed=self.step, info="")
                for lr, hr in loader:
                    losses = self._train_batch(lr, hr)
                    for k, v in losses.items():
                        sums[k] = sums.get(k, 0.0) + v
                    count += 1
                    images += lr.shape[0] * self.dist.world
                    if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                        rate = images / max(time.perf_counter() - t_interval, 1e-9)
                        row: dict[str, Any] = {"step": self.step, **{k: v / count for k, v in sums.items()},
                                               "lr": self.scheduler.get_last_lr()[0], "images_per_s": rate,
                                               "val_psnr_y": None, "val_ssim_y": None}
                        if self.step % cfg.val_every == 0 or self.step == cfg.steps:
                            self._validate_and_keep(row)
                        self.logbook.add(row)
                        if self.dist.is_main:
                            self.logbook.write()
                        progress.update(task, info=f"loss {row[next(iter(losses))]:.5f} {rate:.1f} img/s"
                                        + (f" val {row['val_psnr_y']:.2f} dB" if row["val_psnr_y"] else ""))
                        sums, count, t_interval, images = {}, 0, time.perf_counter(), 0
                    if self.step % cfg.ckpt_every == 0:
                        self.save()
                    progress.update(task, completed=self.step)
                    if self._stop_signal is not None:
                        stopped = True
                        break
        finally:
            for s, h in old.items():
                signal.signal(s, h)
        self.save()
        if self.dist.is_main:
            save_weights(self.eval_model(), self.desc, self.run_dir / "last.safetensors", **self._metadata())
        barrier(self.dist)
        shutdown(self.dist)
        last_val = [r["val_psnr_y"] for r in self.logbook.rows if r.get("val_psnr_y") is not None]
        return {"step": self.step, "stopped_by_signal": stopped, "best_val_psnr_y": self.best_psnr,
                "last_val_psnr_y": last_val[-1] if last_val else math.nan,
                "seconds": self.elapsed, "run_dir": str(self.run_dir), "precision": self.precision,
                "device": self.device}
