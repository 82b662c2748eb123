"""``serve`` on Ray Serve: the deployment on the tests' local Ray answers the same HTTP round trip as the local
server (same image bytes, same model description, the app's own limits and metrics), through Serve's proxy on a
loopback port."""

from __future__ import annotations

import socket
import time
from pathlib import Path
from types import ModuleType

import pytest

from sr_deploy.data.image_io import encode_image
from sr_deploy.runtime.load import load
from sr_deploy.serve import ServeConfig, UpscaleService
from tests.cluster.conftest import ray_group
from tests.serve.conftest import WINDOW, running
from tests.serve.test_app import image

httpx = pytest.importorskip("httpx")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@ray_group
def test_deployment_answers_like_the_local_server(ray_local: ModuleType, small_onnx: Path) -> None:
    pytest.importorskip("ray.serve")
    from ray import serve as ray_serve

    from sr_deploy.cluster.deployment import Scaling, start

    payload = encode_image(image((40, 52, 3)), "png")
    service = UpscaleService(load(small_onnx, backend="onnxruntime"), ServeConfig(model="test", window=WINDOW,
                                                                                    max_batch=4))
    with running(service) as local:
        expected = local.post("/v1/upscale", content=payload, headers={"content-type": "image/png"})
        expected_model = local.get("/v1/model").json()
    assert expected.status_code == 200

    config = ServeConfig(model=str(small_onnx), backend="onnxruntime", window=WINDOW, max_batch=4, port=free_port(),
                         max_body_bytes=200_000)
    start(config, Scaling(replicas=1))
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{config.port}", timeout=60) as client:
            deadline = time.monotonic() + 60
            while client.get("/readyz").status_code != 200:
                assert time.monotonic() < deadline, "the replica did not become ready"
                time.sleep(0.1)
            answer = client.post("/v1/upscale", content=payload, headers={"content-type": "image/png"})
            assert answer.status_code == 200 and answer.headers["content-type"] == "image/png"
            assert answer.content == expected.content
            model = client.get("/v1/model").json()
            assert {k: model[k] for k in ("descriptor", "backend", "precision", "window", "max_batch")} == {
                k: expected_model[k] for k in ("descriptor", "backend", "precision", "window", "max_batch")}
            too_big = client.post("/v1/upscale", content=b"\0" * 300_000)  # the app's own body limit
            assert too_big.status_code == 413 and "request body over" in too_big.json()["detail"]
            metrics = client.get("/metrics").text
            assert 'sr_deploy_requests_total{status="200"}' in metrics
    finally:
        ray_serve.shutdown()


def test_scaling_options() -> None:
    from sr_deploy.cluster.deployment import Scaling

    config = ServeConfig(max_batch=8, max_queue=16, grace_s=5)
    fixed = Scaling(replicas=3).options(config)
    assert fixed["num_replicas"] == 3 and "autoscaling_config" not in fixed
    assert (fixed["max_ongoing_requests"], fixed["max_queued_requests"]) == (17, 16)  # the app's own 503 first
    auto = Scaling(replicas=2, min_replicas=1, max_replicas=4, gpus=1).options(config)
    assert auto["autoscaling_config"] == {"min_replicas": 1, "max_replicas": 4, "initial_replicas": 2,
                                          "target_ongoing_requests": 8}
    assert auto["ray_actor_options"] == {"num_cpus": 1.0, "num_gpus": 1}
    with pytest.raises(ValueError, match=r"min_replicas \(3\) is above max_replicas \(2\)"):
        Scaling(min_replicas=3, max_replicas=2)


def test_serve_cluster_option_errors_are_usage_errors() -> None:
    from typer.testing import CliRunner

    from sr_deploy.cli import app

    result = CliRunner().invoke(app, ["serve", "--cluster", "auto", "--min-replicas", "3", "--max-replicas", "2"])
    assert result.exit_code == 2 and "min_replicas (3) is above max_replicas (2)" in result.output
