from __future__ import annotations

import re

import numpy as np
import pytest

from common.data.features import analyze_windows, feature_dict
from common.data.labels import default_vocabulary
from common.language.prompts import (
    ANSWER_BEGIN,
    ANSWER_END,
    PROMPT_VERSION,
    SENSOR_CATEGORIES,
    SENSOR_VOCABULARY,
    STANDARD_CATEGORIES,
    AnswerFormatError,
    SensorContext,
    format_interpretation,
    parse_sensor_answer,
    render_label_prompt,
    render_regeneration_prompt,
    render_sensor_prompt,
    render_simple_sensor_prompt,
)
from common.language.rules import describe_rule_scales

CONTEXT = SensorContext(
    sampling_rate=50.0,
    position="waist",
    device="Galaxy S II",
    candidate_activities=["walking", "upstairs", "sitting"],
)


def _window() -> np.ndarray:
    t = np.arange(120) / 20.0
    acc = np.stack([np.zeros_like(t), np.zeros_like(t), 9.81 + 2.0 * np.sin(2 * np.pi * 1.8 * t)], axis=1)
    gyro = np.stack([0.3 * np.sin(2 * np.pi * 0.9 * t), np.zeros_like(t), np.zeros_like(t)], axis=1)
    return np.concatenate([acc, gyro], axis=1).astype(np.float32)


def _features() -> dict[str, float]:
    return feature_dict(analyze_windows(_window()[None])[0])


def _full_answer(chooser: int = 0) -> str:
    lines = [
        f"{category}: {phrases[chooser % len(phrases)]}" for category, phrases in SENSOR_VOCABULARY.items()
    ]
    return "\n".join([ANSWER_BEGIN, *lines, ANSWER_END])


def test_version_and_vocabulary_shape() -> None:
    assert PROMPT_VERSION == "lanhar-v1"
    assert SENSOR_CATEGORIES == tuple(SENSOR_VOCABULARY)
    assert len(SENSOR_CATEGORIES) >= 6
    for category, phrases in SENSOR_VOCABULARY.items():
        assert len(phrases) >= 3, category
        assert len(set(phrases)) == len(phrases), category
        assert all(phrase == phrase.lower().strip() and ";" not in phrase for phrase in phrases)


def test_vocabulary_never_names_an_activity() -> None:
    vocabulary = default_vocabulary()
    activity_words = {"walk", "run", "jog", "stair", "sit", "stand", "lying", "cycl", "bik", "jump", "eat"}
    activity_words |= {name for name in vocabulary.labels if " " not in name}
    for phrases in SENSOR_VOCABULARY.values():
        for phrase in phrases:
            for word in activity_words:
                assert not re.search(rf"\b{re.escape(word)}", phrase), (phrase, word)


def test_sensor_prompt_has_the_four_parts() -> None:
    prompt = render_sensor_prompt(_features(), CONTEXT, rule_scales=describe_rule_scales())
    # (i) data introduction with the real rate, placement, device, columns and candidates
    assert "50 Hz" in prompt and "20 Hz" not in prompt
    assert "waist" in prompt and "Galaxy S II" in prompt
    assert "acc_x (m/s^2" in prompt and "gyro_z (rad/s)" in prompt
    assert "walking, upstairs, sitting" in prompt
    # (ii) data analysis: the computed numbers with units, rounded
    assert re.search(r"dominant_frequency \[Hz\]: 1\.\d\d", prompt)
    assert "acc_mag_mean [m/s^2]: 9." in prompt
    # (iii) knowledge of each candidate
    assert "Knowledge" in prompt
    for activity in CONTEXT.candidate_activities:
        assert f"- {activity}: " in prompt
    # (iv) task with every standard category and phrase, and the answer format; not the inclination, which
    # the device axes a model sees do not carry (the rules interpreter words it in the walking frame)
    for category in STANDARD_CATEGORIES:
        assert category in prompt
        assert all(phrase in prompt for phrase in SENSOR_VOCABULARY[category])
    assert "body inclination" not in prompt and "inclination" not in describe_rule_scales()
    assert f"\n{ANSWER_BEGIN}\n" in prompt and f"\n{ANSWER_END}" in prompt
    # the rules' scale, so that a model picks phrases on the same scale
    assert (
        "Reference scales" in prompt
        and "(acc_mag_std [m/s^2]): almost no acceleration change | 0.1" in prompt
    )
    assert "raw readings" not in prompt.lower()


def test_raw_prompt_mode_adds_the_readings() -> None:
    window = _window()
    prompt = render_sensor_prompt(_features(), CONTEXT, window=window, rule_scales=describe_rule_scales())
    rows = [
        line
        for line in prompt.splitlines()
        if re.fullmatch(r"(-?\d+\.\d\d )(-?\d+\.\d\d ){4}-?\d+\.\d\d", line)
    ]
    assert len(rows) == 120
    assert rows[0].split()[2] == f"{window[0, 2]:.2f}"
    assert "120 samples, 2.4 s" in prompt  # 120 samples at the stated 50 Hz
    with pytest.raises(ValueError, match=r"\[T, 6\]"):
        render_sensor_prompt(_features(), CONTEXT, window=window[:, :3], rule_scales=describe_rule_scales())


def test_missing_gyroscope_is_stated() -> None:
    context = SensorContext(20.0, "pocket", "phone", ["walking"], has_gyro=False)
    prompt = render_sensor_prompt(_features(), context, rule_scales=describe_rule_scales())
    assert "NO gyroscope" in prompt
    assert "rotation: rotation not measured" in prompt


def test_simple_prompt_has_data_and_task_only() -> None:
    prompt = render_simple_sensor_prompt(_features(), CONTEXT)
    assert (
        "Knowledge" not in prompt and "walking, upstairs" not in prompt and "Reference scales" not in prompt
    )
    assert "dominant_frequency" in prompt
    assert ANSWER_BEGIN in prompt and all(category in prompt for category in STANDARD_CATEGORIES)
    raw = render_simple_sensor_prompt(_features(), CONTEXT, window=_window())
    assert "Raw readings" in raw and "dominant_frequency" not in raw


def test_label_prompt_asks_for_three_aspects_and_varies() -> None:
    first = render_label_prompt("walking upstairs", 0)
    second = render_label_prompt("walking upstairs", 1)
    assert "'walking upstairs'" in first
    for aspect in ("General description", "Sensor patterns", "Body parts"):
        assert aspect in first
    assert "accelerometer" in first and "gyroscope" in first
    assert first != second and "differently" in second
    assert render_label_prompt("walking", 7) != render_label_prompt("walking", 2)
    with pytest.raises(ValueError, match="variant"):
        render_label_prompt("walking", -1)
    with pytest.raises(ValueError, match="label"):
        render_label_prompt("  ", 0)


def test_regeneration_prompt_contains_the_previous_answer_and_the_check() -> None:
    original = render_sensor_prompt(_features(), CONTEXT, rule_scales=describe_rule_scales())
    prompt = render_regeneration_prompt(original, "BEGIN\namplitude change: strong acceleration change\nEND")
    assert prompt.startswith(original)
    assert "amplitude change: strong acceleration change" in prompt
    assert "step" in prompt and "real human movement" in prompt and "data analysis" in prompt
    assert f"between '{ANSWER_BEGIN}' and '{ANSWER_END}'" in prompt


def test_parser_is_tolerant_of_formatting() -> None:
    answer = (
        "Let me think. The amplitude is large.\n"
        "**BEGIN**\n"
        "- **Amplitude Change**: Moderate acceleration change\n"
        "2. periodicity : strongly regular periodic pattern.\n"
        "*  Cadence:  'moderate rhythm'\n"
        "Category 4 Vertical motion: mainly vertical bouncing\n"
        "impacts = nonsense line without colon\n"
        "IMPACTS: [soft impacts]\n"
        "colour: blue\n"
        "END\n"
        "Thanks!"
    )
    parsed = parse_sensor_answer(answer)
    assert parsed == {
        "amplitude change": "moderate acceleration change",
        "periodicity": "strongly regular periodic pattern",
        "cadence": "moderate rhythm",
        "vertical motion": "mainly vertical bouncing",
        "impacts": "soft impacts",
    }


def test_parser_accepts_new_phrases_and_uses_the_last_block() -> None:
    text = (
        _full_answer(0) + "\nOn reflection:\n" + _full_answer(1).replace("slight rotation", "a wobbly spin")
    )
    parsed = parse_sensor_answer(text)
    assert parsed["amplitude change"] == SENSOR_VOCABULARY["amplitude change"][1]
    assert parsed["rotation"] == "a wobbly spin"
    assert set(parsed) == set(SENSOR_CATEGORIES)


def test_parser_reads_the_canonical_one_line_text() -> None:
    parsed = parse_sensor_answer(_full_answer(2))
    canonical = format_interpretation(parsed)
    assert "\n" not in canonical and canonical.endswith(".")
    assert parse_sensor_answer(canonical) == parsed
    assert format_interpretation(parse_sensor_answer(canonical)) == canonical


def test_parser_rejects_answers_with_too_few_categories() -> None:
    with pytest.raises(AnswerFormatError, match="missing: .*rotation"):
        parse_sensor_answer("BEGIN\namplitude change: strong acceleration change\ncadence: fast rhythm\nEND")
    with pytest.raises(AnswerFormatError, match="empty"):
        parse_sensor_answer("   ")
    assert issubclass(AnswerFormatError, ValueError)


def test_format_interpretation_is_canonical() -> None:
    text = format_interpretation(
        {"rotation": "No Rotation", "amplitude change": "  slight   acceleration change"}
    )
    assert text == "amplitude change: slight acceleration change; rotation: no rotation."
    with pytest.raises(AnswerFormatError, match="unknown categories"):
        format_interpretation({"colour": "blue"})
    with pytest.raises(AnswerFormatError, match="at least one"):
        format_interpretation({})


def test_sensor_context_checks_the_rate() -> None:
    with pytest.raises(ValueError, match="sampling_rate"):
        SensorContext(sampling_rate=0.0, position="waist", device="phone", candidate_activities=[])
