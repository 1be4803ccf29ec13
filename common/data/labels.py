"""Canonical activity vocabulary: one name per activity, aliases, and one category per label.

Data sets spell the same activity differently ("WALKING_UPSTAIRS", "stairs up", "going upstairs"); the
framework compares label names across data sets, so every name is mapped to the canonical spelling listed in
``configs/labels.toml`` (format documented at the top of that file). Categories ("locomotion", "static",
"stairs", ...) are the groups the paper's category-level ranking losses and metrics use.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from common.base.paths import CONFIGS_DIR
from common.data.errors import DataError
from common.data.toml_files import read_toml

VOCABULARY_FILE = CONFIGS_DIR / "labels.toml"
OTHER_CATEGORY = "other"

# The paper's four activities shared by its cross-data-set pairs.
COMMON_ACTIVITIES = ("walking", "upstairs", "downstairs", "sitting")

_ALLOWED_LABEL_KEYS = {"category", "aliases"}
_ALLOWED_TOP_KEYS = {"categories", "labels"}


def normalise(name: str) -> str:
    """Lowercase, '_' and '-' to spaces, collapse whitespace: the form aliases are matched on."""
    return re.sub(r"\s+", " ", name.replace("_", " ").replace("-", " ")).strip().lower()


@dataclass
class LabelVocabulary:
    """Canonical label names with their aliases and categories.

    ``categories`` maps category -> description; ``label_category`` maps canonical label -> category
    (labels without one are absent); ``aliases`` maps normalised alias -> canonical label.
    """

    categories: dict[str, str] = field(default_factory=dict)
    label_category: dict[str, str] = field(default_factory=dict)
    labels: list[str] = field(default_factory=list)
    aliases: dict[str, str] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)

    def canonical(self, name: str, allow_unknown: bool = False) -> str:
        """The canonical spelling of ``name``; unknown names raise unless ``allow_unknown``.

        With ``allow_unknown`` an unknown name comes back normalised (lowercase, single spaces).
        """
        if not isinstance(name, str):
            raise DataError(f"activity label must be a string, got {type(name).__name__}: {name!r}")
        key = normalise(name)
        if key in self.aliases:
            return self.aliases[key]
        if allow_unknown:
            return key
        raise DataError(
            f"unknown activity label {name!r} (normalised {key!r}) in the vocabulary "
            f"({', '.join(self.sources)}); add it to a user TOML passed to load_vocabulary(extra=...) "
            f"or use allow_unknown=True"
        )

    def is_known(self, name: str) -> bool:
        return normalise(name) in self.aliases

    def category(self, label: str) -> str:
        """Category of a label (any known spelling); ``"other"`` for labels without a category."""
        return self.label_category.get(self.canonical(label, allow_unknown=True), OTHER_CATEGORY)

    def labels_in_category(self, category: str) -> list[str]:
        return [label for label in self.labels if self.label_category.get(label) == category]

    def merge_file(self, path: Path) -> None:
        """Add the categories, labels and aliases of one TOML file (format: configs/labels.toml)."""
        path = Path(path)
        document = read_toml(path, "label vocabulary file")
        self.sources.append(str(path))

        unknown = set(document) - _ALLOWED_TOP_KEYS
        if unknown:
            raise DataError(
                f"{path}: unknown top-level key(s) {sorted(unknown)}; allowed: {sorted(_ALLOWED_TOP_KEYS)}"
            )
        categories = document.get("categories", {})
        if not isinstance(categories, dict):
            raise DataError(f"{path}: field 'categories' must be a table of name = description")
        for category_name, description in categories.items():
            if category_name == OTHER_CATEGORY:
                raise DataError(
                    f"{path}: field 'categories.{OTHER_CATEGORY}' is reserved for unassigned labels"
                )
            if not isinstance(description, str):
                raise DataError(f"{path}: field 'categories.{category_name}' must be a description string")
            self.categories[category_name] = description

        labels = document.get("labels", {})
        if not isinstance(labels, dict):
            raise DataError(f"{path}: field 'labels' must be a table of [labels.\"<name>\"] tables")
        for raw_name, entry in labels.items():
            self._add_label(path, raw_name, entry)

    def _add_label(self, path: Path, raw_name: str, entry: object) -> None:
        where = f"{path}: field 'labels.\"{raw_name}\"'"
        if not isinstance(entry, dict):
            raise DataError(f"{where} must be a table with keys {sorted(_ALLOWED_LABEL_KEYS)}")
        unknown = set(entry) - _ALLOWED_LABEL_KEYS
        if unknown:
            raise DataError(
                f"{where} has unknown key(s) {sorted(unknown)}; allowed: {sorted(_ALLOWED_LABEL_KEYS)}"
            )
        name = normalise(raw_name)
        if not name:
            raise DataError(f"{where}: the label name is empty")
        owner = self.aliases.get(name)
        if owner is not None and owner != name:
            raise DataError(f"{where}: {name!r} is already an alias of the label {owner!r}")
        if name not in self.aliases:
            self.labels.append(name)
            self.aliases[name] = name

        if "category" in entry:
            category_name = entry["category"]
            if not isinstance(category_name, str) or category_name not in self.categories:
                raise DataError(
                    f"{where}.category = {category_name!r} is not a declared category; "
                    f"declared: {sorted(self.categories)}"
                )
            self.label_category[name] = category_name

        aliases = entry.get("aliases", [])
        if not isinstance(aliases, list) or not all(isinstance(alias, str) for alias in aliases):
            raise DataError(f"{where}.aliases must be a list of strings")
        for alias in aliases:
            key = normalise(alias)
            owner = self.aliases.get(key)
            if owner is not None and owner != name:
                raise DataError(f"{where}.aliases: {alias!r} already names the label {owner!r}")
            self.aliases[key] = name


def load_vocabulary(extra: str | Path | None = None) -> LabelVocabulary:
    """The built-in vocabulary (configs/labels.toml), extended by the user TOML ``extra`` if given."""
    vocabulary = LabelVocabulary()
    vocabulary.merge_file(VOCABULARY_FILE)
    if extra is not None:
        vocabulary.merge_file(Path(extra))
    return vocabulary


@lru_cache(maxsize=1)
def default_vocabulary() -> LabelVocabulary:
    """The built-in vocabulary, read once per process. Treat it as read-only."""
    return load_vocabulary()


def canonical(name: str, allow_unknown: bool = False) -> str:
    """Canonical spelling of ``name`` in the built-in vocabulary (see LabelVocabulary.canonical)."""
    return default_vocabulary().canonical(name, allow_unknown=allow_unknown)


def category(label: str) -> str:
    """Category of ``label`` in the built-in vocabulary; "other" when it has none."""
    return default_vocabulary().category(label)
