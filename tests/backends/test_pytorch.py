"""The PyTorch backend: fp32 reference, channels_last, bf16 autocast, CUDA fp16 + CUDA graphs."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

from sr_deploy.backends.base import BackendUnavailable
from sr_deploy.backends.pytorch import MAX_CUDA_GRAPHS, TorchUpscaler
from tests.helpers import SMALL, random_srresnet

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def batch(n: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, 3, h, w), dtype=np.float32)


def test_fp32_reference_matches_the_module_and_reports_itself() -> None:
    net = random_srresnet()
    up = TorchUpscaler(net, SMALL)
    x = batch(2, 13, 17)
    with torch.no_grad():
        expected = net(torch.from_numpy(x)).numpy()
    y = up.run(x)
    assert y.shape == (2, 3, 52, 68) and y.dtype == np.float32 and y.flags.c_contiguous
    np.testing.assert_array_equal(y, expected)
    assert (up.name, up.device, up.precision, up.scale) == ("torch-fp32", "cpu", "fp32", 4)
    assert up.accepts((1, 3, 5, 5)) and not up.accepts((1, 4, 5, 5))
    with pytest.raises(ValueError, match="N x 3 x H x W"):
        up.run(x[:, :1])


def test_channels_last_fp32_equals_the_reference() -> None:
    x = batch(1, 24, 19, seed=1)
    reference = TorchUpscaler(random_srresnet(), SMALL).run(x)
    fast = TorchUpscaler(random_srresnet(), SMALL, channels_last=True)
    assert fast.name == "torch-fp32+channels_last"
    assert np.abs(fast.run(x) - reference).max() <= 1e-5


def test_bf16_autocast_on_cpu_is_close_to_fp32() -> None:
    x = batch(1, 32, 32, seed=2)
    reference = TorchUpscaler(random_srresnet(), SMALL).run(x)
    bf16 = TorchUpscaler(random_srresnet(), SMALL, precision="bf16", channels_last=True)
    y = bf16.run(x)
    assert y.dtype == np.float32 and bf16.name == "torch-bf16+channels_last"
    assert not np.array_equal(y, reference)  # bf16 really ran
    assert np.abs(y - reference).max() < 0.05 * np.abs(reference).max()  # bf16: ~3 significant digits


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"precision": "int8"}, "not 'int8'"),
        ({"precision": "fp16"}, "fp16 needs a CUDA device"),
        ({"cuda_graphs": True}, "CUDA graphs need a CUDA device"),
    ],
)
def test_unsupported_options_are_errors(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(BackendUnavailable, match=message):
        TorchUpscaler(random_srresnet(), SMALL, **kwargs)  # type: ignore[arg-type]


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is present here")
def test_cuda_without_a_device_is_an_error() -> None:
    with pytest.raises(BackendUnavailable, match="sees no CUDA device"):
        TorchUpscaler(random_srresnet(), SMALL, device="cuda", precision="fp16")


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_threads_share_one_upscaler(precision: str) -> None:
    up = TorchUpscaler(random_srresnet(), SMALL, precision=precision, channels_last=True)
    inputs = [batch(1, 10 + i, 14 - i, seed=i) for i in range(6)]
    sequential = [up.run(x) for x in inputs]
    with ThreadPoolExecutor(max_workers=3) as pool:
        concurrent = list(pool.map(up.run, inputs))
    for seq, con in zip(sequential, concurrent, strict=True):
        np.testing.assert_array_equal(con, seq)


@needs_cuda
def test_cuda_fp16_graphs_match_eager_and_fp32() -> None:
    x = batch(2, 24, 20, seed=3)
    reference = TorchUpscaler(random_srresnet(), SMALL, device="cuda").run(x)
    eager = TorchUpscaler(random_srresnet(), SMALL, device="cuda", precision="fp16", channels_last=True)
    graphed = TorchUpscaler(random_srresnet(), SMALL, device="cuda", precision="fp16", channels_last=True,
                            cuda_graphs=True)
    assert graphed.name == "torch-fp16+channels_last+cudagraph"
    first, again = graphed.run(x), graphed.run(x)
    np.testing.assert_array_equal(first, again)  # replay gives the captured result
    np.testing.assert_allclose(first, eager.run(x), rtol=0, atol=1e-3)
    assert np.abs(first - reference).max() < 0.02
    other = batch(2, 24, 20, seed=4)
    assert not np.array_equal(graphed.run(other), first)  # replay reads the new input


@needs_cuda
def test_cuda_graphs_cap_the_captured_shapes_and_serve_threads() -> None:
    up = TorchUpscaler(random_srresnet(), SMALL, device="cuda", precision="fp16", cuda_graphs=True)
    eager = TorchUpscaler(random_srresnet(), SMALL, device="cuda", precision="fp16")
    inputs = [batch(1, 8 + i, 8, seed=i) for i in range(MAX_CUDA_GRAPHS + 2)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(up.run, inputs))
    assert up._graphs is not None and len(up._graphs._graphs) == MAX_CUDA_GRAPHS
    for x, y in zip(inputs, results, strict=True):
        np.testing.assert_allclose(y, eager.run(x), rtol=0, atol=1e-3)
