"""Third-party checkpoints through spandrel: loading as .pth and .safetensors, descriptor facts, bad files."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path

import pytest
import torch

import sr_deploy as sr
from sr_deploy.artifacts import sha256_file
from sr_deploy.models.thirdparty import (
    _placeholder_torchvision,
    _torchvision_problem,
    import_spandrel,
)
from sr_deploy.models.weights import WeightsError
from tests.helpers import THIRD_PARTY, save_third_party, third_party_model

pytestmark = pytest.mark.skipif(find_spec("spandrel") is None, reason="needs the [models] extra (spandrel)")

#: name -> (spandrel architecture id, scale, size multiple)
EXPECTED = {
    "esrgan-x4": ("ESRGAN", 4, 1),
    "esrgan-x2-unshuffle": ("ESRGAN", 2, 4),
    "compact-x4": ("Compact", 4, 1),
    "swinir-x2": ("SwinIR", 2, 4),  # its attention window
    "span-x4": ("SPAN", 4, 1),
    "omnisr-x4": ("OmniSR", 4, 4),
    "rcan-x2": ("RCAN", 2, 1),
}


def test_every_matrix_architecture_has_an_expectation() -> None:
    assert set(EXPECTED) == set(THIRD_PARTY)


@pytest.mark.parametrize("name", list(THIRD_PARTY))
def test_pth_and_safetensors_state_dicts_load_through_the_public_api(tmp_path: Path, name: str) -> None:
    arch, scale, multiple = EXPECTED[name]
    reference = third_party_model(name)
    outputs = []
    for suffix in (".pth", ".safetensors"):
        path = save_third_party(name, tmp_path / f"{name}{suffix}")
        net, desc = sr.load_weights(path)
        assert (desc.loader, desc.architecture, desc.scale, desc.size_multiple) == ("spandrel", arch, scale, multiple)
        assert desc.source_sha256 == sha256_file(path)
        assert desc.halo is not None and desc.receptive_radius == desc.halo
        assert desc.tiling_max_error is not None and desc.halo_tolerance is not None
        assert ("fp16" in desc.precisions) == desc.supports_half
        x = torch.rand(1, 3, *desc.fit_size(20, 24), generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            outputs.append(net(x))
            expected = reference(x.clone())  # RCAN scales its input in place
        assert outputs[-1].shape == (1, 3, x.shape[2] * scale, x.shape[3] * scale)
        torch.testing.assert_close(outputs[-1], expected, rtol=0, atol=0)
    # the descriptor survives its JSON round trip (it travels in ONNX metadata)
    assert sr.ModelDescriptor.from_json(desc.to_json()) == desc


def test_the_projects_own_weights_still_load_as_before(small_weights: Path) -> None:
    net, desc = sr.load_weights(small_weights)
    assert (desc.loader, desc.architecture, desc.halo) == ("sr-deploy", "srresnet", None)
    assert desc.receptive_radius == 12  # derived from the architecture (4 + 2 * 2 + 1 + 1.5 + 1), not measured


def test_unknown_checkpoint_names_the_file_and_the_keys(tmp_path: Path) -> None:
    path = tmp_path / "mystery.pth"
    torch.save({"encoder.stem.weight": torch.zeros(4, 3, 3, 3), "encoder.stem.bias": torch.zeros(4)}, path)
    with pytest.raises(WeightsError, match=r"mystery\.pth.*does not recognise.*encoder\.stem\.weight"):
        sr.load_weights(path)
    with pytest.raises(sr.ModelFileError, match="mystery.pth"):
        sr.load(path)


class _Payload:
    """Pickles to ``Path.touch(marker)``: unpickling it would create the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (Path.touch, (str(self.marker),))  # type: ignore[return-value]


@pytest.mark.parametrize("suffix", [".pth", ".pt", ".ckpt"])
def test_a_pickled_code_payload_is_refused_without_running_it(tmp_path: Path, suffix: str) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / f"evil{suffix}"
    state = dict(third_party_model("compact-x4").state_dict())
    torch.save({"params_ema": state, "hook": _Payload(marker)}, path)
    with pytest.raises(sr.ModelFileError, match=f"evil{suffix}"):
        sr.load_weights(path)
    with pytest.raises(sr.ModelFileError, match=f"evil{suffix}"):
        sr.export_onnx(path, tmp_path / "evil.onnx")
    assert not marker.exists()
    assert not (tmp_path / "evil.onnx").exists()


def test_spandrel_imports_and_no_placeholder_is_left_behind() -> None:
    spandrel = import_spandrel()
    assert hasattr(spandrel, "ModelLoader")
    for name in ("torchvision", "torchvision.transforms", "torchvision.transforms.functional"):
        assert not hasattr(sys.modules.get(name), "__sr_deploy_placeholder__")
    problem = _torchvision_problem()
    lama = sys.modules["spandrel.architectures.LaMa.__arch.LaMa"]
    # with a working torchvision spandrel got the real one; without, the placeholder that says why
    assert (getattr(lama.rotate, "__module__", "") == "torchvision.transforms.functional") == (problem is None)


def test_the_placeholder_refuses_to_be_used_and_says_why() -> None:
    modules = _placeholder_torchvision("RuntimeError: operator torchvision::nms does not exist")
    functional = modules["torchvision.transforms.functional"]
    assert functional.InterpolationMode.BILINEAR.value == "bilinear"
    with pytest.raises(RuntimeError, match=r"torchvision.*not available here.*nms"):
        functional.rotate(torch.zeros(1), 90)


def test_an_importable_torchvision_is_the_one_spandrel_gets(tmp_path: Path) -> None:
    """A torchvision that imports (here a stand-in package first on the path) is used as is: no placeholder."""
    functional = tmp_path / "torchvision" / "transforms" / "functional.py"
    functional.parent.mkdir(parents=True)
    (tmp_path / "torchvision" / "__init__.py").write_text("")
    (functional.parent / "__init__.py").write_text("")
    functional.write_text("import enum\nclass InterpolationMode(enum.Enum):\n    BILINEAR = 'bilinear'\n"
                          "def rotate(*a): return 'stand-in rotate'\ndef normalize(*a): return 'stand-in'\n")
    code = ("import sys; from sr_deploy.models.thirdparty import import_spandrel; import_spandrel(); "
            "lama = sys.modules['spandrel.architectures.LaMa.__arch.LaMa']; "
            "assert lama.rotate() == 'stand-in rotate', lama.rotate; "
            "assert sys.modules['torchvision.transforms.functional'].rotate is lama.rotate")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
