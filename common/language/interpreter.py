"""The contract every interpreter follows (the rules in common/language/rules.py, the language models in
common/language/llm/interpreters.py): sensor interpretations in one vocabulary and format
(`prompts.format_interpretation`), so the text encoder sees one kind of text whatever produced it, and label
descriptions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from common.language.prompts import SensorContext


@runtime_checkable
class Interpreter(Protocol):
    """Produces sensor interpretations and label descriptions."""

    name: str  # "rules", "openai", "local"

    def interpret(
        self, features: np.ndarray, context: SensorContext, windows: np.ndarray | None = None
    ) -> list[str]:
        """One canonical interpretation text per row of `features` ([N, F], common.data.features order).

        `windows` ([N, T, 6]) is only given in the raw-prompt mode.
        """
        ...

    def reinterpret(
        self,
        features: np.ndarray,
        previous: list[str],
        context: SensorContext,
        windows: np.ndarray | None = None,
    ) -> list[str]:
        """The re-generation ask: re-check each row's `previous` interpretation and return a corrected one."""
        ...

    def describe_labels(self, labels: Sequence[str], n: int) -> dict[str, list[str]]:
        """`n` three-aspect descriptions per label (general, accelerometer/gyroscope patterns, body parts)."""
        ...
