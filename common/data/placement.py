"""Where on the body a sensor sits, and how much more a limb swings than the trunk in the same movement.

A sensor on a limb rotates with the limb, so the same whole-body movement shows larger rotation, tilt and
horizontal acceleration on the thigh or wrist than on the trunk (during gait the thigh swings through about
40 degrees per stride, the pelvis and chest through a few). The swing factors are round numbers close to the
ratio thigh/trunk seen for level walking in the development data (rotation ~2.5x, tilt ~2x). Vertical motion
is not scaled: the up-down motion of the body reaches every placement.

Two readers share this one table:
- the rules interpreter divides those three quantities by the factors before it puts them into words;
- `trunk_equivalent` divides the window itself (its horizontal dynamic acceleration and its angular rate),
  so that a sensor encoder can read every placement in the units the interpreter words them in.
"""

from __future__ import annotations

import numpy as np

SWING_FACTORS: dict[str, dict[str, float]] = {
    "trunk": {"rotation": 1.0, "horizontal": 1.0, "tilt": 1.0},
    "leg": {"rotation": 2.5, "horizontal": 2.5, "tilt": 2.0},
    "arm": {"rotation": 2.5, "horizontal": 2.5, "tilt": 2.0},
    "unknown": {"rotation": 1.0, "horizontal": 1.0, "tilt": 1.0},
}
_PLACEMENT_WORDS: dict[str, tuple[str, ...]] = {
    "trunk": ("waist", "chest", "torso", "back", "hip", "belt", "pelvis", "trunk", "sternum", "abdomen"),
    "leg": ("thigh", "leg", "pocket", "trouser", "pants", "knee", "shank", "ankle", "foot", "shin"),
    "arm": ("wrist", "arm", "hand", "forearm", "elbow", "watch"),
}


def placement_group(position: str) -> str:
    """ "trunk", "leg", "arm" or "unknown" for a body position such as "waist" or "right thigh"."""
    words = position.strip().lower()
    for group, keys in _PLACEMENT_WORDS.items():
        if any(key in words for key in keys):
            return group
    return "unknown"


def trunk_equivalent(X: np.ndarray, position: str) -> np.ndarray:
    """Windows of a sensor at `position` rescaled to what the trunk would see: float32 [N, T, C].

    X [N, T, 6] (acc m/s^2 incl. gravity, gyro rad/s) or [N, T, 3] (acc only). Gravity is the window mean of
    the accelerometer (as in data/features.py); the dynamic acceleration across gravity is divided by the
    placement's horizontal factor and the angular rate by its rotation factor, while gravity and the
    dynamic acceleration along it are kept. A trunk (or unknown) position returns X unchanged, bit for bit.
    """
    X = np.asarray(X, dtype=np.float32)
    if X.ndim != 3 or X.shape[2] not in (3, 6):
        raise ValueError(f"trunk_equivalent: windows must be [N, T, 3 or 6], got shape {list(X.shape)}")
    factors = SWING_FACTORS[placement_group(position)]
    if factors["horizontal"] == 1.0 and factors["rotation"] == 1.0:
        return X
    acc = X[..., :3].astype(np.float64)
    gravity = acc.mean(axis=1, keepdims=True)
    vertical = gravity / np.maximum(np.linalg.norm(gravity, axis=-1, keepdims=True), 1e-6)
    dynamic = acc - gravity
    along = (dynamic * vertical).sum(axis=-1, keepdims=True) * vertical
    out = np.empty_like(X)
    out[..., :3] = gravity + along + (dynamic - along) / factors["horizontal"]
    if X.shape[2] == 6:
        out[..., 3:] = X[..., 3:] / np.float32(factors["rotation"])
    return out
