"""The walking frame: a body segment's inclination from its wearer's walking posture, without labels."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from common.data.devices import rotation_matrix
from common.data.errors import DataError
from common.data.features import FEATURE_INDEX, INVARIANT_FEATURES, analyze_windows
from common.data.loading import load_dataset
from common.data.posture import (
    DENSEST_BLOCK,
    densest_direction,
    gravity_directions,
    rotations_onto_z,
    walking_frame,
    walking_references,
)
from common.language.rules import rhythmic_movement
from common.method.lanhar import to_walking_frame


def _unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.linalg.norm(vectors, axis=-1, keepdims=True)


def test_rotations_onto_z_are_proper_rotations_that_turn_each_reference_onto_z() -> None:
    rng = np.random.default_rng(0)
    references = np.concatenate([_unit(rng.normal(size=(50, 3))), [[0, 0, 1.0], [0, 0, -1.0], [1.0, 0, 0]]])
    rotations = rotations_onto_z(references)
    np.testing.assert_allclose(np.einsum("nij,nj->ni", rotations, references), [[0, 0, 1.0]] * 53, atol=1e-12)
    np.testing.assert_allclose(
        rotations @ rotations.transpose(0, 2, 1), np.broadcast_to(np.eye(3), (53, 3, 3)), atol=1e-12
    )
    np.testing.assert_allclose(np.linalg.det(rotations), 1.0, atol=1e-12)
    with pytest.raises(ValueError, match=r"finite unit vectors \[N, 3\]"):
        rotations_onto_z(np.full((2, 3), np.nan))


def test_the_densest_direction_ignores_a_minority_in_another_posture() -> None:
    rng = np.random.default_rng(1)
    upright = _unit(np.array([0.0, 0.0, 1.0]) + rng.normal(0, 0.05, (30, 3)))  # walking, a few degrees apart
    seated = _unit(np.array([np.sin(1.2), 0.0, np.cos(1.2)]) + rng.normal(0, 0.05, (12, 3)))  # ~70 deg away
    reference = densest_direction(np.concatenate([upright, seated]))
    assert np.degrees(np.arccos(reference[2])) < 3.0
    plain_mean = _unit(np.concatenate([upright, seated]).mean(axis=0))
    assert np.degrees(np.arccos(plain_mean[2])) > 15.0  # what the densest direction protects against


def test_the_densest_direction_counted_in_blocks_equals_the_full_neighbour_count() -> None:
    rng = np.random.default_rng(2)
    n = 2 * DENSEST_BLOCK + 300  # three blocks, the last one short
    directions = _unit(np.array([0.3, 0.1, 1.0]) + rng.normal(0, 0.6, (n, 3)))
    neighbours = directions @ directions.T >= np.cos(np.radians(30.0))  # the n x n matrix it avoids
    expected = _unit(directions[neighbours[np.argmax(neighbours.sum(axis=1))]].mean(axis=0))
    np.testing.assert_allclose(densest_direction(directions, 30.0), expected, atol=1e-12)


def test_walking_references_per_group_and_none_for_a_group_with_too_few_rhythmic_windows() -> None:
    directions = _unit(np.array([[0, 0, 1.0]] * 6 + [[1.0, 0, 0]] * 6 + [[0, 1.0, 0]] * 3))
    groups = np.array([0] * 6 + [1] * 6 + [2] * 3)
    references = walking_references(directions, groups, np.ones(15, dtype=bool), min_windows=5)
    np.testing.assert_allclose(references[:6], [[0, 0, 1.0]] * 6)
    np.testing.assert_allclose(references[6:12], [[1.0, 0, 0]] * 6)
    assert np.isnan(references[12:]).all()
    with pytest.raises(ValueError, match="need one entry per direction"):
        walking_references(directions, groups[:3], np.ones(15, dtype=bool))


@pytest.fixture(scope="module")
def uci(data_dir: Path):
    windows = load_dataset("uci", data_dir)
    return windows.subset(np.flatnonzero(np.isin(windows.user, np.unique(windows.user)[:4])))


def test_walking_frame_keeps_the_invariant_features_and_does_not_depend_on_how_each_device_is_worn(
    uci,
) -> None:
    features = analyze_windows(uci.X)
    framed = walking_frame(uci, features, rhythmic_movement(features))
    framed_features = analyze_windows(framed.X)
    invariant = [FEATURE_INDEX[name] for name in INVARIANT_FEATURES]
    np.testing.assert_allclose(framed_features[:, invariant], features[:, invariant], rtol=1e-3, atol=1e-3)
    # Each user wears the device turned another way: every window of a user rotated by one rotation.
    rng = np.random.default_rng(2)
    turned = uci.X.astype(np.float64).copy()
    for user in np.unique(uci.user):
        rotation = rotation_matrix(rng.uniform(-180, 180, size=3))
        rows = uci.user == user
        for part in (slice(0, 3), slice(3, 6)):
            turned[rows, :, part] = np.einsum("ij,ntj->nti", rotation, turned[rows][:, :, part])
    remounted = dataclasses.replace(uci, X=turned.astype(np.float32))
    remounted_features = analyze_windows(remounted.X)
    reframed = walking_frame(remounted, remounted_features, rhythmic_movement(remounted_features))
    tilt = FEATURE_INDEX["tilt_z"]
    np.testing.assert_allclose(analyze_windows(reframed.X)[:, tilt], framed_features[:, tilt], atol=0.05)


def test_in_the_walking_frame_lying_is_horizontal_and_standing_upright_on_real_data(uci) -> None:
    framed = to_walking_frame(uci)
    inclination = analyze_windows(framed.X)[:, FEATURE_INDEX["tilt_z"]]
    labels = np.asarray(framed.labels())
    assert np.median(inclination[labels == "lying"]) > 60.0
    assert np.median(inclination[labels == "standing"]) < 30.0
    assert np.median(inclination[labels == "walking"]) < 30.0


def test_a_user_without_rhythmic_windows_is_named(uci) -> None:
    features = analyze_windows(uci.X)
    rhythmic = rhythmic_movement(features) & (uci.user != uci.user[0])
    with pytest.raises(DataError, match=rf"'uci': users \[{uci.user[0]}\] have fewer than 5 windows"):
        walking_frame(uci, features, rhythmic)
    with pytest.raises(ValueError, match="must describe each of the"):
        walking_frame(uci, features[:3], rhythmic)


def test_gravity_directions_read_the_tilt_columns(uci) -> None:
    features = analyze_windows(uci.X[:20])
    expected = _unit(uci.X[:20, :, :3].astype(np.float64).mean(axis=1))
    np.testing.assert_allclose(gravity_directions(features), expected, atol=1e-5)
    with pytest.raises(ValueError, match="FEATURE_NAMES order"):
        gravity_directions(features[:, :5])
