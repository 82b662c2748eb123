"""Engine sidecars, engine cache names and load-time compatibility decisions (pure Python)."""

from __future__ import annotations

import dataclasses
import json
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sr_deploy.backends.trt_metadata import (
    BuildOptions,
    EngineMetadata,
    EngineMetadataError,
    cache_file_name,
    check_compatible,
    incompatibility,
    read_metadata,
    rebuild_command,
    sidecar_path,
    stale_reason,
    write_metadata,
)
from sr_deploy.backends.trt_profiles import Profile
from sr_deploy.cli import app
from sr_deploy.hardware import GpuInfo
from sr_deploy.models.descriptor import ModelDescriptor

A100 = GpuInfo("NVIDIA A100-SXM4-80GB", (8, 0))
A30 = GpuInfo("NVIDIA A30", (8, 0))
H100 = GpuInfo("NVIDIA H100 80GB HBM3", (9, 0))
T4 = GpuInfo("Tesla T4", (7, 5))
OPTIONS = BuildOptions(profiles=(Profile.parse("1x3x32x32:1x3x256x256:4x3x720x1280"),))
SHA = "ab" * 32


def meta(**changes: object) -> EngineMetadata:
    base = EngineMetadata(
        tensorrt_version="10.8.0.43",
        gpu=A100,
        precision="fp16",
        onnx_sha256=SHA,
        onnx_path="models/x4-fp16.onnx",
        input_name="lr",
        options=OPTIONS,
        descriptor=ModelDescriptor(num_blocks=2).to_dict(),
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_build_options_validate() -> None:
    with pytest.raises(ValueError, match="0..5"):
        BuildOptions(OPTIONS.profiles, opt_level=6)
    with pytest.raises(ValueError, match="hardware_compat"):
        BuildOptions(OPTIONS.profiles, hardware_compat="hopper+")
    with pytest.raises(ValueError, match="positive"):
        BuildOptions(OPTIONS.profiles, workspace_gb=0)
    with pytest.raises(ValueError, match="at least one"):
        BuildOptions(())


def test_sidecar_roundtrip(tmp_path: Path) -> None:
    engine = tmp_path / "m.engine"
    m = meta(options=BuildOptions(OPTIONS.profiles, 5, 2.5, True, "ampere+"), timing_cache="t.cache")
    path = write_metadata(engine, m)
    assert path == sidecar_path(engine) == tmp_path / "m.engine.json"
    d = json.loads(path.read_text())
    assert d["tensorrt_version"] == "10.8.0.43" and d["gpu"] == {"name": A100.name, "compute_capability": [8, 0]}
    assert d["precision"] == "fp16" and d["options"]["profiles"] == ["1x3x32x32:1x3x256x256:4x3x720x1280"]
    assert d["sr_deploy_version"] and d["onnx_sha256"] == SHA
    assert read_metadata(engine) == m


def test_missing_or_broken_sidecar_names_the_file(tmp_path: Path) -> None:
    engine = tmp_path / "m.engine"
    with pytest.raises(EngineMetadataError, match="m.engine.json is missing.*sr-deploy build"):
        read_metadata(engine)
    sidecar_path(engine).write_text('{"tensorrt_version": "10"}')
    with pytest.raises(EngineMetadataError, match="m.engine.json is not a valid sr-deploy engine sidecar"):
        read_metadata(engine)


def name(**changes: object) -> str:
    args = {
        "onnx_stem": "x4-fp16",
        "precision": "fp16",
        "onnx_sha256": SHA,
        "options": OPTIONS,
        "tensorrt_version": "10.8.0.43",
        "gpu": A100,
    }
    args.update(changes)
    return cache_file_name(**args)  # type: ignore[arg-type]


def test_cache_names_are_stable_readable_and_change_with_every_field() -> None:
    n = name()
    assert n == name()
    assert n.startswith("x4-fp16.fp16.max4x720x1280.trt10.8.0.43.NVIDIA-A100-SXM4-80GB-sm_80.")
    assert n.endswith(".engine")
    changed = {
        name(onnx_sha256="cd" * 32),
        name(options=BuildOptions(OPTIONS.profiles, opt_level=5)),
        name(options=BuildOptions((Profile.parse("1x3x32x32:1x3x128x128:4x3x720x1280"),))),
        name(options=BuildOptions(OPTIONS.profiles, workspace_gb=4)),
        name(options=BuildOptions(OPTIONS.profiles, version_compatible=True)),
        name(options=BuildOptions(OPTIONS.profiles, hardware_compat="ampere+")),
        name(tensorrt_version="10.9.0.34"),
        name(gpu=A30),
    }
    assert n not in changed and len(changed) == 8


def test_stale_reason_reuses_the_same_request_and_rebuilds_a_changed_one() -> None:
    m = meta()
    assert stale_reason(m, SHA, OPTIONS, "10.8.0.43", A100) is None
    assert stale_reason(m, "cd" * 32, OPTIONS, "10.8.0.43", A100) == "the ONNX file changed"
    assert "build options changed" in str(stale_reason(m, SHA, BuildOptions(OPTIONS.profiles, 1), "10.8.0.43", A100))
    assert "TensorRT changed (10.8.0.43 -> 10.9.0.34)" == stale_reason(m, SHA, OPTIONS, "10.9.0.34", A100)
    assert "GPU changed" in str(stale_reason(m, SHA, OPTIONS, "10.8.0.43", H100))


def test_incompatibility_default_engine_needs_same_version_and_gpu() -> None:
    m = meta()
    assert incompatibility(m, "10.8.0.43", A100) == []
    assert incompatibility(m, "10.8.0.43.post1", A100) == []
    (problem,) = incompatibility(m, "10.9.0.34", A100)
    assert problem == "TensorRT 10.9.0.34 here, engine built with 10.8.0.43"
    (problem,) = incompatibility(m, "10.8.0.43", H100)
    assert "GPU NVIDIA H100 80GB HBM3 (sm_90) here, engine built for NVIDIA A100-SXM4-80GB (sm_80)" == problem
    (problem,) = incompatibility(m, "10.8.0.43", A30)
    assert "same sm_80" in problem and "--hardware-compat same-cc" in problem
    assert len(incompatibility(m, "11.0.0.1", H100)) == 2


def test_incompatibility_with_version_and_hardware_compatibility() -> None:
    m = meta(options=BuildOptions(OPTIONS.profiles, version_compatible=True, hardware_compat="ampere+"))
    assert incompatibility(m, "10.13.0.35", H100) == []
    assert "at least as new" in incompatibility(m, "10.7.0.23", H100)[0]
    assert "needs 10.x" in incompatibility(m, "11.4.0.106", H100)[0]
    (problem,) = incompatibility(m, "10.8.0.43", T4)
    assert problem == "GPU Tesla T4 (sm_75) here, engine built Ampere+ (needs sm_80 or newer)"
    same_cc = meta(options=BuildOptions(OPTIONS.profiles, hardware_compat="same-cc"))
    assert incompatibility(same_cc, "10.8.0.43", A30) == []
    assert incompatibility(same_cc, "10.8.0.43", H100) != []


def test_check_compatible_says_what_differs_and_how_to_rebuild() -> None:
    m = meta(options=BuildOptions(OPTIONS.profiles, opt_level=5, workspace_gb=2), timing_cache="cache/t.bin")
    check_compatible("e.engine", m, "10.8.0.43", A100)
    with pytest.raises(EngineMetadataError) as info:
        check_compatible("e.engine", m, "10.9.0.34", H100)
    msg = str(info.value)
    assert "TensorRT 10.9.0.34 here" in msg and "NVIDIA H100" in msg
    assert "sr-deploy build models/x4-fp16.onnx -o e.engine --min 1x3x32x32 --opt 1x3x256x256 --max 4x3x720x1280" in msg
    assert "--opt-level 5 --workspace 2 --timing-cache cache/t.bin" in msg


def test_rebuild_command_is_accepted_by_the_cli(tmp_path: Path) -> None:
    """The suggested command parses with the real `build` command (it stops at the missing ONNX)."""
    profiles = (Profile.parse("1x3x32x32:1x3x64x64:1x3x64x64"), Profile.parse("1x3x65x65:1x3x128x128:2x3x256x256"))
    m = meta(
        onnx_path=str(tmp_path / "gone.onnx"),
        options=BuildOptions(profiles, version_compatible=True, hardware_compat="same-cc"),
    )
    args = shlex.split(rebuild_command(m, tmp_path / "e.engine"))
    assert args[:2] == ["sr-deploy", "build"] and args.count("--profiles") == 2
    result = CliRunner().invoke(app, args[1:])
    assert result.exit_code == 2 and "gone.onnx does not exist" in result.output
