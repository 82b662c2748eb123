"""The README's Python API example runs as a plain script (in a fresh folder, with this interpreter)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def api_example() -> str:
    """The first ``python`` code block of the README's "Python API" section."""
    section = README.read_text().split("## Python API", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "the README's Python API section has no python example"
    return match.group(1)


@pytest.mark.slow
def test_readme_python_api_example_runs(tmp_path: Path) -> None:
    script = tmp_path / "example.py"
    script.write_text(api_example())
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert lines[0] in ("4 onnxruntime-int8[CPU]", "4 openvino-int8[CPU]")  # OpenVINO first where it is installed
    assert lines[-1] == "(384, 512, 3) uint8"  # 96 x 128 x 3 in, four times larger out
    assert (tmp_path / "m.onnx").is_file() and (tmp_path / "m.int8.onnx").is_file()
    assert (tmp_path / "m.int8.report.json").is_file()  # the accuracy budget's report beside the model
