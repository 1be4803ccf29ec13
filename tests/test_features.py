from __future__ import annotations

import numpy as np
import pytest

from common.data.features import (
    FEATURE_INDEX,
    FEATURE_NAMES,
    FEATURE_UNITS,
    INVARIANT_FEATURES,
    analyze_windows,
    feature_dict,
)

RATE = 20.0
T = 120
GRAVITY = 9.80665


def _time() -> np.ndarray:
    return np.arange(T) / RATE


def _window(acc: np.ndarray, gyro: np.ndarray | None = None) -> np.ndarray:
    gyro = np.zeros_like(acc) if gyro is None else gyro
    return np.concatenate([acc, gyro], axis=1)[None].astype(np.float32)


def _vertical_sine(frequency: float, amplitude: float) -> np.ndarray:
    """Gravity on z plus a sine of `frequency` Hz along z, nothing horizontal."""
    acc = np.zeros((T, 3))
    acc[:, 2] = GRAVITY + amplitude * np.sin(2 * np.pi * frequency * _time())
    return _window(acc)


def _gait_like(rng: np.random.Generator, n: int) -> np.ndarray:
    """Windows with a walking-like structure: a bouncing step rhythm with harmonics, sway and rotation."""
    windows = []
    for _ in range(n):
        t = _time()
        step = rng.uniform(1.6, 2.2)
        phase = rng.uniform(0, 2 * np.pi)
        vertical = 2.5 * np.sin(2 * np.pi * step * t + phase) + 1.0 * np.sin(4 * np.pi * step * t + 2 * phase)
        sway = 1.2 * np.sin(np.pi * step * t + phase)
        acc = np.stack([sway, 0.5 * np.cos(np.pi * step * t), GRAVITY + vertical], axis=1)
        acc += rng.normal(0, 0.1, acc.shape)
        gyro = np.stack([0.6 * np.sin(np.pi * step * t), 0.2 * np.cos(2 * np.pi * step * t), 0.1 * t], axis=1)
        windows.append(np.concatenate([acc, gyro], axis=1))
    return np.asarray(windows, dtype=np.float32)


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def test_feature_table_is_consistent() -> None:
    assert len(FEATURE_NAMES) == len(set(FEATURE_NAMES)) == len(FEATURE_UNITS)
    assert set(INVARIANT_FEATURES) <= set(FEATURE_NAMES)
    features = analyze_windows(_vertical_sine(2.0, 3.0))
    assert features.shape == (1, len(FEATURE_NAMES))
    assert features.dtype == np.float32
    row = feature_dict(features[0])
    assert list(row) == list(FEATURE_NAMES)
    assert all(isinstance(value, float) for value in row.values())


def test_vertical_sine_gives_its_frequency_and_step_rate() -> None:
    row = feature_dict(analyze_windows(_vertical_sine(2.0, 3.0))[0])
    assert row["dominant_frequency"] == pytest.approx(2.0, abs=0.08)
    assert row["vertical_dominant_frequency"] == pytest.approx(2.0, abs=0.08)
    assert row["step_rate"] == pytest.approx(2.0, abs=0.2)  # one peak per cycle, in steps/s
    assert row["period"] == pytest.approx(0.5, abs=0.05)  # s
    assert row["autocorrelation_peak"] > 0.9
    assert row["dominant_frequency_share"] > 0.8
    assert row["vertical_std"] == pytest.approx(3.0 / np.sqrt(2), rel=0.02)  # m/s^2, rms of a sine
    assert row["horizontal_rms"] < 0.01  # all motion is along gravity
    assert row["vertical_horizontal_ratio"] > 100
    assert row["gravity_magnitude"] == pytest.approx(GRAVITY, abs=0.05)
    assert row["tilt_z"] == pytest.approx(0.0, abs=1.0)  # gravity along +z
    assert row["tilt_x"] == pytest.approx(90.0, abs=1.0)


def test_other_frequencies_are_found_too() -> None:
    for frequency in (1.0, 1.5, 2.7):
        row = feature_dict(analyze_windows(_vertical_sine(frequency, 2.0))[0])
        assert row["dominant_frequency"] == pytest.approx(frequency, abs=0.08)
        assert row["step_rate"] == pytest.approx(frequency, abs=0.2)


def test_static_window_has_no_dynamics() -> None:
    direction = np.array([0.3, -0.5, 0.81])
    direction /= np.linalg.norm(direction)
    acc = np.tile(GRAVITY * direction, (T, 1)) + np.random.default_rng(0).normal(0, 0.005, (T, 3))
    row = feature_dict(analyze_windows(_window(acc))[0])
    assert row["acc_mag_mean"] == pytest.approx(GRAVITY, abs=0.02)
    assert row["gravity_magnitude"] == pytest.approx(GRAVITY, abs=0.02)
    assert row["dynamic_energy"] < 1e-3  # (m/s^2)^2
    assert row["spectral_energy"] < 1e-3
    assert row["acc_mag_std"] < 0.02
    assert row["step_rate"] == 0.0
    assert row["jerk_mean"] < 0.5  # m/s^3: noise only
    assert row["tilt_swing"] < 1.0  # deg
    assert row["orientation_change"] < 0.5
    assert row["gyro_magnitude_mean"] == 0.0
    expected_tilt = np.degrees(np.arccos(direction))
    assert [row["tilt_x"], row["tilt_y"], row["tilt_z"]] == pytest.approx(expected_tilt, abs=0.5)


def test_rotating_the_device_leaves_invariant_features_unchanged() -> None:
    rng = np.random.default_rng(1)
    windows = _gait_like(rng, 12)
    reference = analyze_windows(windows)
    invariant = [FEATURE_INDEX[name] for name in INVARIANT_FEATURES]
    for _ in range(3):
        rotation = _random_rotation(rng)
        rotated = windows.copy()
        rotated[..., :3] = windows[..., :3] @ rotation.T
        rotated[..., 3:] = windows[..., 3:] @ rotation.T
        features = analyze_windows(rotated)
        np.testing.assert_allclose(features[:, invariant], reference[:, invariant], rtol=2e-3, atol=2e-3)
        # the device-axis features do change, so the test would notice a broken rotation
        tilt = [FEATURE_INDEX["tilt_x"], FEATURE_INDEX["tilt_y"], FEATURE_INDEX["tilt_z"]]
        assert np.abs(features[:, tilt] - reference[:, tilt]).max() > 1.0


def test_missing_gyroscope_zeroes_and_flags_the_gyro_features() -> None:
    windows = _gait_like(np.random.default_rng(2), 3)
    features = analyze_windows(windows, has_gyro=False)
    gyro_columns = [FEATURE_INDEX[name] for name in FEATURE_NAMES if name.startswith("gyro_")]
    assert np.all(features[:, gyro_columns] == 0.0)
    with_gyro = analyze_windows(windows, has_gyro=True)
    assert np.all(with_gyro[:, FEATURE_INDEX["gyro_available"]] == 1.0)
    assert np.all(with_gyro[:, FEATURE_INDEX["gyro_magnitude_mean"]] > 0.1)


def test_sampling_rate_is_used_for_frequencies() -> None:
    acc = np.zeros((T, 3))
    acc[:, 2] = GRAVITY + 2.0 * np.sin(2 * np.pi * 1.0 * np.arange(T) / 40.0)  # 1 Hz sampled at 40 Hz
    row = feature_dict(analyze_windows(_window(acc), sampling_rate=40.0)[0])
    assert row["dominant_frequency"] == pytest.approx(1.0, abs=0.08)


@pytest.mark.parametrize(
    ("windows", "message"),
    [
        (np.zeros((T, 6), dtype=np.float32), "shape"),
        (np.zeros((2, T, 3), dtype=np.float32), "shape"),
        (np.zeros((0, T, 6), dtype=np.float32), "no windows"),
        (np.zeros((2, 10, 6), dtype=np.float32), "1 s"),
    ],
)
def test_bad_shapes_are_rejected(windows: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        analyze_windows(windows)


def test_nan_units_and_rate_are_checked() -> None:
    windows = _gait_like(np.random.default_rng(3), 2)
    broken = windows.copy()
    broken[1, 5, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        analyze_windows(broken)
    in_g = windows.copy()
    in_g[..., :3] /= GRAVITY
    with pytest.raises(ValueError, match="units of g"):
        analyze_windows(in_g)
    with pytest.raises(ValueError, match="sampling_rate"):
        analyze_windows(windows, sampling_rate=0.0)
    with pytest.raises(ValueError, match="feature row"):
        feature_dict(np.zeros(3))
