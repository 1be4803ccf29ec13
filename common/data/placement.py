"""Where on the body a sensor sits, and how much more a limb swings than the trunk in the same movement.

A sensor on a limb rotates with the limb, so the same whole-body movement shows larger rotation, tilt and
horizontal acceleration on the thigh or wrist than on the trunk (during gait the thigh swings through about
40 degrees per stride, the pelvis and chest through a few). The swing factors are round numbers close to the
ratio thigh/trunk seen for level walking in the development data (rotation ~2.5x, tilt ~2x). Vertical motion
is not scaled: the up-down motion of the body reaches every placement. The rules interpreter divides those
three quantities by the factors before it puts them into words.
"""

from __future__ import annotations

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
