"""Third-party checkpoints exported to ONNX: parity at two sizes, dynamic or fixed-shape fallback, metadata,
and tiled output equal to whole-image output (exact halos) through PyTorch and ONNX Runtime."""

from __future__ import annotations

import json
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pytest
import torch

import sr_deploy as sr
from sr_deploy.backends import onnx_metadata
from sr_deploy.backends.onnxrt import OrtUpscaler
from sr_deploy.data.crops import parity_inputs
from sr_deploy.models.receptive import EXACT_TOLERANCE
from sr_deploy.runtime.tiling import plan_tiles, upscale_tiled
from tests.helpers import THIRD_PARTY, save_third_party

pytestmark = pytest.mark.skipif(find_spec("spandrel") is None, reason="needs the [models] extra (spandrel)")

#: Architectures whose graphs bake the trace size (and batch) into window Reshapes: exported at a fixed size.
FIXED = {"swinir-x2"}
#: Architectures whose influence never ends (shifted windows, global pooling): tiling is approximate.
APPROXIMATE = {"swinir-x2", "omnisr-x4", "rcan-x2"}


@pytest.fixture(scope="module", params=list(THIRD_PARTY))
def exported(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path, Path]:
    name = request.param
    folder = tmp_path_factory.mktemp(name)
    suffix = ".safetensors" if len(name) % 2 else ".pth"  # both formats across the matrix
    weights = save_third_party(name, folder / f"{name}{suffix}")
    return name, weights, Path(sr.export_onnx(weights, folder / f"{name}.onnx"))


def test_export_passes_parity_at_two_sizes_and_says_what_it_came_from(exported: tuple[str, Path, Path]) -> None:
    name, weights, onnx_path = exported
    props = onnx_metadata.file_props(onnx_path)
    desc = sr.ModelDescriptor.from_json(props[onnx_metadata.DESCRIPTOR])
    assert desc.loader == "spandrel" and props[onnx_metadata.SOURCE_SHA256] == desc.source_sha256
    assert json.loads(props[onnx_metadata.DESCRIPTOR])["architecture"] == desc.architecture
    assert (desc.fixed_size is not None) == (name in FIXED)
    reference_net, _ = sr.load_weights(weights)
    with OrtUpscaler(onnx_path) as ort:
        sizes = [(1, *desc.fixed_size)] * 2 if desc.fixed_size else [(1, *desc.fit_size(24, 28)),
                                                                     (2, *desc.fit_size(17, 21))]
        for batch in parity_inputs(desc.scale, sizes=sizes):
            with torch.no_grad():
                expected = reference_net(torch.from_numpy(batch)).numpy()
            assert np.abs(ort.run(batch) - expected).max() <= 1e-4 * max(1.0, float(np.abs(expected).max()))


def test_tiled_equals_whole_within_the_stated_tolerance(exported: tuple[str, Path, Path]) -> None:
    name, weights, onnx_path = exported
    image = parity_inputs(4, sizes=[(1, 37, 45)])[0][0]
    with sr.load(weights, backend="torch") as torch_up:
        desc = torch_up.descriptor
        assert desc.halo_exact == (name not in APPROXIMATE)
        whole = torch_up.run(np.pad(image, ((0, 0), *[(0, p - s) for p, s in zip(desc.fit_size(37, 45), (37, 45),
                                                                                   strict=True)]), mode="edge")[None])
        whole = whole[0][:, : 37 * desc.scale, : 45 * desc.scale]
        tiled = upscale_tiled(torch_up, image, plan_tiles(torch_up, 37, 45, tile=8))
    with OrtUpscaler(onnx_path) as ort:
        plan = plan_tiles(ort, 37, 45, tile=8)
        assert plan.count > 1 or ort.descriptor.fixed_size is not None or 2 * desc.receptive_radius >= 37
        ort_tiled = upscale_tiled(ort, image, plan)
    assert tiled.shape == whole.shape == ort_tiled.shape
    if desc.halo_exact:
        bound = EXACT_TOLERANCE * max(1.0, float(np.abs(whole).max()))
        assert np.abs(tiled - whole).max() <= bound
        assert np.abs(ort_tiled - whole).max() <= 10 * bound


def test_int8_of_a_fixed_shape_export_calibrates_at_its_size(tmp_path: Path) -> None:
    weights = save_third_party("swinir-x2", tmp_path / "swinir-x2.pth")
    fixed = sr.export_onnx(weights, tmp_path / "swinir.onnx")
    assert fixed.descriptor.fixed_size is not None
    # minmax: the crop size is the calibration set's, whatever the method (entropy's KL search adds ~15 s here)
    int8 = sr.export_int8(fixed, tmp_path / "swinir.int8.onnx", target="ort-cpu", num_images=2, method="minmax")
    assert int8.parity.passed and int8.calibration["crop"] == fixed.descriptor.fixed_size[0]
