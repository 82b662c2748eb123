"""Truncated VGG19 feature extractor: shapes, freezing, torchvision-compatible keys, weight loading."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from sr_deploy.models import SRResNet, VGGFeatureExtractor, load_vgg19_weights

# torchvision's vgg19().features, written out independently of sr_deploy: the indices of its 16
# convolutions (each followed by a ReLU; max pools at 4, 9, 18, 27, 36) and their channels.
TORCHVISION_CONV_INDICES = [0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34]
TORCHVISION_CONV_CHANNELS = [64, 64, 128, 128, 256, 256, 256, 256, 512, 512, 512, 512, 512, 512, 512, 512]
# phi_{i,j} -> number of convolutions it includes
CONVS_UP_TO = {(2, 2): 4, (5, 4): 16}


def torchvision_features_state(num_convs: int = 16, seed: int = 0) -> dict[str, torch.Tensor]:
    """A random state dict with torchvision's ``vgg19().features`` keys and shapes (``features.`` prefix)."""
    g = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}
    cin = 3
    for idx, cout in zip(TORCHVISION_CONV_INDICES[:num_convs], TORCHVISION_CONV_CHANNELS[:num_convs], strict=True):
        state[f"features.{idx}.weight"] = torch.randn(cout, cin, 3, 3, generator=g) * 0.05
        state[f"features.{idx}.bias"] = torch.randn(cout, generator=g) * 0.05
        cin = cout
    return state


def expected_keys(layer: tuple[int, int]) -> list[str]:
    return [f"features.{i}.{p}" for i in TORCHVISION_CONV_INDICES[: CONVS_UP_TO[layer]] for p in ("weight", "bias")]


@pytest.mark.parametrize(("layer", "channels", "down"), [((5, 4), 512, 16), ((2, 2), 128, 2)])
def test_output_shape(layer: tuple[int, int], channels: int, down: int) -> None:
    net = VGGFeatureExtractor(layer)
    out = net(torch.rand(2, 3, 64, 48))
    assert out.shape == (2, channels, 64 // down, 48 // down)
    assert (out >= 0).all()  # ends with a ReLU


@pytest.mark.parametrize("layer", [(5, 4), (2, 2)])
def test_state_dict_keys_match_torchvision(layer: tuple[int, int]) -> None:
    net = VGGFeatureExtractor(layer)
    assert list(net.state_dict()) == expected_keys(layer)
    last_conv = TORCHVISION_CONV_INDICES[CONVS_UP_TO[layer] - 1]
    assert len(net.features) == last_conv + 2  # truncated right after that conv's ReLU
    assert isinstance(net.features[-1], torch.nn.ReLU)


def test_unknown_layer_is_refused() -> None:
    with pytest.raises(ValueError, match="phi_2,3"):
        VGGFeatureExtractor((2, 3))


def test_frozen_and_always_eval() -> None:
    net = VGGFeatureExtractor((2, 2))
    assert not any(p.requires_grad for p in net.parameters())
    net.train()
    assert not net.training and not any(m.training for m in net.modules())
    # Gradients flow to the input (the perceptual loss needs them) but never into VGG.
    x = torch.rand(1, 3, 16, 16, requires_grad=True)
    net(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in net.parameters())


def test_imagenet_normalisation_is_inside() -> None:
    net = VGGFeatureExtractor((2, 2))
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    x = torch.rand(1, 3, 16, 16)
    torch.testing.assert_close(net(x), net.features((x - mean) / std))


def test_load_full_torchvision_state_dict(tmp_path: Path) -> None:
    state = torchvision_features_state()
    # torchvision's classifier (25088 -> 4096 -> 4096 -> 1000). The loader must ignore it; small
    # stand-in shapes keep the file small (the real ones are 400 MB).
    for i, shape in ((0, (32, 8)), (3, (32, 32)), (6, (10, 32))):
        state[f"classifier.{i}.weight"] = torch.randn(shape)
        state[f"classifier.{i}.bias"] = torch.randn(shape[0])
    path = tmp_path / "vgg19-dcbb9e9d.pth"
    torch.save(state, path)
    for layer in ((5, 4), (2, 2)):
        net = VGGFeatureExtractor(layer)
        load_vgg19_weights(net, path)
        loaded = net.state_dict()
        assert list(loaded) == expected_keys(layer)
        for key, value in loaded.items():
            assert torch.equal(value, state[key]), key


def test_load_features_only_state_dict(tmp_path: Path) -> None:
    # e.g. torch.save(vgg19().features.state_dict(), ...): keys "0.weight", "0.bias", ...
    state = {k.removeprefix("features."): v for k, v in torchvision_features_state(seed=1).items()}
    path = tmp_path / "vgg19_features.pth"
    torch.save(state, path)
    net = VGGFeatureExtractor((2, 2))
    load_vgg19_weights(net, path)
    for key, value in net.state_dict().items():
        assert torch.equal(value, state[key.removeprefix("features.")]), key
    assert not any(p.requires_grad for p in net.parameters())


def test_load_safetensors(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    state = torchvision_features_state(num_convs=4, seed=2)
    path = tmp_path / "vgg.safetensors"
    save_file(state, str(path))
    net = VGGFeatureExtractor((2, 2))
    load_vgg19_weights(net, path)
    assert all(torch.equal(v, state[k]) for k, v in net.state_dict().items())


def test_missing_file_says_where_to_get_the_weights(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "vgg19.pth"
    with pytest.raises(FileNotFoundError) as info:
        load_vgg19_weights(VGGFeatureExtractor((2, 2)), path)
    message = str(info.value)
    assert str(path) in message
    assert "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth" in message


def test_not_a_weights_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.pth"
    path.write_text("these are not weights\n")
    with pytest.raises(ValueError, match="cannot load VGG19 weights") as info:
        load_vgg19_weights(VGGFeatureExtractor((2, 2)), path)
    assert str(path) in str(info.value)


def test_wrong_state_dict(tmp_path: Path) -> None:
    path = tmp_path / "srresnet.pth"
    torch.save(SRResNet(4, num_features=8, num_blocks=1).state_dict(), path)
    with pytest.raises(ValueError, match="is not a VGG19 state dict") as info:
        load_vgg19_weights(VGGFeatureExtractor((2, 2)), path)
    assert str(path) in str(info.value)


def test_wrong_shapes(tmp_path: Path) -> None:
    state = torchvision_features_state(num_convs=4)
    state["features.5.weight"] = torch.zeros(64, 64, 3, 3)
    path = tmp_path / "vgg.pth"
    torch.save(state, path)
    with pytest.raises(ValueError, match=r"features\.5\.weight has shape \(64, 64, 3, 3\), expected \(128, 64, 3, 3\)"):
        load_vgg19_weights(VGGFeatureExtractor((2, 2)), path)
