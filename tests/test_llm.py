"""The LLM interpretation service against a misbehaving fake endpoint (tests/llm_fakes.py).

Covers: configuration errors, caching, retries with backoff on 429 / 500 / timeouts, re-ask and rules
fallback on malformed answers, the attempt log and the re-generation loop, label descriptions, concurrency,
progress, a kill-and-resume run in a subprocess (SIGKILL and SIGINT), and the in-process local backend
(transformers loading the SmolLM2 GGUF).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from llm_fakes import MALFORMED_TEXT, FakeChatServer, well_formed_answer

from common.data.features import analyze_windows, feature_dict
from common.language.cache import InterpretationCache
from common.language.factory import make_interpreter
from common.language.interpreter import Interpreter
from common.language.llm.backends import find_smollm2_gguf
from common.language.llm.config import LLMConfig, LLMServiceError
from common.language.llm.interpreters import LocalInterpreter, OpenAIInterpreter, window_id
from common.language.prompts import (
    SENSOR_VOCABULARY,
    SensorContext,
    format_interpretation,
    parse_sensor_answer,
    render_regeneration_prompt,
    render_sensor_prompt,
)
from common.language.regeneration import RegenerationConfig, regenerate
from common.language.rules import RulesInterpreter, describe_rule_scales

REPO = Path(__file__).resolve().parents[1]
UCI_ACTIVITIES = ["walking", "upstairs", "downstairs", "sitting", "standing", "lying"]
CONTEXT = SensorContext(20.0, "waist", "Galaxy S II", UCI_ACTIVITIES)


def _uci_windows(data_dir: Path, n: int) -> np.ndarray:
    """`n` real UCI windows spread over the file (different activities and users)."""
    with np.load(data_dir / "uci.npz") as data:
        X = data["X"]
        return X[np.linspace(0, len(X) - 1, n).astype(int)]


@pytest.fixture(scope="module")
def features(data_dir: Path) -> np.ndarray:
    return analyze_windows(_uci_windows(data_dir, 6))


def _interpreter(server: FakeChatServer, tmp_path: Path, **overrides) -> OpenAIInterpreter:
    options = dict(
        base_url=server.base_url,
        model="fake",
        api_key_env=None,
        cache_path=tmp_path / "cache.sqlite",
        backoff_s=0.01,
        timeout_s=5.0,
        progress=False,
    )
    options.update(overrides)
    return OpenAIInterpreter(**options)


# -------------------- configuration


def test_config_rejects_bad_values_with_named_fields():
    with pytest.raises(ValueError, match="concurrency must be an integer >= 1") as error:
        LLMConfig(concurrency=0, base_url="ftp://x")
    assert "base_url must be an http(s) URL" in str(error.value)
    with pytest.raises(ValueError, match="temperature"):
        LLMConfig(temperature=-1)
    with pytest.raises(ValueError, match="timeout_s must be > 0"):
        LLMConfig(timeout_s=0)
    with pytest.raises(ValueError, match=r"unknown LLM option\(s\) \['modle'\]"):
        OpenAIInterpreter(modle="x", api_key_env=None)


def test_missing_api_key_is_a_clear_error(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("FEDLANHAR_TEST_KEY", raising=False)
    with pytest.raises(LLMServiceError, match="FEDLANHAR_TEST_KEY"):
        OpenAIInterpreter(api_key_env="FEDLANHAR_TEST_KEY")
    monkeypatch.setenv("FEDLANHAR_TEST_KEY", "sk-test")
    assert OpenAIInterpreter(api_key_env="FEDLANHAR_TEST_KEY").config.api_key_env == "FEDLANHAR_TEST_KEY"


def test_make_interpreter_builds_the_llm_backends(tmp_path: Path):
    interpreter = make_interpreter("openai", base_url="http://127.0.0.1:9/v1", model="m", api_key_env=None)
    assert isinstance(interpreter, OpenAIInterpreter) and isinstance(interpreter, Interpreter)
    assert interpreter.name == "openai" and interpreter.config.model == "m"
    local = make_interpreter("local", cache_path=tmp_path / "c.sqlite")  # default model: the SmolLM2 GGUF
    assert isinstance(local, LocalInterpreter) and local.config.model == str(find_smollm2_gguf())
    local.close()
    with pytest.raises(FileNotFoundError, match="does not exist"):
        LocalInterpreter(model=str(tmp_path / "absent.gguf"))
    (tmp_path / "weights.bin").write_bytes(b"0")
    with pytest.raises(ValueError, match="not a .gguf"):
        LocalInterpreter(model=str(tmp_path / "weights.bin"))


def test_bad_inputs_are_rejected_before_any_request(tmp_path: Path, features: np.ndarray):
    with FakeChatServer() as server, _interpreter(server, tmp_path) as interpreter:
        with pytest.raises(ValueError, match=r"\[N, F\]"):
            interpreter.interpret(features[0], CONTEXT)
        with pytest.raises(ValueError, match=r"\[N, T, 6\]"):
            interpreter.interpret(features, CONTEXT, windows=np.zeros((2, 120, 6)))
        with pytest.raises(ValueError, match="previous has 1 texts"):
            interpreter.reinterpret(features, ["x"], CONTEXT)
        with pytest.raises(ValueError, match="n must be an integer >= 1"):
            interpreter.describe_labels(["walking"], 0)
        with pytest.raises(TypeError, match="not a single str"):
            interpreter.describe_labels("walking", 2)
        assert server.total_requests == 0


# -------------------- normal runs


def test_interpret_then_rerun_from_cache(tmp_path: Path, features: np.ndarray):
    with FakeChatServer() as server:
        with _interpreter(server, tmp_path) as first:
            texts = first.interpret(features, CONTEXT)
            stats = first.stats.as_dict()
        assert len(texts) == len(features)
        expected = [
            format_interpretation(parse_sensor_answer(well_formed_answer(p)))
            for p in _sensor_prompts(features)
        ]
        assert texts == expected  # each window's own answer, in the canonical form
        assert stats["requests"] == stats["answers"] == len(features) == server.total_requests
        assert (
            stats["cache_hits"] == stats["retries"] == stats["fallbacks"] == stats["malformed_answers"] == 0
        )
        assert stats["prompt_tokens"] > 0 and stats["completion_tokens"] > 0

        with _interpreter(server, tmp_path) as second:
            assert second.interpret(features, CONTEXT) == texts
            assert second.stats.cache_hits == len(features) and second.stats.requests == 0
        assert server.total_requests == len(features)  # nothing asked twice
        with InterpretationCache(tmp_path / "cache.sqlite") as cache:
            assert len(cache) == len(features)


def test_identical_windows_are_asked_once(tmp_path: Path, features: np.ndarray):
    doubled = np.concatenate([features[:2], features[:2]])
    with FakeChatServer() as server, _interpreter(server, tmp_path, cache_path=None) as interpreter:
        texts = interpreter.interpret(doubled, CONTEXT)
    assert texts[:2] == texts[2:] and server.total_requests == 2


def test_worker_threads_and_cache_connections_stay_bounded(tmp_path: Path, features: np.ndarray):
    with FakeChatServer() as server, _interpreter(server, tmp_path, concurrency=2) as interpreter:
        for row in features:  # one batch per window, as a chunked run sends them
            interpreter.interpret(row[None], CONTEXT)
        cache = interpreter.backend.cache
        assert server.total_requests == len(features)
        assert len(cache._connections) <= 3  # the main thread and the two workers


def test_requests_run_concurrently_up_to_the_limit(tmp_path: Path, features: np.ndarray):
    with FakeChatServer(answer_delay_s=0.3) as server:
        with _interpreter(server, tmp_path, concurrency=3) as interpreter:
            interpreter.interpret(features, CONTEXT)
        assert server.max_in_flight == 3
    with FakeChatServer(answer_delay_s=0.05) as server:
        with _interpreter(server, tmp_path / "serial", concurrency=1) as interpreter:
            interpreter.interpret(features, CONTEXT)
        assert server.max_in_flight == 1


def test_progress_line_shows_tokens_left(tmp_path: Path, features: np.ndarray, capsys: pytest.CaptureFixture):
    with FakeChatServer() as server, _interpreter(server, tmp_path, progress=True) as interpreter:
        interpreter.interpret(features, CONTEXT)
    err = capsys.readouterr().err
    assert "openai fake" in err and "tokens left" in err and f"{len(features)}/{len(features)}" in err


# -------------------- faults


def test_retries_on_429_500_and_timeouts_lose_nothing(tmp_path: Path, features: np.ndarray):
    schedule = {0: "429", 1: "500", 2: "timeout"}  # the first three tries of every prompt fail

    def plan(prompt: str, n: int) -> str:
        return schedule.get(n, "ok")

    with FakeChatServer(plan, retry_after=0.02, timeout_sleep_s=1.0) as server:
        with _interpreter(server, tmp_path, timeout_s=0.4, max_retries=3, concurrency=6) as interpreter:
            texts = interpreter.interpret(features, CONTEXT)
            stats = interpreter.stats.as_dict()
    n = len(features)
    assert stats["requests"] == 4 * n and stats["retries"] == 3 * n and stats["answers"] == n
    assert stats["errors"] == {"429": n, "500": n, "timeout": n}
    assert stats["failures"] == stats["fallbacks"] == 0
    assert all(count == 4 for count in server.requests.values()) and len(server.requests) == n
    with InterpretationCache(tmp_path / "cache.sqlite") as cache:
        assert len(cache) == n
    assert len(texts) == n


def test_retry_waits_at_least_what_retry_after_asks(tmp_path: Path, features: np.ndarray):
    with FakeChatServer(lambda prompt, n: "429" if n == 0 else "ok", retry_after=0.5) as server:
        with _interpreter(server, tmp_path, backoff_s=0.0) as interpreter:
            start = time.monotonic()
            interpreter.interpret(features[:1], CONTEXT)
            elapsed = time.monotonic() - start
    assert elapsed >= 0.5 and interpreter.stats.retries == 1 and interpreter.stats.errors == {"429": 1}


def test_exhausted_retries_fall_back_to_rules_for_that_window_only(tmp_path: Path, features: np.ndarray):
    failing = {}

    def plan(prompt: str, n: int) -> str:
        failing.setdefault("prompt", prompt)  # the first prompt seen always fails
        return "500" if prompt == failing["prompt"] else "ok"

    with FakeChatServer(plan) as server:
        with _interpreter(server, tmp_path, max_retries=2, concurrency=1) as interpreter:
            texts = interpreter.interpret(features, CONTEXT)
            stats = interpreter.stats
            last_stages = [interpreter.attempts[window_id(row)][-1].stage for row in features]
        assert (
            server.requests[failing["prompt"]] == 3
        )  # first try + 2 retries, no re-ask after a failed request
    assert last_stages == ["fallback"] + ["initial"] * (len(features) - 1)
    assert texts[0] == RulesInterpreter().interpret(features[:1], CONTEXT)[0]
    assert stats.failures == 1 and stats.fallbacks == 1 and stats.errors == {"500": 3}
    assert stats.answers == len(features) - 1 and stats.reasks == 0
    with InterpretationCache(tmp_path / "cache.sqlite") as cache:
        assert len(cache) == len(features) - 1  # the failure is not cached: a re-run asks again


def _sensor_prompts(features: np.ndarray) -> list[str]:
    return [
        render_sensor_prompt(feature_dict(row), CONTEXT, rule_scales=describe_rule_scales())
        for row in features
    ]


def test_malformed_answers_are_reasked_once_then_fall_back(tmp_path: Path, features: np.ndarray):
    prompts = _sensor_prompts(features)

    def plan(prompt: str, n: int) -> str:
        if prompt in prompts[:3]:  # windows 0, 1, 2 answer badly ...
            return "malformed"
        if prompt.startswith(prompts[0]) and "could not be read" in prompt:  # ... window 0 also when re-asked
            return "malformed"
        return "ok"

    with FakeChatServer(plan) as server:
        with _interpreter(server, tmp_path, concurrency=1) as interpreter:
            texts = interpreter.interpret(features, CONTEXT)
            stats = interpreter.stats
            log = {wid: interpreter.attempts[wid] for wid in map(window_id, features)}
    stages = [[a.stage for a in attempts] for attempts in log.values()]
    assert stages.count(["initial", "initial-reask", "fallback"]) == 1
    assert stages.count(["initial", "initial-reask"]) == 2
    assert stages.count(["initial"]) == len(features) - 3
    assert stats.malformed_answers == 4 and stats.reasks == 3 and stats.fallbacks == 1
    assert stats.failures == 0 and stats.requests == len(features) + 3
    for attempts in log.values():
        kept = [a for a in attempts if a.kept]
        assert len(kept) == 1 and kept[0] is attempts[-1] and kept[0].text in texts
        assert all(a.parsed_ok == (a.text is not None) for a in attempts if a.stage != "fallback")
        assert all(a.answer == MALFORMED_TEXT for a in attempts if a.stage != "fallback" and not a.parsed_ok)
    assert len(interpreter.attempt_log()) == sum(len(a) for a in log.values())
    json.dumps(interpreter.attempt_log())  # JSON-ready


def test_unusable_endpoint_stops_the_run(tmp_path: Path, features: np.ndarray):
    with FakeChatServer(lambda prompt, n: "401") as server:
        with _interpreter(server, tmp_path) as interpreter, pytest.raises(LLMServiceError, match="401"):
            interpreter.interpret(features, CONTEXT)
    with FakeChatServer(lambda prompt, n: "500") as server:
        options = dict(max_retries=1, concurrency=1, max_consecutive_failures=2)
        with _interpreter(server, tmp_path / "b", **options) as interpreter:
            with pytest.raises(LLMServiceError, match="2 prompts in a row failed"):
                interpreter.interpret(features, CONTEXT)
        assert server.total_requests == 4  # stopped after two prompts x (1 try + 1 retry)


# -------------------- re-generation


def test_reinterpret_records_attempts_and_keeps_previous_when_unreadable(
    tmp_path: Path, features: np.ndarray
):
    first = RulesInterpreter().interpret(features[:3], CONTEXT)
    previous = [text.replace(".", ", maybe.") for text in first]
    # window 0's re-generation answer is unreadable, and so is the answer to its re-ask
    unreadable = render_regeneration_prompt(_sensor_prompts(features[:1])[0], previous[0])

    def plan(prompt: str, n: int) -> str:
        return "malformed" if prompt.startswith(unreadable) else "ok"

    with FakeChatServer(plan) as server, _interpreter(server, tmp_path) as interpreter:
        first = interpreter.interpret(features[:3], CONTEXT)
        asked = set(server.requests)
        second = interpreter.reinterpret(features[:3], previous, CONTEXT)
        regeneration_prompts = set(server.requests) - asked
    assert all("Below is the answer you gave" in p for p in regeneration_prompts)
    assert any(previous[1] in p for p in regeneration_prompts)
    assert second[0] == previous[0] and second[1:] != previous[1:]
    assert interpreter.stats.regenerations == 3 and interpreter.stats.fallbacks == 1
    ids = [window_id(row) for row in features[:3]]
    assert [a.stage for a in interpreter.attempts[ids[0]]] == [
        "initial",
        "regeneration",
        "regeneration-reask",
    ]
    # until the re-generation loop decides, the first answers stay the kept ones
    assert [next(a.stage for a in interpreter.attempts[i] if a.kept) for i in ids] == ["initial"] * 3
    interpreter.record_kept(features[:3], [first[0], second[1], first[2]])
    kept = [next(a for a in interpreter.attempts[i] if a.kept) for i in ids]
    assert [a.stage for a in kept] == ["initial", "regeneration", "initial"]


def _phrase_indicators(texts: list[str]) -> np.ndarray:
    """A toy embedding: which (category, phrase) pairs a canonical interpretation contains."""
    pairs = [f"{c}: {p}" for c, phrases in SENSOR_VOCABULARY.items() for p in phrases]
    return np.array([[1.0 if pair in text else 0.0 for pair in pairs] + [0.1] for text in texts])


def test_regeneration_loop_runs_on_the_openai_backend_and_the_log_shows_what_was_kept(
    tmp_path: Path, data_dir: Path
):
    features = analyze_windows(_uci_windows(data_dir, 8))
    groups = np.zeros(len(features), dtype=np.int64)
    config = RegenerationConfig(outliers=2, max_iterations=2, patience=1)
    with FakeChatServer() as server, _interpreter(server, tmp_path) as interpreter:
        initial = interpreter.interpret(features, CONTEXT)
        texts, report = regenerate(
            initial, groups, features, CONTEXT, interpreter, _phrase_indicators, config
        )
        interpreter.record_kept(features, texts)  # the loop's decisions, into the attempt log
    asked_in_total = sum(report.asked_per_iteration)
    assert asked_in_total >= 2 and interpreter.stats.regenerations == asked_in_total
    assert report.replaced.any() and not report.replaced.all()  # both outcomes occur with these answers
    for i, row in enumerate(features):
        attempts = interpreter.attempts[window_id(row)]
        kept = [a for a in attempts if a.kept]
        assert len(kept) == 1 and kept[0].text == texts[i]
        asked = sum(a.stage == "regeneration" for a in attempts)
        assert asked == report.attempts[i]
        assert kept[0].stage == ("regeneration" if report.replaced[i] else "initial")


# -------------------- labels


def test_describe_labels_with_reask_and_rules_fallback(tmp_path: Path):
    def answer(prompt: str) -> str:
        if "'lying'" in prompt:
            return "Lying."  # too short, even when asked again
        return (
            f"A description of {prompt.split(chr(39))[1]}: general purpose, sensor patterns and body parts."
        )

    with FakeChatServer(answer_for=answer) as server, _interpreter(server, tmp_path) as interpreter:
        descriptions = interpreter.describe_labels(["walking", "sitting", "lying", "walking"], 3)
        assert list(descriptions) == ["walking", "sitting", "lying"]
        assert server.total_requests == 9 + 3  # 3 labels x 3 variants, plus 3 re-asks for "lying"
    assert all(len(texts) == 3 for texts in descriptions.values())
    assert all(text.startswith("A description of walking") for text in descriptions["walking"])
    assert descriptions["lying"] == RulesInterpreter().describe_labels(["lying"], 3)["lying"]
    stats = interpreter.stats
    assert stats.malformed_answers == 6 and stats.reasks == 3 and stats.fallbacks == 3
    assert [a.stage for a in interpreter.attempts["label:lying#1"]] == ["label", "label-reask", "fallback"]


# -------------------- kill and resume

_RUN_SCRIPT = f"""
import json, signal, sys
import numpy as np
# A process started in the background by a non-interactive shell inherits SIGINT ignored, and Python then
# never raises KeyboardInterrupt: restore the default so that the SIGINT case tests what a user's Ctrl-C does.
signal.signal(signal.SIGINT, signal.default_int_handler)
from common.data.features import analyze_windows
from common.language.llm.interpreters import OpenAIInterpreter
from common.language.prompts import SensorContext
base_url, cache_path, data_path, n = sys.argv[1:5]
with np.load(data_path) as data:
    X = data["X"][: int(n)]
context = SensorContext(20.0, "waist", "Galaxy S II", {UCI_ACTIVITIES!r})
options = dict(model="fake", api_key_env=None, concurrency=2, timeout_s=3.0, backoff_s=0.01, progress=False)
with OpenAIInterpreter(base_url=base_url, cache_path=cache_path, **options) as interpreter:
    texts = interpreter.interpret(analyze_windows(X), context)
print(json.dumps(texts))
"""

N_KILL_WINDOWS = 10


def _wait_until(condition, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.parametrize("how", ["SIGKILL", "SIGINT"])
def test_interrupted_run_resumes_without_duplicate_requests(tmp_path: Path, data_dir: Path, how: str):
    cache_path = tmp_path / "cache.sqlite"
    with FakeChatServer(hold_after=4) as server:
        command = [
            sys.executable,
            "-c",
            _RUN_SCRIPT,
            server.base_url,
            str(cache_path),
            str(data_dir / "uci.npz"),
        ]
        environment = {**os.environ, "PYTHONPATH": str(REPO)}
        process = subprocess.Popen(
            [*command, str(N_KILL_WINDOWS)],
            cwd=REPO,
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            # Both workers are blocked on held requests and every delivered answer is committed: kill now.
            def frozen() -> bool:
                if server.behaviours["hold"] < 2 or not cache_path.exists():
                    return False
                with InterpretationCache(cache_path) as cache:
                    return len(cache) == server.total_answers

            _wait_until(frozen, 120, "the run to freeze on held requests")
            process.send_signal(signal.SIGKILL if how == "SIGKILL" else signal.SIGINT)
            _, stderr = process.communicate(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
        assert process.returncode != 0
        if how == "SIGINT":
            assert b"KeyboardInterrupt" in stderr
        answered_first = {prompt for prompt, count in server.answers.items() if count}
        assert 4 <= len(answered_first) < N_KILL_WINDOWS
        server.release()

        features = analyze_windows(np.load(data_dir / "uci.npz")["X"][:N_KILL_WINDOWS])
        with _interpreter(server, tmp_path, cache_path=cache_path, concurrency=2) as interpreter:
            texts = interpreter.interpret(features, CONTEXT)
            stats = interpreter.stats
    unique_prompts = len(set(server.requests))
    assert len(texts) == N_KILL_WINDOWS and stats.fallbacks == 0 and stats.failures == 0
    assert unique_prompts == N_KILL_WINDOWS  # ten different windows, ten prompts
    assert stats.cache_hits == len(answered_first) and stats.answers == N_KILL_WINDOWS - len(answered_first)
    assert all(count == 1 for count in server.answers.values())  # no prompt was ever answered twice
    assert all(server.requests[prompt] == 1 for prompt in answered_first)  # answered ones never re-asked
    with InterpretationCache(cache_path) as cache:
        assert len(cache) == unique_prompts


# -------------------- local backend


@pytest.mark.slow
def test_local_backend_runs_the_smollm2_gguf_in_process(tmp_path: Path, features: np.ndarray):
    options = dict(cache_path=tmp_path / "cache.sqlite", max_tokens=12, progress=False, n_threads=1)
    with LocalInterpreter(**options) as interpreter:
        texts = interpreter.interpret(features[:1], CONTEXT)
        stats = interpreter.stats.as_dict()
        wid = window_id(features[0])
        first_answer = interpreter.attempts[wid][0].answer
    assert len(texts) == 1 and texts[0].endswith(".")
    assert stats["answers"] == 2 and stats["completion_tokens"] > 0 and stats["prompt_tokens"] > 1000
    assert isinstance(first_answer, str) and first_answer.strip()
    # 12 new tokens cannot hold four categories: the answer is re-asked and the window falls back to rules
    assert stats["malformed_answers"] == 2 and stats["reasks"] == 1 and stats["fallbacks"] == 1
    with LocalInterpreter(**options) as again:  # fully cached: the model is never loaded
        assert again.interpret(features[:1], CONTEXT) == texts
        assert again.stats.cache_hits == 2 and again.backend._model is None
