"""Tests of common/data/labels.py and configs/labels.toml: canonical names, aliases, categories, user files"""

from __future__ import annotations

from pathlib import Path

import pytest

from common.data.archives import DSADS_ACTIVITIES, HAPT_ACTIVITIES, WISDM_ACTIVITIES
from common.data.errors import DataError
from common.data.labels import (
    COMMON_ACTIVITIES,
    OTHER_CATEGORY,
    canonical,
    category,
    default_vocabulary,
    load_vocabulary,
    normalise,
)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("walking upstairs", "upstairs"),
        ("WALKING_UPSTAIRS", "upstairs"),
        ("going upstairs", "upstairs"),
        ("stairs up", "upstairs"),
        ("climbing stairs up", "upstairs"),
        ("Walking-Downstairs", "downstairs"),
        ("stairsdown", "downstairs"),
        ("LAYING", "lying"),
        ("biking", "cycling"),
        ("  Sitting  ", "sitting"),
        ("walk", "walking"),
        ("Lying on the back", "lying on back"),
    ],
)
def test_aliases_map_to_canonical_names(name: str, expected: str) -> None:
    assert canonical(name) == expected


def test_unknown_label_raises_unless_allowed() -> None:
    with pytest.raises(
        DataError, match=r"unknown activity label 'Moon_Walking' \(normalised 'moon walking'\)"
    ):
        canonical("Moon_Walking")
    assert canonical("Moon_Walking", allow_unknown=True) == "moon walking"
    assert normalise("  A_b-C   d ") == "a b c d"


def test_categories() -> None:
    assert category("walking") == "locomotion"
    assert category("walking on treadmill") == "locomotion"
    assert category("biking") == "locomotion"
    assert category("laying") == "static"
    assert category("lying on right side") == "static"
    assert {category(label) for label in ("upstairs", "downstairs", "stairs")} == {"stairs"}
    assert category("jumping") == "sports"
    assert category("rowing") == "exercise_machine"
    assert category("eating soup") == "eating"
    assert category("never heard of it") == OTHER_CATEGORY


def test_every_activity_of_the_four_data_sets_is_known_with_a_category() -> None:
    vocabulary = default_vocabulary()
    names = [*HAPT_ACTIVITIES.values(), *WISDM_ACTIVITIES.values(), *DSADS_ACTIVITIES, *COMMON_ACTIVITIES]
    for name in names:
        assert vocabulary.canonical(name) == name
        assert vocabulary.category(name) in vocabulary.categories
    for name in ("walk", "still", "stairsup", "stairsdown"):  # the 4-class space of the npz files
        assert vocabulary.is_known(name)


def test_each_label_has_at_most_one_category_and_aliases_are_unambiguous() -> None:
    vocabulary = default_vocabulary()
    assert set(vocabulary.label_category) <= set(vocabulary.labels)
    assert set(vocabulary.label_category.values()) <= set(vocabulary.categories)
    assert set(vocabulary.aliases.values()) == set(vocabulary.labels)
    assert vocabulary.labels_in_category("stairs") == ["upstairs", "downstairs", "stairs"]


def test_user_file_extends_the_vocabulary(tmp_path: Path) -> None:
    extra = tmp_path / "mine.toml"
    extra.write_text(
        '[categories]\nwater = "activities in water"\n\n'
        '[labels."swimming"]\ncategory = "water"\naliases = ["swim", "Swimming_Freestyle"]\n\n'
        '[labels."walking"]\naliases = ["strolling"]\n\n'
        '[labels."rowing"]\ncategory = "water"\n'
    )
    vocabulary = load_vocabulary(extra)
    assert vocabulary.canonical("swimming freestyle") == "swimming"
    assert vocabulary.category("swim") == "water"
    assert vocabulary.canonical("strolling") == "walking"
    assert vocabulary.category("rowing") == "water"  # the user's choice replaces the built-in category
    assert vocabulary.category("walking") == "locomotion"
    assert default_vocabulary().category("rowing") == "exercise_machine"  # the shared default is untouched


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('[labels."sprinting"]\naliases = ["going upstairs"]\n', r"aliases: 'going upstairs' already names"),
        ('[labels."sprinting"]\ncategory = "speed"\n', r"category = 'speed' is not a declared category"),
        ('[labels."sprinting"]\ncolour = "red"\n', r"unknown key\(s\) \['colour'\]"),
        (
            '[labels."laying"]\ncategory = "static"\n',
            r"'lying' is already an alias|already an alias of the label",
        ),
        ("[moods]\nhappy = 1\n", r"unknown top-level key\(s\) \['moods'\]"),
        ("[labels\n", "not valid TOML"),
    ],
)
def test_bad_user_file_is_an_error_naming_the_file(tmp_path: Path, content: str, message: str) -> None:
    extra = tmp_path / "bad_labels.toml"
    extra.write_text(content)
    with pytest.raises(DataError, match=message) as info:
        load_vocabulary(extra)
    assert "bad_labels.toml" in str(info.value)


def test_missing_user_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        load_vocabulary(tmp_path / "nope.toml")


def test_an_inclination_with_an_unknown_segment_or_level_is_named(tmp_path) -> None:
    from common.language.knowledge import KnowledgeError, load_label_knowledge

    entry = 'general = ["g"]\nsensor = ["s"]\nbody = ["b"]\n'
    for inclination, problem in (
        ('{ wrist = "upright" }', r"unknown segments \['wrist'\]"),
        ('{ trunk = "sideways" }', r"levels \{'trunk': 'sideways'\} are not among"),
        ('"upright"', "must be a table"),
    ):
        path = tmp_path / f"knowledge-{len(problem)}.toml"
        path.write_text(f'[activities."x"]\ninclination = {inclination}\n{entry}')
        with pytest.raises(KnowledgeError, match=rf"{path.name}: activities\.'x'\.inclination.*{problem}"):
            load_label_knowledge(path)
