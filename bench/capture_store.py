"""Capture-store reads that do not grow with the store: monitoring reads the newest rows of
the endpoint's capture store, which grows by every prediction until retention trims it.

Prints the time of `SqliteCapture(path).read_newest(500)` on a 1,000,000-row store over the
same read on a 10,000-row store, both built in this run (target <= 2.0); then, for context,
the endpoint writer's throughput with the captured_at index over without it, and on the
1M-row store: the same read done naively (newest by captured_at, no index), a 50,000-row read,
health, and retention cutting the store to 100,000 rows by count and by age.
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from common import REPO_ROOT, alternate, report

from penguins_platform.capture.contract import Retention
from penguins_platform.capture.sqlite import INSERT, SqliteCapture
from penguins_platform.ml import schema
from penguins_platform.serving import capture
from penguins_platform.serving.capture import CaptureStore

SPAN = timedelta(days=30)  # the rows' captured_at spread, newest now
READS_PER_SAMPLE = 100  # one read takes milliseconds: time a hundred, in seconds


def capture_rows(count: int, now: datetime, seed: int = 0) -> list[tuple]:
    """Rows as the endpoint captures them: penguins resampled, 1-10 rows per request, evenly
    spread over SPAN and in time order (about 140 bytes each)."""
    rng = np.random.default_rng(seed)
    data = pd.read_csv(REPO_ROOT / "data" / "penguins.csv").replace({"sex": {".": None}})
    data = data.astype(object).where(data.notna(), None)
    picks = data.iloc[rng.integers(0, len(data), count)]
    features = picks[list(schema.FEATURES)].itertuples(index=False, name=None)
    species = picks[schema.TARGET].tolist()
    confidence = rng.uniform(0.5, 1.0, count).round(6).tolist()
    start = now - SPAN
    step = SPAN / count
    rows: list[tuple] = []
    request_id, left = "", 0
    for i, inputs in enumerate(features):
        if left == 0:
            request_id, left, position = str(uuid.uuid4()), int(rng.integers(1, 11)), 0
        at = (start + step * i).isoformat(timespec="microseconds")
        rows.append((request_id, position, at, "3", *inputs, species[i], confidence[i], "[]", "[]",
                     None))  # fmt: skip
        left, position = left - 1, position + 1
    return rows


def build_store(path: Path, rows: list[tuple]) -> None:
    """The endpoint's writer makes the schema and indexes; the bulk goes in one transaction."""
    store = CaptureStore(str(path))
    store.submit(rows[:1])
    store.close()
    connection = sqlite3.connect(path)
    with connection:
        connection.executemany(INSERT, rows[1:])
    connection.close()  # the last connection out checkpoints the WAL into the file


def seconds(function: Callable[[], object], repeats: int = 1) -> float:
    start = time.perf_counter()
    for _ in range(repeats):
        function()
    return time.perf_counter() - start


def writer_seconds(path: Path, rows: list[tuple], indexes: tuple[str, ...]) -> float:
    """The endpoint's writer, fed 10-row requests, from the first submit to the last commit,
    with `indexes` in place of capture.INDEXES: the same writer with and without the index."""
    kept = capture.INDEXES
    capture.INDEXES = indexes
    try:
        store = CaptureStore(str(path))
        start = time.perf_counter()
        for i in range(0, len(rows), 10):
            store.submit(rows[i : i + 10])
        store.close(timeout=600)
        elapsed = time.perf_counter() - start
    finally:
        capture.INDEXES = kept
    if store.snapshot()["written"] != len(rows):
        raise RuntimeError(f"the writer did not store every row: {store.snapshot()}")
    path.unlink()
    return elapsed


def milliseconds(samples: list[float]) -> str:
    values = ", ".join(f"{s * 1000:.1f}" for s in samples)
    return f"median {statistics.median(samples) * 1000:.1f} ms  [{values}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="capture-bench-"))
    try:
        now = datetime.now(UTC)
        small, large = work / "10k.db", work / "1m.db"
        start = time.perf_counter()
        rows = capture_rows(1_000_000, now)
        build_store(large, rows)
        build_store(small, capture_rows(10_000, now, seed=1))
        print(f"built the 10k- and 1M-row stores in {time.perf_counter() - start:.1f} s "
              f"(1M: {large.stat().st_size / 1e6:.0f} MB)")  # fmt: skip

        readers = {"store_10k": SqliteCapture(small), "store_1m": SqliteCapture(large)}
        for reader in readers.values():
            assert len(reader.read_newest(500).rows) == 500
        samples = alternate(
            args.repeats,
            **{name: (lambda r=reader: seconds(lambda: r.read_newest(500), READS_PER_SAMPLE))
               for name, reader in readers.items()},
        )  # fmt: skip
        report(f"newest-500 read ratio, 1M rows over 10k rows ({READS_PER_SAMPLE} reads a sample)",
               "store_10k", "store_1m", samples, target=2.0)  # fmt: skip

        new = rows[:100_000]
        writes = alternate(
            min(args.repeats, 5),
            without_index=lambda: writer_seconds(work / "plain.db", new, ()),
            with_index=lambda: writer_seconds(work / "indexed.db", new, capture.INDEXES),
        )
        report("writer time with the captured_at index over without (100,000 rows, 10 a request)",
               "without_index", "with_index", writes, target=float("inf"))  # fmt: skip
        for name, values in writes.items():
            print(f"  {name}: {len(new) / statistics.median(values):,.0f} rows/s")

        print("context, on the 1M-row store:")
        one_read = statistics.median(samples["store_1m"]) / READS_PER_SAMPLE
        naive_sql = ("SELECT * FROM predictions NOT INDEXED "
                     "ORDER BY captured_at DESC LIMIT 500")  # fmt: skip
        with sqlite3.connect(large) as connection:
            naive = [seconds(lambda: connection.execute(naive_sql).fetchall()) for _ in range(3)]
            counts = [seconds(lambda: connection.execute(
                "SELECT count(*) FROM predictions").fetchone()) for _ in range(5)]  # fmt: skip
        connection.close()
        print(
            f"  newest 500 read naively (ORDER BY captured_at, no index, SQL only): "
            f"{milliseconds(naive)}, {statistics.median(naive) / one_read:.0f}x read_newest(500)"
        )
        big = [seconds(lambda: readers["store_1m"].read_newest(50_000)) for _ in range(5)]
        print(f"  read_newest(50,000): {milliseconds(big)}")
        health = [seconds(readers["store_1m"].health) for _ in range(5)]
        print(f"  health(): {milliseconds(health)}; its count(*) alone: {milliseconds(counts)}")
        for name, retention in (
            ("max_rows=100,000", Retention(max_rows=100_000)),
            ("max_age_days=3 (the newest tenth)", Retention(max_age_days=SPAN.days / 10)),
        ):
            copy = work / "trim.db"
            shutil.copy(large, copy)
            trimmed = SqliteCapture(copy)
            start = time.perf_counter()
            removed = trimmed.apply_retention(retention, now)
            elapsed = time.perf_counter() - start
            left = trimmed.health().total_rows
            print(f"  retention {name}: removed {removed:,} rows in {elapsed:.2f} s, "
                  f"{left:,} left")  # fmt: skip
            for leftover in work.glob("trim.db*"):
                leftover.unlink()
    finally:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
