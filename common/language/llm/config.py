"""What decides which language model is asked and how (`LLMConfig`), its accounting (`UsageStats`), and
the error that stops a run when the endpoint is unusable."""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

# Rough characters per token, only for the progress estimate before the first real token counts arrive.
CHARS_PER_TOKEN = 4


class LLMServiceError(RuntimeError):
    """The language-model endpoint is unusable (bad key or model, unreachable); the run cannot continue."""


@dataclass
class LLMConfig:
    """Everything that decides which model is asked, how, and where answers are cached.

    `model` is the served model name for the openai backend, or a model directory / GGUF file for the local
    backend. The cache key contains `model`, so the name must identify the weights: with llama-cpp-python's
    server give each GGUF its own `--model_alias`.
    """

    base_url: str = "https://api.openai.com/v1"
    model: str = "gpt-4o-mini"
    api_key_env: str | None = "OPENAI_API_KEY"  # None: the endpoint needs no key (local servers)
    temperature: float = 0.0
    max_tokens: int = 400
    concurrency: int = 4  # requests in flight at once
    timeout_s: float = 60.0  # per request
    max_retries: int = 4  # retries after the first try, on 429 / 5xx / timeouts / connection errors
    backoff_s: float = 1.0  # first retry delay; doubles every retry (plus up to 10% jitter)
    max_backoff_s: float = 30.0
    max_consecutive_failures: int = 5  # prompts failing all retries in a row before the run is stopped
    cache_path: str | Path | None = None  # SQLite file; None = no persistent cache (no resume)
    progress: bool = True  # tqdm line with ETA and estimated tokens left, on stderr

    def __post_init__(self) -> None:
        problems = []
        if not isinstance(self.base_url, str) or not self.base_url.startswith(("http://", "https://")):
            problems.append(f"base_url must be an http(s) URL, got {self.base_url!r}")
        if not isinstance(self.model, str) or not self.model.strip():
            problems.append(f"model must be a non-empty name or path, got {self.model!r}")
        if self.api_key_env is not None and (not isinstance(self.api_key_env, str) or not self.api_key_env):
            problems.append(
                f"api_key_env must be an environment variable name or None, got {self.api_key_env!r}"
            )
        if not 0.0 <= float(self.temperature) <= 2.0:
            problems.append(f"temperature must be in [0, 2], got {self.temperature}")
        for name in ("max_tokens", "concurrency", "max_consecutive_failures"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                problems.append(f"{name} must be an integer >= 1, got {getattr(self, name)!r}")
        if not isinstance(self.max_retries, int) or self.max_retries < 0:
            problems.append(f"max_retries must be an integer >= 0, got {self.max_retries!r}")
        for name in ("timeout_s", "backoff_s", "max_backoff_s"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not np.isfinite(value) or value < 0:
                problems.append(f"{name} must be a finite number of seconds >= 0, got {value!r}")
        if isinstance(self.timeout_s, int | float) and self.timeout_s == 0:
            problems.append("timeout_s must be > 0")
        if problems:
            raise ValueError("invalid LLMConfig: " + "; ".join(problems))

    @property
    def generation_params(self) -> dict[str, Any]:
        """The parameters that change an answer, and therefore belong in the cache key."""
        return {"temperature": float(self.temperature), "max_tokens": int(self.max_tokens)}

    @classmethod
    def from_options(cls, config: LLMConfig | None = None, **options: Any) -> LLMConfig:
        """`config` (or the defaults) with the given fields replaced; unknown option names are an error."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ValueError(f"unknown LLM option(s) {unknown}; known options: {sorted(known)}")
        return dataclasses.replace(config, **options) if config is not None else cls(**options)


@dataclass
class UsageStats:
    """Counts of one interpreter's work; thread-safe; `as_dict()` for reports."""

    requests: int = 0  # requests sent, retries included
    retries: int = 0
    failures: int = 0  # prompts still failing after all retries
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cache_hits: int = 0  # prompts answered from the cache
    answers: int = 0  # new answers received (and cached)
    malformed_answers: int = 0  # answers that could not be parsed
    reasks: int = 0  # re-asks after a malformed answer
    fallbacks: int = 0  # windows / label descriptions that got the rules interpreter's text
    regenerations: int = 0  # windows re-asked by the re-generation loop
    errors: dict[str, int] = field(default_factory=dict)  # error kind ("429", "500", "timeout", ...) -> count
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **counts: int) -> None:
        with self._lock:
            for name, value in counts.items():
                if name.startswith("_") or name == "errors" or not hasattr(self, name):
                    raise AttributeError(f"UsageStats has no counter {name!r}")
                setattr(self, name, getattr(self, name) + int(value))

    def add_error(self, kind: str) -> None:
        with self._lock:
            self.errors[kind] = self.errors.get(kind, 0) + 1

    def as_dict(self) -> dict[str, Any]:
        with self._lock:
            values = {
                f.name: getattr(self, f.name) for f in dataclasses.fields(self) if not f.name.startswith("_")
            }
            values["errors"] = dict(self.errors)
        return values

    def summary(self) -> str:
        d = self.as_dict()
        errors = ", ".join(f"{k}: {v}" for k, v in sorted(d["errors"].items())) or "none"
        return (
            f"{d['requests']} requests ({d['retries']} retries, {d['failures']} failed), "
            f"{d['answers']} answers, {d['cache_hits']} cache hits, "
            f"tokens {d['prompt_tokens']} in / {d['completion_tokens']} out, "
            f"{d['malformed_answers']} malformed, {d['reasks']} re-asked, "
            f"{d['fallbacks']} fell back to rules; errors: {errors}"
        )
