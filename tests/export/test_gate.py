from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from sr_deploy.backends.onnxrt import OrtUpscaler
from sr_deploy.compare import Tolerance
from sr_deploy.data.crops import parity_inputs
from sr_deploy.errors import ParityError
from sr_deploy.export.gate import require, run_compare
from tests.helpers import TINY_TRAINED


def test_parity_inputs_are_real_crops_at_two_sizes() -> None:
    batches = parity_inputs(4)
    assert [b.shape for b in batches] == [(1, 3, 40, 56), (2, 3, 27, 33)]
    assert all(b.dtype == np.float32 and 0 <= b.min() and b.max() <= 1 and b.std() > 0.02 for b in batches)
    assert [b.shape for b in parity_inputs(2, static=(64, 48))] == [
        (1, 3, 64, 48),
        (2, 3, 64, 48),
    ]


def test_gate_fails_on_a_broken_node(trained_tiny_onnx: Path, tmp_path: Path) -> None:
    model = onnx.load(str(trained_tiny_onnx))
    conv = next(n for n in model.graph.node if n.op_type == "Conv" and "blocks.1" in n.name)
    init = next(t for t in model.graph.initializer if t.name == conv.input[1])
    init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * 1.01, init.name))
    desc = TINY_TRAINED
    inputs = parity_inputs(desc.scale)
    gate = Tolerance(min_psnr_db=100.0, atol=1e-4)
    with OrtUpscaler(trained_tiny_onnx) as ref, OrtUpscaler(trained_tiny_onnx) as same:
        good = run_compare(ref, same, inputs, gate, "same")
        assert good.passed
        require(good, tmp_path / "x.onnx")
        with OrtUpscaler(model.SerializeToString(), descriptor=desc) as broken:
            bad = run_compare(ref, broken, inputs, gate, "broken")
    assert not bad.passed and all(r["psnr_db"] < 100 for r in bad.rows)
    with pytest.raises(
        ParityError,
        match=r"x.onnx not written: broken \(PSNR >= 100 dB, max-abs <= 0.0001\): "
        r"1x3x40x56: PSNR",
    ):
        require(bad, tmp_path / "x.onnx")
    assert bad.to_dict()["passed"] is False
