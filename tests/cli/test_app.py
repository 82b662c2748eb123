"""The assembled ``sr-deploy`` app: every command registered, help texts built from the vocabulary,
``python -m sr_deploy.cli`` as an entry point."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
import typer
from typer.testing import CliRunner

from sr_deploy.cli import app, main
from sr_deploy.cli.common import state
from sr_deploy.runtime.select import BACKENDS
from sr_deploy.vocabulary import AUTO, PRECISIONS, TRAIN_PRECISIONS
from sr_deploy.vocabulary import BACKENDS as ENGINES

runner = CliRunner()

COMMANDS = ("evaluate", "build", "bench", "report", "pipeline", "demo", "upscale", "train", "export")


def test_help_lists_commands() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "evaluate" in result.stdout


def test_every_command_and_sub_command_has_help() -> None:
    for command in [*COMMANDS, "train srresnet", "train srgan", "train release", "export onnx", "export fp16",
                    "export int8"]:
        result = runner.invoke(app, [*command.split(), "--help"])
        assert result.exit_code == 0, (command, result.output)
        assert "Usage:" in result.stdout, command


def option_help(*names: str) -> str:
    """The help text of option ``names[-1]`` of the (sub-)command ``names[:-1]``."""
    command = typer.main.get_command(app)
    for name in names[:-1]:
        command = command.commands[name]  # type: ignore[attr-defined]
    return next(p.help or "" for p in command.params if p.name == names[-1])


def test_choices_in_help_come_from_the_vocabulary() -> None:
    assert option_help("upscale", "backend") == " | ".join(BACKENDS)
    assert option_help("upscale", "precision").startswith(" | ".join(PRECISIONS) + ";")
    assert option_help("bench", "backends") == "Comma list: " + ",".join(ENGINES)
    assert option_help("bench", "precisions") == "Comma list: " + ",".join(PRECISIONS)
    for command in ("srresnet", "srgan"):
        assert option_help("train", command, "precision").startswith(" | ".join((AUTO, *TRAIN_PRECISIONS)))


def test_python_dash_m_runs_the_app() -> None:
    done = subprocess.run([sys.executable, "-m", "sr_deploy.cli", "--help"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert all(command in done.stdout for command in COMMANDS)


def results_folder_with_wrong_columns(folder: Path) -> Path:
    """A results folder whose files all exist and parse but whose tables lack the expected columns: the
    report code hits a polars ColumnNotFoundError, which no command handles."""
    for table in ("variants", "parity", "accuracy", "latency"):
        pl.DataFrame({"x": [1]}).write_parquet(folder / f"{table}.parquet")
    for name in ("environment", "config"):
        (folder / f"{name}.json").write_text("{}")
    return folder


def test_unexpected_error_is_one_line_without_traceback(tmp_path: Path) -> None:
    folder = results_folder_with_wrong_columns(tmp_path)
    done = subprocess.run([sys.executable, "-m", "sr_deploy.cli", "report", str(folder)],
                          capture_output=True, text=True)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith("error: ColumnNotFoundError: ")
    assert done.stderr.rstrip().endswith("(run with --debug for the traceback)")


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    folder = results_folder_with_wrong_columns(tmp_path)
    done = subprocess.run([sys.executable, "-m", "sr_deploy.cli", "--debug", "report", str(folder)],
                          capture_output=True, text=True)
    assert done.returncode == 1
    assert "Traceback (most recent call last)" in done.stderr and "ColumnNotFoundError" in done.stderr
    assert "run with --debug" not in done.stderr


def test_main_passes_usage_errors_and_exits_through(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(state, "debug", False)
    monkeypatch.setattr(sys, "argv", ["sr-deploy", "--debug", "report"])  # neither RESULTS_DIR nor --compare
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == 2
    monkeypatch.setattr(sys, "argv", ["sr-deploy", "evaluate", "--model", "bicubic", "--scale", "0"])
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == 2


def test_ctrl_c_stops_cleanly_with_complete_outputs(tmp_path: Path) -> None:
    import os
    import signal
    import time

    import numpy as np

    from sr_deploy.data.image_io import read_image, write_image
    from tests.helpers import save_tiny_model

    weights = save_tiny_model(tmp_path / "tiny.safetensors")
    rng = np.random.default_rng(0)
    inputs = tmp_path / "in"
    for i in range(60):
        write_image(inputs / f"{i:02d}.png", rng.integers(0, 256, (160, 160, 3), dtype=np.uint8))
    out = tmp_path / "out"
    child = subprocess.Popen([sys.executable, "-m", "sr_deploy.cli", "upscale", str(inputs), "-o", str(out),
                              "--model", str(weights), "--backend", "torch", "--precision", "fp32"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not list(out.glob("*.png")) and time.monotonic() < deadline and child.poll() is None:
            time.sleep(0.02)
        child.send_signal(signal.SIGINT)
        stdout, stderr = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
    written = sorted(out.glob("*.png"))
    assert child.returncode == 130, (stdout, stderr)
    assert "interrupted" in stdout + stderr and "Traceback" not in stdout + stderr
    assert 0 < len(written) < 60  # stopped mid-job
    assert not [p for p in os.listdir(out) if p.endswith(".tmp")]  # no half-written file left behind
    for p in written:
        assert read_image(p).shape[:2] == (640, 640)  # every file that exists is whole
