"""Weights I/O: safetensors + JSON sidecar round trip, weights_only checkpoints, refusing pickles."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch

from sr_deploy.artifacts import sha256_file
from sr_deploy.models import ModelDescriptor, WeightsError, load_weights, read_state, save_weights
from tests.helpers import random_srresnet

DESC = ModelDescriptor(scale=2, num_features=8, num_blocks=2, name="tiny-x2")


def outputs(net: torch.nn.Module) -> torch.Tensor:
    x = torch.rand(1, 3, 9, 7, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return net(x)


def test_safetensors_round_trip_gives_identical_outputs(tmp_path: Path) -> None:
    net = random_srresnet(DESC)
    path = save_weights(net, DESC, tmp_path / "tiny.safetensors", note="unit test")
    loaded, desc = load_weights(path)
    assert desc == DESC and not loaded.training
    assert torch.equal(outputs(loaded), outputs(net))
    sidecar = json.loads(path.with_suffix(".json").read_text())
    assert sidecar["descriptor"] == DESC.to_dict()
    assert sidecar["sha256"] == sha256_file(path)
    assert sidecar["note"] == "unit test"
    assert "torch" in sidecar["versions"]
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temporary files


def test_descriptor_embedded_in_safetensors_is_used_without_sidecar(tmp_path: Path) -> None:
    net = random_srresnet(DESC)
    path = save_weights(net, DESC, tmp_path / "tiny.safetensors")
    path.with_suffix(".json").unlink()
    loaded, desc = load_weights(path)
    assert desc == DESC
    assert torch.equal(outputs(loaded), outputs(net))


def test_save_refuses_other_suffixes(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"\.safetensors"):
        save_weights(random_srresnet(DESC), DESC, tmp_path / "tiny.pt")


def test_broken_sidecar(tmp_path: Path) -> None:
    path = save_weights(random_srresnet(DESC), DESC, tmp_path / "tiny.safetensors")
    path.with_suffix(".json").write_text('{"something": "else"}')
    with pytest.raises(WeightsError, match="tiny.json"):
        read_state(path)


def test_weights_that_do_not_match_the_descriptor(tmp_path: Path) -> None:
    net = random_srresnet(DESC)
    path = save_weights(net, ModelDescriptor(scale=2, num_features=16, num_blocks=2), tmp_path / "bad.safetensors")
    with pytest.raises(WeightsError, match="do not match the descriptor") as info:
        load_weights(path)
    assert str(path) in str(info.value)


def test_checkpoint_round_trip(tmp_path: Path) -> None:
    net = random_srresnet(DESC)
    path = tmp_path / "step100.pt"
    torch.save({"model": net.state_dict(), "descriptor": DESC.to_json(), "step": 100,
                "optimizer": {"lr": 1e-4}}, path)
    loaded, desc = load_weights(path)
    assert desc == DESC
    assert torch.equal(outputs(loaded), outputs(net))


def test_checkpoint_prefers_ema_weights(tmp_path: Path) -> None:
    net, ema = random_srresnet(DESC, seed=0), random_srresnet(DESC, seed=1)
    path = tmp_path / "step100.pt"
    torch.save({"model": net.state_dict(), "ema": ema.state_dict(), "descriptor": DESC.to_json()}, path)
    loaded, _ = load_weights(path)
    assert torch.equal(outputs(loaded), outputs(ema))
    assert not torch.equal(outputs(loaded), outputs(net))


def test_checkpoint_without_descriptor(tmp_path: Path) -> None:
    path = tmp_path / "plain.pt"
    torch.save(random_srresnet(DESC).state_dict(), path)
    with pytest.raises(WeightsError, match="needs 'model' and 'descriptor'") as info:
        read_state(path)
    assert str(path) in str(info.value)


def test_checkpoint_with_invalid_descriptor(tmp_path: Path) -> None:
    path = tmp_path / "bad.pt"
    torch.save({"model": {}, "descriptor": '{"scale": 3}'}, path)
    with pytest.raises(WeightsError, match="scale must be 2, 4 or 8") as info:
        read_state(path)
    assert str(path) in str(info.value)


class _Payload:
    """Unpickling this would create ``marker``: proof that a loader executed pickled code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize("writer", ["torch.save", "pickle.dump"])
def test_pickled_objects_are_refused(tmp_path: Path, writer: str) -> None:
    marker = tmp_path / "code-was-executed"
    path = tmp_path / "evil.pt"
    obj = {"model": _Payload(marker), "descriptor": DESC.to_json()}
    if writer == "torch.save":
        torch.save(obj, path)
    else:
        with open(path, "wb") as fh:
            pickle.dump(obj, fh, protocol=2)
    with pytest.raises(WeightsError) as info:
        load_weights(path)
    assert str(path) in str(info.value)
    assert "the pickle holds objects other than tensors (Unsupported global" in str(info.value)
    assert "weights_only` set to `False`" not in str(info.value) and "add_safe_globals" not in str(info.value)
    assert not marker.exists()


def test_files_that_are_not_checkpoints_say_what_they_are(tmp_path: Path) -> None:
    """A PNG or a TorchScript archive was reported as a refused pickle, with torch's advice to load it unsafely."""
    png = tmp_path / "photo.pt"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))  # a PNG's signature
    with pytest.raises(WeightsError, match="photo.pt: not a PyTorch checkpoint \\(neither a zip archive nor a pickle"):
        load_weights(png)
    script = tmp_path / "script.pt"
    torch.jit.trace(torch.nn.Conv2d(3, 3, 1), torch.zeros(1, 3, 4, 4)).save(str(script))
    with pytest.raises(WeightsError, match="script.pt: a TorchScript archive") as info:
        load_weights(script)
    assert "weights_only` set to `False`" not in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.safetensors"
    with pytest.raises(WeightsError, match="does not exist") as info:
        load_weights(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_garbage_file(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"garbage{suffix}"
    path.write_bytes(b"\x00\x01 definitely not weights" * 10)
    with pytest.raises(WeightsError, match="cannot read weights") as info:
        read_state(path)
    assert str(path) in str(info.value)
