"""Training options: their validation and how ``auto`` precision resolves."""

from __future__ import annotations

from pathlib import Path

import pytest

from sr_deploy.train.config import TrainConfig, resolve_precision


def test_precision_resolution() -> None:
    assert resolve_precision("fp32", "cpu") == "fp32"
    assert resolve_precision("auto", "cpu") in ("bf16", "fp32")
    with pytest.raises(ValueError, match="fp16 training needs CUDA"):
        resolve_precision("fp16", "cpu")


@pytest.mark.parametrize("bad", [dict(precision="fp8"), dict(schedule="linear"), dict(ema=1.0), dict(steps=0)])
def test_bad_config_is_refused(bad: dict[str, object], tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        TrainConfig(out=str(tmp_path), **bad)  # type: ignore[arg-type]
