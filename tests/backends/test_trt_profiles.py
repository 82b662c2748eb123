"""Shape and optimization-profile parsing, validation and selection (pure Python, no TensorRT)."""

from __future__ import annotations

import pytest

from sr_deploy.backends.trt_profiles import (
    MAX_ELEMENTS,
    Profile,
    ProfileError,
    default_profile,
    format_shape,
    parse_shape,
    plan_profiles,
    select_profile,
)
from sr_deploy.models.descriptor import ModelDescriptor

X4 = ModelDescriptor(scale=4, num_blocks=2, num_features=16)


def test_parse_and_format_shape() -> None:
    assert parse_shape("1x3x256x256") == (1, 3, 256, 256)
    assert parse_shape(" 4X3x720x1280 ") == (4, 3, 720, 1280)
    assert format_shape((4, 3, 720, 1280)) == "4x3x720x1280"
    for bad in ("1x3x256", "1x3x256xW", "1x3x0x8", "", "1x3x-2x8"):
        with pytest.raises(ProfileError):
            parse_shape(bad)


def test_profile_parse_roundtrip_and_fixed_shape() -> None:
    p = Profile.parse("1x3x32x32:1x3x256x256:4x3x720x1280")
    assert (p.min, p.opt, p.max) == ((1, 3, 32, 32), (1, 3, 256, 256), (4, 3, 720, 1280))
    assert Profile.parse(str(p)) == p
    fixed = Profile.parse("2x3x64x64")
    assert fixed.min == fixed.opt == fixed.max == (2, 3, 64, 64)
    with pytest.raises(ProfileError, match="MIN:OPT:MAX"):
        Profile.parse("1x3x8x8:2x3x8x8")


def test_contains_is_inclusive_per_dimension() -> None:
    p = Profile.parse("1x3x32x32:1x3x64x64:2x3x128x96")
    assert p.contains((1, 3, 32, 32)) and p.contains((2, 3, 128, 96))
    assert not p.contains((3, 3, 64, 64))
    assert not p.contains((1, 3, 129, 64))
    assert not p.contains((1, 3, 64, 97))
    assert not p.contains((1, 3, 31, 64))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1x3x64x64:1x3x32x32:1x3x128x128", "min > opt in H, W"),
        ("1x3x32x32:4x3x64x64:2x3x128x128", "opt > max in N"),
        ("1x1x32x32:1x1x64x64:1x1x128x128", "has 1 channels, the model takes 3"),
    ],
)
def test_validate_rejects_bad_profiles(text: str, message: str) -> None:
    with pytest.raises(ProfileError, match=message):
        Profile.parse(text).validate(X4)


def test_validate_enforces_size_multiple_and_min_size() -> None:
    desc = ModelDescriptor(scale=2, size_multiple=8, min_size=16)
    Profile.parse("1x3x16x16:1x3x64x64:1x3x128x128").validate(desc)
    with pytest.raises(ProfileError, match="not a multiple of 8"):
        Profile.parse("1x3x16x16:1x3x60x64:1x3x128x128").validate(desc)
    with pytest.raises(ProfileError, match="below the model's minimum side 16"):
        Profile.parse("1x3x8x8:1x3x64x64:1x3x128x128").validate(desc)


def test_validate_rejects_outputs_over_2_pow_31_elements() -> None:
    # x4: an 8 x 3 x 1080 x 1920 input gives 8 x 3 x 4320 x 7680 = 796M output elements: fine.
    Profile.parse("1x3x32x32:1x3x256x256:8x3x1080x1920").validate(X4)
    # 24 of them: 2.39e9 > 2**31 - 1, although the input is only 149M elements.
    with pytest.raises(ProfileError, match="over TensorRT's 2\\*\\*31 - 1 limit"):
        Profile.parse("1x3x32x32:1x3x256x256:24x3x1080x1920").validate(X4)
    assert 24 * 3 * 4320 * 7680 > MAX_ELEMENTS > 8 * 3 * 4320 * 7680


def test_default_profile_fits_the_model_rules() -> None:
    assert str(default_profile(X4)) == "1x3x32x32:1x3x256x256:4x3x720x1280"
    odd = ModelDescriptor(scale=8, size_multiple=24, min_size=40)
    p = default_profile(odd)
    p.validate(odd)
    assert p.min[2] == 48 and p.max[2] == 720 and p.max[3] == 1272
    # x8 with 4 x 720 x 1280 inputs is 4 x 3 x 5760 x 10176 = 703M elements; still under the limit.
    assert p.max[0] == 4


def test_plan_profiles_from_min_opt_max_or_profiles() -> None:
    (only,) = plan_profiles(X4, max_shape=(2, 3, 512, 512))
    assert only == Profile((1, 3, 32, 32), (1, 3, 256, 256), (2, 3, 512, 512))
    two = plan_profiles(X4, profiles=[Profile.parse(p) for p in ("1x3x64x64", "1x3x32x32:1x3x128x128:2x3x256x256")])
    assert len(two) == 2 and two[0].max == (1, 3, 64, 64)
    with pytest.raises(ProfileError, match="not both"):
        plan_profiles(X4, min_shape=(1, 3, 8, 8), profiles=[Profile.parse("1x3x64x64")])
    with pytest.raises(ProfileError, match="profile 1 .*min > opt"):
        plan_profiles(X4, profiles=[Profile.parse(p) for p in ("1x3x64x64", "1x3x64x64:1x3x32x32:1x3x64x64")])


def test_select_profile_names_the_allowed_ranges() -> None:
    profiles = plan_profiles(X4, profiles=[Profile.parse("1x3x32x32:1x3x64x64:1x3x64x64"),
                                           Profile.parse("1x3x65x65:2x3x128x128:4x3x256x256")])
    assert select_profile(profiles, (1, 3, 40, 64)) == 0
    assert select_profile(profiles, (3, 3, 200, 100)) == 1
    with pytest.raises(ProfileError) as info:
        select_profile(profiles, (1, 3, 512, 512))
    message = str(info.value)
    assert "1x3x512x512" in message
    assert "profile 0: 1x3x32x32 to 1x3x64x64" in message and "profile 1: 1x3x65x65 to 4x3x256x256" in message


def test_profiles_follow_a_third_party_models_size_rules() -> None:
    from sr_deploy.backends.trt_profiles import ProfileError, default_profile, plan_profiles
    from sr_deploy.models.descriptor import ModelDescriptor

    rules = {"architecture": "ESRGAN", "loader": "spandrel", "halo": 6, "scale": 2}
    multiple = ModelDescriptor(**rules, size_multiple=4, min_size=4)  # type: ignore[arg-type]
    profile = default_profile(multiple)
    assert all(side % 4 == 0 for shape in (profile.min, profile.opt, profile.max) for side in shape[2:])
    profile.validate(multiple)
    square = ModelDescriptor(**rules, square=True)  # type: ignore[arg-type]
    assert all(shape[2] == shape[3] for shape in (default_profile(square).min, default_profile(square).max))
    with pytest.raises(ProfileError, match="not square"):
        plan_profiles(square, max_shape=(1, 3, 256, 512))
    fixed = ModelDescriptor(**rules, fixed_size=(64, 64))  # type: ignore[arg-type]
    assert default_profile(fixed).min == default_profile(fixed).max == (1, 3, 64, 64)
    with pytest.raises(ProfileError, match="fixed input"):
        plan_profiles(fixed, max_shape=(2, 3, 64, 64))
