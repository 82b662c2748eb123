"""DDP through torchrun on CPU (gloo backend, 2 processes): the real launcher, no home-made one."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from sr_deploy.train.state import load_checkpoint
from tests.train.conftest import TINY_ARGS


def test_torchrun_two_processes_gloo(tiny_folders: tuple[Path, Path], tmp_path: Path) -> None:
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    if torchrun is None:
        pytest.skip("torchrun is not installed beside this Python")
    train, val = tiny_folders
    run = tmp_path / "ddp"
    args = ["train", "srresnet", "--data", str(train), "--val", str(val), *TINY_ARGS, "--out", str(run)]
    args[args.index("--steps") + 1] = "4"
    done = subprocess.run([torchrun, "--standalone", "--nproc-per-node", "2", "-m", "sr_deploy.cli", *args],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    state = load_checkpoint(run / "checkpoint.pt")
    assert state["step"] == 4
    log = pl.read_csv(run / "log.csv")
    assert log["step"].to_list() == [1, 2, 3, 4]
    assert '"world_size": 2' in (run / "last.json").read_text()
