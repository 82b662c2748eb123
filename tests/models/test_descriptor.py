"""ModelDescriptor: JSON round trip, validation, size rules, and the receptive radius measured."""

from __future__ import annotations

import pytest
import torch

from sr_deploy.models import ModelDescriptor, SRResNet, build_model


def test_json_round_trip() -> None:
    desc = ModelDescriptor(scale=2, num_features=32, num_blocks=5, size_multiple=2, min_size=3,
                           precisions=("fp32", "int8"), name="srresnet-x2", training={"epochs": 3, "lr": 1e-4})
    back = ModelDescriptor.from_json(desc.to_json())
    assert back == desc
    assert back.training == {"epochs": 3, "lr": 1e-4}  # not part of equality, but carried
    assert isinstance(back.value_range, tuple) and isinstance(back.precisions, tuple)
    assert ModelDescriptor.from_dict(desc.to_dict()) == desc


def test_from_dict_ignores_unknown_keys() -> None:
    d = ModelDescriptor(scale=8).to_dict() | {"added_in_a_later_version": True}
    assert ModelDescriptor.from_dict(d) == ModelDescriptor(scale=8)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"scale": 3}, "scale must be 2, 4 or 8"), ({"architecture": "edsr"}, "unknown architecture"),
     ({"precisions": ("fp32", "fp8")}, "unknown precisions"),
     ({"num_features": 10**6}, r"num_features must be an integer in 0..1024, got 1000000"),
     ({"num_blocks": -1}, r"num_blocks must be an integer in 0..256")],
)
def test_invalid_descriptor(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ModelDescriptor(**kwargs)  # type: ignore[arg-type]


def test_size_rules() -> None:
    desc = ModelDescriptor(scale=4, size_multiple=4, min_size=8)
    assert desc.output_shape(10, 12) == (40, 48)
    desc.check_input_size(8, 12)
    with pytest.raises(ValueError, match="minimum 8"):
        desc.check_input_size(4, 12)
    with pytest.raises(ValueError, match="multiple of 4"):
        desc.check_input_size(12, 10)


def test_build_model_follows_descriptor() -> None:
    desc = ModelDescriptor(scale=2, num_features=8, num_blocks=3)
    net = build_model(desc)
    assert isinstance(net, SRResNet) and len(net.blocks) == 3
    assert net(torch.rand(1, 3, 4, 5)).shape == (1, 3, 8, 10)


def randomised_eval_model(desc: ModelDescriptor, seed: int) -> torch.nn.Module:
    """``build_model(desc)`` in eval mode, float64, with random weights and BN statistics."""
    torch.manual_seed(seed)
    net = build_model(desc).double().eval()
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            assert m.running_mean is not None and m.running_var is not None
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
        elif isinstance(m, torch.nn.PReLU):
            m.weight.data.uniform_(0.1, 0.5)
    return net


@pytest.mark.parametrize(("scale", "num_blocks"), [(2, 1), (4, 2), (8, 1)])
def test_receptive_radius_bounds_the_influence_of_a_pixel(scale: int, num_blocks: int) -> None:
    desc = ModelDescriptor(scale=scale, num_features=4, num_blocks=num_blocks)
    radius = desc.receptive_radius
    net = randomised_eval_model(desc, seed=scale)
    size = 2 * radius + 9
    centre = size // 2
    x = torch.rand(1, 3, size, size, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    poked = x.clone()
    poked[0, :, centre, centre] += 0.5
    with torch.no_grad():
        changed = (net(poked) != net(x)).any(dim=1)[0]  # sH x sW, True where any channel moved
    # Output pixel o lies over input pixel o // scale; its distance to the poked pixel in LR pixels:
    lr_offset = torch.arange(size * scale) // scale - centre
    dist_y = lr_offset.abs()[:, None].expand_as(changed)
    dist_x = lr_offset.abs()[None, :].expand_as(changed)
    assert changed.any()
    # Nothing changes beyond the radius ...
    assert not changed[(dist_y > radius) | (dist_x > radius)].any()
    # ... and the radius is not overestimated: output pixels over input pixels radius - 2 and
    # radius away (on each side, along each axis) do change (for SRResNet the radius is exact).
    for side in (-1, 1):
        for reach in (radius - 2, radius):
            row = centre + side * reach
            assert changed[row * scale : (row + 1) * scale, :].any(), (side, reach)
            assert changed[:, row * scale : (row + 1) * scale].any(), (side, reach)
