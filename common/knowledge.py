"""Activity knowledge: several three-aspect descriptions per activity, from configs/label_knowledge.toml.

Each description covers (1) a general description, (2) the patterns an accelerometer and gyroscope record,
worded with the same pattern vocabulary as the sensor interpretations (common.prompts.SENSOR_VOCABULARY),
and (3) the body parts involved. They are the label texts of the offline rules interpreter, and their
summaries form part (iii) of the sensor prompt. Labels without an entry get template descriptions.
"""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

DEFAULT_KNOWLEDGE_PATH = Path(__file__).resolve().parent.parent / "configs" / "label_knowledge.toml"


class KnowledgeError(ValueError):
    """The label knowledge file is missing or malformed."""


def _key(label: str) -> str:
    return " ".join(label.strip().lower().split())


def load_label_knowledge(path: str | Path | None = None) -> dict[str, list[str]]:
    """Label -> descriptions from a TOML file of `[activities."<label>"]` tables.

    Each table has `descriptions = [...]` (full three-aspect paragraphs), an optional `summary` (one
    sentence of typical sensor patterns, used in the sensor prompt) and optional
    `aliases = [...]` that share the entry.
    """
    return {label: list(entry["descriptions"]) for label, entry in _load_entries(path).items()}


@lru_cache(maxsize=8)
def _load_entries_cached(path: Path) -> dict[str, dict]:
    try:
        with path.open("rb") as handle:
            document = tomllib.load(handle)
    except FileNotFoundError as error:
        raise KnowledgeError(f"label knowledge file not found: {path}") from error
    except tomllib.TOMLDecodeError as error:
        raise KnowledgeError(f"{path}: invalid TOML: {error}") from error
    activities = document.get("activities")
    if not isinstance(activities, dict) or not activities:
        raise KnowledgeError(f'{path}: expected a table [activities."<label>"] per activity')
    entries: dict[str, dict] = {}
    for label, entry in activities.items():
        descriptions = entry.get("descriptions") if isinstance(entry, dict) else None
        if (
            not isinstance(descriptions, list)
            or not descriptions
            or not all(isinstance(d, str) and d.strip() for d in descriptions)
        ):
            raise KnowledgeError(
                f"{path}: activities.{label!r}.descriptions must be a non-empty list of texts"
            )
        summary = entry.get("summary", "")
        if not isinstance(summary, str):
            raise KnowledgeError(f"{path}: activities.{label!r}.summary must be a text")
        cleaned = {
            "descriptions": [" ".join(d.split()) for d in descriptions],
            "summary": " ".join(summary.split()),
        }
        for name in [label, *entry.get("aliases", [])]:
            if _key(name) in entries:
                raise KnowledgeError(f"{path}: activity or alias {name!r} is defined twice")
            entries[_key(name)] = cleaned
    return entries


def _load_entries(path: str | Path | None) -> dict[str, dict]:
    return _load_entries_cached(Path(path) if path is not None else DEFAULT_KNOWLEDGE_PATH)


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


def describe_label(label: str, n: int, path: str | Path | None = None) -> list[str]:
    """`n` descriptions of `label` from the knowledge file (cycled when fewer), else template descriptions."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    entry = _load_entries(path).get(_key(label))
    if entry is None:
        return template_descriptions(label, n)
    descriptions = entry["descriptions"]
    return [descriptions[i % len(descriptions)] for i in range(n)]


def has_knowledge(label: str, path: str | Path | None = None) -> bool:
    """Whether the knowledge file has an entry (or alias) for `label`."""
    return _key(label) in _load_entries(path)


def activity_knowledge(labels: Sequence[str], path: str | Path | None = None) -> str:
    """Typical sensor patterns of the given activities, one line each (part (iii) of the sensor prompt)."""
    entries = _load_entries(path)
    lines = []
    for label in labels:
        entry = entries.get(_key(label))
        if entry is None:
            lines.append(f"- {label}: no stored knowledge; reason from the physics of the movement.")
        else:
            summary = entry["summary"] or entry["descriptions"][0]
            lines.append(f"- {label}: {summary}")
    return "\n".join(lines) if lines else "- no candidate activities were given."
