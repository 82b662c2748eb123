"""The model zoo: shipped models addressed by name, intact (sha256 in their metadata), and better than bicubic."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sr_deploy.artifacts import sha256_file
from sr_deploy.data import embedded_images
from sr_deploy.data.datasets import collect_images
from sr_deploy.models import load_weights, released_models, resolve_weights
from sr_deploy.models.zoo import RELEASED_DIR
from sr_deploy.runtime import load
from sr_deploy.scoring import evaluate

SHIPPED = released_models()


def test_unknown_name_lists_shipped_models() -> None:
    with pytest.raises(FileNotFoundError) as info:
        resolve_weights("no-such-model-x4")
    message = str(info.value)
    assert "'no-such-model-x4'" in message
    shipped = released_models()
    assert shipped == sorted(p.stem for p in RELEASED_DIR.glob("*.safetensors"))
    for name in shipped:
        assert name in message
    if not shipped:
        assert "shipped: none" in message


def test_shipped_names_resolve_to_their_files() -> None:
    for name in released_models():
        assert resolve_weights(name) == RELEASED_DIR / f"{name}.safetensors"


def test_existing_path_is_returned(tmp_path: Path) -> None:
    path = tmp_path / "mine.safetensors"
    path.write_bytes(b"")
    assert resolve_weights(path) == path
    assert resolve_weights(str(path)) == path


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_weights_match_their_release_metadata(name: str) -> None:
    weights = RELEASED_DIR / f"{name}.safetensors"
    meta = json.loads(weights.with_suffix(".json").read_text())
    assert meta["sha256"] == sha256_file(weights)
    assert meta["descriptor"]["name"] == name
    assert meta["training"]["step"] > 0 and meta["training"]["data"]["images"] > 0
    model, desc = load_weights(weights)
    assert desc.name == name and sum(p.numel() for p in model.parameters()) > 1_000_000


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model_beats_bicubic_on_held_out_images(name: str) -> None:
    """On the embedded evaluation photos (never used for training), by a clear margin."""
    images = embedded_images("eval")
    model = evaluate(load(name, backend="torch", precision="fp32", device="cpu"), images)
    bicubic = evaluate(load("bicubic", scale=model_scale(name)), images)
    assert float(model["psnr_y"].mean()) > float(bicubic["psnr_y"].mean()) + 0.5  # type: ignore[arg-type]


def model_scale(name: str) -> int:
    return int(json.loads((RELEASED_DIR / f"{name}.json").read_text())["descriptor"]["scale"])


def test_the_default_model_is_shipped() -> None:
    if not SHIPPED:
        pytest.skip("no model shipped in this checkout yet")
    assert "srresnet-x4" in SHIPPED


def test_shipped_x4_reproduces_its_recorded_set5_score(datasets_dir: Path) -> None:
    """The release metadata's Set5 numbers come back from the shipped file, and meet the first bar (31.0 dB)."""
    recorded = json.loads((RELEASED_DIR / "srresnet-x4.json").read_text())["evaluation"]["Set5"]
    images = collect_images([datasets_dir / "Set5" / "HR"])
    scores = evaluate(load("srresnet-x4", backend="torch", precision="fp32", device="cpu"), images)
    assert float(scores["psnr_y"].mean()) == pytest.approx(recorded["psnr_y"], abs=1e-3)  # type: ignore[arg-type]
    assert float(scores["ssim_y"].mean()) == pytest.approx(recorded["ssim_y"], abs=1e-4)  # type: ignore[arg-type]
    assert recorded["psnr_y"] >= 31.0
