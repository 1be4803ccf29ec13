"""Tests of common/data/devices.py and configs/devices/*.toml."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from common.data.devices import DeviceType, apply_device, list_device_types, load_device_type, rotation_matrix
from common.data.errors import DataError
from common.data.windows import GRAVITY, WindowSet

REQUIRED_TYPES = (
    "waist_phone",
    "trouser_pocket_phone",
    "wrist_watch",
    "cheap_band",
    "chest_strap",
    "thigh_sensor",
)


def still_windows(n: int = 8, seed: int = 0) -> WindowSet:
    """Upright, nearly still windows at 20 Hz: +g on x, a slow 1 Hz gyro oscillation about x."""
    t = np.arange(120) / 20.0
    X = np.zeros((n, 120, 6), dtype=np.float32)
    X[..., 0] = GRAVITY
    X[..., 3] = 0.5 * np.sin(2 * np.pi * 1.0 * t)
    X += np.random.default_rng(seed).normal(0, 0.001, X.shape).astype(np.float32)
    return WindowSet(X, np.zeros(n, dtype=np.int64), ["standing"], np.arange(n), np.arange(n), name="still")


IDEAL = DeviceType(name="ideal", sampling_rate=20.0, placement="waist")


def test_shipped_device_types_load_and_are_plausible() -> None:
    names = list_device_types()
    assert set(REQUIRED_TYPES) <= set(names)
    for name in names:
        device = load_device_type(name)
        assert device.name == name and device.description
        assert 5.0 <= device.sampling_rate <= 200.0 and device.windows >= 50
        assert 0.95 <= device.gain <= 1.05 and max(map(abs, device.acc_bias)) < 0.5
    assert load_device_type("cheap_band").has_gyro is False
    assert load_device_type("trouser_pocket_phone").placement == "trouser pocket"


def test_load_by_path_and_unknown_name(tmp_path: Path) -> None:
    path = tmp_path / "my_ring.toml"
    path.write_text('sampling_rate = 30\nplacement = "finger"\nwindows = 10\n')
    device = load_device_type(path)
    assert (device.name, device.sampling_rate, device.placement, device.has_gyro) == (
        "my_ring",
        30.0,
        "finger",
        True,
    )
    with pytest.raises(
        DataError, match=r"device type 'toaster': no file .*toaster.toml; shipped device types: \["
    ):
        load_device_type("toaster")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('sampling_rate = 20\nplacement = "waist"\ncolour = "red"\n', r"unknown field\(s\) \['colour'\]"),
        ('placement = "waist"\n', "field 'sampling_rate' is missing"),
        (
            'sampling_rate = 20\nplacement = "waist"\ngain = 3.0\n',
            r"field 'gain' must be a number in \[0.5, 2.0\]",
        ),
        ('sampling_rate = -5\nplacement = "waist"\n', "field 'sampling_rate' must be a number"),
        (
            'sampling_rate = 20\nplacement = "waist"\nacc_bias = [0.1, 0.2]\n',
            "field 'acc_bias' must be 3 numbers",
        ),
        (
            'sampling_rate = 20\nplacement = "waist"\nhas_gyro = "no"\n',
            "field 'has_gyro' must be true or false",
        ),
        (
            'sampling_rate = 20\nplacement = "waist"\nwindows = 0\n',
            "field 'windows' must be a positive integer",
        ),
        ('sampling_rate = 20\nplacement = ""\n', "field 'placement' must be a non-empty"),
        ("sampling_rate = \n", "not valid TOML"),
    ],
)
def test_bad_device_file_names_file_and_field(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "broken_device.toml"
    path.write_text(content)
    with pytest.raises(DataError, match=message) as info:
        load_device_type(path)
    assert "broken_device.toml" in str(info.value)


def test_rotation_matrix_is_a_proper_rotation() -> None:
    matrices = rotation_matrix(np.random.default_rng(0).uniform(-180, 180, (20, 3)))
    identity = np.broadcast_to(np.eye(3), matrices.shape)
    np.testing.assert_allclose(matrices @ np.swapaxes(matrices, -1, -2), identity, atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(matrices), 1.0)
    np.testing.assert_allclose(rotation_matrix([0, 0, 90]) @ [1, 0, 0], [0, 1, 0], atol=1e-12)


def test_ideal_device_changes_nothing_but_the_metadata() -> None:
    ws = still_windows()
    seen = apply_device(ws, IDEAL, seed=0)
    np.testing.assert_allclose(seen.X, ws.X, atol=1e-5)
    assert (seen.position, seen.device, seen.has_gyro) == ("waist", "ideal", True)


def test_rotation_turns_acc_and_gyro_together() -> None:
    seen = apply_device(still_windows(), replace(IDEAL, rotation_deg=(0.0, 0.0, 90.0)), seed=0)
    np.testing.assert_allclose(seen.X[..., 1].mean(), GRAVITY, atol=1e-3)  # x -> y
    np.testing.assert_allclose(seen.X[..., 0].mean(), 0.0, atol=1e-3)
    np.testing.assert_allclose(seen.X[..., 4], still_windows().X[..., 3], atol=1e-5)
    upside_down = apply_device(still_windows(), load_device_type("thigh_sensor"), seed=0)
    assert float(upside_down.X[..., 0].mean()) < -9.0  # the thigh unit is mounted pointing to the knee


def test_gain_bias_and_noise() -> None:
    device = replace(
        IDEAL, gain=1.02, acc_bias=(0.1, -0.2, 0.3), gyro_bias=(0.01, 0.0, 0.0), acc_noise_std=0.05
    )
    seen = apply_device(still_windows(64), device, seed=1)
    np.testing.assert_allclose(
        seen.X[..., :3].mean(axis=(0, 1)), [GRAVITY * 1.02 + 0.1, -0.2, 0.3], atol=0.01
    )
    assert abs(float(seen.X[..., 4].std()) - 0.001) < 0.0005  # no gyro noise was asked for
    assert abs(float(seen.X[..., 1].std()) - 0.05) < 0.005


def test_missing_gyro_gives_zeros_and_flag() -> None:
    seen = apply_device(still_windows(), load_device_type("cheap_band"), seed=0)
    assert not seen.has_gyro
    assert np.all(seen.X[..., 3:] == 0.0)
    assert seen.X.shape == (8, 120, 6) and seen.X.dtype == np.float32


def test_faster_device_averages_noise_slower_device_aliases() -> None:
    ws = still_windows(32)
    noisy = replace(IDEAL, acc_noise_std=0.1)
    at_20 = apply_device(ws, noisy, seed=2)
    at_100 = apply_device(ws, replace(noisy, sampling_rate=100.0), seed=2)
    # white noise added at 100 Hz loses most of its power in the 10 Hz anti-alias filter
    assert float(at_100.X[..., 1].std()) < 0.6 * float(at_20.X[..., 1].std())

    t = np.arange(120) / 20.0
    fast = still_windows(2)
    fast.X[..., 5] = np.sin(2 * np.pi * 8.0 * t)  # 8 Hz: above the 5 Hz Nyquist frequency of a 10 Hz band
    band = apply_device(fast, replace(IDEAL, sampling_rate=10.0), seed=0)
    spectrum = np.abs(np.fft.rfft(band.X[0, :, 5]))
    frequencies = np.fft.rfftfreq(120, 1 / 20.0)
    assert abs(frequencies[spectrum.argmax()] - 2.0) < 0.2  # 8 Hz sampled at 10 Hz aliases to 2 Hz


def test_apply_device_is_deterministic() -> None:
    device = load_device_type("trouser_pocket_phone")
    first = apply_device(still_windows(), device, seed=5)
    np.testing.assert_array_equal(first.X, apply_device(still_windows(), device, seed=5).X)
    assert not np.array_equal(first.X, apply_device(still_windows(), device, seed=6).X)


def test_body_model_device_types_sit_on_their_segments() -> None:
    """The device types of the newer segments (issue #37): where they sit, what they measure, how fast."""
    expected = {  # name: (placement, has_gyro, sampling_rate)
        "smart_ring": ("finger", False, 25.0),
        "earbuds": ("ear", True, 50.0),
        "ankle_band": ("ankle", True, 50.0),
        "shoe_sensor": ("foot", True, 100.0),
    }
    for name, (placement, has_gyro, rate) in expected.items():
        device = load_device_type(name)
        assert (device.placement, device.has_gyro, device.sampling_rate) == (placement, has_gyro, rate), name
    assert (
        load_device_type("smart_ring").rotation_jitter_deg
        > load_device_type("wrist_watch").rotation_jitter_deg
    )
