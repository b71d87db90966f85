"""Data capture: every prediction the endpoint makes, appended to a store for monitoring.

Requests never wait on the store and never fail because of it: rows go onto a queue, and one
writer thread appends them in batches. If the store refuses a batch, the writer retries with
backoff, then spills the rows to a JSON-lines file beside the store, so a capture failure is
counted and logged but no row is lost.
"""

from __future__ import annotations

import json
import logging
import queue
import sqlite3
import threading
import time
from dataclasses import dataclass

from penguins_platform.capture.contract import CAPTURED_COLUMNS, CapturedRow
from penguins_platform.capture.sqlite import (
    CREATE_TABLE,
    INDEXES,
    INSERT,
    create_private,
    spill_path,
    sqlite_path,
)

logger = logging.getLogger(__name__)


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
        self.spill_path = spill_path(self.path)
        self.batch_size = batch_size
        self.retries = retries
        self.stats = CaptureStats()
        # Batches of rows to write; None stops the writer.
        self._queue: queue.Queue[list[CapturedRow] | None] = queue.Queue()
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._run, name="capture-writer", daemon=True)
        self._thread.start()

    def submit(self, rows: list[CapturedRow]) -> None:
        """Queue rows for writing; returns at once."""
        with self._lock:
            self.stats.submitted += len(rows)
        self._queue.put(rows)

    def close(self, timeout: float = 30.0) -> None:
        """Write (or spill) every row submitted so far, then stop the writer."""
        self._queue.put(None)
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
        create_private(self.path)
        connection = sqlite3.connect(self.path, timeout=10)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute(CREATE_TABLE)
        for index in INDEXES:
            connection.execute(index)
        connection.commit()
        return connection

    def _run(self) -> None:
        connection: sqlite3.Connection | None = None
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                break
            batch = list(first)
            while len(batch) < self.batch_size:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stopping = True
                    break
                batch.extend(more)
            connection = self._write(connection, batch)
        if connection is not None:
            connection.close()

    def _write(
        self, connection: sqlite3.Connection | None, batch: list[CapturedRow]
    ) -> sqlite3.Connection | None:
        for attempt in range(self.retries):
            try:
                connection = connection or self._connect()
                with connection:
                    connection.executemany(INSERT, batch)
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

    def _spill(self, batch: list[CapturedRow]) -> None:
        try:
            create_private(self.spill_path)
            with self.spill_path.open("a", encoding="utf-8") as spill:
                for row in batch:
                    spill.write(json.dumps(dict(zip(CAPTURED_COLUMNS, row, strict=True))) + "\n")
            with self._lock:
                self.stats.spilled += len(batch)
            logger.error("spilled %d capture rows to %s", len(batch), self.spill_path)
        except OSError as error:
            with self._lock:
                self.stats.lost += len(batch)
            logger.error("lost %d capture rows: store and spill file failed: %s", len(batch), error)
