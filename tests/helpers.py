"""Shared tiny-model factories of the test suite (one place; fixtures in the conftest files use them).

- :data:`SMALL` / :func:`random_srresnet`: SRResNet(16 features, 2 blocks) x4 (or any descriptor) with
  random weights, BN statistics and PReLU slopes that are not trivial (backends, runtime, models).
- :data:`TINY_RANDOM` / :func:`save_tiny_model`: SRResNet(8 features, 1 block) x4, random, saved as
  weights (bench, benchmarks, pipeline: parity, latency and the pipeline need no trained model).
- :data:`TINY_TRAINED` / :func:`train_tiny_model`: SRResNet(16 features, 2 blocks) x4 trained on real
  photos, saved as weights (export: quantization sensitivity only means something for a trained network).
- :data:`NEAREST` / :func:`nearest_onnx`: a one-node sr-deploy ONNX file (nearest-neighbour Resize), for
  paths that need a valid file but no network (TensorRT build checks, ONNX Runtime providers).
- :func:`perturb_conv`: a copy of an ONNX export with one Conv's weights changed (divergence, parity).
- :data:`THIRD_PARTY` / :func:`third_party_model` / :func:`save_third_party`: tiny random networks built
  from spandrel's architecture classes (ESRGAN x4 and the pixel-unshuffle x2, Real-ESRGAN Compact, SwinIR,
  SPAN, OmniSR, RCAN), saved as ``.pth`` or ``.safetensors`` state dicts like third-party checkpoints.
- :func:`made_once`: a session fixture's file made once per test run, shared by the pytest-xdist workers.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from sr_deploy.artifacts import locked
from sr_deploy.backends.onnx_metadata import provenance, write_props
from sr_deploy.data.datasets import embedded_images
from sr_deploy.data.image_io import read_image, to_float_rgb
from sr_deploy.data.imresize import imresize
from sr_deploy.models import ModelDescriptor, SRResNet, save_weights

SMALL = ModelDescriptor(scale=4, num_features=16, num_blocks=2, name="small-x4")
TINY_RANDOM = ModelDescriptor(scale=4, num_features=8, num_blocks=1, name="bench-tiny-x4")
TINY_TRAINED = ModelDescriptor(scale=4, num_features=16, num_blocks=2, name="tiny-x4")
NEAREST = ModelDescriptor(scale=4, num_blocks=2, num_features=16, size_multiple=2)


def random_srresnet(desc: ModelDescriptor = SMALL, seed: int = 0) -> SRResNet:
    """An eval-mode SRResNet with random weights, BN running statistics, BN affines and PReLU slopes."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = SRResNet(desc.scale, num_features=desc.num_features, num_blocks=desc.num_blocks)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(0.2 * torch.randn(n, generator=gen))
                m.running_var.copy_(0.5 + 1.5 * torch.rand(n, generator=gen))
                m.weight.copy_(0.5 + torch.rand(n, generator=gen))
                m.bias.copy_(0.1 * torch.randn(n, generator=gen))
            elif isinstance(m, torch.nn.PReLU):
                m.weight.copy_(0.5 * torch.rand(m.weight.shape, generator=gen))
    return net.eval()


def save_tiny_model(path: Path, seed: int = 0) -> Path:
    """:func:`random_srresnet` of :data:`TINY_RANDOM` (BN not trivial, so folding BN into the convs is
    exercised), saved to ``path``."""
    return save_weights(random_srresnet(TINY_RANDOM, seed), TINY_RANDOM, path)


def _training_pairs(count: int, lr_side: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` (LR, HR) crops of the embedded training photos, LR by MATLAB bicubic x1/4."""
    rng = np.random.default_rng(seed)
    images = [to_float_rgb(read_image(p)).astype(np.float64) for p in embedded_images("train")]
    images = [im for im in images if min(im.shape[:2]) >= lr_side * 4]
    lrs, hrs = [], []
    for i in range(count):
        im = images[i % len(images)]
        y = int(rng.integers(0, im.shape[0] - lr_side * 4 + 1))
        x = int(rng.integers(0, im.shape[1] - lr_side * 4 + 1))
        hr = im[y : y + lr_side * 4, x : x + lr_side * 4]
        lrs.append(np.clip(imresize(hr, 0.25), 0, 1).transpose(2, 0, 1))
        hrs.append(hr.transpose(2, 0, 1))
    return torch.tensor(np.stack(lrs), dtype=torch.float32), torch.tensor(np.stack(hrs), dtype=torch.float32)


def train_tiny_model(path: Path) -> Path:
    """:data:`TINY_TRAINED` after 300 Adam steps (L1, batch 8 of 12x12 LR crops of real photos), saved
    to ``path`` (+ .json). Deterministic; about 20 s on one CPU thread."""
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the CPUs are shared: one thread trains faster than two fighting
    lr, hr = _training_pairs(256, 12, seed=0)
    net = SRResNet(TINY_TRAINED.scale, num_features=TINY_TRAINED.num_features, num_blocks=TINY_TRAINED.num_blocks)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    net.train()
    for _ in range(300):
        idx = torch.randint(0, len(lr), (8,), generator=gen)
        loss = torch.nn.functional.l1_loss(net(lr[idx]), hr[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    torch.set_num_threads(threads)
    return save_weights(net.eval(), TINY_TRAINED, path)


def nearest_onnx(path: Path, desc: ModelDescriptor = NEAREST, precision: str = "fp16") -> Path:
    """A tiny sr-deploy ONNX file: nearest-neighbour x``scale`` Resize of ``lr`` with sr-deploy metadata."""
    scales = numpy_helper.from_array(np.array([1, 1, desc.scale, desc.scale], dtype=np.float32), "scales")
    node = helper.make_node("Resize", ["lr", "", "scales"], ["sr"], name="upsample", mode="nearest")
    graph = helper.make_graph(
        [node],
        "tiny",
        [helper.make_tensor_value_info("lr", TensorProto.FLOAT, ["N", 3, "H", "W"])],
        [helper.make_tensor_value_info("sr", TensorProto.FLOAT, ["N", 3, "sH", "sW"])],
        initializer=[scales],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    write_props(model, provenance(desc, precision, "test", "0" * 64))
    onnx.save(model, str(path))
    return path


def perturb_conv(src: Path, dst: Path, k: int) -> str:
    """Copy ``src`` with the weights of its k-th Conv node scaled by 1.5; returns the node name."""
    model = onnx.load(str(src))
    conv = [n for n in model.graph.node if n.op_type == "Conv"][k]
    init = next(t for t in model.graph.initializer if t.name == conv.input[1])
    init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * np.float32(1.5), init.name))
    onnx.save(model, str(dst))
    return conv.name


#: Tiny configurations of spandrel's architecture classes: name -> (spandrel module, class, keyword arguments).
THIRD_PARTY: dict[str, tuple[str, str, dict[str, object]]] = {
    "esrgan-x4": ("ESRGAN", "ESRGAN", {"num_filters": 8, "num_blocks": 1, "scale": 4}),
    "esrgan-x2-unshuffle": ("ESRGAN", "ESRGAN", {"in_nc": 12, "num_filters": 8, "num_blocks": 1, "scale": 4,
                                                 "shuffle_factor": 2}),
    "compact-x4": ("Compact", "Compact", {"num_feat": 8, "num_conv": 2, "upscale": 4}),
    "swinir-x2": ("SwinIR", "SwinIR", {"upscale": 2, "embed_dim": 12, "depths": [1], "num_heads": [2],
                                       "window_size": 4, "upsampler": "pixelshuffledirect", "img_size": 16,
                                       "mlp_ratio": 2.0}),
    "span-x4": ("SPAN", "SPAN", {"num_in_ch": 3, "num_out_ch": 3, "feature_channels": 8, "upscale": 4}),
    "omnisr-x4": ("OmniSR", "OmniSR", {"num_feat": 8, "block_num": 1, "res_num": 1, "up_scale": 4,
                                       "window_size": 4}),
    "rcan-x2": ("RCAN", "RCAN", {"scale": 2, "n_resgroups": 1, "n_resblocks": 1, "n_feats": 8, "reduction": 4}),
}


def third_party_model(name: str, seed: int = 0) -> torch.nn.Module:
    """The :data:`THIRD_PARTY` network ``name`` with random weights (seeded), eval mode."""
    import importlib

    from sr_deploy.models.thirdparty import import_spandrel

    import_spandrel()
    module, cls, kwargs = THIRD_PARTY[name]
    torch.manual_seed(seed)
    arch = getattr(importlib.import_module(f"spandrel.architectures.{module}"), cls)
    return arch(**kwargs).eval()


def save_third_party(name: str, path: Path, seed: int = 0) -> Path:
    """Save :func:`third_party_model` as a plain state dict: ``.safetensors`` or a ``torch.save`` pickle."""
    from safetensors.torch import save_file

    state = {k: v.contiguous() for k, v in third_party_model(name, seed).state_dict().items()}
    if path.suffix == ".safetensors":
        save_file(state, str(path))
    else:
        torch.save(state, path)
    return path


def made_once(tmp_path_factory: pytest.TempPathFactory, name: str, make: Callable[[Path], Path]) -> Path:
    """``make(folder)``'s file, made once per test run: with pytest-xdist the workers share it (the first to ask
    makes it in the run's common temporary folder under a file lock, the others wait, then read it), so a
    session fixture built on it costs its time once, not once per worker. Tests must not modify it."""
    if "PYTEST_XDIST_WORKER" not in os.environ:
        return make(tmp_path_factory.mktemp(name))
    folder = tmp_path_factory.getbasetemp().parent / name  # the run's folder, above each worker's own
    done = folder / "made"
    with locked(folder):
        if not done.is_file():  # a worker that failed making it left no mark: the next one tries again
            folder.mkdir(exist_ok=True)
            done.write_text(make(folder).relative_to(folder).as_posix())
    return folder / done.read_text()
