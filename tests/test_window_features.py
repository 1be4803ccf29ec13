"""WindowFeatures (the torch signal analysis a deployed encoder runs) against data/features.py's numpy one.

Tolerances. The torch module computes in float64 like numpy and both results are rounded to float32, so the
continuous features agree to float32 rounding: rtol 1e-5 (a few float32 ulps of slack for a different
summation order) with atol 1e-6 in the feature's unit, for features that sit at ~0 (skewness of a still
window). The discrete features (argmax frequencies, the autocorrelation lag, peak counts, gyro_available)
must be equal; at most 1 window in 300 may differ, because a near tie between two spectral bins or two lags
(1e-16 apart) may be broken differently by another CPU's matmul kernel, and numpy's own answer is then just
as arbitrary. On this machine every window agrees.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from common.data.devices import load_device_type, rotation_matrix
from common.data.features import FEATURE_NAMES, INVARIANT_FEATURES, analyze_windows
from common.data.synthetic import generate_windows
from common.models.sensor_encoder import SensorEncoder, SensorEncoderConfig, window_analysis
from common.models.window_features import WindowFeatures, _arccos_degrees

torch.set_num_threads(1)

DISCRETE = {
    "dominant_frequency",
    "vertical_dominant_frequency",
    "gyro_dominant_frequency",
    "period",
    "peak_count",
    "step_rate",
    "gyro_available",
}
WINDOWS = 300
SMALL = {"d_model": 32, "num_heads": 2, "num_layers": 1, "ff_dim": 32, "out_dim": 16}


def assert_features_match(torch_features: np.ndarray, numpy_features: np.ndarray, names: tuple[str, ...]):
    assert torch_features.shape == numpy_features.shape == (len(numpy_features), len(names))
    allowed = max(1, len(numpy_features) // 300)
    for column, name in enumerate(names):
        ours, reference = torch_features[:, column], numpy_features[:, column]
        if name in DISCRETE:
            differing = int((ours != reference).sum())
            assert differing <= allowed, f"{name}: {differing} windows differ"
        else:
            np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=1e-6, err_msg=name)


def real_windows(data_dir: Path, name: str) -> np.ndarray:
    X = np.load(data_dir / f"{name}.npz")["X"]
    step = max(1, len(X) // WINDOWS)  # spread over users and activities
    return np.ascontiguousarray(X[::step][:WINDOWS], dtype=np.float32)


def model_analysis(config: SensorEncoderConfig, X: np.ndarray) -> np.ndarray:
    """The analysis the deployed model computes itself (its WindowFeatures), float32 [N, F]."""
    features = SensorEncoder(config).window_features
    assert features is not None
    with torch.no_grad():
        return features(torch.from_numpy(X)).numpy()


@pytest.mark.parametrize("data_set", ["uci", "dsads_rightleg"])
def test_model_analysis_equals_the_numpy_one_on_real_windows(data_dir: Path, data_set: str) -> None:
    X = real_windows(data_dir, data_set)
    for changes in ({}, {"walking_frame": True}, {"input_frame": "device"}):
        config = SensorEncoderConfig(**SMALL, **changes)
        assert_features_match(model_analysis(config, X), window_analysis(X, config), config.analysis_features)
    # a gyro-less device: its gyro features are 0 and gyro_available 0, as window_analysis gives them
    acc_only = SensorEncoderConfig(**SMALL, input_channels=3)
    ours = model_analysis(acc_only, X[:, :, :3])
    assert_features_match(ours, window_analysis(X[:, :, :3], acc_only), acc_only.analysis_features)
    assert np.all(ours[:, INVARIANT_FEATURES.index("gyro_available")] == 0)
    assert np.all(ours[:, INVARIANT_FEATURES.index("gyro_dominant_frequency")] == 0)
    assert ours[:, INVARIANT_FEATURES.index("dominant_frequency")].max() > 0  # the acc features are there


def test_all_features_equal_the_numpy_ones_on_synthetic_windows() -> None:
    """Every data/features.py column, scripted, on simulated activities and devices, with and without gyro."""
    activities = ["walking", "running", "upstairs", "downstairs", "sitting", "lying", "cycling", "jumping"]
    six, three = torch.jit.script(WindowFeatures()), torch.jit.script(WindowFeatures(input_channels=3))
    for device in (None, "wrist_watch", "cheap_band"):
        ws = generate_windows(
            activities, WINDOWS // len(activities), load_device_type(device) if device else None, seed=3
        )
        X = ws.X.astype(np.float32)
        with torch.no_grad():
            # a six-channel encoder analyses the gyro channels even where they read 0 (the cheap band's):
            # window_analysis does the same, and the main axis of a zero gyro is then no axis, not NaN
            assert_features_match(six(torch.from_numpy(X)).numpy(), analyze_windows(X), FEATURE_NAMES)
            acc_only = three(torch.from_numpy(X[:, :, :3])).numpy()
        assert_features_match(acc_only, analyze_windows(X, has_gyro=False), FEATURE_NAMES)
        assert ws.has_gyro == (device != "cheap_band")
    assert WindowFeatures().state_dict() == {}  # constants only, never part of the federated payload


def test_features_do_not_move_when_the_device_is_rotated(data_dir: Path) -> None:
    X = real_windows(data_dir, "uci")[:100].astype(np.float64)
    module = WindowFeatures(names=INVARIANT_FEATURES)
    with torch.no_grad():
        reference = module(torch.from_numpy(X.astype(np.float32))).numpy()
        for seed in range(3):
            rotation = rotation_matrix(np.random.default_rng(seed).uniform(-180.0, 180.0, size=3))
            rotated = np.concatenate([X[..., :3] @ rotation.T, X[..., 3:] @ rotation.T], axis=2)
            ours = module(torch.from_numpy(rotated.astype(np.float32))).numpy()
            # the rotated float32 window differs from the original by its rounding (1e-7 relative)
            for column, name in enumerate(INVARIANT_FEATURES):
                if name in DISCRETE:
                    assert (ours[:, column] != reference[:, column]).sum() <= 1, name
                else:
                    np.testing.assert_allclose(ours[:, column], reference[:, column], rtol=1e-4, atol=1e-4)


def test_principal_axis_agrees_with_eigh() -> None:
    rng = np.random.default_rng(0)
    axes = np.linalg.qr(rng.normal(size=(200, 3, 3)))[0]
    # eigenvalues from well separated down to 1e-5 apart, and one matrix of rank 1
    eigenvalues = np.sort(rng.uniform(0.0, 4.0, size=(200, 3)), axis=1)
    eigenvalues[:50, 1] = eigenvalues[:50, 2] * (1.0 - np.logspace(-5, -1, 50))
    eigenvalues[-1] = (0.0, 0.0, 2.0)
    covariance = np.einsum("nij,nj,nkj->nik", axes, eigenvalues, axes)
    ours = WindowFeatures()._principal_axis(torch.from_numpy(covariance)).numpy()
    reference = np.linalg.eigh(covariance)[1][:, :, -1]
    np.testing.assert_allclose(np.abs((ours * reference).sum(axis=1)), 1.0, atol=1e-9)
    zero = WindowFeatures()._principal_axis(torch.zeros(1, 3, 3, dtype=torch.float64))
    assert torch.equal(zero, torch.zeros(1, 3, dtype=torch.float64))  # a gyro that reads 0: no axis, no NaN


def test_arccos_is_float64_accurate_near_the_poles() -> None:
    cosine = np.concatenate([np.linspace(-1.0, 1.0, 2001), 1.0 - np.logspace(-16, -2, 200), [-1.0 + 1e-13]])
    ours = _arccos_degrees(torch.from_numpy(cosine)).numpy()
    np.testing.assert_allclose(ours, np.degrees(np.arccos(cosine)), rtol=1e-12, atol=1e-12)
