"""Data capture: every prediction the endpoint makes, appended to a store for monitoring.

Requests never wait on the store and never fail because of it: rows go onto a queue, and one
writer thread appends them in batches. If the store refuses a batch, the writer retries with
backoff, then spills the rows to a JSON-lines file beside the store, so a capture failure is
counted and logged but no row is lost.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from penguins_platform.ml import schema

logger = logging.getLogger(__name__)

COLUMNS = (
    "request_id",
    "row",
    "captured_at",
    "model_version",
    *schema.FEATURES,
    "prediction",
    "confidence",
    "flags",
    "ignored_fields",
    "target",
)
_FEATURE_COLUMNS = ", ".join(
    f"{name} {'REAL' if name in schema.NUMERIC_FEATURES else 'TEXT'}" for name in schema.FEATURES
)
_CREATE = f"""
CREATE TABLE IF NOT EXISTS predictions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id TEXT NOT NULL,
    row INTEGER NOT NULL,
    captured_at TEXT NOT NULL,
    model_version TEXT NOT NULL,
    {_FEATURE_COLUMNS},
    prediction TEXT NOT NULL,
    confidence REAL NOT NULL,
    flags TEXT NOT NULL,
    ignored_fields TEXT NOT NULL,
    target TEXT
)
"""
# Monitoring reads the newest rows by id (the rowid b-tree, no index needed) and retention cuts
# by age: this index keeps both from scanning the store. captured_at is ISO-8601 in UTC, so text
# order is time order. Idempotent, so every writer (and reader) can run it on connect.
INDEXES = ("CREATE INDEX IF NOT EXISTS predictions_captured_at ON predictions (captured_at)",)
# One captured prediction, its values in the order of COLUMNS.
CaptureRow = tuple[object, ...]
_INSERT = f"INSERT INTO predictions ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
_STOP = object()


def sqlite_path(uri: str) -> Path:
    """`sqlite:///abs/path.db` (or a plain path) to a Path; other schemes are not stores yet."""
    if uri.startswith("sqlite:///"):
        return Path(uri.removeprefix("sqlite:///"))
    if "://" in uri:
        raise ValueError(
            f"capture store {uri!r} is not supported; use sqlite:///path/to/capture.db"
        )
    return Path(uri)


def _create_private(path: Path) -> None:
    """Create `path` readable by its owner alone, if it does not exist: it holds requests."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


@dataclass
class CaptureStats:
    submitted: int = 0
    written: int = 0
    spilled: int = 0
    lost: int = 0
    failures: int = 0


class CaptureStore:
    """Append-only SQLite capture with a single background writer."""

    def __init__(self, uri: str, batch_size: int = 500, retries: int = 3) -> None:
        self.path = sqlite_path(uri)
        self.spill_path = self.path.with_suffix(self.path.suffix + ".spilled.jsonl")
        self.batch_size = batch_size
        self.retries = retries
        self.stats = CaptureStats()
        self._queue: queue.Queue[list[CaptureRow] | object] = queue.Queue()
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._run, name="capture-writer", daemon=True)
        self._thread.start()

    def submit(self, rows: list[CaptureRow]) -> None:
        """Queue rows for writing; returns at once."""
        with self._lock:
            self.stats.submitted += len(rows)
        self._queue.put(rows)

    def close(self, timeout: float = 30.0) -> None:
        """Write (or spill) every row submitted so far, then stop the writer."""
        self._queue.put(_STOP)
        self._thread.join(timeout)

    def snapshot(self) -> dict[str, object]:
        with self._lock:
            s = self.stats
            return {
                "store": str(self.path),
                "submitted": s.submitted,
                "written": s.written,
                "pending": s.submitted - s.written - s.spilled - s.lost,
                "spilled": s.spilled,
                "lost": s.lost,
                "write_failures": s.failures,
            }

    def _connect(self) -> sqlite3.Connection:
        _create_private(self.path)
        connection = sqlite3.connect(self.path, timeout=10)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute(_CREATE)
        for index in INDEXES:
            connection.execute(index)
        connection.commit()
        return connection

    def _run(self) -> None:
        connection: sqlite3.Connection | None = None
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is _STOP:
                break
            batch = list(first)
            while len(batch) < self.batch_size:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is _STOP:
                    stopping = True
                    break
                batch.extend(more)
            connection = self._write(connection, batch)
        if connection is not None:
            connection.close()

    def _write(
        self, connection: sqlite3.Connection | None, batch: list[CaptureRow]
    ) -> sqlite3.Connection | None:
        for attempt in range(self.retries):
            try:
                connection = connection or self._connect()
                with connection:
                    connection.executemany(_INSERT, batch)
                with self._lock:
                    self.stats.written += len(batch)
                return connection
            except sqlite3.Error as error:
                with self._lock:
                    self.stats.failures += 1
                logger.warning(
                    "capture write of %d rows to %s failed (attempt %d/%d): %s",
                    len(batch), self.path, attempt + 1, self.retries, error,
                )  # fmt: skip
                if connection is not None:
                    connection.close()
                connection = None
                time.sleep(0.05 * 2**attempt)
        self._spill(batch)
        return connection

    def _spill(self, batch: list[CaptureRow]) -> None:
        try:
            _create_private(self.spill_path)
            with self.spill_path.open("a", encoding="utf-8") as spill:
                for row in batch:
                    spill.write(json.dumps(dict(zip(COLUMNS, row, strict=True))) + "\n")
            with self._lock:
                self.stats.spilled += len(batch)
            logger.error("spilled %d capture rows to %s", len(batch), self.spill_path)
        except OSError as error:
            with self._lock:
                self.stats.lost += len(batch)
            logger.error("lost %d capture rows: store and spill file failed: %s", len(batch), error)
