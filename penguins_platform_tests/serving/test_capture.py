"""The capture store: every row written, never a request failed, never a row dropped."""

import json
import sqlite3
import threading

import pytest

from penguins_platform.capture.contract import CAPTURED_COLUMNS
from penguins_platform.capture.sqlite import sqlite_path
from penguins_platform.serving import capture
from penguins_platform.serving.capture import CaptureStore


def _row(request_id: str, i: int) -> tuple:
    values: dict[str, object] = {c: None for c in CAPTURED_COLUMNS}
    values.update(
        request_id=request_id, row=i, captured_at="2026-01-01T00:00:00+00:00",
        model_version="1", island="Dream", prediction="Adelie", confidence=0.9,
        flags="[]", ignored_fields="[]",
    )  # fmt: skip
    return tuple(values[c] for c in CAPTURED_COLUMNS)


def _count(path) -> int:
    with sqlite3.connect(path) as connection:
        return connection.execute("SELECT COUNT(*) FROM predictions").fetchone()[0]


def test_concurrent_submitters_lose_no_row(tmp_path):
    store = CaptureStore(f"sqlite:///{tmp_path / 'capture.db'}")

    def client(k: int) -> None:
        for i in range(500):
            store.submit([_row(f"client-{k}-{i}", 0)])

    threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    store.close()
    assert _count(tmp_path / "capture.db") == 4000
    assert store.snapshot()["written"] == 4000


def test_rows_hold_inputs_prediction_and_an_empty_target(tmp_path):
    store = CaptureStore(str(tmp_path / "capture.db"))
    store.submit([_row("abc", 0), _row("abc", 1)])
    store.close()
    with sqlite3.connect(tmp_path / "capture.db") as connection:
        connection.row_factory = sqlite3.Row
        rows = connection.execute("SELECT * FROM predictions ORDER BY row").fetchall()
    assert [(r["request_id"], r["row"], r["island"], r["target"]) for r in rows] == [
        ("abc", 0, "Dream", None),
        ("abc", 1, "Dream", None),
    ]


def test_an_unwritable_store_spills_rows_instead_of_dropping_them(tmp_path):
    blocked = tmp_path / "capture.db"
    blocked.mkdir()  # a folder where the database file should be: sqlite cannot open it
    store = CaptureStore(f"sqlite:///{blocked}", retries=2)
    store.submit([_row("r", i) for i in range(3)])
    store.close()
    stats = store.snapshot()
    assert stats["written"] == 0
    assert stats["spilled"] == 3
    assert stats["lost"] == 0
    assert stats["write_failures"] == 2
    spilled = [json.loads(line) for line in store.spill_path.read_text().splitlines()]
    assert [r["row"] for r in spilled] == [0, 1, 2]


def test_only_sqlite_stores_are_accepted():
    with pytest.raises(ValueError, match="use sqlite:///"):
        sqlite_path("s3://bucket/capture")


def test_the_writer_indexes_captured_at_for_monitoring_and_retention(tmp_path, monkeypatch):
    path = tmp_path / "capture.db"
    monkeypatch.setattr(capture, "INDEXES", ())  # a store written before the index existed
    old = CaptureStore(str(path))
    old.submit([_row("old", 0)])
    old.close()
    monkeypatch.undo()

    store = CaptureStore(str(path))
    store.submit([_row("new", 0)])
    store.close()

    with sqlite3.connect(path) as connection:
        plan = connection.execute(
            "EXPLAIN QUERY PLAN DELETE FROM predictions WHERE captured_at < ?", ("2026",)
        ).fetchall()
    connection.close()
    assert _count(path) == 2
    assert [step[3] for step in plan] == [
        "SEARCH predictions USING INDEX predictions_captured_at (captured_at<?)"
    ]
