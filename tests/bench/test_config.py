"""Benchmark configuration: sizes, lists, the quick preset and the committed suite files."""

from __future__ import annotations

from pathlib import Path

import pytest

from sr_deploy.bench.config import BenchConfig, load_suite, make_config, parse_list, parse_size

SUITES = Path(__file__).resolve().parents[2] / "benchmarks" / "suites"


def test_parse_size_and_lists() -> None:
    assert parse_size("270x480") == (270, 480)
    for bad in ("270", "0x4", "axb", "1x2x3"):
        with pytest.raises(ValueError, match="HEIGHTxWIDTH"):
            parse_size(bad)
    assert parse_list("torch, onnxruntime", ("torch", "onnxruntime"), "backends") == ("torch", "onnxruntime")
    with pytest.raises(ValueError, match="unknown backends"):
        parse_list("torch,openvino", ("torch",), "backends")


def test_shapes_batch_only_where_small_enough() -> None:
    c = BenchConfig(model="m", sizes=((128, 128), (270, 480)), batches=(1, 4), max_batch_pixels=4 * 128 * 128)
    assert c.shapes() == [(1, 128, 128), (4, 128, 128), (1, 270, 480)]


@pytest.mark.parametrize("name", ["cpu.toml", "gpu.toml"])
def test_committed_suites_load(name: str) -> None:
    kw = load_suite(SUITES / name)
    config = BenchConfig(model="srresnet-x4", **kw)
    assert config.sizes == ((128, 128), (256, 256), (270, 480))
    assert any("Set5" in d for d in config.data) and any("Set14" in d for d in config.data)


def test_suite_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[bench]\nrepeatz = 3\n")
    with pytest.raises(ValueError, match=r"bad\.toml.*repeatz"):
        load_suite(bad)
    with pytest.raises(FileNotFoundError, match="missing.toml"):
        load_suite(tmp_path / "missing.toml")


def test_priority_suite_then_quick_then_options() -> None:
    c = make_config("m", SUITES / "cpu.toml", quick=True, repeats=7)
    assert c.sizes == ((32, 32), (64, 64)) and c.repeats == 7 and c.data  # data from the suite
