"""LLM part of `fedlanhar bench`: throughput of the interpretation service, also in `<out>/llm_bench.json`.

Live figures: real UCI windows interpreted through the openai backend against a local llama-cpp-python server
(SmolLM2-135M GGUF unless another server is given), once per concurrency level, each with an empty cache so
every window is really asked. Cache figures: the same windows again from the cache, and a larger set of
windows whose answers are pre-filled into the cache (no server involved): the cost of a repeated run.

Run: `fedlanhar bench --parts llm --data-dir ../shared/data --out runs/bench`
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from common.base.network import free_port
from common.data.features import analyze_windows, feature_dict
from common.language.cache import CacheEntry, InterpretationCache
from common.language.llm.backends import find_smollm2_gguf
from common.language.llm.interpreters import OpenAIInterpreter
from common.language.llm.server import LlamaServer
from common.language.prompts import (
    ANSWER_BEGIN,
    ANSWER_END,
    PROMPT_VERSION,
    SensorContext,
    render_sensor_prompt,
)
from common.language.rules import RulesInterpreter, describe_rule_scales

UCI_CONTEXT = SensorContext(
    20.0, "waist", "Galaxy S II", ["walking", "upstairs", "downstairs", "sitting", "standing", "lying"]
)
MODEL_ALIAS = "m"


def _spread_windows(data_dir: Path, n: int) -> np.ndarray:
    """`n` UCI windows spread evenly over the file, so that several users and activities are covered."""
    path = Path(data_dir) / "uci.npz"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; pass the folder holding uci.npz as data_dir")
    with np.load(path) as data:
        X = data["X"]
        if n > len(X):
            raise ValueError(f"{path} has {len(X)} windows, {n} were asked for")
        return X[np.linspace(0, len(X) - 1, n).astype(int)]


def _timed_interpret(
    base_url: str, cache_path: Path, features: np.ndarray, concurrency: int, max_tokens: int
) -> tuple[float, dict]:
    """Seconds the openai backend takes to interpret `features`, and its usage statistics."""
    with OpenAIInterpreter(
        base_url=base_url,
        model=MODEL_ALIAS,
        api_key_env=None,
        cache_path=cache_path,
        concurrency=concurrency,
        max_tokens=max_tokens,
        timeout_s=600.0,
        progress=False,
    ) as interpreter:
        start = time.perf_counter()
        interpreter.interpret(features, UCI_CONTEXT)
        return time.perf_counter() - start, interpreter.stats.as_dict()


def _live_run(
    base_url: str, cache_path: Path, features: np.ndarray, concurrency: int, max_tokens: int
) -> dict:
    seconds, stats = _timed_interpret(base_url, cache_path, features, concurrency, max_tokens)
    return {
        "concurrency": concurrency,
        "windows": len(features),
        "seconds": seconds,
        "requests": stats["requests"],
        "requests_per_s": stats["requests"] / seconds,
        "windows_per_s": len(features) / seconds,
        "prompt_tokens_per_request": stats["prompt_tokens"] / max(stats["requests"], 1),
        "completion_tokens_per_s": stats["completion_tokens"] / seconds,
        "malformed_answers": stats["malformed_answers"],
        "reasks": stats["reasks"],
        "fallbacks": stats["fallbacks"],
        "errors": stats["errors"],
    }


def _cached_run(cache_path: Path, features: np.ndarray, max_tokens: int) -> dict:
    """Interpret windows whose answers are all cached; the base URL points nowhere, so a miss would fail."""
    dead_url = f"http://127.0.0.1:{free_port()}/v1"
    seconds, stats = _timed_interpret(dead_url, cache_path, features, 1, max_tokens)
    if stats["requests"] or stats["cache_hits"] < len(features):
        raise RuntimeError(f"the cached run was expected to be served from the cache alone: {stats}")
    return {"windows": len(features), "seconds": seconds, "windows_per_s": len(features) / seconds}


def _prefill_cache(cache_path: Path, features: np.ndarray, max_tokens: int) -> None:
    """Store a parseable answer (the rules interpretation in the answer format) for every window's prompt."""
    texts = RulesInterpreter().interpret(features, UCI_CONTEXT)
    params = {"temperature": 0.0, "max_tokens": int(max_tokens)}
    entries = []
    for row, text in zip(features, texts, strict=True):
        answer = "\n".join([ANSWER_BEGIN, *text.rstrip(".").split("; "), ANSWER_END])
        prompt = render_sensor_prompt(feature_dict(row), UCI_CONTEXT, rule_scales=describe_rule_scales())
        entries.append(CacheEntry.create(PROMPT_VERSION, prompt, MODEL_ALIAS, params, answer, 1700, 60))
    with InterpretationCache(cache_path) as cache:
        cache.put_many(entries)


def run_llm_benchmark(
    data_dir: str | Path,
    out_dir: str | Path,
    n_windows: int = 4,
    concurrency_levels: Sequence[int] = (1, 4),
    max_tokens: int = 96,
    n_cached_windows: int = 512,
    base_url: str | None = None,
) -> dict:
    """Measure live and cached throughput; returns the figures, prints them and writes `llm_bench.json`.

    `base_url` uses an already running OpenAI-compatible server (serving the model as "m"); otherwise a
    llama-cpp-python server is started on a free port for SmolLM2-135M with one thread.
    """
    if n_windows < 1 or n_cached_windows < 1 or not concurrency_levels:
        raise ValueError("n_windows, n_cached_windows and concurrency_levels must be positive / non-empty")
    out_dir = Path(out_dir)
    features = analyze_windows(_spread_windows(data_dir, n_windows))
    gguf_path = find_smollm2_gguf()
    results: dict = {
        "model": gguf_path.name if base_url is None else f"{MODEL_ALIAS} at {base_url}",
        "server": "llama-cpp-python" if base_url is None else "given",
        "server_threads": 1 if base_url is None else None,
        "max_tokens": max_tokens,
        "live": [],
    }
    with tempfile.TemporaryDirectory(prefix="llm_bench_") as scratch:
        scratch_dir = Path(scratch)
        server = None if base_url else LlamaServer(gguf_path, n_threads=1, log_path=out_dir / "server.log")
        out_dir.mkdir(parents=True, exist_ok=True)
        try:
            url = base_url or server.start().base_url
            for concurrency in concurrency_levels:
                cache_path = scratch_dir / f"live_{concurrency}.sqlite"
                results["live"].append(_live_run(url, cache_path, features, concurrency, max_tokens))
        finally:
            if server is not None:
                server.stop()
        first_cache = scratch_dir / f"live_{concurrency_levels[0]}.sqlite"
        results["cache_hit_same_windows"] = _cached_run(first_cache, features, max_tokens)
        many = analyze_windows(_spread_windows(data_dir, n_cached_windows))
        _prefill_cache(scratch_dir / "prefilled.sqlite", many, max_tokens)
        results["cache_hit_prefilled"] = _cached_run(scratch_dir / "prefilled.sqlite", many, max_tokens)
    results["machine"] = {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average_1min": os.getloadavg()[0],
    }
    (out_dir / "llm_bench.json").write_text(json.dumps(results, indent=2))
    _print(results)
    return results


def _print(results: dict) -> None:
    print(f"LLM service benchmark: {results['model']} (server threads: {results['server_threads']})")
    for run in results["live"]:
        print(
            f"  live, concurrency {run['concurrency']}: {run['requests_per_s']:.3f} requests/s, "
            f"{run['windows_per_s']:.3f} windows/s, {run['completion_tokens_per_s']:.1f} completion tokens/s "
            f"({run['requests']} requests, {run['prompt_tokens_per_request']:.0f} prompt tokens each, "
            f"{run['malformed_answers']} malformed, {run['fallbacks']} fallbacks)"
        )
    for name in ("cache_hit_same_windows", "cache_hit_prefilled"):
        run = results[name]
        print(f"  {name}: {run['windows_per_s']:.1f} windows/s ({run['windows']} windows)")
