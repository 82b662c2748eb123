"""``UpscaleService.open``: what ``GET /v1/model`` reports about the file it serves (route, measured drop)."""

from __future__ import annotations

import json
import math
from pathlib import Path

from sr_deploy.backends import onnx_metadata as meta
from sr_deploy.export.int8 import export_int8
from sr_deploy.serve import ServeConfig, UpscaleService


def test_the_served_drop_is_the_files_recorded_one(small_onnx: Path, tmp_path: Path) -> None:
    int8 = export_int8(small_onnx, tmp_path / "m.int8.onnx", target="ort-cpu", num_images=1,
                       max_plain_drop=math.inf).path
    recorded = json.loads(meta.file_props(int8)[meta.CALIBRATION])["psnr_drop_db"]
    for model, backend, drop in ((int8, "onnxruntime", recorded), (small_onnx, "auto", 0.0)):
        service = UpscaleService.open(ServeConfig(model=str(model), backend=backend, window=40))
        try:
            info = service.info
            assert info["psnr_drop_db"] == drop and math.isfinite(drop), info
            assert info["artifact"] == model.name and info["artifact_kind"] == "onnx"
        finally:
            service.upscaler.close()
