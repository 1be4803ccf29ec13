"""A persistent, crash-safe cache of language-model answers (SQLite).

Every answer is stored under a content key: the sha256 of a canonical JSON of (prompt version, rendered
prompt, model, generation parameters). Asking the same model the same prompt with the same parameters
therefore never costs a second request, across runs, processes and machines (`export_jsonl` / `import_jsonl`).

Why SQLite in WAL mode with one connection per thread:
- each `put` is its own committed transaction, so a crash, SIGKILL or Ctrl-C loses nothing already answered;
  a re-run finds those answers and asks only for what is missing;
- WAL lets readers work while a writer commits, and `busy_timeout` makes concurrent writers (threads of one
  run or several processes sharing the file) wait for the lock instead of failing;
- `INSERT OR IGNORE` makes a duplicate write harmless: the first answer stored for a key is the one kept, so a
  result never changes under the feet of a run that already read it.
sqlite3 connections must not be shared between threads, hence a connection per thread.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

__all__ = ["CacheEntry", "InterpretationCache", "cache_key"]

# Waiting time for the database lock held by another writer before sqlite3 gives up.
_BUSY_TIMEOUT_S = 60.0
# SQLite limits the number of bound parameters per statement; get_many queries in chunks below it.
_KEYS_PER_QUERY = 500

_SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (
    key               TEXT PRIMARY KEY,
    prompt_version    TEXT NOT NULL,
    model             TEXT NOT NULL,
    params            TEXT NOT NULL,
    prompt            TEXT NOT NULL,
    answer            TEXT NOT NULL,
    prompt_tokens     INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    created_at        REAL NOT NULL
)
"""


def _canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def cache_key(prompt_version: str, prompt: str, model: str, params: Mapping[str, Any]) -> str:
    """The sha256 hex digest identifying one (prompt version, prompt, model, parameters) request."""
    if not isinstance(prompt, str):
        raise TypeError(f"prompt must be a str, got {type(prompt).__name__}")
    try:
        canonical = _canonical_json(
            dict(prompt_version=str(prompt_version), prompt=prompt, model=str(model), params=dict(params))
        )
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"cache key parameters must be JSON values (finite numbers, str, ...): {error}"
        ) from error
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class CacheEntry:
    """One stored answer with what produced it and what it cost."""

    key: str
    prompt_version: str
    model: str
    params: dict[str, Any]
    prompt: str
    answer: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    created_at: float = 0.0

    @classmethod
    def create(
        cls,
        prompt_version: str,
        prompt: str,
        model: str,
        params: Mapping[str, Any],
        answer: str,
        prompt_tokens: int = 0,
        completion_tokens: int = 0,
    ) -> CacheEntry:
        """A new entry whose key is computed from its content."""
        return cls(
            key=cache_key(prompt_version, prompt, model, params),
            prompt_version=prompt_version,
            model=model,
            params=dict(params),
            prompt=prompt,
            answer=answer,
            prompt_tokens=int(prompt_tokens),
            completion_tokens=int(completion_tokens),
            created_at=time.time(),
        )

    def _row(self) -> tuple:
        return tuple(_canonical_json(self.params) if c == "params" else getattr(self, c) for c in _COLUMNS)

    @classmethod
    def _from_row(cls, row: tuple) -> CacheEntry:
        values = dict(zip(_COLUMNS, row, strict=True))
        values["params"] = json.loads(values["params"])
        return cls(**values)


# The table's columns (_SCHEMA) are CacheEntry's fields, in order.
_COLUMNS = tuple(field.name for field in fields(CacheEntry))
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM answers"
_INSERT = f"INSERT OR IGNORE INTO answers ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"


class InterpretationCache:
    """SQLite store of model answers keyed by `cache_key`; safe for threads and processes writing at once."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if self.path.exists() and not self.path.is_file():
            raise ValueError(f"cache path {self.path} exists and is not a file")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        self._closed = False
        try:  # creates the schema and fails early on a file that is not a database
            connection = self._connection()
            with connection:
                connection.execute(_SCHEMA)
        except sqlite3.DatabaseError as error:
            self.close()
            raise ValueError(f"cache file {self.path} is not a usable SQLite database: {error}") from error

    # ------------------------------------------------------------------ connections

    def _connection(self) -> sqlite3.Connection:
        if self._closed:
            raise RuntimeError(f"the cache {self.path} is closed")
        connection = getattr(self._local, "connection", None)
        if connection is None:
            # check_same_thread=False only so that close() may close every thread's connection; each
            # connection is otherwise used by the thread that opened it alone.
            connection = sqlite3.connect(
                self.path, timeout=_BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
            connection.execute(f"PRAGMA busy_timeout = {int(_BUSY_TIMEOUT_S * 1000)}")
            # WAL + synchronous=NORMAL: a committed answer survives a crash of the process (not necessarily a
            # power loss, which is acceptable for a cache).
            connection.execute("PRAGMA journal_mode = WAL")
            connection.execute("PRAGMA synchronous = NORMAL")
            self._local.connection = connection
            with self._connections_lock:
                self._connections.append(connection)
        return connection

    def close(self) -> None:
        """Close the connections of all threads; the cache cannot be used afterwards."""
        with self._connections_lock:
            for connection in self._connections:
                connection.close()
            self._connections.clear()
            self._closed = True

    def __enter__(self) -> InterpretationCache:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------------ reading and writing

    def get(self, key: str) -> CacheEntry | None:
        """The entry stored under `key`, or None."""
        row = self._connection().execute(f"{_SELECT} WHERE key = ?", (key,)).fetchone()
        return None if row is None else CacheEntry._from_row(row)

    def get_many(self, keys: Iterable[str]) -> dict[str, CacheEntry]:
        """The stored entries among `keys` (missing keys are simply absent from the result)."""
        unique_keys = list(dict.fromkeys(keys))
        found: dict[str, CacheEntry] = {}
        connection = self._connection()
        for start in range(0, len(unique_keys), _KEYS_PER_QUERY):
            chunk = unique_keys[start : start + _KEYS_PER_QUERY]
            placeholders = ", ".join("?" * len(chunk))
            for row in connection.execute(f"{_SELECT} WHERE key IN ({placeholders})", chunk):
                entry = CacheEntry._from_row(row)
                found[entry.key] = entry
        return found

    def put(self, entry: CacheEntry) -> bool:
        """Store `entry` in its own committed transaction; False when the key was already present (kept)."""
        self._check_entry(entry)
        return self._connection().execute(_INSERT, entry._row()).rowcount == 1

    def put_many(self, entries: Iterable[CacheEntry]) -> int:
        """Store several entries in one transaction; returns how many were new."""
        rows = []
        for entry in entries:
            self._check_entry(entry)
            rows.append(entry._row())
        connection = self._connection()
        before = connection.total_changes
        with connection:
            connection.execute("BEGIN IMMEDIATE")
            connection.executemany(_INSERT, rows)
        return connection.total_changes - before

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        return (
            self._connection().execute("SELECT 1 FROM answers WHERE key = ?", (key,)).fetchone() is not None
        )

    def __len__(self) -> int:
        return int(self._connection().execute("SELECT COUNT(*) FROM answers").fetchone()[0])

    @staticmethod
    def _check_entry(entry: CacheEntry) -> None:
        if not isinstance(entry, CacheEntry):
            raise TypeError(f"expected a CacheEntry, got {type(entry).__name__}")
        expected = cache_key(entry.prompt_version, entry.prompt, entry.model, entry.params)
        if entry.key != expected:
            raise ValueError(
                f"cache entry key {entry.key[:12]}... does not match its content "
                f"(expected {expected[:12]}...); build entries with CacheEntry.create"
            )
        if not isinstance(entry.answer, str):
            raise TypeError(f"cache entry answer must be a str, got {type(entry.answer).__name__}")

    # ------------------------------------------------------------------ export, import, statistics

    def export_jsonl(self, path: str | Path) -> int:
        """Write every entry as one JSON object per line (oldest first); returns the number written."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        count = 0
        with path.open("w", encoding="utf-8") as handle:
            for row in self._connection().execute(f"{_SELECT} ORDER BY created_at, key"):
                handle.write(json.dumps(asdict(CacheEntry._from_row(row)), ensure_ascii=False) + "\n")
                count += 1
        return count

    def import_jsonl(self, path: str | Path) -> int:
        """Add the entries of a JSONL export; existing keys are kept. Returns how many entries were new.

        Every line is validated (fields, types, key matching the content) before anything is written, so a
        corrupt file adds nothing.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"cache export {path} does not exist")
        entries = []
        with path.open("r", encoding="utf-8") as handle:
            for line_number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                    if not isinstance(record, dict):
                        raise ValueError("a line must hold a JSON object")
                    missing = [name for name in _COLUMNS if name not in record]
                    if missing:
                        raise ValueError(f"missing fields {missing}")
                    entry = CacheEntry(**{name: record[name] for name in _COLUMNS})
                    if not isinstance(entry.params, dict):
                        raise ValueError("field 'params' must be an object")
                    self._check_entry(entry)
                except (ValueError, TypeError) as error:
                    raise ValueError(
                        f"{path}, line {line_number}: not a valid cache entry: {error}"
                    ) from error
                entries.append(entry)
        return self.put_many(entries)

    def stats(self) -> dict[str, Any]:
        """Number of entries, total tokens and the number of entries per (model, prompt version)."""
        connection = self._connection()
        entries, prompt_tokens, completion_tokens = connection.execute(
            "SELECT COUNT(*), COALESCE(SUM(prompt_tokens), 0), COALESCE(SUM(completion_tokens), 0) "
            "FROM answers"
        ).fetchone()
        by_model = {
            f"{model} / {version}": count
            for model, version, count in connection.execute(
                "SELECT model, prompt_version, COUNT(*) FROM answers GROUP BY model, prompt_version"
            )
        }
        return {
            "path": str(self.path),
            "entries": int(entries),
            "prompt_tokens": int(prompt_tokens),
            "completion_tokens": int(completion_tokens),
            "by_model_and_prompt_version": by_model,
        }
