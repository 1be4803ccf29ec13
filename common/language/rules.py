"""The rules interpreter: the signal analysis of IMU windows turned into text by fixed thresholds.

Offline and deterministic; it follows the `Interpreter` contract (common/language/interpreter.py) and writes
the same vocabulary and format as the language-model interpreters (`prompts.format_interpretation`), so the
text encoder sees one kind of text whatever produced it. `describe_rule_scales` puts its scale in words for
the sensor prompt.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from common.data.features import FEATURE_INDEX, FEATURE_NAMES
from common.data.placement import SWING_FACTORS, placement_group
from common.language.knowledge import describe_label
from common.language.prompts import (
    SENSOR_VOCABULARY,
    STANDARD_CATEGORIES,
    SensorContext,
    format_interpretation,
)

__all__ = ["SIMPLE_CATEGORIES", "RulesInterpreter", "describe_rule_scales", "rhythmic_movement"]


# ------------------------------------------------------------------------------------------------------------
# The rules interpreter
#
# Each category of SENSOR_VOCABULARY is decided from one physical quantity ("value") cut into bins at fixed
# thresholds in physical units (m/s^2, Hz, rad/s, deg), so the same movement gets the same words on any
# device and in any data set. Most values are orientation invariant (magnitudes, components along and
# across gravity).
#
# Placement: rotation, tilt and horizontal acceleration are divided by the placement's swing factors
# (common/data/placement.py) before binning: a limb swings more than the trunk in the same movement. The
# head and the foot also scale the amplitude of the acceleration change and the vertical motion and impacts
# (1 everywhere else, so dividing by it leaves the trunk's, legs' and arms' values exactly as they were).

STILL_AMPLITUDE = 0.1  # m/s^2 std of |acc|; below this the body is still: no motion pattern is described
QUIET_AMPLITUDE = 0.3  # m/s^2 std of |acc|; below this no rhythm can be judged (sensor noise, small fidgets)
IRREGULAR = 0.45  # autocorrelation peak below which a movement has no rhythm worth a cadence
FLAT_VERTICAL = 0.15  # m/s^2 std of the vertical acceleration; below this its shape is noise
POSTURE_CHANGE = 25.0  # deg (after the swing factor) between the half-window gravity directions
NEAR_THRESHOLD = 0.15  # relative distance to a threshold within which the careful pass re-decides
# Inclination from the walking posture (deg, tilt_z in the walking frame): round numbers fixed before any
# measurement. A trunk sitting or standing stays within ~20 deg of its walking posture, a thigh on a seat is
# near horizontal (60-90 deg), and lying turns every segment by about 90 deg.
INCLINATION_BINS = (30.0, 60.0)

# The rules analogue of the paper's "simple prompt" (ablation w/o IGP): only how strongly and how regularly
# the body moves, none of the designed analysis of rhythm, vertical motion, impacts, shape, rotation, posture.
SIMPLE_CATEGORIES: tuple[str, ...] = ("amplitude change", "periodicity")


class _Features:
    """Named column access to a feature matrix [N, F] (common.data.features order), as float64."""

    def __init__(self, features: np.ndarray, swing: dict[str, float]) -> None:
        self.values = np.asarray(features, dtype=np.float64)
        self.swing = swing

    def __getitem__(self, name: str) -> np.ndarray:
        return self.values[:, FEATURE_INDEX[name]]


ValueFunction = Callable[[_Features], np.ndarray]


@dataclass(frozen=True)
class Override:
    """A phrase that replaces the binned one wherever `applies` is true (`when` says so in words)."""

    applies: Callable[[_Features], np.ndarray]
    phrase: str
    when: str


@dataclass(frozen=True)
class CategoryRule:
    """How one category is decided: bins of `value` at `thresholds`, then `overrides` (first true wins).

    `alternatives` give independent estimates of the same quantity; the careful pass (reinterpret) uses their
    median with `value` when `value` lies near a threshold.
    """

    category: str
    quantity: str  # what `value` measures, with its unit (shown to language models as the scale)
    value: ValueFunction
    thresholds: tuple[float, ...]
    bin_phrases: tuple[str, ...]
    overrides: tuple[Override, ...] = ()
    alternatives: tuple[ValueFunction, ...] = ()

    def __post_init__(self) -> None:
        known = SENSOR_VOCABULARY[self.category]
        phrases = [*self.bin_phrases, *(override.phrase for override in self.overrides)]
        missing = [phrase for phrase in phrases if phrase not in known]
        if missing:
            raise ValueError(f"rule for {self.category!r} uses phrases not in SENSOR_VOCABULARY: {missing}")
        ascending = list(self.thresholds) == sorted(self.thresholds)
        if not ascending or len(self.bin_phrases) != len(self.thresholds) + 1:
            raise ValueError(f"rule for {self.category!r} needs ascending thresholds and one phrase per bin")

    def decide(self, columns: _Features, careful: bool = False) -> np.ndarray:
        """Phrase index (into SENSOR_VOCABULARY[category]) per window."""
        value = self.value(columns)
        if careful and self.alternatives:
            value = self._careful_value(value, columns)
        bins = np.searchsorted(np.asarray(self.thresholds), value, side="right")
        known = SENSOR_VOCABULARY[self.category]
        index = np.asarray([known.index(phrase) for phrase in self.bin_phrases])[bins]
        decided = np.zeros(len(value), dtype=bool)
        for override in self.overrides:
            hit = override.applies(columns) & ~decided
            index[hit] = known.index(override.phrase)
            decided |= hit
        return index

    def _careful_value(self, value: np.ndarray, columns: _Features) -> np.ndarray:
        thresholds = np.asarray(self.thresholds)
        relative_gap = np.abs(value[:, None] - thresholds[None, :]) / np.maximum(np.abs(thresholds), 1e-6)
        near = (relative_gap < NEAR_THRESHOLD).any(axis=1)
        evidence = np.stack([value, *(alternative(columns) for alternative in self.alternatives)], axis=1)
        return np.where(near, np.median(evidence, axis=1), value)


def _quiet(c: _Features) -> np.ndarray:
    return c["acc_mag_std"] < QUIET_AMPLITUDE


def _still(c: _Features) -> np.ndarray:
    return c["acc_mag_std"] < STILL_AMPLITUDE


def _flat(c: _Features) -> np.ndarray:
    return _still(c) | (c["vertical_std"] < FLAT_VERTICAL)


_FLAT_WHEN = f"acc_mag_std < {STILL_AMPLITUDE:g} or vertical_std < {FLAT_VERTICAL:g}"


def _no_gyro(c: _Features) -> np.ndarray:
    return c["gyro_available"] < 0.5


def _vertical_share(c: _Features) -> np.ndarray:
    horizontal = c["horizontal_rms"] / c.swing["horizontal"]
    return (c["vertical_std"] / c.swing["vertical"]) ** 2 / np.maximum(horizontal**2, 1e-6)


def _vertical_share_from_extremes(c: _Features) -> np.ndarray:
    horizontal = c["horizontal_max"] / c.swing["horizontal"]
    return (0.5 * c["vertical_peak_to_peak"] / c.swing["vertical"]) ** 2 / np.maximum(horizontal**2, 1e-6)


RULES: tuple[CategoryRule, ...] = (
    CategoryRule(
        "amplitude change",
        quantity="acc_mag_std [m/s^2]",
        value=lambda c: c["acc_mag_std"] / c.swing["amplitude"],  # m/s^2
        # < 0.1 sensor noise and breathing; < 0.6 fidgeting, handling, light arm work; gait and stairs
        # 1.5-3.5; jogging ~5-6; running and jumping > 7
        thresholds=(0.1, 0.6, 4.5, 7.0),
        bin_phrases=tuple(SENSOR_VOCABULARY["amplitude change"]),
        # the range of a sine is 2 * sqrt(2) times its std
        alternatives=(
            lambda c: c["vertical_std"] / c.swing["amplitude"],
            lambda c: c["acc_mag_range"] / (2.0 * np.sqrt(2.0)) / c.swing["amplitude"],
        ),
    ),
    CategoryRule(
        "periodicity",
        quantity="autocorrelation_peak",
        value=lambda c: c["autocorrelation_peak"],  # normalised autocorrelation, 1 = perfectly periodic
        # steady level gait and pedalling repeat at > 0.8; stairs, turns and ball games far less
        thresholds=(IRREGULAR, 0.8),
        bin_phrases=tuple(SENSOR_VOCABULARY["periodicity"][1:]),
        overrides=(Override(_quiet, "no periodic pattern", f"acc_mag_std < {QUIET_AMPLITUDE:g}"),),
    ),
    CategoryRule(
        "cadence",
        quantity="dominant_frequency [Hz]",
        value=lambda c: c["dominant_frequency"],  # Hz
        # pedalling, rowing and many stair climbs < 1.35 cycles/s; level walking 1.5-2 steps/s; jumping
        # about 2-2.4; jogging and running > 2.45
        thresholds=(1.35, 2.05, 2.45),
        bin_phrases=tuple(SENSOR_VOCABULARY["cadence"][1:]),
        overrides=(
            Override(
                lambda c: _quiet(c) | (c["autocorrelation_peak"] < IRREGULAR),
                "no rhythm",
                f"acc_mag_std < {QUIET_AMPLITUDE:g} or autocorrelation_peak < {IRREGULAR:g}",
            ),
        ),
        alternatives=(lambda c: c["vertical_dominant_frequency"], lambda c: c["step_rate"]),
    ),
    CategoryRule(
        "vertical motion",
        quantity="vertical_std^2 / horizontal_rms^2",
        value=_vertical_share,  # vertical / horizontal energy
        # trunk in level gait about 1-1.5; landings (stairs down, running, jumping) push it above 2
        thresholds=(0.6, 2.0),
        bin_phrases=tuple(SENSOR_VOCABULARY["vertical motion"][1:]),
        overrides=(Override(_flat, "no vertical movement", _FLAT_WHEN),),
        alternatives=(_vertical_share_from_extremes,),
    ),
    CategoryRule(
        "impacts",
        quantity="vertical_peak [m/s^2]",
        value=lambda c: c["vertical_peak"] / c.swing["vertical"],  # m/s^2 above the mean, along gravity
        # heel strikes in walking ~4-7; stair descent and jogging 7-15; running and jumping > 20
        thresholds=(1.5, 7.0, 15.0, 22.0),
        bin_phrases=tuple(SENSOR_VOCABULARY["impacts"]),
        overrides=(Override(_still, "no impacts", f"acc_mag_std < {STILL_AMPLITUDE:g}"),),
        # gait peaks are ~2.5 standard deviations high (crest factor of a heel-strike waveform)
        alternatives=(
            lambda c: 0.5 * c["vertical_peak_to_peak"] / c.swing["vertical"],
            lambda c: 2.5 * c["vertical_std"] / c.swing["vertical"],
        ),
    ),
    CategoryRule(
        "signal shape",
        quantity="vertical_sharpness [1/s]",
        value=lambda c: c["vertical_sharpness"],  # 1/s
        # grows with frequency and harmonic content: smooth pedalling < 8, stairs ~9-13, level gait > 13
        thresholds=(8.0, 13.0),
        bin_phrases=tuple(SENSOR_VOCABULARY["signal shape"][1:]),
        overrides=(Override(_flat, "flat signal", _FLAT_WHEN),),
    ),
    CategoryRule(
        "rotation",
        quantity="gyro_magnitude_mean [rad/s]",
        value=lambda c: c["gyro_magnitude_mean"] / c.swing["rotation"],  # rad/s
        # the trunk turns at ~0.5 rad/s in walking; turning, ball games and running exceed 1
        thresholds=(0.1, 0.3, 1.0),
        bin_phrases=tuple(SENSOR_VOCABULARY["rotation"][:4]),
        overrides=(Override(_no_gyro, "rotation not measured", "the device has no gyroscope"),),
        alternatives=(
            lambda c: (
                np.sqrt(c["gyro_energy_x"] + c["gyro_energy_y"] + c["gyro_energy_z"]) / c.swing["rotation"]
            ),
        ),
    ),
    CategoryRule(
        "posture stability",
        quantity="tilt_swing [deg]",
        value=lambda c: c["tilt_swing"] / c.swing["tilt"],  # deg
        # level gait rocks the trunk by 2-6 degrees; stairs, rowing and vigorous moves tilt it further
        thresholds=(2.0, 6.0),
        bin_phrases=tuple(SENSOR_VOCABULARY["posture stability"][:3]),
        overrides=(
            Override(
                lambda c: c["orientation_change"] / c.swing["tilt"] > POSTURE_CHANGE,
                "posture changing during the window",
                f"orientation_change > {POSTURE_CHANGE:g} deg",
            ),
        ),
    ),
    CategoryRule(
        "body inclination",
        quantity="tilt_z [deg] in the walking frame",
        # Only meaningful for windows turned into their wearer's walking frame (common/data/posture.py):
        # there +z is the segment's walking posture and tilt_z the angle of gravity from it.
        value=lambda c: c["tilt_z"],
        thresholds=INCLINATION_BINS,
        bin_phrases=tuple(SENSOR_VOCABULARY["body inclination"]),
    ),
)


def _check_features(features: np.ndarray) -> np.ndarray:
    features = np.asarray(features)
    if features.ndim != 2 or features.shape[1] != len(FEATURE_NAMES):
        raise ValueError(
            f"features must have shape [N, {len(FEATURE_NAMES)}] (FEATURE_NAMES order), got {features.shape}"
        )
    return features


def _thresholds(category: str) -> tuple[float, ...]:
    return next(rule.thresholds for rule in RULES if rule.category == category)


def rhythmic_movement(features: np.ndarray) -> np.ndarray:
    """Windows this interpreter words as rhythmic movement, read without labels: bool [N].

    At least moderate acceleration change with at least a moderately regular periodic pattern: walking,
    stairs, running and the like on any placement, and pedalling or rowing on a limb. Their most common
    gravity direction is the wearer's walking posture (common/data/posture.py `walking_references`).
    """
    features = _check_features(features)
    moderate = _thresholds("amplitude change")[1]
    return (features[:, FEATURE_INDEX["acc_mag_std"]] >= moderate) & (
        features[:, FEATURE_INDEX["autocorrelation_peak"]] >= IRREGULAR
    )


def describe_rule_scales() -> str:
    """The bins of every rule in words, one line per category: the scale the rules interpreter uses.

    Shown in the task part of the sensor prompt so that a language model picks phrases on the same scale.
    """
    leg = SWING_FACTORS["leg"]
    lines = [
        "Reference scales for a sensor on the trunk: each line lists the phrases from low to high, each "
        "preceded by the feature value where it starts. On the thigh, in a pocket or on the wrist, first "
        "divide "
        f"rotation by {leg['rotation']:g}, tilt by {leg['tilt']:g} and horizontal acceleration by "
        f"{leg['horizontal']:g}: a limb swings more than the trunk in the same movement."
    ]
    for rule in RULES:
        if rule.category not in STANDARD_CATEGORIES:
            continue  # a language model is not asked for it (prompts.STANDARD_CATEGORIES)
        steps = [rule.bin_phrases[0]]
        steps += [
            f"{threshold:g} {phrase}"
            for threshold, phrase in zip(rule.thresholds, rule.bin_phrases[1:], strict=True)
        ]
        line = f"- {rule.category} ({rule.quantity}): {' | '.join(steps)}"
        line += "".join(f"; '{override.phrase}' if {override.when}" for override in rule.overrides)
        lines.append(line)
    return "\n".join(lines)


class RulesInterpreter:
    """Deterministic, offline interpreter: thresholds on the signal features, the LLM's vocabulary and format.

    It describes signal patterns only and never names an activity. `reinterpret` is a more careful second
    pass: categories whose value lies within NEAR_THRESHOLD of a bin edge are re-decided from the median of
    several independent estimates of the same quantity.
    """

    name = "rules"

    def __init__(
        self,
        swing_factors: dict[str, dict[str, float]] | None = None,
        categories: Sequence[str] | None = None,
        inclination: bool = False,
    ) -> None:
        """`categories`: the SENSOR_VOCABULARY categories the texts report (None: STANDARD_CATEGORIES, the
        default; SIMPLE_CATEGORIES: the simple-prompt ablation). `inclination`: the windows are in their
        wearer's walking frame (common/data/posture.py), so the texts also report "body inclination" and
        the label descriptions the segments' inclination (knowledge.describe_label)."""
        if inclination and categories is not None:
            raise ValueError(
                "inclination adds 'body inclination' to the standard categories; pass no categories"
            )
        self.inclination = inclination
        if categories is None:
            categories = (*STANDARD_CATEGORIES, "body inclination") if inclination else STANDARD_CATEGORIES
        self.categories = tuple(categories)
        unknown_categories = [c for c in self.categories if c not in SENSOR_VOCABULARY]
        if unknown_categories or not self.categories:
            raise ValueError(
                f"categories must be a non-empty subset of {list(SENSOR_VOCABULARY)}, "
                f"got {list(self.categories)}"
            )
        self.swing_factors = {group: dict(factors) for group, factors in SWING_FACTORS.items()}
        if swing_factors:
            unknown = set(swing_factors) - set(SWING_FACTORS)
            if unknown:
                raise ValueError(
                    f"unknown placement groups {sorted(unknown)}; known: {sorted(SWING_FACTORS)}"
                )
            for group, factors in swing_factors.items():
                unknown_quantities = set(factors) - set(SWING_FACTORS[group])
                if unknown_quantities:
                    raise ValueError(
                        f"unknown swing quantities {sorted(unknown_quantities)} for {group!r}; "
                        f"known: {sorted(SWING_FACTORS[group])}"
                    )
                self.swing_factors[group].update(factors)

    def interpret(
        self, features: np.ndarray, context: SensorContext, windows: np.ndarray | None = None
    ) -> list[str]:
        return self._texts(features, context, careful=False)

    def reinterpret(
        self,
        features: np.ndarray,
        previous: list[str],
        context: SensorContext,
        windows: np.ndarray | None = None,
    ) -> list[str]:
        if len(previous) != len(np.asarray(features)):
            raise ValueError(
                f"reinterpret needs one previous text per feature row: {len(previous)} texts, "
                f"{len(np.asarray(features))} rows"
            )
        return self._texts(features, context, careful=True)

    def describe_labels(self, labels: Sequence[str], n: int) -> dict[str, list[str]]:
        return {label: describe_label(label, n, inclination=self.inclination) for label in labels}

    def phrase_indices(
        self, features: np.ndarray, context: SensorContext, careful: bool = False
    ) -> np.ndarray:
        """Chosen phrase per category as an index into SENSOR_VOCABULARY[category]: int [N, categories]."""
        features = _check_features(features)
        if not np.isfinite(features).all():
            raise ValueError("features contain NaN or inf values")
        swing = self.swing_factors[placement_group(context.position)]
        columns = _Features(features, swing)
        indices = np.stack([rule.decide(columns, careful) for rule in RULES], axis=1)
        if not context.has_gyro:
            rotation = [rule.category for rule in RULES].index("rotation")
            indices[:, rotation] = SENSOR_VOCABULARY["rotation"].index("rotation not measured")
        return indices

    def _texts(self, features: np.ndarray, context: SensorContext, careful: bool) -> list[str]:
        reported = [i for i, rule in enumerate(RULES) if rule.category in self.categories]
        indices = self.phrase_indices(features, context, careful)[:, reported]
        if len(indices) == 0:
            return []
        # Many windows share a combination: format each distinct one once.
        combinations, inverse = np.unique(indices, axis=0, return_inverse=True)
        categories = [RULES[i].category for i in reported]
        texts = [
            format_interpretation({c: SENSOR_VOCABULARY[c][i] for c, i in zip(categories, row, strict=True)})
            for row in combinations
        ]
        return [texts[i] for i in inverse.ravel()]
