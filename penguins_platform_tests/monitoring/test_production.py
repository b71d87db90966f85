"""The production table from every capture source: merged by time, each row tagged with its
source, retention applied first and counted, and labels written back where rows live."""

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from penguins_platform.capture.contract import (
    PRODUCTION_COLUMNS,
    CaptureError,
    CaptureHealth,
    ProductionBatch,
    Retention,
)
from penguins_platform.capture.validation import validate_rows
from penguins_platform.ml import schema
from penguins_platform.monitoring.production import (
    NO_LABELED_DATA,
    NO_PRODUCTION_DATA,
    SOURCE_COLUMN,
    CaptureReadError,
    describe_retention,
    label_rows,
    production_labels,
    read_production,
    report_path,
)

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)


class MemorySource:
    """A capture source in memory: rows of (key, captured_at, prediction, target)."""

    def __init__(self, label: str, rows: list[tuple[str, datetime, str, str | None]]) -> None:
        self.label = label
        self.rows = list(rows)
        self.written: dict[str, str] = {}
        self.retained: list[Retention] = []

    def read_newest(self, limit: int) -> ProductionBatch:
        newest = sorted(self.rows, key=lambda row: row[1])[-limit:]
        columns: dict[str, list[object]] = {name: [] for name in PRODUCTION_COLUMNS}
        for key, at, prediction, target in newest:
            values = {
                **dict.fromkeys(schema.FEATURES),
                "key": key,
                "request_id": f"request-{key}",
                "row": 0,
                "captured_at": at.isoformat(),
                "model_version": "1",
                "prediction": prediction,
                "confidence": 0.9,
                "target": self.written.get(key, target),
            }
            for name in PRODUCTION_COLUMNS:
                columns[name].append(values[name])
        rows, skipped, examples = validate_rows(columns)
        return ProductionBatch(rows, skipped, examples, self.label)

    def write_labels(self, labels):
        new = {k: v for k, v in labels.items() if k not in self.written}
        self.written.update(new)
        return len(new)

    def apply_retention(self, retention: Retention, now: datetime) -> int:
        self.retained.append(retention)
        cutoff = retention.cutoff(now)
        before = len(self.rows)
        self.rows = [row for row in self.rows if cutoff is None or row[1] >= cutoff]
        return before - len(self.rows)

    def health(self) -> CaptureHealth:
        newest = max((row[1] for row in self.rows), default=None)
        return CaptureHealth(newest_at=newest, spilled_rows=0, total_rows=len(self.rows))


def _at(minutes: int) -> datetime:
    return NOW - timedelta(minutes=minutes)


@pytest.fixture
def sources() -> dict[str, MemorySource]:
    local = MemorySource(
        "local store", [("1", _at(50), "Adelie", None), ("2", _at(10), "Gentoo", None)]
    )
    remote = MemorySource("s3 capture", [("a:0", _at(30), "Chinstrap", "Chinstrap")])
    return {"local": local, "sagemaker": remote}


def test_rows_of_every_source_merge_oldest_first_each_tagged_with_its_source(sources):
    production = read_production(sources, rows=10, retention=Retention(), now=NOW)
    rows = production.rows
    assert rows["key"].tolist() == ["1", "a:0", "2"]
    assert rows[SOURCE_COLUMN].tolist() == ["local", "sagemaker", "local"]
    assert production.newest_at == _at(10)
    assert production.status == "3 rows"
    assert production.versions_seen() == {"1": 3}


def test_the_newest_rows_are_kept_over_all_sources(sources):
    rows = read_production(sources, rows=2, retention=Retention(), now=NOW).rows
    assert rows["key"].tolist() == ["a:0", "2"]


def test_retention_runs_first_on_every_source_and_is_counted(sources):
    retention = Retention(max_age_days=20 / (24 * 60))  # twenty minutes
    production = read_production(sources, rows=10, retention=retention, now=NOW)
    assert production.removed == {"local": 1, "sagemaker": 1}
    assert production.rows["key"].tolist() == ["2"]
    assert describe_retention(retention) == "keep at most 0.0138889 days"
    assert describe_retention(Retention(max_age_days=7, max_rows=100)) == (
        "keep at most 7 days and 100 rows"
    )
    assert describe_retention(Retention()) == "off"


def test_no_source_or_no_rows_is_no_production_data():
    production = read_production({}, rows=10, retention=Retention(), now=NOW)
    assert production.rows.empty and list(production.rows.columns) == [
        *PRODUCTION_COLUMNS,
        SOURCE_COLUMN,
    ]
    assert production.status == NO_PRODUCTION_DATA
    assert production.newest_at is None


def test_a_source_that_cannot_be_read_fails_the_read_naming_it(sources):
    def broken(limit: int) -> ProductionBatch:
        raise CaptureError("access denied")

    sources["sagemaker"].read_newest = broken
    with pytest.raises(CaptureReadError, match="could not read the s3 capture: access denied"):
        read_production(sources, rows=10, retention=Retention(), now=NOW)


def _always(species: str):
    def labeler(rows: pd.DataFrame) -> pd.Series:
        return pd.Series(species, index=rows.index, dtype=object)

    return labeler


def test_labels_go_back_to_the_source_of_their_row_once(sources):
    rows = read_production(sources, rows=10, retention=Retention(), now=NOW).rows
    labeled = label_rows(rows, _always("Gentoo"), sources)
    assert (labeled.written, labeled.already) == (2, 1)
    assert sources["local"].written == {"1": "Gentoo", "2": "Gentoo"}
    assert sources["sagemaker"].written == {}, "a row with a label keeps it"
    assert labeled.rows["target"].tolist() == ["Gentoo", "Chinstrap", "Gentoo"]
    assert labeled.status == "3 of 3 rows labeled"
    assert labeled.agreement == pytest.approx(2 / 3)

    again = read_production(sources, rows=10, retention=Retention(), now=NOW).rows
    assert label_rows(again, _always("Adelie"), sources).written == 0


def test_a_labeler_without_an_answer_labels_nothing(sources):
    rows = read_production(sources, rows=10, retention=Retention(), now=NOW).rows

    def nobody(frame: pd.DataFrame) -> pd.Series:
        return pd.Series(None, index=frame.index, dtype=object)

    labeled = label_rows(rows[rows["target"].isna()], nobody, sources)
    assert (labeled.written, labeled.status, labeled.agreement) == (0, NO_LABELED_DATA, None)


def test_each_report_has_a_file_named_by_its_time_and_run(tmp_path):
    path = report_path(tmp_path, "48ebf617-1234", NOW)
    assert path == tmp_path / "20261201T120000Z-48ebf617.html"


def test_labeled_production_rows_become_raw_penguins_in_capture_order():
    source = MemorySource(
        "local store",
        [("1", _at(50), "Adelie", "Adelie"), ("2", _at(40), "Gentoo", None),
         ("3", _at(10), "Gentoo", "Chinstrap")],
    )  # fmt: skip
    rows = read_production({"local": source}, rows=10, retention=Retention(), now=NOW).rows
    rows["island"] = ["Dream", "Biscoe", None]
    rows["body_mass_g"] = [3750.0, 5000.0, float("nan")]
    labels = production_labels(rows)
    assert list(labels.table.columns) == list(schema.REQUIRED_COLUMNS)
    assert labels.table["species"].tolist() == ["Adelie", "Chinstrap"], "labels, not predictions"
    assert labels.table["body_mass_g"].tolist() == ["3750", None]
    assert labels.table["island"].tolist() == ["Dream", None]
    assert labels.versions == {"1": 2}
    assert (labels.oldest, labels.newest) == (_at(50), _at(10))
    assert labels.describe().startswith("2 labeled production rows (version 1: 2), captured ")
    assert production_labels(rows).digest == labels.digest
    rows.loc[0, "body_mass_g"] = 3800.0
    assert production_labels(rows).digest != labels.digest


def test_no_labeled_row_adds_nothing(sources):
    rows = read_production(sources, rows=10, retention=Retention(), now=NOW).rows
    rows["target"] = None
    labels = production_labels(rows)
    assert labels.table.empty and labels.oldest is None
    assert labels.describe() == "no labeled production rows"
