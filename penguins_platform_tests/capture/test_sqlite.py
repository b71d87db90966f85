"""The local endpoint's capture store read as production data: rows the real writer stored,
corrupt rows skipped, labels written once, retention, and reads that never scan the store."""

from __future__ import annotations

import math
import sqlite3
import threading
import time
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from penguins_platform.capture.contract import (
    CAPTURED_COLUMNS,
    PRODUCTION_COLUMNS,
    CaptureError,
    Retention,
)
from penguins_platform.capture.sqlite import INSERT, SqliteCapture
from penguins_platform.ml import schema
from penguins_platform.ml.inference import Prediction
from penguins_platform.serving import capture
from penguins_platform.serving.capture import CaptureStore
from penguins_platform.serving.scoring import capture_rows

NOW = datetime(2026, 11, 27, 18, 0, tzinfo=UTC)
GENTOO = dict(schema.SAMPLE_PENGUIN)
ADELIE = {"island": "Torgersen", "culmen_length_mm": 39.1, "culmen_depth_mm": 18.7,
          "flipper_length_mm": 181.0, "body_mass_g": 3750.0, "sex": "MALE"}  # fmt: skip


def request(records: list[dict], request_id: str, at: datetime = NOW, species: str = "Gentoo"):
    """The rows the endpoint captures for one request, stamped `at`."""
    answers: list[Prediction] = [
        {"prediction": species, "confidence": 0.9, "flags": []} for _ in records
    ]
    rows = capture_rows(records, answers, [[] for _ in records], "7", request_id)
    stamp = CAPTURED_COLUMNS.index("captured_at")
    return [
        (*row[:stamp], at.isoformat(timespec="microseconds"), *row[stamp + 1 :]) for row in rows
    ]


def write(path, *requests) -> None:
    """Store rows through the endpoint's own writer."""
    store = CaptureStore(str(path))
    for rows in requests:
        store.submit(rows)
    store.close()
    assert store.snapshot()["written"] == sum(len(rows) for rows in requests)


def insert_raw(path, **values) -> int:
    """One row by raw SQL, with whatever SQLite accepts: how corrupt rows get in."""
    row = dict(zip(CAPTURED_COLUMNS, request([GENTOO], "raw")[0], strict=True)) | values
    with sqlite3.connect(path) as connection:
        cursor = connection.execute(INSERT, tuple(row[c] for c in CAPTURED_COLUMNS))
    connection.close()
    assert cursor.lastrowid is not None, "an INSERT sets the row id"
    return cursor.lastrowid


def targets(path) -> dict[int, str | None]:
    connection = sqlite3.connect(path)
    found = dict(connection.execute("SELECT id, target FROM predictions ORDER BY id"))
    connection.close()
    return found


def hours_ago(count: int) -> list[list[tuple]]:
    """One single-row request per hour, the oldest `count - 1` hours before NOW."""
    return [request([GENTOO], f"r{h}", NOW - timedelta(hours=h)) for h in range(count - 1, -1, -1)]


def test_rows_from_the_endpoint_writer_read_as_the_production_table(tmp_path):
    path = tmp_path / "capture.db"
    missing = {"island": "Dream", "culmen_length_mm": None, "sex": None}  # the model imputes
    write(path, request([GENTOO, missing], "req-1"), request([ADELIE], "req-2", species="Adelie"))

    batch = SqliteCapture(path).read_newest(100)

    rows = batch.rows
    assert batch.skipped == 0 and batch.source == f"capture store {path}"
    assert tuple(rows.columns) == PRODUCTION_COLUMNS
    assert rows[["key", "request_id", "row", "prediction"]].values.tolist() == [
        ["1", "req-1", 0, "Gentoo"],
        ["2", "req-1", 1, "Gentoo"],
        ["3", "req-2", 0, "Adelie"],
    ]
    assert rows.loc[0, list(schema.FEATURES)].tolist() == list(GENTOO.values())
    assert math.isnan(rows.loc[1, "culmen_length_mm"]) and math.isnan(rows.loc[1, "body_mass_g"])
    assert rows.loc[1, "sex"] is None
    assert rows["target"].tolist() == [None, None, None]
    assert (rows["captured_at"] == pd.Timestamp(NOW)).all()
    assert str(rows["captured_at"].dtype) == "datetime64[ns, UTC]"
    assert rows["model_version"].unique().tolist() == ["7"]
    assert rows["confidence"].dtype == "float64" and rows["row"].dtype == "int64"


def test_the_newest_rows_come_oldest_first_up_to_the_limit(tmp_path):
    path = tmp_path / "capture.db"
    write(path, *hours_ago(10))

    rows = SqliteCapture(path).read_newest(3).rows

    assert rows["request_id"].tolist() == ["r2", "r1", "r0"]
    assert rows["captured_at"].is_monotonic_increasing
    by_uri = SqliteCapture(f"sqlite:///{path}")  # the endpoint's capture URI works as well
    assert by_uri.read_newest(1).rows["request_id"].tolist() == ["r0"]


def test_a_store_that_does_not_exist_reads_empty_and_is_not_created(tmp_path):
    path = tmp_path / "capture.db"
    source = SqliteCapture(path)

    batch = source.read_newest(10)

    assert batch.rows.empty and tuple(batch.rows.columns) == PRODUCTION_COLUMNS
    assert "does not exist yet" in batch.source
    assert source.write_labels({"1": "Adelie"}) == 0
    assert source.apply_retention(Retention(max_rows=1), NOW) == 0
    health = source.health()
    assert (health.newest_at, health.spilled_rows, health.total_rows) == (None, 0, 0)
    assert not path.exists()


def test_a_store_without_rows_reads_empty(tmp_path):
    path = tmp_path / "capture.db"
    write(path, request([GENTOO], "gone"))
    with sqlite3.connect(path) as connection:
        connection.execute("DELETE FROM predictions")
    connection.close()
    empty_file = tmp_path / "new.db"
    empty_file.touch()  # the writer creates the file before its table

    for store in (path, empty_file):
        batch = SqliteCapture(store).read_newest(10)
        assert batch.rows.empty and batch.skipped == 0
        assert SqliteCapture(store).health().newest_at is None


def test_corrupt_rows_are_skipped_and_counted_and_the_rest_kept(tmp_path):
    path = tmp_path / "capture.db"
    write(path, request([GENTOO], "before"))
    heavy = insert_raw(path, body_mass_g="heavy")  # REAL affinity keeps text that is no number
    undated = insert_raw(path, captured_at="last tuesday")
    unknown = insert_raw(path, prediction="Penguin?")
    write(path, request([ADELIE], "after", species="Adelie"))

    batch = SqliteCapture(path).read_newest(100)

    assert batch.rows["request_id"].tolist() == ["before", "after"]
    assert batch.skipped == 3
    assert batch.skipped_examples == [
        f"row id {heavy}: body_mass_g is 'heavy', not a finite number",
        f"row id {undated}: captured_at is 'last tuesday', not an ISO-8601 time",
        f"row id {unknown}: prediction is 'Penguin?', not a species",
    ]


def test_numeric_text_that_sqlite_stored_as_a_number_is_not_corrupt(tmp_path):
    path = tmp_path / "capture.db"
    write(path, request([GENTOO], "first"))
    insert_raw(path, body_mass_g="4100", target="Adelie")

    rows = SqliteCapture(path).read_newest(10).rows

    assert rows["body_mass_g"].tolist() == [5800.0, 4100.0]
    assert rows["target"].tolist() == [None, "Adelie"]


def test_labels_fill_empty_targets_once(tmp_path):
    path = tmp_path / "capture.db"
    write(path, request([GENTOO, ADELIE, GENTOO], "req"))
    source = SqliteCapture(path)

    assert source.write_labels({"1": "Gentoo", "2": "Adelie"}) == 2
    assert source.write_labels({"1": "Adelie", "2": "Adelie", "3": "Gentoo"}) == 1
    assert source.write_labels({"1": "Adelie", "2": "Adelie", "3": "Gentoo"}) == 0

    assert targets(path) == {1: "Gentoo", 2: "Adelie", 3: "Gentoo"}
    assert source.read_newest(10).rows["target"].tolist() == ["Gentoo", "Adelie", "Gentoo"]


def test_an_unknown_species_writes_no_label_at_all(tmp_path):
    path = tmp_path / "capture.db"
    write(path, request([GENTOO, ADELIE], "req"))

    with pytest.raises(ValueError, match="'Emperor', not a species; use one of Adelie"):
        SqliteCapture(path).write_labels({"1": "Gentoo", "2": "Emperor"})

    assert targets(path) == {1: None, 2: None}


def test_a_key_that_is_no_row_id_is_refused(tmp_path):
    path = tmp_path / "capture.db"
    write(path, request([GENTOO], "req"))

    with pytest.raises(ValueError, match="label key 'req:0' is not a row id"):
        SqliteCapture(path).write_labels({"req:0": "Gentoo"})


def test_retention_by_age_removes_rows_older_than_the_cutoff(tmp_path):
    path = tmp_path / "capture.db"
    write(path, *hours_ago(48))  # r47 (oldest) ... r0 (now)
    source = SqliteCapture(path)

    removed = source.apply_retention(Retention(max_age_days=1), NOW)

    kept = source.read_newest(100).rows
    assert removed == 23  # r47..r25; r24 is exactly one day old and stays
    assert kept["request_id"].iloc[0] == "r24" and len(kept) == 25


def test_retention_by_rows_keeps_the_newest(tmp_path):
    path = tmp_path / "capture.db"
    write(path, *hours_ago(10))
    source = SqliteCapture(path)

    assert source.apply_retention(Retention(max_rows=4), NOW) == 6
    assert source.read_newest(100).rows["request_id"].tolist() == ["r3", "r2", "r1", "r0"]
    assert source.apply_retention(Retention(max_rows=4), NOW) == 0


def test_retention_by_age_then_rows(tmp_path):
    path = tmp_path / "capture.db"
    write(path, *hours_ago(10))
    source = SqliteCapture(path)

    removed = source.apply_retention(Retention(max_age_days=5 / 24, max_rows=3), NOW)

    assert removed == 7  # four older than five hours, then all but the newest three
    assert source.health().total_rows == 3


def test_retention_that_is_off_does_not_touch_the_store(tmp_path):
    path = tmp_path / "capture.db"
    write(path, *hours_ago(3))
    before = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}

    assert SqliteCapture(path).apply_retention(Retention(), NOW) == 0

    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()} == before
    assert not Retention().enabled


def test_retention_needs_an_aware_now_and_sane_bounds(tmp_path):
    with pytest.raises(ValueError, match="timezone-aware"):
        SqliteCapture(tmp_path / "capture.db").apply_retention(
            Retention(max_rows=1), datetime.now()
        )
    with pytest.raises(ValueError, match="keep at least 1 row"):
        Retention(max_rows=0)
    with pytest.raises(ValueError, match="more than 0 days"):
        Retention(max_age_days=-1)


def test_health_reports_the_newest_capture_spilled_rows_and_the_count(tmp_path):
    path = tmp_path / "capture.db"
    path.mkdir()  # a folder where the store should be: the writer must spill
    blocked = CaptureStore(str(path), retries=1)
    blocked.submit(request([GENTOO, GENTOO], "spilled"))
    blocked.close()
    path.rmdir()
    write(path, *hours_ago(3))
    insert_raw(path, captured_at="yesterday")  # sorts after every real stamp

    health = SqliteCapture(path).health()

    assert blocked.snapshot()["spilled"] == 2
    assert health.newest_at == NOW
    assert health.spilled_rows == 2
    assert health.total_rows == 4


def test_a_file_that_is_not_a_store_raises_a_capture_error(tmp_path):
    path = tmp_path / "capture.db"
    path.write_bytes(b"not a database" * 100)

    with pytest.raises(CaptureError, match=f"cannot read rows in capture store {path}"):
        SqliteCapture(path).read_newest(10)


def test_a_store_from_before_the_index_gets_it_on_first_read(tmp_path, monkeypatch):
    path = tmp_path / "capture.db"
    monkeypatch.setattr(capture, "INDEXES", ())
    write(path, request([GENTOO], "old"))
    monkeypatch.undo()

    SqliteCapture(path).read_newest(1)

    with sqlite3.connect(path) as connection:
        names = [n for (n,) in connection.execute("SELECT name FROM sqlite_master")]
    connection.close()
    assert "predictions_captured_at" in names


class Instrumented:
    """Every connection SqliteCapture opens, with its statements traced and SQLite's virtual
    machine instructions counted (in hundreds)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.statements: list[str] = []
        self.steps = 0
        connect = sqlite3.connect

        def instrumented(*args, **kwargs):
            connection = connect(*args, **kwargs)
            connection.set_trace_callback(self.statements.append)
            connection.set_progress_handler(self._step, 100)
            return connection

        monkeypatch.setattr(sqlite3, "connect", instrumented)

    def _step(self) -> int:
        self.steps += 1
        return 0


def test_no_read_label_or_retention_query_scans_the_store(tmp_path, monkeypatch):
    """Every statement the source runs, planned by SQLite: a SEARCH (rowid or index range), or
    the rowid b-tree walked from its newest end under a LIMIT. Never a sort of the table."""
    path = tmp_path / "capture.db"
    write(path, *hours_ago(30))
    source = SqliteCapture(path)
    instrumented = Instrumented(monkeypatch)
    source.read_newest(5)
    source.write_labels({"3": "Gentoo", "4": "Adelie"})
    source.apply_retention(Retention(max_age_days=1, max_rows=10), NOW)
    assert source.health().newest_at == NOW
    monkeypatch.undo()

    connection = sqlite3.connect(path)
    queries = [
        s for s in instrumented.statements
        if s.split()[0].upper() in ("SELECT", "UPDATE", "DELETE") and "sqlite_master" not in s
    ]  # fmt: skip
    assert len(queries) >= 7, instrumented.statements
    for query in queries:
        plan = [row[3] for row in connection.execute(f"EXPLAIN QUERY PLAN {query}")]
        if "count(*)" in query:  # health's row count reads the smallest b-tree, by design
            assert plan == ["SCAN predictions USING COVERING INDEX predictions_captured_at"]
            continue
        for step in plan:
            assert "TEMP B-TREE" not in step, f"{query} sorts the table: {plan}"
            if step.startswith("SCAN"):
                assert step == "SCAN predictions" and "ORDER BY id DESC LIMIT" in query, (
                    f"{query} scans the store: {plan}"
                )
            else:
                assert step.startswith("SEARCH predictions"), f"{query}: {plan}"
    connection.close()


def test_reading_the_newest_rows_costs_the_same_on_a_ten_times_larger_store(tmp_path, monkeypatch):
    """The plan walks from the newest end; SQLite's instruction count shows the walk stops."""
    steps = {}
    for size in (2_000, 20_000):
        path = tmp_path / f"{size}.db"
        write(path, request([GENTOO], "first"))
        connection = sqlite3.connect(path)
        with connection:
            connection.executemany(INSERT, request([GENTOO], "bulk") * (size - 1))
        connection.close()
        SqliteCapture(path).read_newest(1)  # the index is there before counting
        instrumented = Instrumented(monkeypatch)
        assert len(SqliteCapture(path).read_newest(50).rows) == 50
        monkeypatch.undo()
        steps[size] = instrumented.steps
    assert steps[20_000] <= steps[2_000] + 2, steps


def test_reads_labels_and_retention_run_while_the_endpoint_writes(tmp_path):
    path = tmp_path / "capture.db"
    store = CaptureStore(str(path), batch_size=20)
    store.submit(request([GENTOO], "warm-up"))
    stop = threading.Event()

    def traffic() -> None:
        i = 0
        while not stop.is_set():
            store.submit(request([GENTOO, ADELIE], f"live-{i}"))
            i += 1
            time.sleep(0.001)

    sender = threading.Thread(target=traffic)
    sender.start()
    source = SqliteCapture(path, busy_timeout=30)
    labeled = removed = 0
    try:
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            rows = source.read_newest(40).rows
            labeled += source.write_labels(dict.fromkeys(rows["key"], "Gentoo"))
            removed += source.apply_retention(Retention(max_rows=500), datetime.now(UTC))
    finally:
        stop.set()
        sender.join()
        store.close()

    stats = store.snapshot()
    assert stats["written"] == stats["submitted"] and stats["spilled"] == 0, stats
    held = targets(path)
    assert isinstance(stats["written"], int)
    assert len(held) == stats["written"] - removed
    assert labeled > 0 and sum(t == "Gentoo" for t in held.values()) <= labeled
