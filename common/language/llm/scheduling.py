"""Request scheduling for chat backends: cache first, then a thread pool with per-prompt retries and backoff.

`ChatBackend.complete(prompts) -> list[Completion]` gives one answer per prompt. The persistent
`InterpretationCache` is consulted first; only missing prompts are sent, `concurrency` at a time, and every
answer is committed to the cache the moment it arrives, so an interrupted run loses nothing already answered
and a re-run only asks for what is missing. A request that still fails after all retries fails that prompt
only; `LLMServiceError` stops the run when the endpoint is unusable (wrong key or model, or
`max_consecutive_failures` prompts in a row failed).
"""

from __future__ import annotations

import random
import sys
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
from tqdm import tqdm

from common.language.cache import CacheEntry, InterpretationCache, cache_key
from common.language.llm.config import CHARS_PER_TOKEN, LLMConfig, LLMServiceError, UsageStats
from common.language.prompts import PROMPT_VERSION


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
class RawAnswer:
    text: str
    prompt_tokens: int
    completion_tokens: int


class RetryableResponseError(RuntimeError):
    """A 200 response without a usable answer (no choices); worth another try."""


@runtime_checkable
class ChatBackend(Protocol):
    """Answers chat prompts (one user message each), using and filling the cache."""

    name: str
    model_id: str  # what identifies the model in the cache key
    stats: UsageStats

    def key_for(self, prompt: str) -> str: ...

    def complete(self, prompts: list[str]) -> list[Completion]: ...

    def close(self) -> None: ...


class CachedConcurrentBackend:
    """Cache lookup, a thread pool, per-prompt retries with backoff, accounting and progress.

    Subclasses implement `_request(prompt) -> RawAnswer` and `_classify(error) -> (decision, kind)` where
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
            sum(len(prompt) for prompt in to_ask.values()) / len(to_ask) / CHARS_PER_TOKEN
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

    def _request(self, prompt: str) -> RawAnswer:
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
