"""A local OpenAI-compatible server (llama-cpp-python) in a child process, for tests, benchmarks and users
without an API account."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import time
from pathlib import Path

from common.base.network import free_port
from common.language.llm.config import LLMServiceError


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
