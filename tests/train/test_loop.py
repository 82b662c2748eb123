"""The shared training loop: real optimisation, checkpoints, exact resume, kill -9, signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
import torch

from sr_deploy.models import load_weights
from sr_deploy.train.config import TrainConfig, lr_factor
from sr_deploy.train.srresnet import SRResNetTrainer
from sr_deploy.train.state import load_checkpoint, scheduler_state
from tests.train.conftest import TINY_ARGS

LOSS_COLUMNS = ["step", "loss"]


def _losses(run: Path) -> pl.DataFrame:
    return pl.read_csv(run / "log.csv").select(LOSS_COLUMNS)


def test_steps_lower_the_loss_on_a_real_batch(tiny_config: Callable[..., TrainConfig], tmp_path: Path) -> None:
    trainer = SRResNetTrainer(tiny_config(tmp_path / "r", ema=0.0))
    loader = trainer._prepare_data()
    lr, hr = next(iter(loader))
    before = trainer.train_step(lr, hr)["loss"]
    for _ in range(2):
        trainer.train_step(lr, hr)
    with torch.no_grad():
        after = float(torch.nn.functional.mse_loss(trainer.model(lr), hr))
    assert after < before


def test_run_writes_checkpoint_weights_and_logs(tiny_config: Callable[..., TrainConfig], tmp_path: Path) -> None:
    run = tmp_path / "r"
    summary = SRResNetTrainer(tiny_config(run)).run()
    assert summary["step"] == 6 and not summary["stopped_by_signal"]
    for name in ("checkpoint.pt", "best.safetensors", "best.json", "last.safetensors", "log.csv", "curves.png",
                 "config.json"):
        assert (run / name).is_file(), name
    log = pl.read_csv(run / "log.csv")
    assert log["step"].to_list() == [1, 2, 3, 4, 5, 6]
    assert log.filter(pl.col("val_psnr_y").is_not_null())["step"].to_list() == [3, 6]
    model, desc = load_weights(run / "best.safetensors")
    assert desc.num_blocks == 2 and desc.scale == 4
    ckpt = load_checkpoint(run / "checkpoint.pt")
    assert ckpt["step"] == 6 and ckpt["ema"] is not None


def test_resume_continues_exactly(tiny_config: Callable[..., TrainConfig], tmp_path: Path) -> None:
    SRResNetTrainer(tiny_config(tmp_path / "full")).run()
    SRResNetTrainer(tiny_config(tmp_path / "split", steps=3)).run()
    summary = SRResNetTrainer(tiny_config(tmp_path / "split"), resume=True).run()
    assert summary["step"] == 6
    assert _losses(tmp_path / "split").equals(_losses(tmp_path / "full"))
    full, _ = load_weights(tmp_path / "full" / "last.safetensors")
    split, _ = load_weights(tmp_path / "split" / "last.safetensors")
    for (name, a), b in zip(full.state_dict().items(), split.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_existing_run_needs_resume(tiny_config: Callable[..., TrainConfig], tmp_path: Path) -> None:
    SRResNetTrainer(tiny_config(tmp_path / "r", steps=3)).run()
    with pytest.raises(ValueError, match="resume=True") as raised:
        SRResNetTrainer(tiny_config(tmp_path / "r"))
    assert "--" not in str(raised.value)  # library errors name parameters, not command-line flags


def test_resume_keeps_the_runs_model_and_optimisation(tiny_config: Callable[..., TrainConfig], tmp_path: Path) -> None:
    """Resuming a cosine run without its schedule crashed (KeyError 'lr_lambdas'), a new lr was silently replaced by
    the restored optimizer's while config.json recorded it, and more steps left a cosine run at its last LR."""
    run = tmp_path / "r"
    SRResNetTrainer(tiny_config(run, steps=3, schedule="cosine")).run()
    notes: list[str] = []
    trainer = SRResNetTrainer(tiny_config(run, steps=6, num_blocks=3, lr=0.01), resume=True, log=notes.append)
    assert (trainer.cfg.schedule, trainer.cfg.num_blocks, trainer.cfg.lr) == ("cosine", 2, 1e-3)
    said = next(n for n in notes if n.startswith("resumed with the run's own"))
    assert "num_blocks 2 (not 3)" in said and "lr 0.001 (not 0.01)" in said and "schedule cosine (not constant)" in said
    trainer.run()
    config = json.loads((run / "config.json").read_text())
    assert (config["lr"], config["schedule"], config["num_blocks"], config["steps"]) == (1e-3, "cosine", 2, 6)
    log = pl.read_csv(run / "log.csv")  # the cosine over the new 6 steps, from step 4 on
    assert log["lr"].to_list()[3:] == pytest.approx([1e-3 * lr_factor(trainer.cfg, s) for s in (4, 5, 6)])
    with pytest.raises(ValueError, match="steps 2 is below the step the run has reached"):
        SRResNetTrainer(tiny_config(run, steps=2), resume=True)


def test_sigterm_saves_a_checkpoint_then_resume_finishes(tiny_config: Callable[..., TrainConfig],
                                                         tmp_path: Path) -> None:
    run = tmp_path / "r"
    trainer = SRResNetTrainer(tiny_config(run, steps=50, ckpt_every=1000))
    original = trainer.train_step

    def step_then_signal(lr: torch.Tensor, hr: torch.Tensor) -> dict[str, float]:
        out = original(lr, hr)
        if trainer.step == 1:  # the loop increments after this returns: stop after step 2
            os.kill(os.getpid(), signal.SIGTERM)
        return out

    trainer.train_step = step_then_signal  # type: ignore[method-assign]
    summary = trainer.run()
    assert summary["stopped_by_signal"] and summary["step"] == 2
    assert load_checkpoint(run / "checkpoint.pt")["step"] == 2
    assert SRResNetTrainer(tiny_config(run, steps=4), resume=True).run()["step"] == 4


def _cli(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "sr_deploy.cli", *args]


def test_kill_9_mid_training_then_resume(tiny_folders: tuple[Path, Path], tmp_path: Path) -> None:
    """A real subprocess killed with SIGKILL: the checkpoint is intact and resume matches a clean run."""
    train, val = tiny_folders
    common = ["train", "srresnet", "--data", str(train), "--val", str(val), *TINY_ARGS]
    common[common.index("--steps") + 1] = "400"
    common[common.index("--ckpt-every") + 1] = "2"
    common[common.index("--val-every") + 1] = "1000"
    run = tmp_path / "killed"
    proc = subprocess.Popen(_cli([*common, "--out", str(run)]), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline:
        if (run / "checkpoint.pt").exists() and load_checkpoint(run / "checkpoint.pt")["step"] >= 4:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    state = load_checkpoint(run / "checkpoint.pt")
    killed_at = state["step"]
    assert killed_at >= 4 and killed_at % 2 == 0
    target = killed_at + 4
    common[common.index("--steps") + 1] = str(target)
    done = subprocess.run(_cli([*common, "--out", str(run), "--resume"]), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    reference = tmp_path / "reference"
    ref = subprocess.run(_cli([*common, "--out", str(reference)]), capture_output=True, text=True)
    assert ref.returncode == 0, ref.stderr
    assert _losses(run).equals(_losses(reference))


def test_ctrl_c_to_the_process_group_with_loader_workers_saves_a_checkpoint(tiny_folders: tuple[Path, Path],
                                                                            tmp_path: Path) -> None:
    """Ctrl-C reaches the loader workers too; the run must still save and exit cleanly (code 130)."""
    train, val = tiny_folders
    args = ["train", "srresnet", "--data", str(train), "--val", str(val), *TINY_ARGS, "--out", str(tmp_path / "r")]
    for flag, value in (("--steps", "100000"), ("--workers", "1"), ("--ckpt-every", "100000"),
                        ("--val-every", "100000"), ("--log-every", "100000")):
        args[args.index(flag) + 1] = value
    proc = subprocess.Popen(_cli(args), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and not (tmp_path / "r" / "config.json").exists():
        time.sleep(0.05)
    time.sleep(1.0)  # a few training steps
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert load_checkpoint(tmp_path / "r" / "checkpoint.pt")["step"] >= 1


def test_release_ships_best_weights_with_metadata(tiny_config: Callable[..., TrainConfig], tmp_path: Path) -> None:
    from sr_deploy.artifacts import sha256_file
    from sr_deploy.train.release import release_run

    run = tmp_path / "r"
    SRResNetTrainer(tiny_config(run, steps=3)).run()
    out = release_run(run, "tiny-x4", {"Set5": {"psnr_y": 1.0}}, dest=tmp_path / "released")
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["sha256"] == sha256_file(out)
    assert meta["descriptor"]["name"] == "tiny-x4"
    assert meta["training"]["step"] == 3 and meta["training"]["data"]["images"] == 4
    assert len(meta["training"]["data"]["files_sha256"]) == 64
    assert (tmp_path / "released" / "tiny-x4.log.csv").is_file()
    model, desc = load_weights(out)
    assert desc.name == "tiny-x4"
    assert "init" not in meta["training"]
    # a run warm-started from the release (by path) records where it started, with that model's own summary
    warm = tmp_path / "w"
    SRResNetTrainer(tiny_config(warm, steps=2, init=str(out))).run()
    meta2 = json.loads(release_run(warm, "tiny-x4b", dest=tmp_path / "released").with_suffix(".json").read_text())
    assert meta2["training"]["init"]["sha256"] == meta["sha256"]
    assert meta2["training"]["init"]["training"]["step"] == 3 and meta2["training"]["step"] == 2


def test_init_accepts_a_shipped_model_name(tiny_config: Callable[..., TrainConfig], tmp_path: Path) -> None:
    # the name resolves to the shipped weights, whose 16 x 64 architecture the tiny run does not match
    with pytest.raises(ValueError, match=r"^init srresnet-x4 is .*does not match"):
        SRResNetTrainer(tiny_config(tmp_path / "r", init="srresnet-x4"))


def test_a_checkpoint_of_an_earlier_cosine_run_resumes() -> None:
    """Earlier cosine runs saved a CosineAnnealingLR state; the LambdaLR every run uses now takes its step count."""
    old = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(old, T_max=10, eta_min=1e-7)
    for _ in range(4):
        old.step()
        cosine.step()
    new = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    schedule = torch.optim.lr_scheduler.LambdaLR(new, lambda step: 1.0)
    schedule.load_state_dict(scheduler_state(cosine.state_dict()))
    assert schedule.last_epoch == 4 and schedule.base_lrs == [1e-3]
