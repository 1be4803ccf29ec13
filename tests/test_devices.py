"""Tests of common/data/devices.py, configs/devices/*.toml and device types with their own recordings
(common/data/device_data.py)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from device_recordings import write_recorded_device

from common.data.device_data import check_device_type, device_recordings
from common.data.devices import DeviceType, apply_device, list_device_types, load_device_type, rotation_matrix
from common.data.errors import DataError
from common.data.loading import read_npz
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


def test_recordings_path_is_relative_to_the_toml_and_windows_come_out_at_20_hz(tmp_path: Path) -> None:
    toml = write_recorded_device(tmp_path / "ring", rate=50.0)  # 6 s windows of 300 samples
    device = check_device_type(toml)
    assert device.data == str((tmp_path / "ring" / "recordings.npz").resolve())
    windows = device_recordings(device)
    on_disk = read_npz(device.data, window_length=None)
    assert windows.X.shape == (len(on_disk), 120, 6) and windows.sampling_rate == 20.0
    assert (windows.name, windows.device, windows.position, windows.has_gyro) == (
        "my_pendant",
        "my_pendant",
        "neck",
        True,
    )
    np.testing.assert_array_equal(windows.user, on_disk.user)  # one 6 s window in, one out, in order
    np.testing.assert_array_equal(windows.y, on_disk.y)
    # The same motion: |acc| keeps its mean through the resampling.
    assert abs(float(np.linalg.norm(windows.X[..., :3], axis=-1).mean()) - GRAVITY) < 0.5


def test_longer_windows_at_another_rate_are_joined_per_recording_and_cut_again(tmp_path: Path) -> None:
    # 25 Hz, 10 s windows, 2 per recording: 20 s per recording -> three 6 s windows (the last 2 s dropped).
    device = check_device_type(write_recorded_device(tmp_path, rate=25.0, window_seconds=10.0))
    on_disk = read_npz(device.data, window_length=None)
    windows = device_recordings(device)
    assert on_disk.X.shape[1] == 250 and len(np.unique(on_disk.segment)) * 3 == len(windows)
    for segment in np.unique(windows.segment):  # a recording keeps its user and activity
        original = on_disk.segment == segment
        assert set(windows.user[windows.segment == segment]) == set(on_disk.user[original])
        assert set(windows.y[windows.segment == segment]) == set(on_disk.y[original])


def test_recordings_already_at_20_hz_in_120_samples_are_used_as_they_are(tmp_path: Path) -> None:
    device = check_device_type(write_recorded_device(tmp_path, rate=20.0))
    np.testing.assert_array_equal(device_recordings(device).X, read_npz(device.data).X)


def test_missing_sampling_rate_means_the_device_rate_and_a_device_without_gyro_gets_zeros(
    tmp_path: Path,
) -> None:
    toml = write_recorded_device(tmp_path, rate=50.0, sampling_rate=None, toml_extra="has_gyro = false\n")
    windows = device_recordings(check_device_type(toml))
    assert windows.X.shape[1] == 120 and not windows.has_gyro and np.all(windows.X[..., 3:] == 0)


def _bad_x(kind: str) -> np.ndarray:
    """Recordings of write_recorded_device's shape (24 windows of 300 samples), broken one way."""
    X = np.zeros((24, 300, 6), dtype=np.float32)
    X[..., 0] = GRAVITY
    X += np.random.default_rng(0).normal(0, 0.05, X.shape).astype(np.float32)
    if kind == "g":
        X[..., :3] /= GRAVITY
    elif kind == "deg/s":
        X[..., 3:] += 60.0
    elif kind == "nan":
        X[3, 7, 1] = np.nan
    elif kind == "3 channels":
        X = X[..., :3]
    elif kind == "no gyro":
        X[..., 3:] = 0.0
    return X


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"X": _bad_x("g")}, r"field 'X': median \|acc\| is 1.000, near 1 .* looks like g"),
        ({"X": _bad_x("deg/s")}, r"field 'X': median \|gyro\| is .* looks like deg/s"),
        ({"X": _bad_x("nan")}, r"field 'X' has 1 NaN and 0 inf values .* window 3, sample 7, channel 1"),
        ({"X": _bad_x("3 channels")}, r"field 'X' must have 6 channels .* got shape \[24, 300, 3\]"),
        ({"user": None}, r"missing field\(s\) \['user'\]"),
        ({"user": np.zeros(5, dtype=np.int64)}, r"field 'user' must be integers of shape \[24\]"),
        (
            {"sampling_rate": np.float64(30.0)},
            "field 'sampling_rate' is 30 Hz, but the device type records at 50",
        ),
        (
            {"user": np.arange(24) % 2},
            r"field 'segment': segment\(s\) .* more than one value of field 'user'",
        ),
        ({"X": _bad_x("ok")[..., :100, :]}, "field 'X' .* no segment lasts 6 s"),
        (
            {"X": _bad_x("no gyro")},
            "field 'has_gyro'",
        ),
    ],
)
def test_bad_recordings_fail_naming_the_file_and_field(tmp_path: Path, fields: dict, message: str) -> None:
    toml = write_recorded_device(tmp_path, rate=50.0, **fields)
    with pytest.raises(DataError, match=message) as info:
        check_device_type(toml)
    assert "recordings.npz" in str(info.value)


def test_missing_recordings_file_fails_naming_the_toml_and_field(tmp_path: Path) -> None:
    toml = tmp_path / "my_ring.toml"
    toml.write_text('sampling_rate = 50\nplacement = "finger"\ndata = "nowhere/recordings.npz"\n')
    with pytest.raises(DataError, match=r"my_ring.toml: field 'data': no file .*nowhere/recordings.npz"):
        load_device_type(toml)
    toml.write_text('sampling_rate = 50\nplacement = "finger"\ndata = 3\n')
    with pytest.raises(DataError, match=r"my_ring.toml: .*field 'data' must be the path of an npz file"):
        load_device_type(toml)


def test_a_simulated_device_type_must_be_worn_where_the_simulator_can_put_it(tmp_path: Path) -> None:
    toml = tmp_path / "tail_logger.toml"
    toml.write_text('sampling_rate = 50\nplacement = "tail"\n')
    assert load_device_type(toml).placement == "tail"  # a word for prompts; loading does not simulate
    with pytest.raises(DataError, match=r"tail_logger.toml: field 'placement' 'tail' is not simulated"):
        check_device_type(toml)
    assert check_device_type("wrist_watch") == load_device_type("wrist_watch")
