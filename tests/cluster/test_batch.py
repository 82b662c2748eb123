"""``upscale`` on a real local Ray (tests/cluster/conftest.py): the files equal the local job's byte for byte,
the corrupt file is reported as the local job reports it, a re-run resumes (skips finished files); URIs
(``file://``, through pyarrow's filesystem layer) give the same files; without Ray the message says how to
install it."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest
from typer.testing import CliRunner

from sr_deploy.cluster import FileOutcome, upscale_cluster
from sr_deploy.cluster.batch import plan_files
from sr_deploy.errors import BackendUnavailable
from sr_deploy.runtime.jobs import plan_job, run_job
from sr_deploy.runtime.load import load
from tests.cluster.conftest import CORRUPT, ray_group


def local_job(model: Path, photos: Path, out: Path) -> dict[str, str]:
    """The local path's outcome message per input name, after writing ``out``."""
    with load(model, backend="onnxruntime") as up:
        outcomes = run_job(up, plan_job([str(photos)], f"{out}/"))
    return {o.source.name: o.message for o in outcomes}


def files_of(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@ray_group
def test_cluster_job_equals_the_local_job_and_resumes(ray_local: ModuleType, small_onnx: Path, photos: Path,
                                                      tmp_path: Path) -> None:
    local = local_job(small_onnx, photos, tmp_path / "local")
    stale = tmp_path / "cluster" / ".rgb.png.abcd1234.tmp"  # left by a killed job two hours ago
    stale.parent.mkdir()
    stale.write_bytes(b"half")
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    seen: list[FileOutcome] = []
    job = upscale_cluster([str(photos)], f"{tmp_path / 'cluster'}/", model=str(small_onnx), backend="onnxruntime",
                          workers=2, on_outcome=seen.append)
    assert sorted(seen, key=lambda o: o.source) == sorted(job.outcomes, key=lambda o: o.source)
    by_name = {Path(o.source).name: o for o in job.outcomes}
    assert {n: o.status for n, o in by_name.items()} == {"rgb.png": "written", "grey.png": "written",
                                                         "rgba.png": "written", "photo.jpg": "written",
                                                         CORRUPT: "failed"}
    assert {n: o.message for n, o in by_name.items()} == local  # sizes, and the corrupt file's cause
    assert CORRUPT in by_name[CORRUPT].message and "corrupt or truncated" in by_name[CORRUPT].message
    assert len(job.routes) == 1 and job.routes[0].startswith("onnxruntime")
    written = files_of(tmp_path / "cluster")
    assert written == files_of(tmp_path / "local") and len(written) == 4  # and the stale temporary file is gone

    # a re-run through the command line: finished files are left alone, a lost one is made again
    (tmp_path / "cluster" / "grey.png").unlink()
    (tmp_path / "cluster" / "rgb.png").write_bytes(b"kept")
    result = CliRunner().invoke(_app(), ["upscale", str(photos), "-o", f"{tmp_path / 'cluster'}/", "--model",
                                         str(small_onnx), "--backend", "onnxruntime", "--cluster", "auto"])
    assert result.exit_code == 1, result.output  # the corrupt file still fails
    assert "1 written, 3 left as they were" in result.output and "1 failed" in result.output
    assert f"failed {photos / CORRUPT}: cannot read image" in " ".join(result.output.split())
    assert (tmp_path / "cluster" / "rgb.png").read_bytes() == b"kept"
    assert (tmp_path / "cluster" / "grey.png").read_bytes() == written["grey.png"]


@ray_group
def test_uris_give_the_same_files(ray_local: ModuleType, small_onnx: Path, photos: Path, tmp_path: Path) -> None:
    local_job(small_onnx, photos, tmp_path / "local")
    out_uri = (tmp_path / "remote").as_uri()
    (tmp_path / "remote").mkdir()
    (tmp_path / "remote" / "grey.png").write_bytes(b"kept")  # an output that exists is left alone
    job = upscale_cluster([photos.as_uri()], out_uri, model=str(small_onnx), backend="onnxruntime", workers=1)
    statuses = {o.source: o.status for o in job.outcomes}
    assert statuses == {f"{photos.as_uri()}/{n}": s for n, s in [("corrupt.png", "failed"), ("grey.png", "exists"),
                        ("photo.jpg", "written"), ("rgb.png", "written"), ("rgba.png", "written")]}
    failed = next(o for o in job.outcomes if o.status == "failed")
    assert f"{photos.as_uri()}/{CORRUPT}" in failed.message  # named by its URI, not the staging copy
    written = files_of(tmp_path / "remote")
    assert written == {**files_of(tmp_path / "local"), "grey.png": b"kept"}  # no temporary file left either


def test_planning_uris(photos: Path, tmp_path: Path) -> None:
    folder = photos.as_uri()
    pairs, problems = plan_files([folder, f"{folder}/rgb.png", (tmp_path / "none").as_uri()], "file:///out")
    assert pairs[0] == (f"{folder}/{CORRUPT}", f"file:///out/{CORRUPT}") and len(pairs) == 5  # rgb.png once
    assert [p.message for p in problems] == [f"{(tmp_path / 'none').as_uri()}: no such file or folder"]
    with pytest.raises(ValueError, match="names one image file"):
        plan_files([folder], "file:///out/x.png")
    pairs, problems = plan_files([f"{folder}/rgb.png", str(photos / "rgb.png")], "file:///out/")
    assert len(pairs) == 1 and "has the same output name" in problems[0].message
    (tmp_path / "clip.mp4").write_bytes(b"not really")  # a video is named, not silently left out
    pairs, problems = plan_files([str(photos / "rgb.png"), str(tmp_path / "clip.mp4")], str(tmp_path / "out"))
    assert len(pairs) == 1 and problems[0].message.endswith("is a video: the cluster path upscales images only; "
                                                            "upscale it without --cluster")


def test_without_ray_the_message_says_how_to_install(monkeypatch: pytest.MonkeyPatch, photos: Path,
                                                     tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails as on an install without the extra
    with pytest.raises(BackendUnavailable, match=r"pip install 'sr-deploy\[cluster\]'"):
        upscale_cluster([str(photos)], str(tmp_path / "out"))
    result = CliRunner().invoke(_app(), ["upscale", str(photos), "-o", str(tmp_path / "out"), "--cluster", "auto"])
    assert result.exit_code == 2 and "sr-deploy[cluster]" in result.output


def _app():  # type: ignore[no-untyped-def]
    from sr_deploy.cli import app

    return app
