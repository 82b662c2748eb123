"""tests/typecheck_tensorrt.sh fails on a misspelled TensorRT call (so a green check means something)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "tests" / "typecheck_tensorrt.sh"


@pytest.mark.skipif(
    not (REPO / ".stubs" / "trt10-10.13.0.35.1" / ".patched").is_file(),
    reason="run tests/typecheck_tensorrt.sh once to install the TensorRT stubs into .stubs/",
)
def test_misspelled_builder_call_fails_the_typecheck(tmp_path: Path) -> None:
    source = (REPO / "sr_deploy" / "export" / "tensorrt.py").read_text()
    assert "builder.build_serialized_network(" in source
    bad = tmp_path / "tensorrt_misspelled.py"
    bad.write_text(source.replace("build_serialized_network(", "build_serialized_engine("))
    env = {**os.environ, "PYTHON": sys.executable}  # this interpreter's mypy, whatever is first on PATH
    result = subprocess.run(["bash", str(SCRIPT), str(bad)], cwd=REPO, capture_output=True, text=True, env=env)
    assert result.returncode != 0
    assert '"Builder" has no attribute "build_serialized_engine"' in result.stdout
