"""A body segment's inclination from its wearer's own walking posture, found without labels.

The gravity frame (common/models/sensor_encoder.py, the rules interpreter's quantities) makes a window
independent of how the device is mounted, and with it independent of how the body segment is inclined: a
still window of sitting, standing or lying reads the same. The inclination can be recovered without giving up
that invariance by measuring it against a reference that rotates with the device: the gravity direction of
the same wearer's walking, when trunk and thigh are close to upright.

- `gravity_directions`: each window's mean acceleration as a unit vector in device axes, from its
  `analyze_windows` features;
- `walking_references`: per group (a user, a client, one recording device), the densest direction among the
  windows flagged as rhythmic movement: the direction shared by most of them within REFERENCE_SPREAD_DEG,
  averaged over those. Most rhythmic movement is upright locomotion (walking, stairs, running), so that is
  the walking posture; a minority in another posture (pedalling, rowing) does not pull it away, as it would
  pull a plain mean. Which windows are flagged is the caller's rule (the rules interpreter's
  `rhythmic_movement`), so this layer holds no activity knowledge;
- `walking_frame`: every window of a group turned so that the group's reference becomes the device's +z
  axis. The gravity-frame quantities do not change (a rotation), and the tilt from +z of a window's gravity
  (data/features.py `tilt_z`) becomes its inclination, which the rules interpreter words and an
  analysis-token sensor encoder reads (CentralConfig.walking_frame).

Rotating every window of a group by one fixed rotation rotates its reference too, so the inclinations do
not change (tests/test_posture.py).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from common.data.errors import DataError
from common.data.features import FEATURE_INDEX, FEATURE_NAMES
from common.data.windows import WindowSet

# Fewer rhythmic windows than this give no reference: one turn or stumble would decide it.
MIN_REFERENCE_WINDOWS = 5
# Window means of one posture lie within a few degrees of each other, and a thigh's stride swing averages out
# over a 6 s window; 30 deg is the rules interpreter's "upright" bin (rules.INCLINATION_BINS).
REFERENCE_SPREAD_DEG = 30.0
DENSEST_BLOCK = 1024  # rows of the neighbour count per block: 1024 x n cosines, 8 MB per 1,000 windows


def gravity_directions(features: np.ndarray) -> np.ndarray:
    """Unit vector of each window's mean acceleration in device axes, [N, 3], from `analyze_windows`
    features (tilt_x/y/z are its angles to the device axes; analyze_windows has checked units and shape)."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or features.shape[1] != len(FEATURE_NAMES):
        raise ValueError(
            f"features must have shape [N, {len(FEATURE_NAMES)}] (FEATURE_NAMES order), "
            f"got {list(features.shape)}"
        )
    tilts = features[:, [FEATURE_INDEX[f"tilt_{axis}"] for axis in "xyz"]]
    cosines = np.cos(np.radians(tilts))
    return cosines / np.linalg.norm(cosines, axis=1, keepdims=True)


def densest_direction(directions: np.ndarray, spread_deg: float = REFERENCE_SPREAD_DEG) -> np.ndarray:
    """The mean of the largest set of `directions` [n, 3] lying within `spread_deg` of one of them: [3].

    Neighbours are counted DENSEST_BLOCK rows at a time, so memory stays O(n) for long recordings.
    """
    threshold = np.cos(np.radians(spread_deg))
    counts = np.concatenate(
        [
            (directions[start : start + DENSEST_BLOCK] @ directions.T >= threshold).sum(axis=1)
            for start in range(0, len(directions), DENSEST_BLOCK)
        ]
    )
    centre = int(np.argmax(counts))  # ties: the first, so the result is deterministic
    mean = directions[directions @ directions[centre] >= threshold].mean(axis=0)
    return mean / np.linalg.norm(mean)


def walking_references(
    directions: np.ndarray,
    groups: np.ndarray,
    rhythmic: np.ndarray,
    min_windows: int = MIN_REFERENCE_WINDOWS,
) -> np.ndarray:
    """Each row's group reference, [N, 3]: the `densest_direction` of the group's rhythmic rows.

    Rows of a group with fewer than `min_windows` rhythmic rows get NaN.
    """
    directions = np.asarray(directions, dtype=np.float64)
    groups = np.asarray(groups)
    rhythmic = np.asarray(rhythmic, dtype=bool)
    if directions.ndim != 2 or directions.shape[1] != 3:
        raise ValueError(f"directions must have shape [N, 3], got {list(directions.shape)}")
    if groups.shape != (len(directions),) or rhythmic.shape != (len(directions),):
        raise ValueError(
            f"groups {list(groups.shape)} and rhythmic {list(rhythmic.shape)} need one entry per direction "
            f"({len(directions)})"
        )
    if min_windows < 1:
        raise ValueError(f"min_windows must be >= 1, got {min_windows}")
    references = np.full(directions.shape, np.nan)
    for group in np.unique(groups):
        rows = groups == group
        candidates = rows & rhythmic
        if candidates.sum() >= min_windows:
            references[rows] = densest_direction(directions[candidates])
    return references


def rotations_onto_z(references: np.ndarray) -> np.ndarray:
    """The smallest rotation turning each unit vector of `references` [N, 3] onto +z: [N, 3, 3].

    Rodrigues' formula about the axis reference x z; a reference already on -z is turned half a turn about x.
    """
    references = np.asarray(references, dtype=np.float64)
    if references.ndim != 2 or references.shape[1] != 3 or not np.isfinite(references).all():
        raise ValueError(f"references must be finite unit vectors [N, 3], got shape {list(references.shape)}")
    z = np.array([0.0, 0.0, 1.0])
    axis = np.cross(references, z)  # [N, 3], length sin(angle)
    cosine = references @ z
    # K = the cross-product matrix of `axis`; R = I + K + K^2 / (1 + cos) (Rodrigues, unnormalised axis).
    k = np.zeros((len(references), 3, 3))
    k[:, 0, 1], k[:, 0, 2], k[:, 1, 2] = -axis[:, 2], axis[:, 1], -axis[:, 0]
    k[:, 1, 0], k[:, 2, 0], k[:, 2, 1] = axis[:, 2], -axis[:, 1], axis[:, 0]
    opposite = cosine < -1.0 + 1e-9
    scale = 1.0 / np.where(opposite, 1.0, 1.0 + cosine)
    rotations = np.eye(3) + k + (k @ k) * scale[:, None, None]
    rotations[opposite] = np.diag([1.0, -1.0, -1.0])
    return rotations


def walking_frame(
    ws: WindowSet, features: np.ndarray, rhythmic: np.ndarray, min_windows: int = MIN_REFERENCE_WINDOWS
) -> WindowSet:
    """`ws` with each user's windows turned so that the user's walking reference is the +z axis.

    `features` are the windows' `analyze_windows` features; `rhythmic` [N] flags the windows of rhythmic
    movement (the caller's rule, read without labels). Every user needs `min_windows` of them: a DataError
    names the users without a reference.
    """
    rhythmic = np.asarray(rhythmic, dtype=bool)
    if rhythmic.shape != (len(ws),) or len(features) != len(ws):
        raise ValueError(
            f"features ({len(features)} rows) and rhythmic {list(rhythmic.shape)} must describe each of the "
            f"{len(ws)} windows of {ws.name!r}"
        )
    references = walking_references(gravity_directions(features), ws.user, rhythmic, min_windows)
    missing = np.unique(ws.user[np.isnan(references[:, 0])])
    if len(missing):
        raise DataError(
            f"{ws.name!r}: users {missing.tolist()} have fewer than {min_windows} windows of rhythmic "
            "movement, so their walking posture (the reference of walking_frame) is unknown"
        )
    rotations = rotations_onto_z(references)
    X = ws.X.astype(np.float64)
    X[..., :3] = np.einsum("nij,ntj->nti", rotations, X[..., :3])
    X[..., 3:] = np.einsum("nij,ntj->nti", rotations, X[..., 3:])
    return dataclasses.replace(ws, X=X.astype(np.float32))
