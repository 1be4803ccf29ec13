"""Activity knowledge: several three-aspect descriptions per activity, from configs/label_knowledge.toml.

Each description covers (1) a general description, (2) the patterns an accelerometer and gyroscope record,
worded with the same pattern vocabulary as the sensor interpretations (prompts.SENSOR_VOCABULARY),
and (3) the body parts involved. The knowledge file stores each aspect in a few differently worded variants;
the descriptions are their combinations, ordered so that consecutive descriptions differ in every aspect.
They are the label texts of the offline rules interpreter, and the sensor aspect is part (iii) of the sensor
prompt. Labels without an entry get template descriptions.

An entry may also say how the activity inclines the trunk and the thigh against the walking posture
(`inclination = { trunk = "upright", thigh = "horizontal" }`); with `inclination=True` (windows in the
walking frame, common/data/posture.py) `describe_label` adds it to every description in the words of the
"body inclination" category.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from common.base.paths import CONFIGS_DIR
from common.data.errors import DataError
from common.data.labels import canonical
from common.data.toml_files import read_toml

DEFAULT_KNOWLEDGE_PATH = CONFIGS_DIR / "label_knowledge.toml"
_ASPECTS = ("general", "sensor", "body")
_ALLOWED_KEYS = {*_ASPECTS, "aliases", "descriptions", "inclination"}
# The "body inclination" phrases by the knowledge file's level; prompts.SENSOR_VOCABULARY takes them.
# Like every sensor phrase they name no activity: the reference is the posture the wearer moves in most.
INCLINATION_PHRASES: dict[str, str] = {
    "upright": "upright as in the usual moving posture",
    "tilted": "tilted from the usual moving posture",
    "horizontal": "horizontal, far from the usual moving posture",
}
INCLINATION_SEGMENTS = ("trunk", "thigh")


class KnowledgeError(DataError):
    """The label knowledge file is missing or malformed (the message names the file and the field)."""


@dataclass(frozen=True)
class ActivityKnowledge:
    """The stored knowledge of one activity: full descriptions and the sensor-pattern summary."""

    label: str
    descriptions: tuple[str, ...]
    summary: str
    inclination: str = ""  # the inclination sentence, "" when the entry gives none


def _key(label: str) -> str:
    return " ".join(label.strip().lower().split())


def _text_list(path: Path, label: str, field: str, value: object) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(text, str) and text.strip() for text in value):
        raise KnowledgeError(f"{path}: activities.{label!r}.{field} must be a list of non-empty texts")
    return [" ".join(text.split()) for text in value]


def _combine(general: list[str], sensor: list[str], body: list[str]) -> list[str]:
    """All general + sensor + body combinations; first those that differ from each other in every aspect."""
    combinations = list(itertools.product(range(len(general)), range(len(sensor)), range(len(body))))
    rounds = max(len(general), len(sensor), len(body))
    diagonal = [(i % len(general), i % len(sensor), i % len(body)) for i in range(rounds)]
    ordered = list(dict.fromkeys(diagonal + combinations))
    return [f"{general[g]} {sensor[s]} {body[b]}" for g, s, b in ordered]


def _parse_entry(path: Path, label: str, entry: object) -> ActivityKnowledge:
    if not isinstance(entry, dict):
        raise KnowledgeError(f"{path}: activities.{label!r} must be a table")
    unknown = set(entry) - _ALLOWED_KEYS
    if unknown:
        raise KnowledgeError(f"{path}: activities.{label!r} has unknown keys {sorted(unknown)}")
    given = [aspect for aspect in _ASPECTS if aspect in entry]
    if given and len(given) != len(_ASPECTS):
        missing = [aspect for aspect in _ASPECTS if aspect not in entry]
        raise KnowledgeError(f"{path}: activities.{label!r} lacks the aspect(s) {missing}")
    aspects = {aspect: _text_list(path, label, aspect, entry[aspect]) for aspect in given}
    descriptions = _text_list(path, label, "descriptions", entry.get("descriptions", []))
    if aspects:
        descriptions += _combine(aspects["general"], aspects["sensor"], aspects["body"])
    if not descriptions:
        raise KnowledgeError(f"{path}: activities.{label!r} needs general/sensor/body lists or descriptions")
    summary = aspects["sensor"][0] if aspects else descriptions[0]
    inclination = _inclination_sentence(path, label, entry.get("inclination"))
    return ActivityKnowledge(label, tuple(descriptions), summary, inclination)


def _inclination_sentence(path: Path, label: str, levels: object) -> str:
    """The entry's inclination in the "body inclination" words, e.g. "Body inclination: on the trunk upright
    as in the usual moving posture; on the thigh horizontal, far from the usual moving posture." ("" without
    the field)."""
    if levels is None:
        return ""
    field = f"{path}: activities.{label!r}.inclination"
    if not isinstance(levels, dict) or not levels:
        raise KnowledgeError(f'{field} must be a table like {{ trunk = "upright", thigh = "horizontal" }}')
    unknown = sorted(set(levels) - set(INCLINATION_SEGMENTS))
    if unknown:
        raise KnowledgeError(f"{field} has unknown segments {unknown}; known: {list(INCLINATION_SEGMENTS)}")
    bad = {segment: level for segment, level in levels.items() if level not in INCLINATION_PHRASES}
    if bad:
        raise KnowledgeError(f"{field}: levels {bad} are not among {list(INCLINATION_PHRASES)}")
    parts = [f"on the {s} {INCLINATION_PHRASES[levels[s]]}" for s in INCLINATION_SEGMENTS if s in levels]
    return "Body inclination: " + "; ".join(parts) + "."


@lru_cache(maxsize=8)
def _load_entries_cached(path: Path) -> dict[str, ActivityKnowledge]:
    document = read_toml(path, "label knowledge file", error=KnowledgeError)
    activities = document.get("activities")
    if not isinstance(activities, dict) or not activities:
        raise KnowledgeError(f'{path}: expected one table [activities."<label>"] per activity')
    entries: dict[str, ActivityKnowledge] = {}
    for label, entry in activities.items():
        knowledge = _parse_entry(path, label, entry)
        aliases = entry.get("aliases", [])
        if not isinstance(aliases, list) or not all(isinstance(alias, str) for alias in aliases):
            raise KnowledgeError(f"{path}: activities.{label!r}.aliases must be a list of names")
        for name in [label, *aliases]:
            if _key(name) in entries:
                raise KnowledgeError(f"{path}: activity or alias {name!r} is defined twice")
            entries[_key(name)] = knowledge
    return entries


def _load_entries(path: str | Path | None) -> dict[str, ActivityKnowledge]:
    return _load_entries_cached(Path(path).resolve() if path is not None else DEFAULT_KNOWLEDGE_PATH)


def _find(label: str, path: str | Path | None) -> ActivityKnowledge | None:
    """The entry of `label` by its own name, an alias, or its canonical name (configs/labels.toml)."""
    entries = _load_entries(path)
    found = entries.get(_key(label))
    if found is None:
        found = entries.get(_key(canonical(label, allow_unknown=True)))
    return found


def load_label_knowledge(path: str | Path | None = None) -> dict[str, list[str]]:
    """Label -> its descriptions, for every activity of the knowledge file (aliases not repeated)."""
    return {entry.label: list(entry.descriptions) for entry in _load_entries(path).values()}


def template_descriptions(label: str, n: int) -> list[str]:
    """`n` generic three-aspect descriptions for an activity without knowledge entry."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    name = _key(label)
    if not name:
        raise ValueError("label must be a non-empty activity name")
    templates = (
        f"{name} is a human activity. While a person is {name}, a body-worn accelerometer and gyroscope "
        f"record the movement pattern typical of {name}. The body parts involved are those used for {name}.",
        f"The activity {name}: a person performing {name} in daily life. The inertial sensor shows the "
        f"amplitude, rhythm and rotation that {name} produces. It involves the limbs and trunk as {name} "
        "needs.",
        f"Someone doing {name}. Sensor patterns: the acceleration and rotation characteristic of {name}. "
        f"Body parts: the muscles and joints that {name} engages.",
        f"This is {name}. Motion sensors worn on the body capture how {name} moves the body. "
        f"Body parts involved in {name} carry the movement.",
    )
    return [templates[i % len(templates)] for i in range(n)]


def describe_label(
    label: str, n: int, path: str | Path | None = None, inclination: bool = False
) -> list[str]:
    """`n` descriptions of `label` from the knowledge file (cycled when fewer), else template descriptions.

    `inclination`: each description ends with the entry's inclination sentence, if it has one.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    entry = _find(label, path)
    if entry is None:
        return template_descriptions(label, n)
    descriptions = [entry.descriptions[i % len(entry.descriptions)] for i in range(n)]
    if inclination and entry.inclination:
        descriptions = [f"{description} {entry.inclination}" for description in descriptions]
    return descriptions


def has_knowledge(label: str, path: str | Path | None = None) -> bool:
    """Whether the knowledge file has an entry for `label` (by name, alias or canonical name)."""
    return _find(label, path) is not None


def activity_knowledge(labels: Sequence[str], path: str | Path | None = None) -> str:
    """Typical sensor patterns of the given activities, one line each (part (iii) of the sensor prompt)."""
    lines = []
    for label in labels:
        entry = _find(label, path)
        if entry is None:
            lines.append(f"- {label}: no stored knowledge; reason from the physics of the movement.")
        else:
            lines.append(f"- {label}: {entry.summary}")
    return "\n".join(lines) if lines else "- no candidate activities were given."
