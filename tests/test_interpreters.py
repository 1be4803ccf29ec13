from __future__ import annotations

import re

import numpy as np
import pytest

from common.data.archives import DSADS_ACTIVITIES, HAPT_ACTIVITIES, WISDM_ACTIVITIES
from common.data.devices import DeviceType
from common.data.features import FEATURE_INDEX, FEATURE_NAMES, analyze_windows
from common.data.labels import default_vocabulary
from common.data.placement import placement_group
from common.data.synthetic import generate_windows
from common.language.factory import make_interpreter
from common.language.interpreter import Interpreter
from common.language.knowledge import describe_label
from common.language.prompts import (
    SENSOR_VOCABULARY,
    STANDARD_CATEGORIES,
    SensorContext,
    format_interpretation,
    parse_sensor_answer,
)
from common.language.rules import RULES, RulesInterpreter

GRAVITY = 9.80665
WAIST = SensorContext(20.0, "waist", "phone", ["walking", "running", "sitting"])
RNG_SEED = 7


def _windows(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """Synthetic windows whose physics resembles still, walking-like and running-like movement."""
    t = np.arange(120) / 20.0
    windows = []
    for _ in range(n):
        acc = np.zeros((120, 3))
        gyro = np.zeros((120, 3))
        phase = rng.uniform(0, 2 * np.pi)
        if kind == "still":
            acc += rng.normal(0, 0.01, acc.shape)
        elif kind == "gait":  # ~1.8 steps/s, heel-strike harmonics, hip sway and rotation
            step = rng.uniform(1.7, 1.9)
            acc[:, 2] = 2.2 * np.sin(2 * np.pi * step * t + phase) + 1.0 * np.sin(
                4 * np.pi * step * t + phase
            )
            acc[:, 0] = 1.5 * np.sin(np.pi * step * t + phase)
            gyro[:, 1] = 0.7 * np.sin(np.pi * step * t + phase)
            acc += rng.normal(0, 0.1, acc.shape)
        elif kind == "bounding":  # ~2.7 steps/s, large impacts
            step = rng.uniform(2.6, 2.8)
            stride = (
                2 * np.pi * step * t + phase
            )  # landings at stride = 0: fundamental and harmonic peak together
            acc[:, 2] = 12.0 * np.cos(stride) + 6.0 * np.cos(2 * stride)
            acc[:, 0] = 3.0 * np.sin(np.pi * step * t + phase)
            gyro[:, 1] = 2.0 * np.sin(np.pi * step * t + phase)
            acc += rng.normal(0, 0.2, acc.shape)
        else:
            raise ValueError(kind)
        acc[:, 2] += GRAVITY
        windows.append(np.concatenate([acc, gyro], axis=1))
    return np.asarray(windows, dtype=np.float32)


def _phrases(text: str) -> dict[str, str]:
    return parse_sensor_answer(text)


def test_factory_and_protocol() -> None:
    rules = make_interpreter("rules")
    assert isinstance(rules, RulesInterpreter)
    assert isinstance(rules, Interpreter)
    assert rules.name == "rules"
    assert isinstance(make_interpreter(" Rules "), RulesInterpreter)
    with pytest.raises(ValueError, match="unknown interpreter kind 'gpt'.*'rules', 'openai', 'local'"):
        make_interpreter("gpt")


def test_rules_use_only_vocabulary_phrases() -> None:
    for rule in RULES:
        assert rule.category in SENSOR_VOCABULARY
        assert set(rule.bin_phrases) <= set(SENSOR_VOCABULARY[rule.category])
    assert [rule.category for rule in RULES] == list(SENSOR_VOCABULARY)


def test_interpretations_are_canonical_and_deterministic() -> None:
    rng = np.random.default_rng(RNG_SEED)
    windows = np.concatenate([_windows(kind, 5, rng) for kind in ("still", "gait", "bounding")])
    features = analyze_windows(windows)
    rules = RulesInterpreter()
    texts = rules.interpret(features, WAIST)
    assert len(texts) == len(windows)
    assert texts == rules.interpret(features, WAIST)
    for text in texts:
        parsed = _phrases(text)
        assert set(parsed) == set(STANDARD_CATEGORIES)
        assert all(phrase in SENSOR_VOCABULARY[category] for category, phrase in parsed.items())
        assert format_interpretation(parsed) == text


def test_texts_never_name_an_activity() -> None:
    rng = np.random.default_rng(RNG_SEED)
    windows = np.concatenate([_windows(kind, 5, rng) for kind in ("still", "gait", "bounding")])
    texts = RulesInterpreter().interpret(analyze_windows(windows), WAIST)
    names = [label for label in default_vocabulary().labels] + ["walk", "run", "stair", "jog", "cycl"]
    for text in set(texts):
        for name in names:
            assert not re.search(rf"\b{re.escape(name)}", text), (name, text)


def test_rules_separate_still_gait_and_bounding() -> None:
    rng = np.random.default_rng(RNG_SEED)
    rules = RulesInterpreter()
    still, gait, bounding = (
        [_phrases(text) for text in rules.interpret(analyze_windows(_windows(kind, 6, rng)), WAIST)]
        for kind in ("still", "gait", "bounding")
    )
    for phrases in still:
        assert phrases["amplitude change"] == "almost no acceleration change"
        assert phrases["periodicity"] == "no periodic pattern"
        assert phrases["cadence"] == "no rhythm"
        assert phrases["impacts"] == "no impacts"
        assert phrases["rotation"] == "no rotation"
        assert phrases["posture stability"] == "steady posture"
    for phrases in gait:
        assert phrases["amplitude change"] == "moderate acceleration change"
        assert phrases["periodicity"] == "strongly regular periodic pattern"
        assert phrases["cadence"] == "moderate rhythm"
        assert phrases["impacts"] in ("soft impacts", "moderate impacts")
    for phrases in bounding:
        assert phrases["amplitude change"] in (
            "strong acceleration change",
            "very strong acceleration change",
        )
        assert phrases["cadence"] == "very fast rhythm"
        assert phrases["impacts"] in ("hard impacts", "very hard impacts")
        assert phrases["vertical motion"] == "mainly vertical bouncing"


def test_device_rotation_does_not_change_the_text() -> None:
    rng = np.random.default_rng(RNG_SEED)
    windows = _windows("gait", 6, rng)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    rotation = q if np.linalg.det(q) > 0 else -q
    rotated = windows.copy()
    rotated[..., :3] = windows[..., :3] @ rotation.T
    rotated[..., 3:] = windows[..., 3:] @ rotation.T
    rules = RulesInterpreter()
    assert rules.interpret(analyze_windows(rotated), WAIST) == rules.interpret(
        analyze_windows(windows), WAIST
    )


def test_placement_scales_limb_quantities() -> None:
    """The placement groups themselves: tests/test_placement.py."""
    features = analyze_windows(_windows("gait", 1, np.random.default_rng(RNG_SEED)))
    features[0, FEATURE_INDEX["gyro_magnitude_mean"]] = 1.5  # rad/s
    rules = RulesInterpreter()
    on_waist = _phrases(rules.interpret(features, WAIST)[0])
    on_thigh = _phrases(rules.interpret(features, SensorContext(20.0, "thigh", "imu", []))[0])
    assert on_waist["rotation"] == "strong rotation"  # 1.5 rad/s on the trunk
    assert on_thigh["rotation"] == "moderate rotation"  # the thigh swings: 1.5 / 2.5 rad/s
    with pytest.raises(ValueError, match="unknown placement groups"):
        RulesInterpreter(swing_factors={"tail": {"rotation": 1.0}})
    with pytest.raises(ValueError, match="unknown swing quantities"):
        RulesInterpreter(swing_factors={"leg": {"spin": 1.0}})
    stiff_thigh = RulesInterpreter(swing_factors={"leg": {"rotation": 1.0}})  # the other leg factors stay
    assert stiff_thigh.swing_factors["leg"]["tilt"] == rules.swing_factors["leg"]["tilt"]
    on_stiff_thigh = _phrases(stiff_thigh.interpret(features, SensorContext(20.0, "thigh", "imu", []))[0])
    assert on_stiff_thigh["rotation"] == "strong rotation"


def test_missing_gyroscope_is_described() -> None:
    windows = _windows("gait", 2, np.random.default_rng(RNG_SEED))
    context = SensorContext(20.0, "waist", "phone", [], has_gyro=False)
    texts = RulesInterpreter().interpret(analyze_windows(windows, has_gyro=False), context)
    assert all(_phrases(text)["rotation"] == "rotation not measured" for text in texts)


def test_reinterpret_redecides_values_near_a_threshold() -> None:
    features = analyze_windows(_windows("still", 2, np.random.default_rng(RNG_SEED)))
    near = features[0]
    # |acc| std just below the 4.5 m/s^2 edge, the other estimates of the amplitude clearly above it
    near[FEATURE_INDEX["acc_mag_std"]] = 4.4
    near[FEATURE_INDEX["vertical_std"]] = 5.2
    near[FEATURE_INDEX["acc_mag_range"]] = 21.0
    rules = RulesInterpreter()
    first = rules.interpret(features, WAIST)
    second = rules.reinterpret(features, first, WAIST)
    assert _phrases(first[0])["amplitude change"] == "moderate acceleration change"
    assert _phrases(second[0])["amplitude change"] == "strong acceleration change"
    assert second[1] == first[1]  # nothing near a threshold: the careful pass agrees
    with pytest.raises(ValueError, match="one previous text per feature row"):
        rules.reinterpret(features, first[:1], WAIST)


def test_bad_features_are_rejected() -> None:
    rules = RulesInterpreter()
    with pytest.raises(ValueError, match=rf"\[N, {len(FEATURE_NAMES)}\]"):
        rules.interpret(np.zeros((3, 5)), WAIST)
    features = np.zeros((1, len(FEATURE_NAMES)))
    features[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        rules.interpret(features, WAIST)
    assert rules.interpret(np.zeros((0, len(FEATURE_NAMES))), WAIST) == []


def test_describe_labels_uses_knowledge_and_templates() -> None:
    descriptions = RulesInterpreter().describe_labels(["walking", "upstairs", "hula hooping"], 5)
    assert list(descriptions) == ["walking", "upstairs", "hula hooping"]
    assert all(len(texts) == 5 for texts in descriptions.values())
    assert descriptions["walking"] == describe_label("walking", 5)
    assert len(set(descriptions["walking"])) == 5
    assert "strongly regular periodic pattern" in descriptions["walking"][0]
    assert all("hula hooping" in text for text in descriptions["hula hooping"])


DATA_SET_ACTIVITIES = (
    list(HAPT_ACTIVITIES.values())
    + list(WISDM_ACTIVITIES.values())
    + list(DSADS_ACTIVITIES)
    # common others
    + ["running", "jogging", "cycling", "biking", "lying"]
)


def test_every_data_set_activity_has_rich_knowledge() -> None:
    from common.language.knowledge import has_knowledge, load_label_knowledge

    knowledge = load_label_knowledge()
    phrases = [phrase for values in SENSOR_VOCABULARY.values() for phrase in values]
    for activity in DATA_SET_ACTIVITIES:
        assert has_knowledge(activity), activity
        descriptions = describe_label(activity, 4)
        assert len(set(descriptions)) == 4, activity
        for description in descriptions:
            used = [phrase for phrase in phrases if phrase in description.lower()]
            assert len(used) >= 3, (activity, description)  # the sensor aspect speaks the rules' vocabulary
            assert not description.lower().startswith(activity + " is a human activity")  # not the template
    assert all(len(texts) >= 4 for texts in knowledge.values())


def test_knowledge_file_errors_name_the_problem(tmp_path) -> None:  # noqa: ANN001
    from common.language.knowledge import KnowledgeError, activity_knowledge, load_label_knowledge

    path = tmp_path / "knowledge.toml"
    path.write_text('[activities."hopping"]\ngeneral = ["Hopping on one leg."]\nsensor = ["Hard impacts."]\n')
    with pytest.raises(KnowledgeError, match=r"hopping.*lacks the aspect\(s\) \['body'\]"):
        load_label_knowledge(path)
    path.write_text(
        '[activities."hopping"]\ngeneral = ["Hopping on one leg."]\nsensor = ["Hard impacts."]\n'
        'body = ["Calves."]\naliases = ["hop"]\n'
    )
    assert load_label_knowledge(path) == {"hopping": ["Hopping on one leg. Hard impacts. Calves."]}
    assert describe_label("hop", 2, path) == ["Hopping on one leg. Hard impacts. Calves."] * 2
    assert activity_knowledge(["hopping", "skating"], path) == (
        "- hopping: Hard impacts.\n- skating: no stored knowledge; reason from the physics of the movement."
    )
    with pytest.raises(KnowledgeError, match="not found"):
        load_label_knowledge(tmp_path / "missing.toml")


def test_inclination_is_reported_only_in_the_walking_frame_and_worded_by_tilt_z() -> None:
    from common.language.rules import INCLINATION_BINS

    features = analyze_windows(_windows("still", 3, np.random.default_rng(RNG_SEED)))
    features[:, FEATURE_INDEX["tilt_z"]] = [5.0, INCLINATION_BINS[0] + 1.0, 95.0]
    standard = RulesInterpreter().interpret(features, WAIST)
    assert all("body inclination" not in text for text in standard)  # the default texts are unchanged
    assert RulesInterpreter().categories == STANDARD_CATEGORIES
    framed = RulesInterpreter(inclination=True).interpret(features, WAIST)
    phrases = SENSOR_VOCABULARY["body inclination"]
    assert [text.split("body inclination: ")[1].rstrip(".") for text in framed] == phrases
    assert [text.split("; body inclination")[0] for text in framed] == [t.rstrip(".") for t in standard]
    with pytest.raises(ValueError, match="pass no categories"):
        RulesInterpreter(categories=["periodicity"], inclination=True)


def test_rhythmic_movement_is_gait_not_stillness() -> None:
    from common.language.rules import rhythmic_movement

    rng = np.random.default_rng(RNG_SEED)
    assert rhythmic_movement(analyze_windows(_windows("gait", 10, rng))).all()
    assert not rhythmic_movement(analyze_windows(_windows("still", 10, rng))).any()
    with pytest.raises(ValueError, match="FEATURE_NAMES order"):
        rhythmic_movement(np.zeros((2, 3)))


def test_label_descriptions_carry_the_inclination_in_the_interpreters_words() -> None:
    sitting = RulesInterpreter(inclination=True).describe_labels(["sitting"], 2)["sitting"]
    phrases = SENSOR_VOCABULARY["body inclination"]
    assert all(
        text.endswith(f"Body inclination: on the trunk {phrases[0]}; on the thigh {phrases[2]}.")
        for text in sitting
    )
    assert RulesInterpreter().describe_labels(["sitting"], 2)["sitting"] == describe_label("sitting", 2)
    assert "Body inclination" not in describe_label("sitting", 2)[0]
    # An activity whose posture is left open (sitting or standing) states the trunk only.
    assert describe_label("eating chips", 1, inclination=True)[0].endswith(f"on the trunk {phrases[0]}.")


def test_head_and_foot_windows_are_worded_for_where_the_sensor_sits() -> None:
    """The same walk, simulated at the waist, the head and the foot: once the head's and the foot's factors
    apply, neither is worded as a more (or less) vigorous movement than the waist's. Read with the leg's
    factors (as "foot" was before it had a group) the foot's walk would sound like a much harder one."""
    assert (placement_group("earbuds"), placement_group("right foot"), placement_group("shoe")) == (
        "head",
        "foot",
        "foot",
    )
    rules = RulesInterpreter()
    categories = [rule.category for rule in RULES]
    vigour = [categories.index(c) for c in ("amplitude change", "cadence", "impacts", "rotation")]

    def median_phrases(placement: str, interpreter: RulesInterpreter = rules) -> np.ndarray:
        device = DeviceType(name=placement, sampling_rate=20.0, placement=placement)
        ws = generate_windows(["walking"], 60, device=device, seed=11, n_users=6)
        context = SensorContext(20.0, placement, "imu", ["walking"])
        return np.median(interpreter.phrase_indices(analyze_windows(ws.X), context), axis=0)[vigour]

    waist, head, foot = median_phrases("waist"), median_phrases("head"), median_phrases("foot")
    np.testing.assert_array_equal(head, waist)
    np.testing.assert_array_equal(foot, waist)
    as_a_leg = RulesInterpreter(swing_factors={"foot": rules.swing_factors["leg"]})
    foot_as_a_leg = median_phrases("foot", as_a_leg)
    assert foot_as_a_leg[0] > waist[0] and foot_as_a_leg[2] > waist[2]  # more acceleration change, impacts
