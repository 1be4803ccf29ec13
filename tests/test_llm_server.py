"""End to end: the openai backend against a real OpenAI-compatible server (llama-cpp-python, SmolLM2 GGUF).

Checks structure, accounting and cache hits on a second run, not the quality of the answers (a 135M model's
answers are fluent but physically wrong). Needs `pip install 'llama-cpp-python[server]'`.
The prompts are processed on one thread of a shared CPU (about 25 s for a 1700-token sensor prompt), so the
calls are ordered to let the server reuse the prompt prefix it processed last (its KV cache): window 2 is
interpreted last, and the forced re-ask and the re-generation round both start with window 2's prompt.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from common.data.features import analyze_windows
from common.language.cache import InterpretationCache
from common.language.llm.backends import find_smollm2_gguf
from common.language.llm.interpreters import OpenAIInterpreter, window_id
from common.language.llm.server import LlamaServer
from common.language.prompts import SENSOR_CATEGORIES, SensorContext

UCI_ACTIVITIES = ["walking", "upstairs", "downstairs", "sitting", "standing", "lying"]
CONTEXT = SensorContext(20.0, "waist", "Galaxy S II", UCI_ACTIVITIES)
LABELS = ["walking", "sitting"]
N_DESCRIPTIONS = 2


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    log = tmp_path_factory.mktemp("llama") / "server.log"
    # n_ctx 4096, not 2048: the full sensor prompt alone is ~1900 tokens, its re-generation prompt ~2100.
    with LlamaServer(find_smollm2_gguf(), n_ctx=4096, n_threads=1, alias="m", log_path=log) as running:
        yield running


def _run_everything(server: LlamaServer, cache_path: Path, features: np.ndarray) -> dict:
    """Interpret, one re-generation round, one forced unreadable answer, label descriptions; all cached."""
    common = dict(
        base_url=server.base_url, model="m", api_key_env=None, cache_path=cache_path, progress=False
    )
    common.update(concurrency=1, timeout_s=300.0, max_retries=1)
    # 6 new tokens cannot hold half of the categories: `truncated` gets a sure malformed answer, its re-ask,
    # then the fallback. Its calls come right after the re-generation so the server reuses window 2's prefix.
    with (
        OpenAIInterpreter(max_tokens=160, **common) as interpreter,
        OpenAIInterpreter(max_tokens=6, **common) as truncated,
    ):
        texts = interpreter.interpret(features, CONTEXT)
        regenerated = interpreter.reinterpret(features[2:], texts[2:], CONTEXT)
        interpreter.record_kept(features[2:], regenerated)  # what the re-generation loop does on improvement
        forced = truncated.interpret(features[2:], CONTEXT)
        descriptions = interpreter.describe_labels(LABELS, N_DESCRIPTIONS)
    return dict(
        texts=texts,
        regenerated=regenerated,
        descriptions=descriptions,
        forced=forced,
        stats=interpreter.stats.as_dict(),
        attempts=interpreter.attempts,
        forced_stats=truncated.stats.as_dict(),
    )


def _is_canonical(text: str) -> bool:
    return text.endswith(".") and all(
        part.split(":")[0] in SENSOR_CATEGORIES for part in text[:-1].split("; ")
    )


@pytest.mark.slow
def test_openai_backend_against_a_real_llama_server(server: LlamaServer, data_dir: Path, tmp_path: Path):
    with np.load(data_dir / "uci.npz") as data:
        windows = data["X"][[100, 900, 1700]]  # three different users and activities
    features = analyze_windows(windows)
    cache_path = tmp_path / "cache.sqlite"

    first = _run_everything(server, cache_path, features)
    stats = first["stats"]
    print(f"first run: {stats}\nforced malformed: {first['forced_stats']}")  # shown with pytest -s
    n_prompts = len(features) + 1 + len(LABELS) * N_DESCRIPTIONS  # windows, re-generation, descriptions
    assert stats["failures"] == 0 and stats["errors"] == {}, f"server errors (prompt beyond n_ctx?): {stats}"
    assert stats["requests"] == stats["answers"] == n_prompts + stats["reasks"]
    assert stats["cache_hits"] == 0 and stats["prompt_tokens"] > 1000 * len(features)
    assert stats["regenerations"] == 1 and stats["completion_tokens"] > 0

    # Structure: canonical interpretation texts; the attempt log accounts for every malformed answer,
    # re-ask and fallback the counters report.
    assert len(first["texts"]) == len(features) and all(_is_canonical(t) for t in first["texts"])
    assert len(first["regenerated"]) == 1 and _is_canonical(first["regenerated"][0])
    attempts = [a for log in first["attempts"].values() for a in log]
    model_answers = [a for a in attempts if a.stage != "fallback"]
    assert len(model_answers) == stats["answers"]
    assert stats["malformed_answers"] == sum(not a.parsed_ok for a in model_answers)
    assert stats["reasks"] == sum(a.stage.endswith("reask") for a in attempts)
    assert stats["fallbacks"] == sum(a.stage == "fallback" for a in attempts) + sum(
        a.stage == "regeneration-reask" and not a.parsed_ok for a in attempts
    )
    for row in features:
        log = first["attempts"][window_id(row)]
        assert sum(a.kept for a in log) == 1 and log[0].stage == "initial"
    regenerated_log = first["attempts"][window_id(features[2])]
    assert "regeneration" in [a.stage for a in regenerated_log]
    assert next(a for a in regenerated_log if a.kept).text == first["regenerated"][0]

    assert list(first["descriptions"]) == LABELS
    for texts in first["descriptions"].values():
        assert len(texts) == N_DESCRIPTIONS and all(isinstance(t, str) and len(t) >= 40 for t in texts)

    # The forced path against the real server: malformed, re-asked once, malformed again, rules fallback.
    forced = first["forced_stats"]
    assert forced["requests"] == forced["answers"] == 2
    assert forced["malformed_answers"] == 2 and forced["reasks"] == 1 and forced["fallbacks"] == 1
    assert _is_canonical(first["forced"][0])

    # Second run on the same cache: identical results, not a single request.
    second = _run_everything(server, cache_path, features)
    for name in ("texts", "regenerated", "descriptions", "forced"):
        assert second[name] == first[name]
    assert second["stats"]["requests"] == second["forced_stats"]["requests"] == 0
    assert second["stats"]["cache_hits"] == stats["answers"]
    assert second["forced_stats"]["cache_hits"] == 2
    with InterpretationCache(cache_path) as cache:
        assert len(cache) == stats["answers"] + 2
