"""The local endpoint's capture store: its SQLite format, and reading it back for monitoring.

The endpoint's writer (`serving/capture.py`) creates the table and appends to it; monitoring
reads, labels and trims it through `SqliteCapture`. Both take the format from here.

Monitoring runs while the endpoint keeps writing, against a store that grows without bound
until retention trims it. So every query walks the rowid b-tree from the newest end or the
captured_at index (`INDEXES`), never the whole table: reading the newest 500 rows costs the
same on a million rows as on ten thousand. Writes (labels, retention) are one short
transaction each and wait for the endpoint's writer through SQLite's busy timeout.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from penguins_platform.capture.contract import (
    CAPTURED_COLUMNS,
    PRODUCTION_COLUMNS,
    CaptureError,
    CaptureHealth,
    ProductionBatch,
    Retention,
    check_species,
)
from penguins_platform.ml import schema

_FEATURE_COLUMNS = ", ".join(
    f"{name} {'REAL' if name in schema.NUMERIC_FEATURES else 'TEXT'}" for name in schema.FEATURES
)
CREATE_TABLE = f"""
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
INDEXES: tuple[str, ...] = (
    "CREATE INDEX IF NOT EXISTS predictions_captured_at ON predictions (captured_at)",
)
INSERT = (
    f"INSERT INTO predictions ({', '.join(CAPTURED_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(CAPTURED_COLUMNS))})"
)


def sqlite_path(uri: str) -> Path:
    """`sqlite:///abs/path.db` (or a plain path) to a Path; other schemes are not stores yet."""
    if uri.startswith("sqlite:///"):
        return Path(uri.removeprefix("sqlite:///"))
    if "://" in uri:
        raise ValueError(
            f"capture store {uri!r} is not supported; use sqlite:///path/to/capture.db"
        )
    return Path(uri)


def spill_path(store: Path) -> Path:
    """Where the writer puts rows the store refused: a JSON-lines file beside it."""
    return store.with_suffix(store.suffix + ".spilled.jsonl")


def create_private(path: Path) -> None:
    """Create `path` readable by its owner alone, if it does not exist: it holds requests."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


_READ = ("id", *(c for c in PRODUCTION_COLUMNS if c != "key"))
_NEWEST = f"SELECT {', '.join(_READ)} FROM predictions ORDER BY id DESC LIMIT ?"
_LABEL = "UPDATE predictions SET target = ? WHERE id = ? AND target IS NULL"
_DELETE_OLDER = "DELETE FROM predictions WHERE captured_at < ?"
_NTH_NEWEST_ID = "SELECT id FROM predictions ORDER BY id DESC LIMIT 1 OFFSET ?"
_DELETE_UP_TO = "DELETE FROM predictions WHERE id <= ?"
# Timestamps start with a digit; garbage text ('yesterday') sorts after every digit, so the
# range keeps a corrupt row from posing as the newest one, and the walk stays on the index.
_NEWEST_TIMES = (
    "SELECT captured_at FROM predictions WHERE captured_at < ':' ORDER BY captured_at DESC LIMIT 20"
)
# The one query that reads a whole b-tree: the captured_at index, the smallest one (about
# 20 ms on a million rows); health runs once per monitoring run, not per request.
_COUNT = "SELECT count(*) FROM predictions"


class SqliteCapture:
    """Reads, labels and trims the endpoint's capture store (`serving/capture.py`).

    A store that does not exist yet reads as empty and is not created: the endpoint creates
    it on its first prediction.
    """

    def __init__(self, path: str | Path, busy_timeout: float = 10.0) -> None:
        self.path = sqlite_path(str(path))
        self.spill_path = spill_path(self.path)
        self.busy_timeout = busy_timeout

    @property
    def label(self) -> str:
        return f"capture store {self.path}"

    def read_newest(self, limit: int) -> ProductionBatch:
        from penguins_platform.capture.validation import validate_rows

        if limit < 1:
            raise ValueError(f"limit must be a positive number of rows, got {limit}")
        with self._connect("read") as connection:
            if connection is None:
                return ProductionBatch.empty(f"{self.label} (does not exist yet)")
            records = connection.execute(_NEWEST, (limit,)).fetchall()
        records.reverse()
        columns: dict[str, Sequence[object]] = {name: () for name in _READ}
        if records:
            columns = dict(zip(_READ, zip(*records, strict=True), strict=True))
        columns["key"] = [str(i) for i in columns.pop("id")]
        rows, skipped, examples = validate_rows(columns, noun="row id")
        return ProductionBatch(rows, skipped, examples, self.label)

    def write_labels(self, labels: Mapping[str, str]) -> int:
        """Set `target` by row key (str of the row id) where it is still NULL, in one
        transaction; a species that is not one raises ValueError before anything is written."""
        check_species(labels)
        updates = [(species, _row_id(key, self.label)) for key, species in labels.items()]
        if not updates:
            return 0
        with self._connect("label") as connection:
            if connection is None:
                return 0
            with _transaction(connection):
                before = connection.total_changes
                connection.executemany(_LABEL, updates)
                return connection.total_changes - before

    def apply_retention(self, retention: Retention, now: datetime) -> int:
        """Delete rows captured before `now - max_age_days`, then all but the newest
        `max_rows`, in one transaction; return how many went. Off: nothing is touched.

        Age compares captured_at as text, which is time order for the writer's UTC ISO-8601
        stamps. Deleted pages are reused by new rows; the file does not shrink (no VACUUM,
        which would lock the endpoint's writer out for the length of a copy of the store).
        """
        cutoff = retention.cutoff(now)
        if not retention.enabled:
            return 0
        with self._connect("trim") as connection:
            if connection is None:
                return 0
            removed = 0
            with _transaction(connection):
                if cutoff is not None:
                    stamp = cutoff.astimezone(UTC).isoformat(timespec="microseconds")
                    removed += connection.execute(_DELETE_OLDER, (stamp,)).rowcount
                if retention.max_rows is not None:
                    bound = connection.execute(_NTH_NEWEST_ID, (retention.max_rows,)).fetchone()
                    if bound is not None:
                        removed += connection.execute(_DELETE_UP_TO, bound).rowcount
            return removed

    def health(self) -> CaptureHealth:
        """Newest capture time (from the captured_at index), spilled rows, and the row count."""
        newest, total = None, 0
        with self._connect("check") as connection:
            if connection is not None:
                stamps = [s for (s,) in connection.execute(_NEWEST_TIMES)]
                newest = _first_time(stamps)
                (total,) = connection.execute(_COUNT).fetchone()
        return CaptureHealth(newest_at=newest, spilled_rows=self._spilled(), total_rows=total)

    @contextmanager
    def _connect(self, action: str) -> Iterator[sqlite3.Connection | None]:
        """A connection to the store, or None when there is no store (or no table) yet."""
        if not self.path.exists():
            yield None
            return
        try:
            # mode=rw: a store removed since the check above is an error, not a new empty file.
            connection = sqlite3.connect(
                f"{self.path.resolve().as_uri()}?mode=rw",
                uri=True, timeout=self.busy_timeout, isolation_level=None,
            )  # fmt: skip
        except sqlite3.Error as error:
            raise CaptureError(f"cannot open {self.label} to {action} rows: {error}") from error
        try:
            (tables,) = connection.execute(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'predictions'"
            ).fetchone()
            if not tables:
                yield None
                return
            for index in INDEXES:  # a store from an endpoint older than the index gets it here
                connection.execute(index)
            yield connection
        except sqlite3.Error as error:
            raise CaptureError(
                f"cannot {action} rows in {self.label}: {error}; if it is locked, the endpoint's "
                f"writer held it longer than the {self.busy_timeout:g}s busy timeout"
            ) from error
        finally:
            connection.close()

    def _spilled(self) -> int:
        try:
            with self.spill_path.open("rb") as spill:
                return sum(chunk.count(b"\n") for chunk in iter(lambda: spill.read(1 << 20), b""))
        except FileNotFoundError:
            return 0


@contextmanager
def _transaction(connection: sqlite3.Connection) -> Iterator[None]:
    """BEGIN IMMEDIATE takes the write lock up front (waiting out the endpoint's writer), so
    the transaction cannot fail half-way on a read lock it cannot upgrade."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")


def _row_id(key: str, label: str) -> int:
    try:
        return int(key)
    except (TypeError, ValueError):
        raise ValueError(
            f"label key {key!r} is not a row id of {label}; use the key column of read_newest"
        ) from None


def _first_time(stamps: list[str]) -> datetime | None:
    """The first stamp that parses, newest first; corrupt ones are passed over."""
    for stamp in stamps:
        try:
            moment = datetime.fromisoformat(stamp)
        except (TypeError, ValueError):
            continue
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return None
