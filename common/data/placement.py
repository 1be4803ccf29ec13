"""Where on the body a sensor sits, and how much more a limb swings than the trunk in the same movement.

A sensor on a limb rotates with the limb, so the same whole-body movement shows larger rotation, tilt and
horizontal acceleration on the thigh or wrist than on the trunk (during gait the thigh swings through about
40 degrees per stride, the pelvis and chest through a few). The swing factors are round numbers close to the
ratio thigh/trunk seen for level walking in the development data (rotation ~2.5x, tilt ~2x). On the trunk,
the legs and the arms vertical motion is not scaled: the up-down motion of the body reaches them all. The
rules interpreter divides those quantities by the factors before it puts them into words.

The groups added for issue #37 have no real data set yet. Their factors are the median ratio to the waist
of the simulator's segments (common/data/synthetic.py) in level walking, rounded to the nearest half (tilt,
which varies by about 10% between samples, to a whole number): rotation = gyro_magnitude_mean, horizontal =
horizontal_rms, tilt = tilt_swing, amplitude = acc_mag_std, vertical = vertical_std (tests/test_placement.py
measures them again). Each ratio has its reason in the physics of gait:
- "head" (earbuds, glasses, cap): the spine and neck damp the pelvis' motion and the head is stabilised
  for the gaze (Kavanagh & Menz 2008, Gait Posture 28:1-15), so rotation, tilt and horizontal acceleration
  are about half the trunk's and the vertical motion and its changes ~0.8;
- "foot" (shoe or insole sensor): the foot swings through ~75 deg per stride and travels a full stride in
  the swing (rotation ~3x, horizontal acceleration ~4x, tilt ~10x the trunk's) and takes the heel strike
  before the heel pad, ankle and knee damp it (vertical motion, amplitude of the acceleration change and
  impacts ~2.5x);
- "shank" (ankle band, shin): the shank turns through ~75 deg per stride against the thigh's ~45 (Winter
  2009, Biomechanics and Motor Control of Human Movement, ch. 3), forward over the planted foot and back in
  a fast swing (rotation 3x); the ankle travels a stride in the swing (horizontal acceleration 4x) and its
  direction to gravity sweeps through that range (tilt 9x the trunk's few degrees); the heel strike reaches
  the tibia before the knee damps it, tibial accelerations are ~2-3x the pelvis' (Lafortune et al. 1996,
  J Biomech 29:1531): amplitude of the acceleration change 2.5x, vertical motion and impacts 2x;
- "finger" (ring): the hand is not rigid on the forearm: the relaxed hand trails the arm's swing (the
  simulator's HAND_LAG_DEG), and the ring sits ~0.7 m from the shoulder against the wrist's 0.55 m, so the
  tangential and centripetal accelerations of the same swing are ~1.3x, and more with the hand's own swing:
  the finger's tilt and horizontal acceleration are ~1.8x the wrist's, its vertical motion (the centripetal
  term runs along the hanging arm) ~1.3x. Against the waist: rotation 2x, horizontal 2x, tilt 9x,
  amplitude 1x, vertical 1.5x.
The older groups keep their factors: the "leg" group (thigh, trouser pocket, knee) and the "arm" group
(wrist, forearm, upper arm) word the real data sets as before.

A sensor at the end of one limb (LIMB_END_GROUPS: finger, shank, foot) moves mostly by its own limb's
stride, which repeats once per stride (two steps); the rules interpreter reads its rhythm accordingly
(common/language/rules.py, _step_regularity and _step_rate).
"""

from __future__ import annotations

import re

SWING_FACTORS: dict[str, dict[str, float]] = {
    "trunk": {"rotation": 1.0, "horizontal": 1.0, "tilt": 1.0, "amplitude": 1.0, "vertical": 1.0},
    "leg": {"rotation": 2.5, "horizontal": 2.5, "tilt": 2.0, "amplitude": 1.0, "vertical": 1.0},
    "arm": {"rotation": 2.5, "horizontal": 2.5, "tilt": 2.0, "amplitude": 1.0, "vertical": 1.0},
    "head": {"rotation": 0.5, "horizontal": 0.5, "tilt": 0.5, "amplitude": 0.8, "vertical": 0.8},
    "foot": {"rotation": 3.0, "horizontal": 4.0, "tilt": 10.0, "amplitude": 2.5, "vertical": 2.5},
    "shank": {"rotation": 3.0, "horizontal": 4.0, "tilt": 9.0, "amplitude": 2.5, "vertical": 2.0},
    "finger": {"rotation": 2.0, "horizontal": 2.0, "tilt": 9.0, "amplitude": 1.0, "vertical": 1.5},
    "unknown": {"rotation": 1.0, "horizontal": 1.0, "tilt": 1.0, "amplitude": 1.0, "vertical": 1.0},
}
# Groups whose sensor sits at the end of one limb: its signal is that limb's own stride (rules.py).
LIMB_END_GROUPS: tuple[str, ...] = ("finger", "shank", "foot")
# Matched anywhere in the position ("right thigh", "trouser pocket"), in this order: "ankle" before "leg"
# ("leg band above the ankle" is a shank's).
_PLACEMENT_WORDS: dict[str, tuple[str, ...]] = {
    "trunk": ("waist", "chest", "torso", "back", "hip", "belt", "pelvis", "trunk", "sternum", "abdomen"),
    "shank": ("shank", "ankle", "shin"),
    "leg": ("thigh", "leg", "pocket", "trouser", "pants", "knee"),
    "arm": ("wrist", "arm", "hand", "forearm", "elbow", "watch"),
}
# Matched as whole words, after the words above: "ear" is also in "forearm", "heart" and "rear", "ring" in
# "during" and "earring", "cap" in "capsule".
_PLACEMENT_WHOLE_WORDS: dict[str, tuple[str, ...]] = {
    "head": ("head", "forehead", "ear", "ears", "earbud", "earbuds", "earphones", "glasses", "cap", "helmet"),
    "foot": ("foot", "feet", "shoe", "shoes", "insole", "insoles", "heel", "toe", "toes"),
    "finger": ("finger", "fingers", "ring"),
}


def placement_group(position: str) -> str:
    """The placement group (a key of SWING_FACTORS) of a body position such as "right thigh"."""
    words = position.strip().lower()
    for group, keys in _PLACEMENT_WORDS.items():
        if any(key in words for key in keys):
            return group
    tokens = set(re.findall(r"[a-z]+", words))
    for group, keys in _PLACEMENT_WHOLE_WORDS.items():
        if tokens.intersection(keys):
            return group
    return "unknown"
