"""The training loop shared by the SRResNet and SRGAN trainers.

It owns everything but the loss: device and precision, DDP, data, EMA, validation, logging,
checkpoints and resume, and stopping cleanly on Ctrl-C/SIGTERM. Subclasses implement
:meth:`Trainer.train_step` and add their own state (e.g. the discriminator).

Run folder: ``checkpoint.pt`` (latest, atomic), ``best.safetensors`` + ``.json`` (best validation
Y-PSNR; EMA weights when EMA is on), ``last.safetensors``, ``log.csv``, ``curves.png``, ``config.json``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from sr_deploy.artifacts import atomic_write_json, sha256_file
from sr_deploy.backends.pytorch import TorchUpscaler
from sr_deploy.data.datasets import collect_images, make_eval_pair
from sr_deploy.hardware import cpu_has_bf16
from sr_deploy.models.descriptor import ModelDescriptor, build_model
from sr_deploy.models.weights import read_state, save_weights
from sr_deploy.models.zoo import resolve_weights
from sr_deploy.scoring import score, super_resolve_pair
from sr_deploy.train.checkpoint import load_checkpoint, save_checkpoint
from sr_deploy.train.distributed import barrier, init_distributed, shutdown
from sr_deploy.train.ema import EMA
from sr_deploy.train.logbook import Logbook
from sr_deploy.train.patches import PatchDataset, StepBatchSampler, load_hr_images
from sr_deploy.vocabulary import AUTO, TRAIN_PRECISIONS

PRECISIONS = (AUTO, *TRAIN_PRECISIONS)
_ModuleT = TypeVar("_ModuleT", bound=nn.Module)


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
    device: str = "auto"
    precision: str = "auto"
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
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.schedule not in ("constant", "cosine"):
            raise ValueError(f"schedule must be 'constant' or 'cosine', got {self.schedule!r}")
        if not 0.0 <= self.ema < 1.0:
            raise ValueError(f"ema decay must be in [0, 1), got {self.ema}")
        for name in ("steps", "batch", "patch", "log_every", "val_every", "ckpt_every"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when available, else ``cpu``."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available")
    return device


def resolve_precision(precision: str, device: str) -> str:
    """``auto`` -> bf16 on CUDA with bf16 or a bf16 CPU, fp16 on older CUDA, else fp32."""
    if precision == "fp16" and not device.startswith("cuda"):
        raise ValueError("fp16 training needs CUDA (CPUs here have no fp16 kernels); use bf16 or fp32")
    if precision != "auto":
        return precision
    if device.startswith("cuda"):
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if cpu_has_bf16() else "fp32"


def _files_digest(paths: list[str]) -> str:
    """sha256 over the training files' names and contents' sha256, in order: identifies the training set."""
    h = hashlib.sha256()
    for p in paths:
        h.update(f"{Path(p).name}:{sha256_file(p)}\n".encode())
    return h.hexdigest()


def _ignore_stop_signals(_worker_id: int) -> None:
    """Loader workers ignore Ctrl-C/SIGTERM (sent to the whole process group): the main process
    handles them, saves a checkpoint and shuts the workers down itself."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


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
        ckpt_path = self.run_dir / "checkpoint.pt"
        if ckpt_path.exists() and not resume:
            raise ValueError(f"{self.run_dir} already holds a run (checkpoint.pt); pass --resume or a new --out")
        torch.manual_seed(cfg.seed)
        self.desc = ModelDescriptor(scale=cfg.scale, num_features=cfg.num_features, num_blocks=cfg.num_blocks,
                                    name=f"{self.kind}-x{cfg.scale}")
        self.model = self.to_device(self.build_generator())
        self.ema = EMA(self.model, cfg.ema) if cfg.ema > 0 else None
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.lr, betas=(0.9, 0.999))
        self.scheduler = self._make_scheduler(self.optimizer)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.precision == "fp16")
        self.setup()
        self.step, self.best_psnr, self.elapsed = 0, -math.inf, 0.0
        self.resumed_from: int | None = None
        if resume and ckpt_path.exists():
            self._load(load_checkpoint(ckpt_path))
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
                raise ValueError(f"--init {self.cfg.init} is {desc.to_json()}, which does not match the requested "
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
        if self.cfg.schedule == "cosine":
            return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=self.cfg.steps, eta_min=1e-7)
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)

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

    def _state(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "step": self.step,
            "descriptor": self.desc.to_json(),
            "config": json.dumps(dataclasses.asdict(self.cfg)),
            "model": self.model.state_dict(),
            "ema": self.ema.shadow.state_dict() if self.ema else None,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "best_psnr": self.best_psnr,
            "elapsed": self.elapsed,
            "extra": self.extra_state(),
        }

    def _load(self, state: dict[str, Any]) -> None:
        if state.get("kind") != self.kind:
            raise ValueError(f"checkpoint is from a {state.get('kind')!r} run, not {self.kind!r}")
        saved = ModelDescriptor.from_json(state["descriptor"])
        if saved != self.desc:
            raise ValueError(f"checkpoint model {saved.to_json()} differs from the requested {self.desc.to_json()}")
        self.model.load_state_dict(state["model"])
        if self.ema and state.get("ema") is not None:
            self.ema.shadow.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.cfg.schedule == "cosine":
            self.scheduler.T_max = self.cfg.steps  # type: ignore[attr-defined]
        self.scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["torch_rng"])
        self.step, self.best_psnr, self.elapsed = int(state["step"]), float(state["best_psnr"]), state["elapsed"]
        self.load_extra_state(state["extra"])

    def save(self) -> None:
        if self.dist.is_main:
            save_checkpoint(self.run_dir / "checkpoint.pt", self._state())

    def eval_model(self) -> nn.Module:
        return self.ema.shadow if self.ema else self.model

    def _metadata(self) -> dict[str, Any]:
        return {"training": {"kind": self.kind, "step": self.step, "data": self.data_summary,
                             "seconds": round(self.elapsed), "precision": self.precision,
                             "device": self.device, "world_size": self.dist.world, "ema": self.cfg.ema,
                             "batch": self.cfg.batch, "patch": self.cfg.patch, "lr": self.cfg.lr}}

    def validate(self) -> dict[str, float]:
        model = self.eval_model()
        upscaler = TorchUpscaler(model, self.desc, device=self.device)
        scores = [score(super_resolve_pair(upscaler, p), p.hr, self.cfg.scale) for p in self.val_pairs]
        model.train()
        if self.ema:
            self.ema.shadow.eval()
        return {k: float(np.mean([s[k] for s in scores])) for k in ("psnr_y", "ssim_y")}

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self._stop_signal = signum

    def _prepare_data(self) -> DataLoader[tuple[torch.Tensor, torch.Tensor]]:
        train_paths = collect_images(self.cfg.data or None, split="train")
        hr = load_hr_images(train_paths, self.cfg.patch)
        if hr.skipped_small:
            self.log(f"skipped {len(hr.skipped_small)} training image(s) smaller than {self.cfg.patch} px")
        self.data_summary = {"folders": self.cfg.data or ["embedded:train"], "images": len(hr.images),
                             "skipped_small": len(hr.skipped_small), "files_sha256": _files_digest(hr.names)}
        val_paths = collect_images(self.cfg.val or None, split="eval")
        if self.cfg.max_val_images:
            val_paths = val_paths[: self.cfg.max_val_images]
        self.val_pairs = [make_eval_pair(p, self.cfg.scale) for p in val_paths]
        dataset = PatchDataset(hr, self.cfg.patch, self.cfg.scale, self.cfg.seed)
        sampler = StepBatchSampler(self.cfg.batch, self.step, self.cfg.steps, self.dist.rank, self.dist.world)
        workers = self.cfg.workers
        return DataLoader(dataset, batch_sampler=sampler, num_workers=workers,
                          prefetch_factor=4 if workers else None, persistent_workers=False,
                          pin_memory=self.device.startswith("cuda"), worker_init_fn=_ignore_stop_signals)

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
                    t0 = time.perf_counter()
                    lr = lr.to(self.device, non_blocking=True).contiguous(memory_format=torch.channels_last)
                    hr = hr.to(self.device, non_blocking=True).contiguous(memory_format=torch.channels_last)
                    losses = self.train_step(lr, hr)
                    self.scheduler.step()
                    if self.ema:
                        self.ema.update(self.model)
                    self.step += 1
                    self.elapsed += time.perf_counter() - t0
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

    def _validate_and_keep(self, row: dict[str, Any]) -> None:
        if not self.dist.is_main:
            return
        val = self.validate()
        row["val_psnr_y"], row["val_ssim_y"] = val["psnr_y"], val["ssim_y"]
        if self.select_best and val["psnr_y"] > self.best_psnr:
            self.best_psnr = val["psnr_y"]
            meta = self._metadata()
            meta["training"]["val"] = {"images": self.cfg.val or ["embedded:eval"], **val}
            save_weights(self.eval_model(), self.desc, self.run_dir / "best.safetensors", **meta)
