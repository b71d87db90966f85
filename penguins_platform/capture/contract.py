"""The capture contract: what an endpoint records of each prediction, and the one table shape
that every capture source reads it back as.

The endpoint writes captured predictions (`serving/capture.py`); deployment targets say where
theirs are (`deploy/`); monitoring reads them back, labels them and trims them, through
`CaptureSource` (`monitoring/`). Those three agree through this module and never import each
other for it. Monitoring must not care whether rows came from the local endpoint's SQLite
store or from SageMaker data capture, so every source answers the same `ProductionBatch`.
Every source makes its table with `validation.validate_rows`.

No pandas or numpy here: the endpoint's process writes captured rows with these names and
stays small.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from penguins_platform.ml import schema

if TYPE_CHECKING:
    import pandas as pd

# One captured prediction, as an endpoint records it: the request it came in, its position
# there, when, which version answered, the six inputs, the answer, what the answer flagged and
# which fields it ignored, and the true species once a label arrives.
CAPTURED_COLUMNS = (
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
# One captured prediction's values, in the order of CAPTURED_COLUMNS.
CapturedRow = tuple[object, ...]

# The production table that every source reads back: `key`, which addresses the row in its
# source, so that its label goes back there, and the captured columns monitoring uses.
PRODUCTION_COLUMNS = (
    "key",
    *(name for name in CAPTURED_COLUMNS if name not in ("flags", "ignored_fields")),
)
UNKNOWN_VERSION = "unknown"
MAX_SKIPPED_EXAMPLES = 5


class CaptureError(RuntimeError):
    """A capture source that cannot be read or written: the message names it and the cause."""


@dataclass(frozen=True, eq=False)  # a DataFrame has no truth value, so no generated __eq__
class ProductionBatch:
    """Production rows, oldest first, and what was skipped on the way."""

    rows: pd.DataFrame  # PRODUCTION_COLUMNS, typed as `validate_rows` returns them
    skipped: int  # corrupt rows left out
    skipped_examples: list[str]  # up to MAX_SKIPPED_EXAMPLES one-line reasons
    source: str  # what was read, for messages: "capture store /x/capture.db"

    @classmethod
    def empty(cls, source: str) -> ProductionBatch:
        from penguins_platform.capture.validation import validate_rows

        rows, _, _ = validate_rows({name: () for name in PRODUCTION_COLUMNS})
        return cls(rows, 0, [], source)


@dataclass(frozen=True)
class Retention:
    """How long captured rows are kept: by age, by count, or both (both None: forever)."""

    max_age_days: float | None = None
    max_rows: int | None = None

    def __post_init__(self) -> None:
        # Zero would delete every captured row at each evaluation: surely not what was meant.
        if self.max_age_days is not None and not self.max_age_days > 0:
            raise ValueError(
                f"a retention of {self.max_age_days} days would delete every row; give more "
                "than 0 days, or leave it unset to keep every row"
            )
        if self.max_rows is not None and self.max_rows < 1:
            raise ValueError(
                f"a retention of {self.max_rows} rows would delete every row; keep at least "
                "1 row, or leave it unset to keep every row"
            )

    @property
    def enabled(self) -> bool:
        return self.max_age_days is not None or self.max_rows is not None

    def cutoff(self, now: datetime) -> datetime | None:
        """Rows captured before this are too old; None when age is not bounded."""
        if now.tzinfo is None:
            raise ValueError(f"now must be timezone-aware (e.g. datetime.now(UTC)), got {now}")
        if self.max_age_days is None:
            return None
        return now - timedelta(days=self.max_age_days)


@dataclass(frozen=True)
class CaptureHealth:
    """Whether capture is flowing, cheap enough to ask on every monitoring run."""

    newest_at: datetime | None  # newest captured row, None when nothing is captured
    spilled_rows: int  # rows the writer could not store and put in its spill file
    total_rows: int | None = None  # rows held, None when the source cannot count cheaply


class CaptureSource(Protocol):
    """Where production rows are read from, labeled and trimmed."""

    @property
    def label(self) -> str: ...

    def read_newest(self, limit: int) -> ProductionBatch:
        """The newest `limit` rows, oldest first; corrupt rows skipped and counted."""
        ...

    def write_labels(self, labels: Mapping[str, str]) -> int:
        """Write species by row key where no label is stored yet; return rows written.
        Labeling twice changes nothing (second call returns 0)."""
        ...

    def apply_retention(self, retention: Retention, now: datetime) -> int:
        """Remove rows older than max_age_days, then all but the newest max_rows; return removed."""
        ...

    def health(self) -> CaptureHealth: ...


def check_species(labels: Mapping[str, str]) -> None:
    """Refuse a labels mapping with a value that is not a species, before anything is written."""
    unknown = sorted({str(v) for v in labels.values() if v not in schema.SPECIES})
    if unknown:
        raise ValueError(
            f"labels hold {', '.join(map(repr, unknown))}, not a species; "
            f"use one of {', '.join(schema.SPECIES)}"
        )
