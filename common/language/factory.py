"""Which interpreter a run uses, by kind: the rules (offline, default) or a language model."""

from __future__ import annotations

from common.language.interpreter import Interpreter
from common.language.rules import RulesInterpreter


def make_interpreter(kind: str = "rules", **options) -> Interpreter:
    """Build an interpreter by kind: "rules" (offline, default), "openai" or "local" (a language model)."""
    kind_normalised = kind.strip().lower()
    if kind_normalised == "rules":
        return RulesInterpreter(**options)
    if kind_normalised == "openai":
        from common.language.llm.interpreters import OpenAIInterpreter

        return OpenAIInterpreter(**options)
    if kind_normalised == "local":
        from common.language.llm.interpreters import LocalInterpreter

        return LocalInterpreter(**options)
    raise ValueError(f"unknown interpreter kind {kind!r}; choose one of 'rules', 'openai', 'local'")
