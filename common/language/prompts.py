"""Prompt templates for the language interpretation of IMU windows and activity labels.

Every text sent to a language model, or imitated by the offline rules interpreter, is defined here so that
one version string (`PROMPT_VERSION`) identifies them all; the interpretation cache keys on it. Change any
template or phrase below and bump the version.

Sensor prompt (LanHAR section 3.3.1), four parts:
  (i)   data introduction: columns, units, real sampling rate, body position, device, candidate activities;
  (ii)  data analysis: the computed signal features (common/data/features.py), rounded, as reasoning material;
  (iii) knowledge: typical accelerometer and gyroscope patterns of the candidates (common.language.knowledge);
  (iv)  task: for each of the `STANDARD_CATEGORIES` of `SENSOR_VOCABULARY` pick the fitting pattern phrase (or
        add a new one) and answer in a fixed format between the `BEGIN` and `END` markers.
The answer is parsed by `parse_sensor_answer` and turned into the one canonical text used downstream by
`format_interpretation`; the rules interpreter produces exactly the same kind of text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from common.data.features import FEATURE_UNITS
from common.language.knowledge import INCLINATION_PHRASES, activity_knowledge

PROMPT_VERSION = "lanhar-v1"

ANSWER_BEGIN = "BEGIN"
ANSWER_END = "END"

# Categories of signal patterns, each with the fixed phrases a model or the rules interpreter chooses from.
# The phrases describe PATTERNS in the signal only and never name an activity: the text encoder must learn the
# link between patterns and activities from the label descriptions, not read it off the sensor text.
# Within a category the phrases are ordered from "least" to "most" where that makes sense.
SENSOR_VOCABULARY: dict[str, list[str]] = {
    "amplitude change": [
        "almost no acceleration change",
        "slight acceleration change",
        "moderate acceleration change",
        "strong acceleration change",
        "very strong acceleration change",
    ],
    "periodicity": [
        "no periodic pattern",
        "irregular movement without clear repetition",
        "moderately regular periodic pattern",
        "strongly regular periodic pattern",
    ],
    "cadence": ["no rhythm", "slow rhythm", "moderate rhythm", "fast rhythm", "very fast rhythm"],
    "vertical motion": [
        "no vertical movement",
        "movement mostly horizontal",
        "vertical and horizontal movement in balance",
        "mainly vertical bouncing",
    ],
    "impacts": ["no impacts", "soft impacts", "moderate impacts", "hard impacts", "very hard impacts"],
    "signal shape": ["flat signal", "smooth slow waveform", "rounded waveform", "crisp waveform"],
    "rotation": [
        "no rotation",
        "slight rotation",
        "moderate rotation",
        "strong rotation",
        "rotation not measured",
    ],
    "posture stability": [
        "steady posture",
        "small rhythmic tilting",
        "pronounced tilting",
        "posture changing during the window",
    ],
    # The body segment's inclination from its wearer's walking posture: only for windows turned into their
    # wearer's walking frame (common/data/posture.py, CentralConfig.walking_frame), where it can be measured.
    "body inclination": list(INCLINATION_PHRASES.values()),
}
SENSOR_CATEGORIES: tuple[str, ...] = tuple(SENSOR_VOCABULARY)
# The categories every interpreter reports and a language model is asked for. "body inclination" is left out:
# a window's device axes say nothing about the segment's inclination until it is in the walking frame, and
# then only the rules interpreter words it (RulesInterpreter(inclination=True)).
STANDARD_CATEGORIES: tuple[str, ...] = tuple(c for c in SENSOR_CATEGORIES if c != "body inclination")

# What each category is about; shown to the model in the task part.
CATEGORY_HINTS: dict[str, str] = {
    "amplitude change": "how much the acceleration magnitude varies around gravity",
    "periodicity": "how regularly the movement repeats (autocorrelation peak)",
    "cadence": "how fast the repetition is, in cycles or steps per second",
    "vertical motion": "how the dynamic acceleration divides between gravity direction and horizontal plane",
    "impacts": "how hard the upward acceleration peaks are, e.g. when a foot lands",
    "signal shape": "how abruptly the vertical acceleration changes relative to its size",
    "rotation": "angular velocity from the gyroscope",
    "posture stability": "how much the device tilts, and whether the body position stays put",
}

SENSOR_COLUMNS = (
    *(f"acc_{axis} (m/s^2, including gravity)" for axis in "xyz"),
    *(f"gyro_{axis} (rad/s)" for axis in "xyz"),
)


class AnswerFormatError(ValueError):
    """A model answer that does not follow the required `category: phrase` format."""


@dataclass
class SensorContext:
    """Part (i) of the sensor prompt: what is known about the recording, independent of the window."""

    sampling_rate: float
    position: str
    device: str
    candidate_activities: list[str] = field(default_factory=list)
    has_gyro: bool = True

    def __post_init__(self) -> None:
        if not np.isfinite(self.sampling_rate) or self.sampling_rate <= 0:
            raise ValueError(
                f"SensorContext.sampling_rate must be a positive number in Hz, got {self.sampling_rate}"
            )


# ------------------------------------------------------------------------------------------------------------
# Sensor prompt


def _data_introduction(context: SensorContext, n_samples: int | None) -> str:
    duration = f" ({n_samples} samples, {n_samples / context.sampling_rate:.1f} s)" if n_samples else ""
    gyro_note = (
        ""
        if context.has_gyro
        else " This device has NO gyroscope: the gyroscope columns are zero and carry no information."
    )
    activities = ", ".join(context.candidate_activities) if context.candidate_activities else "not specified"
    return (
        "Data introduction:\n"
        f"This is one window of inertial (IMU) readings{duration} sampled at {context.sampling_rate:g} Hz "
        f"from a {context.device} device worn at the {context.position}. The six columns are "
        f"{', '.join(SENSOR_COLUMNS)}. The device axes are not aligned with the body in a known way, so the "
        "analysis below separates the gravity direction (vertical) from the horizontal plane."
        f"{gyro_note}\n"
        f"While this window was recorded the person was doing one of these activities: {activities}."
    )


def _format_value(value: float) -> str:
    if not np.isfinite(value):
        return "n/a"
    if value == 0 or abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def _data_analysis(features_row: dict[str, float]) -> str:
    lines = ["Data analysis (computed from the window; units in brackets):"]
    for name, value in features_row.items():
        unit = FEATURE_UNITS.get(name, "")
        label = f"{name} [{unit}]" if unit else name
        lines.append(f"- {label}: {_format_value(float(value))}")
    return "\n".join(lines)


def _raw_readings(window: np.ndarray, sampling_rate: float) -> str:
    window = np.asarray(window, dtype=np.float64)
    if window.ndim != 2 or window.shape[1] != 6:
        raise ValueError(f"window must have shape [T, 6] (acc xyz m/s^2, gyro xyz rad/s), got {window.shape}")
    rows = "\n".join(" ".join(f"{v:.2f}" for v in row) for row in window)
    return (
        f"Raw readings ({window.shape[0]} rows at {sampling_rate:g} Hz; columns acc_x acc_y acc_z in m/s^2, "
        f"gyro_x gyro_y gyro_z in rad/s):\n{rows}"
    )


def _task_introduction(has_gyro: bool, rule_scales: str = "") -> str:
    lines = [
        "Task:",
        "Describe the movement patterns in this window. For each category below choose the phrase that fits "
        "the data best. If none fits, write a short new phrase of your own in the same style. Describe the "
        "signal pattern only; do not name an activity.",
    ]
    for category in STANDARD_CATEGORIES:
        phrases = SENSOR_VOCABULARY[category]
        lines.append(f"- {category} ({CATEGORY_HINTS[category]}): [{', '.join(phrases)}]")
    if rule_scales:  # passed in: common.language.rules builds on this module
        lines.append(rule_scales)
    if not has_gyro:
        lines.append("The gyroscope is missing, so answer 'rotation: rotation not measured'.")
    example = "\n".join(f"{category}: {SENSOR_VOCABULARY[category][0]}" for category in STANDARD_CATEGORIES)
    lines += [
        "Think it through first if you like, then give the final answer as one line per category in the form "
        f"'category: phrase', between a line '{ANSWER_BEGIN}' and a line '{ANSWER_END}'. Example of the "
        "format (not of the content):",
        ANSWER_BEGIN,
        example,
        ANSWER_END,
    ]
    return "\n".join(lines)


def render_sensor_prompt(
    features_row: dict[str, float],
    context: SensorContext,
    window: np.ndarray | None = None,
    *,
    rule_scales: str,
) -> str:
    """The four-part sensor prompt; with `window` the raw readings are added (the paper's raw-prompt mode).

    `rule_scales` is the rules interpreter's scale in words (common.language.rules.describe_rule_scales),
    shown in the task part so that model answers and rule-based texts mean the same thing.
    """
    n_samples = None if window is None else int(np.shape(window)[0])
    parts = [_data_introduction(context, n_samples), _data_analysis(features_row)]
    if window is not None:
        parts.append(_raw_readings(window, context.sampling_rate))
    parts.append(
        "Knowledge (typical sensor patterns of the candidate activities):\n"
        + activity_knowledge(context.candidate_activities)
    )
    parts.append(_task_introduction(context.has_gyro, rule_scales))
    return "\n\n".join(parts)


def render_simple_sensor_prompt(
    features_row: dict[str, float], context: SensorContext, window: np.ndarray | None = None
) -> str:
    """The ablation's simple prompt: the data and the bare task, without introduction, knowledge or scales."""
    introduction = (
        f"Here are readings of a body-worn IMU sampled at {context.sampling_rate:g} Hz "
        "(accelerometer in m/s^2 including gravity, gyroscope in rad/s)."
    )
    data = _data_analysis(features_row) if window is None else _raw_readings(window, context.sampling_rate)
    return "\n\n".join([introduction, data, _task_introduction(context.has_gyro)])


# ------------------------------------------------------------------------------------------------------------
# Label prompt

# Each variant asks for the same three aspects from a different angle so that several descriptions of one
# label differ in wording (the L_Ca3 subtask needs several descriptions per label).
_LABEL_VARIANT_STYLES = (
    "Write it as a plain, factual description.",
    "Word it differently from a textbook definition: describe the activity as an observer watching it would.",
    "Word it differently again: start from the movement of the body and the rhythm of the motion.",
    "Word it differently again: focus on what a sensor worn on the body would feel, in everyday language.",
    "Word it differently again: keep it short and concrete, avoiding the phrasing of a standard definition.",
)


def render_label_prompt(label: str, variant: int = 0) -> str:
    """Ask for a three-aspect description of one activity; `variant` >= 1 asks for different wording."""
    label = label.strip()
    if not label:
        raise ValueError("label must be a non-empty activity name")
    if variant < 0:
        raise ValueError(f"variant must be >= 0, got {variant}")
    style = _LABEL_VARIANT_STYLES[variant % len(_LABEL_VARIANT_STYLES)]
    if variant >= len(_LABEL_VARIANT_STYLES):
        style += f" This is description number {variant + 1}; do not repeat earlier wordings."
    vocabulary = "; ".join(f"{c}: {', '.join(SENSOR_VOCABULARY[c])}" for c in STANDARD_CATEGORIES)
    return (
        f"Describe the human activity '{label}' in one paragraph of three to five sentences covering three "
        "aspects:\n"
        "1. General description: what the activity is, its purpose and where it is usually done.\n"
        "2. Sensor patterns: what an accelerometer and a gyroscope worn on the body would typically record "
        "during it (amplitude, rhythm and cadence, vertical motion and impacts, rotation, posture). Where "
        f"possible use these pattern words: {vocabulary}.\n"
        "3. Body parts: the main body parts and muscle groups involved.\n"
        f"{style} Answer with the paragraph only."
    )


# ------------------------------------------------------------------------------------------------------------
# Re-generation prompt (LanHAR section 3.3.3)


def render_regeneration_prompt(original_prompt: str, previous_answer: str) -> str:
    """The original prompt plus the earlier answer and a request to re-check and correct it."""
    return (
        f"{original_prompt}\n\n"
        "Below is the answer you gave to this task before:\n"
        f"{previous_answer.strip()}\n\n"
        "Go through that answer again one step at a time. Look for reasoning mistakes, for statements that "
        "cannot be true of real human movement, and for choices that disagree with the numbers in the data "
        "analysis. Then give your corrected answer, in exactly the required format: one 'category: phrase' "
        f"line per category between '{ANSWER_BEGIN}' and '{ANSWER_END}'."
    )


# ------------------------------------------------------------------------------------------------------------
# Answer parsing and the canonical interpretation text

_LEADING_DECORATION = re.compile(r"^\s*(?:[-*•>]+|\d+[.)]|category\s*\d+\s*[:.)-]?)?\s*", re.IGNORECASE)
_CATEGORY_LOOKUP = {re.sub(r"\s+", " ", c): c for c in SENSOR_CATEGORIES}


def _normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text.replace("*", "").replace("_", " ")).strip().lower()


def _answer_block(text: str) -> str:
    """The text between the last BEGIN ... END markers, or everything when the markers are missing."""
    lines = text.splitlines()
    marker = [_normalise(line).strip("`:#[] ") for line in lines]
    begins = [i for i, m in enumerate(marker) if m == ANSWER_BEGIN.lower()]
    if not begins:
        return text
    start = begins[-1] + 1
    ends = [i for i, m in enumerate(marker) if m == ANSWER_END.lower() and i >= start]
    return "\n".join(lines[start : ends[0] if ends else len(lines)])


def parse_sensor_answer(text: str) -> dict[str, str]:
    """Category -> phrase from a model answer; new phrases are accepted, unknown categories ignored.

    Raises AnswerFormatError when fewer than half of the categories can be read.
    """
    if not isinstance(text, str) or not text.strip():
        raise AnswerFormatError(
            "the answer is empty; expected 'category: phrase' lines between BEGIN and END"
        )
    parsed: dict[str, str] = {}
    # Lines, or "; "-separated parts of the one-line canonical form (format_interpretation).
    for line in re.split(r"[\n;]", _answer_block(text)):
        line = _LEADING_DECORATION.sub("", line.replace("*", ""))
        if ":" not in line:
            continue
        key, _, value = line.partition(":")
        category = _CATEGORY_LOOKUP.get(_normalise(key))
        phrase = _normalise(value).strip(" \"'`[]().;,")
        if category is None or not phrase:
            continue
        parsed.setdefault(category, phrase)
    required = (len(STANDARD_CATEGORIES) + 1) // 2
    if len(parsed) < required:
        missing = [c for c in STANDARD_CATEGORIES if c not in parsed]
        raise AnswerFormatError(
            f"the answer names {len(parsed)} of {len(STANDARD_CATEGORIES)} categories, at least {required} "
            f"are required; missing: {', '.join(missing)}. Expected one 'category: phrase' line per category "
            f"between {ANSWER_BEGIN} and {ANSWER_END}."
        )
    return parsed


def format_interpretation(parsed: dict[str, str]) -> str:
    """The one canonical interpretation text (SENSOR_VOCABULARY category order), embedded downstream."""
    unknown = [c for c in parsed if c not in SENSOR_VOCABULARY]
    if unknown:
        raise AnswerFormatError(f"unknown categories {unknown}; known: {list(SENSOR_CATEGORIES)}")
    parts = [f"{c}: {_normalise(parsed[c])}" for c in SENSOR_CATEGORIES if c in parsed and parsed[c].strip()]
    if not parts:
        raise AnswerFormatError("an interpretation needs at least one category with a phrase")
    return "; ".join(parts) + "."
