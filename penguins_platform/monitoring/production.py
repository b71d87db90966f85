"""What production saw: the newest captured rows of every target, in one table, and their labels.

Each deployment target that captures its traffic is a `CaptureSource` (the local endpoint's
store, SageMaker's data capture). Monitoring reads the newest rows of each, merges them by
time and tags every row with the source it came from, so that a label goes back where its
row lives. Retention, when one is set, is applied first and counted, so no row disappears
unseen. A source that cannot be read fails the whole read, naming the source: a monitoring
run on part of production would report on the wrong traffic.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from penguins_platform.capture.contract import (
    PRODUCTION_COLUMNS,
    CaptureHealth,
    CaptureSource,
    ProductionBatch,
    Retention,
)

if TYPE_CHECKING:
    import pandas as pd

    from penguins_platform.monitoring.labels import Labeler

# Which source a production row came from, so its label goes back to the same place.
SOURCE_COLUMN = "source"
NO_PRODUCTION_DATA = (
    "no production data: no endpoint has captured a request yet; send some with "
    "`make traffic`, then materialize again"
)
NO_LABELED_DATA = "no labeled data: no captured row has a ground-truth label yet"


class CaptureReadError(RuntimeError):
    """A capture source could not be read; nothing was labeled or changed. Names the source."""


@dataclass(frozen=True, eq=False)  # a DataFrame has no truth value, so no generated __eq__
class ProductionData:
    """The newest rows of every source, and what reading them found on the way."""

    rows: pd.DataFrame  # PRODUCTION_COLUMNS and SOURCE_COLUMN, oldest first
    skipped: int  # corrupt rows left out, over every source
    skipped_examples: list[str]  # why, one line each
    removed: dict[str, int]  # rows the retention removed, by source
    health: dict[str, CaptureHealth]  # by source

    @property
    def newest_at(self) -> datetime | None:
        """When the newest row of any source was captured; None when none ever was."""
        stamps = [h.newest_at for h in self.health.values() if h.newest_at is not None]
        return max(stamps, default=None)

    @property
    def status(self) -> str:
        return NO_PRODUCTION_DATA if self.rows.empty else f"{len(self.rows)} rows"

    def versions_seen(self) -> dict[str, int]:
        """Rows per model version that answered them."""
        return answered_by_versions(self.rows)


def answered_by_versions(rows: pd.DataFrame) -> dict[str, int]:
    """How many of `rows` each model version answered, oldest version first (a version that
    is not a number, such as "unknown", before them)."""
    counts = rows["model_version"].astype(str).value_counts()
    order = sorted(counts.index, key=lambda v: (int(v), "") if v.isdigit() else (0, v))
    return {str(version): int(counts[version]) for version in order}


def accuracy_by_version(rows: pd.DataFrame) -> dict[str, float | None]:
    """Accuracy on each version's labeled rows, in the order of `answered_by_versions`; None
    for a version with no labeled row yet."""
    labeled = rows[rows["target"].notna()]
    versions = labeled["model_version"].astype(str)
    found: dict[str, float | None] = {}
    for version in answered_by_versions(rows):
        own = labeled[versions == version]
        found[version] = (
            round(float((own["target"] == own["prediction"]).mean()), 4) if len(own) else None
        )
    return found


def read_production(
    sources: Mapping[str, CaptureSource], rows: int, retention: Retention, now: datetime
) -> ProductionData:
    """The newest `rows` rows over `sources`, after applying `retention` to each."""
    removed: dict[str, int] = {}
    batches: dict[str, ProductionBatch] = {}
    health: dict[str, CaptureHealth] = {}
    for name, source in sources.items():
        try:
            if retention.enabled:
                removed[name] = source.apply_retention(retention, now)
            batches[name] = source.read_newest(rows)
            health[name] = source.health()
        except Exception as error:
            raise CaptureReadError(f"could not read the {source.label}: {error}") from error
    return ProductionData(
        rows=newest_rows(batches, rows),
        skipped=sum(batch.skipped for batch in batches.values()),
        skipped_examples=[e for batch in batches.values() for e in batch.skipped_examples],
        removed=removed,
        health=health,
    )


def newest_rows(batches: Mapping[str, ProductionBatch], rows: int) -> pd.DataFrame:
    """The newest `rows` rows over all sources, oldest first, each tagged with its source."""
    import pandas as pd

    frames = [batch.rows.assign(**{SOURCE_COLUMN: name}) for name, batch in batches.items()]
    frames = [frame for frame in frames if len(frame)]
    if not frames:
        return pd.DataFrame(columns=[*PRODUCTION_COLUMNS, SOURCE_COLUMN])
    combined = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    combined = combined.sort_values("captured_at", kind="stable").tail(rows)
    return combined.reset_index(drop=True)


def describe_retention(retention: Retention) -> str:
    """The retention in words, as the metadata and the log show it."""
    parts = []
    if retention.max_age_days is not None:
        parts.append(f"{retention.max_age_days:g} days")
    if retention.max_rows is not None:
        parts.append(f"{retention.max_rows} rows")
    return "keep at most " + " and ".join(parts) if parts else "off"


@dataclass(frozen=True, eq=False)
class LabeledRows:
    """The production rows with every label known now, and how many were written this time."""

    rows: pd.DataFrame  # as read, with `target` filled where a label is known
    written: int  # labels written back to their sources now
    already: int  # rows that had a label before

    @property
    def labeled(self) -> pd.DataFrame:
        return self.rows[self.rows["target"].notna()]

    @property
    def status(self) -> str:
        if self.rows.empty:
            return NO_PRODUCTION_DATA
        if self.labeled.empty:
            return NO_LABELED_DATA
        return f"{len(self.labeled)} of {len(self.rows)} rows labeled"

    @property
    def agreement(self) -> float | None:
        """The share of labeled rows whose label is the prediction; None without labels."""
        labeled = self.labeled
        if labeled.empty:
            return None
        return float((labeled["target"] == labeled["prediction"]).mean())


def label_rows(
    rows: pd.DataFrame, labeler: Labeler, sources: Mapping[str, CaptureSource]
) -> LabeledRows:
    """Label the rows that have no label yet, and write each label back to the source its row
    came from (`SOURCE_COLUMN`), so that a label is given once and kept."""
    rows = rows.copy()
    unlabeled = rows[rows["target"].isna()]
    written = 0
    if len(unlabeled):
        labels = labeler(unlabeled).dropna()
        for name, keys in unlabeled.loc[labels.index].groupby(SOURCE_COLUMN)["key"]:
            written += sources[name].write_labels(
                dict(zip(keys, labels.loc[keys.index], strict=True))
            )
        rows.loc[labels.index, "target"] = labels
    return LabeledRows(rows, written, already=len(rows) - len(unlabeled))


def report_path(report_dir: Path, run_id: str, now: datetime) -> Path:
    """Where the report of the monitoring run `run_id` goes: one file a run, named so that
    the folder lists them in time order."""
    return report_dir / f"{now:%Y%m%dT%H%M%SZ}-{run_id[:8]}.html"


@dataclass(frozen=True, eq=False)  # a DataFrame has no truth value, so no generated __eq__
class ProductionLabels:
    """Labeled production rows as rows of the raw penguins table, for training."""

    table: pd.DataFrame  # the raw table's required columns, as text, like a CSV read
    digest: str  # SHA-256 of the table's CSV form: part of the training data's version
    versions: dict[str, int]  # rows per model version that answered them
    oldest: datetime | None  # when the oldest added row was captured
    newest: datetime | None

    def describe(self) -> str:
        if self.table.empty:
            return "no labeled production rows"
        answered = ", ".join(f"version {v}: {n}" for v, n in self.versions.items())
        return (
            f"{len(self.table)} labeled production rows ({answered}), captured "
            f"{self.oldest:%Y-%m-%d %H:%M} to {self.newest:%Y-%m-%d %H:%M} UTC"
        )


def production_labels(rows: pd.DataFrame) -> ProductionLabels:
    """The labeled rows of the production table `rows`, as raw penguins: the label is the
    species, each feature is text as a CSV would hold it (a missing value is empty), in
    capture order. The cleaning and the data checks then treat them as any other row."""
    import hashlib

    import pandas as pd

    from penguins_platform.ml import schema

    labeled = rows[rows["target"].notna()].sort_values("captured_at", kind="stable")

    def text(value: object) -> str:
        if value is None or (isinstance(value, float) and value != value):
            return ""
        return f"{value:g}" if isinstance(value, float) else str(value)

    table = pd.DataFrame(
        {
            schema.TARGET: [text(v) for v in labeled["target"]],
            **{column: [text(v) for v in labeled[column]] for column in schema.FEATURES},
        },
        columns=list(schema.REQUIRED_COLUMNS),
        dtype=object,
    )
    table = table.replace({"": None})
    digest = hashlib.sha256(table.to_csv(index=False).encode()).hexdigest()
    stamps = labeled["captured_at"]
    return ProductionLabels(
        table=table.reset_index(drop=True),
        digest=digest,
        versions=answered_by_versions(labeled),
        oldest=stamps.iloc[0].to_pydatetime(warn=False) if len(stamps) else None,
        newest=stamps.iloc[-1].to_pydatetime(warn=False) if len(stamps) else None,
    )
