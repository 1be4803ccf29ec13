"""InterpretationCache: content keys, first-write-wins, concurrency across threads and processes, JSONL."""

from __future__ import annotations

import json
import multiprocessing
import sqlite3
import threading
from pathlib import Path

import pytest

from common.language.cache import CacheEntry, InterpretationCache, cache_key

PARAMS = {"temperature": 0.0, "max_tokens": 64}


def _entry(
    prompt: str, answer: str = "an answer", model: str = "m", tokens: tuple[int, int] = (10, 5)
) -> CacheEntry:
    return CacheEntry.create("v1", prompt, model, PARAMS, answer, *tokens)


def test_key_is_canonical_and_depends_on_every_part():
    base = cache_key("v1", "prompt", "m", {"temperature": 0.0, "max_tokens": 64})
    # the order of the parameters does not matter
    assert base == cache_key("v1", "prompt", "m", {"max_tokens": 64, "temperature": 0.0})
    assert len(base) == 64 and int(base, 16) >= 0
    variants = {
        cache_key("v2", "prompt", "m", PARAMS),
        cache_key("v1", "prompt ", "m", PARAMS),
        cache_key("v1", "prompt", "other", PARAMS),
        cache_key("v1", "prompt", "m", {"temperature": 0.5, "max_tokens": 64}),
    }
    assert base not in variants and len(variants) == 4


def test_key_rejects_values_that_are_not_json():
    with pytest.raises(ValueError, match="JSON"):
        cache_key("v1", "p", "m", {"temperature": float("nan")})
    with pytest.raises(TypeError, match="prompt must be a str"):
        cache_key("v1", b"p", "m", PARAMS)  # type: ignore[arg-type]


def test_put_get_first_write_wins(tmp_path: Path):
    with InterpretationCache(tmp_path / "c.sqlite") as cache:
        first = _entry("p1", "first answer")
        assert cache.put(first) is True
        assert cache.put(_entry("p1", "second answer")) is False
        stored = cache.get(first.key)
        assert stored is not None and stored.answer == "first answer"
        assert stored.params == PARAMS and stored.prompt_tokens == 10 and stored.completion_tokens == 5
        assert cache.get("0" * 64) is None
        assert first.key in cache and "nope" not in cache and len(cache) == 1


def test_survives_reopening(tmp_path: Path):
    path = tmp_path / "sub" / "c.sqlite"  # parent directories are created
    with InterpretationCache(path) as cache:
        cache.put(_entry("p1"))
    with InterpretationCache(path) as cache:
        assert len(cache) == 1 and cache.get(_entry("p1").key).answer == "an answer"


def test_get_many_over_the_sqlite_parameter_limit(tmp_path: Path):
    with InterpretationCache(tmp_path / "c.sqlite") as cache:
        entries = [_entry(f"prompt {i}", f"answer {i}") for i in range(1200)]
        assert cache.put_many(entries) == 1200
        asked = [e.key for e in entries[::2]] + ["f" * 64]
        found = cache.get_many(asked)
        assert len(found) == 600 and "f" * 64 not in found
        assert found[entries[10].key].answer == "answer 10"


def test_entry_with_a_key_not_matching_its_content_is_rejected(tmp_path: Path):
    with InterpretationCache(tmp_path / "c.sqlite") as cache:
        good = _entry("p1")
        forged = CacheEntry(**{**good.__dict__, "answer": "x", "prompt": "something else"})
        with pytest.raises(ValueError, match="does not match its content"):
            cache.put(forged)
        with pytest.raises(TypeError, match="CacheEntry"):
            cache.put({"key": good.key})  # type: ignore[arg-type]
        assert len(cache) == 0


def test_bad_paths_give_clear_errors(tmp_path: Path):
    with pytest.raises(ValueError, match="not a file"):
        InterpretationCache(tmp_path)
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is not a database" * 100)
    with pytest.raises(ValueError, match="not a usable SQLite database"):
        InterpretationCache(junk)
    cache = InterpretationCache(tmp_path / "ok.sqlite")
    cache.close()
    with pytest.raises(RuntimeError, match="closed"):
        cache.get("k")


def test_concurrent_writers_in_threads(tmp_path: Path):
    path = tmp_path / "c.sqlite"
    cache = InterpretationCache(path)
    errors: list[BaseException] = []

    def write(worker: int) -> None:
        try:
            for i in range(40):
                cache.put(_entry(f"worker {worker} prompt {i}"))
                cache.put(_entry(f"shared prompt {i}", f"from worker {worker}"))  # races on the same keys
        except BaseException as error:  # noqa: BLE001 - collected and asserted below
            errors.append(error)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(cache) == 8 * 40 + 40
    shared = cache.get(_entry("shared prompt 3").key)
    assert shared is not None and shared.answer.startswith("from worker ")
    cache.close()
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def _process_writer(path: str, worker: int) -> None:
    with InterpretationCache(path) as cache:
        for i in range(50):
            cache.put(_entry(f"process {worker} prompt {i}"))
            cache.put(_entry(f"shared {i}", f"process {worker}"))


def test_concurrent_writers_in_processes(tmp_path: Path):
    path = tmp_path / "c.sqlite"
    InterpretationCache(path).close()
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_process_writer, args=(str(path), w)) for w in range(3)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    assert [p.exitcode for p in processes] == [0, 0, 0]
    with InterpretationCache(path) as cache:
        assert len(cache) == 3 * 50 + 50


def test_export_import_roundtrip(tmp_path: Path):
    with InterpretationCache(tmp_path / "a.sqlite") as source:
        source.put_many([_entry(f"p{i}", f"answer {i}", model="m1" if i % 2 else "m2") for i in range(5)])
        assert source.export_jsonl(tmp_path / "out" / "cache.jsonl") == 5
        stats = source.stats()
    lines = (tmp_path / "out" / "cache.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 5 and {json.loads(line)["model"] for line in lines} == {"m1", "m2"}
    assert stats["entries"] == 5 and stats["prompt_tokens"] == 50 and stats["completion_tokens"] == 25
    assert stats["by_model_and_prompt_version"] == {"m1 / v1": 2, "m2 / v1": 3}

    with InterpretationCache(tmp_path / "b.sqlite") as target:
        target.put(_entry("p1", "already here", model="m1"))
        assert target.import_jsonl(tmp_path / "out" / "cache.jsonl") == 4  # p1 exists, kept as is
        assert target.import_jsonl(tmp_path / "out" / "cache.jsonl") == 0
        assert len(target) == 5
        assert target.get(_entry("p1", model="m1").key).answer == "already here"
        assert target.get(_entry("p2", model="m2").key).answer == "answer 2"


def test_import_rejects_corrupt_files_and_adds_nothing(tmp_path: Path):
    good = json.dumps(_entry("p1").__dict__)
    tampered = json.loads(json.dumps(_entry("p2").__dict__))
    tampered["answer"] = 3
    with InterpretationCache(tmp_path / "c.sqlite") as cache:
        for name, content, message in [
            ("broken.jsonl", good + "\n{not json\n", "line 2"),
            ("missing.jsonl", good + "\n" + json.dumps({"key": "k"}) + "\n", "missing fields"),
            ("tampered.jsonl", good + "\n" + json.dumps(tampered) + "\n", "answer must be a str"),
        ]:
            path = tmp_path / name
            path.write_text(content, encoding="utf-8")
            with pytest.raises(ValueError, match=message):
                cache.import_jsonl(path)
        assert len(cache) == 0
        with pytest.raises(FileNotFoundError):
            cache.import_jsonl(tmp_path / "absent.jsonl")
