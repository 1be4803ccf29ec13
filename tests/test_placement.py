"""common/data/placement.py: placement groups."""

from __future__ import annotations

from common.data.placement import placement_group


def test_placement_groups() -> None:
    assert placement_group("waist") == "trunk"
    assert placement_group("Right Thigh") == "leg"
    assert placement_group("pocket") == "leg"
    assert placement_group("trouser pocket") == "leg"
    assert placement_group("left wrist") == "arm"
    assert placement_group("somewhere") == "unknown"
