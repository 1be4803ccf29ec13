"""A small OpenAI-compatible chat endpoint that misbehaves on purpose, for fault tests of the LLM service.

`FakeChatServer(plan)` serves POST /v1/chat/completions on 127.0.0.1 (a free port) in a background thread.
For each request, `plan(prompt, n)` (n = how often this prompt was asked before, from 0) picks what to do:

    "ok"        200 with `answer_for(prompt)` (by default a well-formed sensor answer)
    "malformed" 200 with text that is not in the required format
    "429"       rate limited (with a Retry-After header of `retry_after` seconds)
    "500"       internal server error
    "401"       invalid API key
    "timeout"   sleeps `timeout_sleep_s` (longer than the client's timeout) and drops the connection
    "hold"      blocks until `release()` or `stop()`, then drops the connection without an answer

`hold_after=N` turns every request after the N-th delivered answer into "hold", which freezes a run at a known
point for kill-and-resume tests. The server counts requests and delivered answers per prompt (thread-safe).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from common.language.prompts import ANSWER_BEGIN, ANSWER_END, SENSOR_VOCABULARY, STANDARD_CATEGORIES

BEHAVIOURS = ("ok", "malformed", "429", "500", "401", "timeout", "hold")
MALFORMED_TEXT = "I think the person is probably walking, or maybe sitting. Hard to say!"


def well_formed_answer(prompt: str) -> str:
    """A parseable sensor answer whose phrases depend (deterministically) on the prompt."""
    digest = hashlib.sha256(prompt.encode("utf-8")).digest()
    lines = [
        f"{category}: {SENSOR_VOCABULARY[category][digest[i] % len(SENSOR_VOCABULARY[category])]}"
        for i, category in enumerate(STANDARD_CATEGORIES)
    ]
    return "Let me look at the numbers first.\n" + "\n".join([ANSWER_BEGIN, *lines, ANSWER_END])


def always_ok(prompt: str, n: int) -> str:
    return "ok"


class FakeChatServer:
    """The misbehaving endpoint; use as a context manager; `base_url` ends in /v1."""

    def __init__(
        self,
        plan: Callable[[str, int], str] = always_ok,
        answer_for: Callable[[str], str] = well_formed_answer,
        hold_after: int | None = None,
        retry_after: float = 0.0,
        timeout_sleep_s: float = 1.5,
        answer_delay_s: float = 0.0,
    ) -> None:
        self.plan = plan
        self.answer_for = answer_for
        self.hold_after = hold_after
        self.retry_after = retry_after
        self.timeout_sleep_s = timeout_sleep_s
        self.answer_delay_s = answer_delay_s  # time to "generate" each answer
        self.requests: Counter[str] = Counter()  # prompt -> requests received
        self.answers: Counter[str] = Counter()  # prompt -> 200 answers fully written
        self.behaviours: Counter[str] = Counter()  # behaviour -> times used
        self.in_flight = 0
        self.max_in_flight = 0  # most chat requests being handled at the same time
        self.lock = threading.Lock()
        self._release = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def total_requests(self) -> int:
        with self.lock:
            return sum(self.requests.values())

    @property
    def total_answers(self) -> int:
        with self.lock:
            return sum(self.answers.values())

    def start(self) -> FakeChatServer:
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def release(self) -> None:
        """Let held requests go (their connections are dropped) and stop holding new ones."""
        self.hold_after = None
        self._release.set()

    def stop(self) -> None:
        self.release()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeChatServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _decide(self, prompt: str) -> str:
        with self.lock:
            asked_before = self.requests[prompt]
            self.requests[prompt] += 1
            delivered = sum(self.answers.values())
            if self.hold_after is not None and delivered >= self.hold_after:
                behaviour = "hold"
            else:
                behaviour = self.plan(prompt, asked_before)
            if behaviour not in BEHAVIOURS:
                raise ValueError(f"plan returned {behaviour!r}; expected one of {BEHAVIOURS}")
            self.behaviours[behaviour] += 1
        return behaviour

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - keep test output quiet
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server naming
                if self.path.rstrip("/").endswith("/models"):
                    self._send_json(200, {"object": "list", "data": [{"id": "fake", "object": "model"}]})
                else:
                    self._send_json(404, {"error": {"message": "not found"}})

            def do_POST(self) -> None:  # noqa: N802 - http.server naming
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    self._send_json(404, {"error": {"message": f"no route {self.path}"}})
                    return
                prompt = body["messages"][-1]["content"]
                behaviour = fake._decide(prompt)
                with fake.lock:
                    fake.in_flight += 1
                    fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
                try:
                    self._respond(prompt, behaviour, body)
                finally:
                    with fake.lock:
                        fake.in_flight -= 1

            def _respond(self, prompt: str, behaviour: str, body: dict) -> None:
                if behaviour == "hold":
                    fake._release.wait()
                    self.close_connection = True
                    return
                if behaviour == "timeout":
                    time.sleep(fake.timeout_sleep_s)
                    self.close_connection = True
                    return
                if behaviour == "429":
                    headers = {"Retry-After": f"{fake.retry_after:g}"}
                    self._send_json(
                        429, {"error": {"message": "rate limited", "type": "rate_limit"}}, headers
                    )
                    return
                if behaviour == "401":
                    self._send_json(401, {"error": {"message": "invalid api key", "type": "auth"}})
                    return
                if behaviour == "500":
                    self._send_json(500, {"error": {"message": "internal error", "type": "server_error"}})
                    return
                time.sleep(fake.answer_delay_s)
                text = fake.answer_for(prompt) if behaviour == "ok" else MALFORMED_TEXT
                payload = {
                    "id": "chatcmpl-fake",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": body.get("model", "fake"),
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": text},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {
                        "prompt_tokens": len(prompt) // 4,
                        "completion_tokens": len(text) // 4,
                        "total_tokens": len(prompt) // 4 + len(text) // 4,
                    },
                }
                if self._send_json(200, payload):
                    with fake.lock:
                        fake.answers[prompt] += 1

            def _send_json(self, status: int, payload: dict, headers: dict[str, str] | None = None) -> bool:
                data = json.dumps(payload).encode("utf-8")
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for name, value in (headers or {}).items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    return False
                return True

        return Handler
