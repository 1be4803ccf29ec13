"""Where on the body a sensor sits, and how much more a limb swings than the trunk in the same movement.

A sensor on a limb rotates with the limb, so the same whole-body movement shows larger rotation, tilt and
horizontal acceleration on the thigh or wrist than on the trunk (during gait the thigh swings through about
40 degrees per stride, the pelvis and chest through a few). The swing factors are round numbers close to the
ratio thigh/trunk seen for level walking in the development data (rotation ~2.5x, tilt ~2x). On the trunk,
the legs and the arms vertical motion is not scaled: the up-down motion of the body reaches them all. The
rules interpreter divides those quantities by the factors before it puts them into words.

Two groups scale more (factors: the ratio to the waist in level walking of the simulator's segments,
common/data/synthetic.py, rounded; no real data set has these placements yet):
- "head" (earbuds, glasses, cap): the spine and neck damp the pelvis' motion and the head is stabilised
  for the gaze (Kavanagh & Menz 2008, Gait Posture 28:1-15), so rotation, tilt and horizontal acceleration
  are about half the trunk's and the vertical motion and its changes ~0.8;
- "foot" (shoe or insole sensor): the foot swings through ~75 deg per stride and travels a full stride in
  the swing (rotation ~3x, horizontal acceleration ~4x, tilt ~10x the trunk's) and takes the heel strike
  before the heel pad, ankle and knee damp it (vertical motion, amplitude of the acceleration change and
  impacts ~2.5x).
The ankle and shin stay in "leg": PAMAP2's "dominant ankle" unit has always been read with the leg factors.
"""

from __future__ import annotations

import re

SWING_FACTORS: dict[str, dict[str, float]] = {
    "trunk": {"rotation": 1.0, "horizontal": 1.0, "tilt": 1.0, "amplitude": 1.0, "vertical": 1.0},
    "leg": {"rotation": 2.5, "horizontal": 2.5, "tilt": 2.0, "amplitude": 1.0, "vertical": 1.0},
    "arm": {"rotation": 2.5, "horizontal": 2.5, "tilt": 2.0, "amplitude": 1.0, "vertical": 1.0},
    "head": {"rotation": 0.5, "horizontal": 0.5, "tilt": 0.5, "amplitude": 0.8, "vertical": 0.8},
    "foot": {"rotation": 3.0, "horizontal": 4.0, "tilt": 10.0, "amplitude": 2.5, "vertical": 2.5},
    "unknown": {"rotation": 1.0, "horizontal": 1.0, "tilt": 1.0, "amplitude": 1.0, "vertical": 1.0},
}
# Matched anywhere in the position ("right thigh", "trouser pocket"), in this order.
_PLACEMENT_WORDS: dict[str, tuple[str, ...]] = {
    "trunk": ("waist", "chest", "torso", "back", "hip", "belt", "pelvis", "trunk", "sternum", "abdomen"),
    "leg": ("thigh", "leg", "pocket", "trouser", "pants", "knee", "shank", "ankle", "shin"),
    "arm": ("wrist", "arm", "hand", "forearm", "elbow", "watch"),
}
# Matched as whole words, after the words above: "ear" is also in "forearm", "heart" and "rear", "ring" in
# "during" and "earring", "cap" in "capsule".
_PLACEMENT_WHOLE_WORDS: dict[str, tuple[str, ...]] = {
    "head": ("head", "forehead", "ear", "ears", "earbud", "earbuds", "earphones", "glasses", "cap", "helmet"),
    "foot": ("foot", "feet", "shoe", "shoes", "insole", "insoles", "heel", "toe", "toes"),
    "arm": ("finger", "ring"),  # a ring rides on the hand: the arm's swing
}


def placement_group(position: str) -> str:
    """ "trunk", "leg", "arm", "head", "foot" or "unknown" for a body position such as "right thigh"."""
    words = position.strip().lower()
    for group, keys in _PLACEMENT_WORDS.items():
        if any(key in words for key in keys):
            return group
    tokens = set(re.findall(r"[a-z]+", words))
    for group, keys in _PLACEMENT_WHOLE_WORDS.items():
        if tokens.intersection(keys):
            return group
    return "unknown"
