"""common/data/placement.py: placement groups."""

from __future__ import annotations

from common.data.placement import SWING_FACTORS, placement_group


def test_placement_groups() -> None:
    assert placement_group("waist") == "trunk"
    assert placement_group("Right Thigh") == "leg"
    assert placement_group("pocket") == "leg"
    assert placement_group("trouser pocket") == "leg"
    assert placement_group("left wrist") == "arm"
    assert placement_group("somewhere") == "unknown"


# Every word and data set position the groups knew before the head and foot groups (issue #37), with its
# group then: the rules interpreter's texts for these positions must not change.
OLD_GROUPS = {
    **dict.fromkeys(
        ("waist", "chest", "torso", "back", "hip", "belt", "pelvis", "trunk", "sternum", "abdomen"), "trunk"
    ),
    **dict.fromkeys(("thigh", "leg", "pocket", "trouser", "pants", "knee", "shank", "ankle", "shin"), "leg"),
    **dict.fromkeys(("wrist", "arm", "hand", "forearm", "elbow", "watch"), "arm"),
    # positions the data set readers write (common/data/archives.py, common/data/paper_archives/)
    **dict.fromkeys(("left leg", "right leg", "front trouser pocket", "left pocket", "right pocket"), "leg"),
    **dict.fromkeys(("dominant ankle", "trouser pocket"), "leg"),
    **dict.fromkeys(("right arm", "left arm", "right upper arm", "dominant wrist"), "arm"),
    "unknown": "unknown",
}


def test_old_words_and_data_set_positions_keep_their_group() -> None:
    for position, group in OLD_GROUPS.items():
        assert placement_group(position) == group, position


def test_old_swing_factors_are_unchanged_and_new_quantities_are_neutral_there() -> None:
    old = {
        "trunk": {"rotation": 1.0, "horizontal": 1.0, "tilt": 1.0},
        "leg": {"rotation": 2.5, "horizontal": 2.5, "tilt": 2.0},
        "arm": {"rotation": 2.5, "horizontal": 2.5, "tilt": 2.0},
        "unknown": {"rotation": 1.0, "horizontal": 1.0, "tilt": 1.0},
    }
    for group, factors in old.items():
        assert SWING_FACTORS[group] == {**factors, "amplitude": 1.0, "vertical": 1.0}, group
    quantities = {"rotation", "horizontal", "tilt", "amplitude", "vertical"}
    assert all(set(factors) == quantities for factors in SWING_FACTORS.values())


def test_head_and_foot_groups() -> None:
    for position in ("head", "ear", "Left Ear", "earbuds", "earbud", "smart glasses", "cap", "forehead"):
        assert placement_group(position) == "head", position
    for position in ("foot", "right foot", "shoe", "insole", "left shoe insole", "heel"):
        assert placement_group(position) == "foot", position
    for position in ("finger", "ring", "ring finger", "upper arm", "armband"):
        assert placement_group(position) == "arm", position  # a ring and an armband ride on the arm
    # the new words match whole words only: "ear" inside "forearm"/"rear", "ring" inside "during", "cap"
    # inside "capsule" decide nothing
    assert placement_group("forearm") == "arm"
    assert placement_group("rear trouser pocket") == "leg"
    assert placement_group("rear") == placement_group("during") == placement_group("capsule") == "unknown"
    # the head is damped (factors below 1), the foot swings and takes the heel strike (above the leg's)
    assert all(value < 1.0 for value in SWING_FACTORS["head"].values())
    assert all(SWING_FACTORS["foot"][q] >= SWING_FACTORS["leg"][q] for q in SWING_FACTORS["leg"])
