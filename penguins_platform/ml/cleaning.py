"""Reading and cleaning the penguins table.

Cleaning only fixes representation (the `.` placeholder for sex, column types) and
shuffles. It drops no rows: missing values are the imputers' job, so every measured
penguin still teaches the model something.
"""

from __future__ import annotations

import io

import pandas as pd

from penguins_platform.ml import schema, validation


class DataValidationError(ValueError):
    """The data cannot be used as it is. The message names the file, column or row to fix."""


def read_penguins_csv(content: bytes, source: str) -> pd.DataFrame:
    """Parse one CSV file as text columns, so that cleaning, not the parser, decides types."""
    if not content.strip():
        raise DataValidationError(
            f"{source} is empty: expected a header row and one penguin per line "
            f"with columns {', '.join(schema.REQUIRED_COLUMNS)}"
        )
    frame = pd.read_csv(io.BytesIO(content), dtype=str, skipinitialspace=True)
    if frame.empty:
        raise DataValidationError(f"{source} has a header but no data rows")
    return frame


def clean_penguins(raw: pd.DataFrame, seed: int, source: str = "the raw table") -> pd.DataFrame:
    """Typed, shuffled penguins. Rows keep their raw row number as the index."""
    missing = validation.missing_columns(raw)
    if missing:
        raise DataValidationError(
            f"{source} lacks required column(s) {', '.join(map(repr, missing))}; "
            f"found {', '.join(map(repr, raw.columns))}"
        )
    non_numeric = validation.non_numeric_values(raw)
    if non_numeric:
        column, pairs = next(iter(non_numeric.items()))
        row, value = pairs[0]
        raise DataValidationError(
            f"column {column!r} of {source} holds text at row {row}: {value!r} "
            f"({len(pairs)} such value(s) in {column!r}); numeric columns must hold numbers"
        )

    cleaned = pd.DataFrame(index=raw.index)
    for column in schema.REQUIRED_COLUMNS:
        if column in schema.NUMERIC_FEATURES:
            cleaned[column] = pd.to_numeric(raw[column], errors="coerce").astype("float64")
        else:
            text = raw[column].astype("object").where(raw[column].notna(), None)
            cleaned[column] = text.map(lambda v: v.strip() if isinstance(v, str) else v)
    # The source marks an unknown sex with "."; it is a missing value, not a third sex.
    cleaned["sex"] = cleaned["sex"].replace({".": None, "": None})
    cleaned.index.name = "row"
    return cleaned.sample(frac=1.0, random_state=seed)
