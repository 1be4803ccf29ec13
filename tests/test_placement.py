"""common/data/placement.py: placement groups and the trunk-equivalent window (closed forms, invariances)."""

from __future__ import annotations

import numpy as np
import pytest

from common.data.placement import SWING_FACTORS, placement_group, trunk_equivalent
from common.data.synthetic import generate_windows
from common.data.windows import GRAVITY


def random_rotation(seed: int) -> np.ndarray:
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    q = q * np.sign(np.diagonal(r))
    return q if np.linalg.det(q) > 0 else -q


def leg_windows() -> np.ndarray:
    return generate_windows(["walking", "upstairs", "sitting"], 4, seed=3, n_users=2).X


def test_placement_groups() -> None:
    assert placement_group("waist") == "trunk"
    assert placement_group("Right Thigh") == "leg"
    assert placement_group("pocket") == "leg"
    assert placement_group("trouser pocket") == "leg"
    assert placement_group("left wrist") == "arm"
    assert placement_group("somewhere") == "unknown"


@pytest.mark.parametrize("position", ["waist", "torso", "somewhere"])
def test_a_trunk_or_unknown_position_leaves_the_window_bit_for_bit(position: str) -> None:
    X = leg_windows()
    np.testing.assert_array_equal(trunk_equivalent(X, position), X)


def test_limb_windows_keep_gravity_and_vertical_motion_and_divide_horizontal_motion_and_rotation() -> None:
    X = leg_windows().astype(np.float64)
    out = trunk_equivalent(X, "right thigh").astype(np.float64)
    factors = SWING_FACTORS["leg"]
    gravity = X[..., :3].mean(axis=1, keepdims=True)
    unit = gravity / np.linalg.norm(gravity, axis=-1, keepdims=True)

    def split(acc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        dynamic = acc - gravity
        along = (dynamic * unit).sum(axis=-1)
        return along, np.linalg.norm(dynamic - along[..., None] * unit, axis=-1)

    along, across = split(X[..., :3])
    out_along, out_across = split(out[..., :3])
    np.testing.assert_allclose(out[..., :3].mean(axis=1, keepdims=True), gravity, atol=1e-4)
    np.testing.assert_allclose(out_along, along, atol=1e-4)
    np.testing.assert_allclose(out_across, across / factors["horizontal"], atol=1e-4)
    np.testing.assert_allclose(out[..., 3:], X[..., 3:] / factors["rotation"], rtol=1e-6)
    assert abs(float(np.linalg.norm(out[..., :3], axis=-1).mean()) - GRAVITY) < 0.5  # still m/s^2 with g


def test_rotating_the_device_commutes_with_the_rescaling() -> None:
    """The rescaling is defined by gravity, not by the device axes: rotating first or last is the same."""
    X = leg_windows()
    rotation = random_rotation(7).astype(np.float32)
    rotated = np.concatenate([X[..., :3] @ rotation.T, X[..., 3:] @ rotation.T], axis=-1)
    expected = trunk_equivalent(X, "thigh")
    expected = np.concatenate([expected[..., :3] @ rotation.T, expected[..., 3:] @ rotation.T], axis=-1)
    np.testing.assert_allclose(trunk_equivalent(rotated, "thigh"), expected, atol=1e-4)


def test_accelerometer_only_windows_and_bad_shapes() -> None:
    X = leg_windows()[..., :3]
    assert trunk_equivalent(X, "wrist").shape == X.shape
    with pytest.raises(ValueError, match=r"\[N, T, 3 or 6\].*\[120, 6\]"):
        trunk_equivalent(leg_windows()[0], "wrist")
