"""Data-quality rules for penguins tables, as plain functions that return what is wrong.

pandas is imported inside the functions: the Dagster checks import this module when the
definitions load, which must stay cheap.

The Dagster checks show these findings in the UI, and the cleaning code raises on the ones
that make a table unusable. Row labels are the raw table's row numbers (0 = first data
line), so a finding points at the line to fix.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from penguins_platform.ml import schema

if TYPE_CHECKING:
    import pandas as pd

# A feature with more missing values than this is not worth imputing: it would teach the
# model the imputed mean rather than anything about penguins.
MAX_MISSING_SHARE = 0.2


def missing_columns(df: pd.DataFrame) -> list[str]:
    """Required columns that the table lacks, in schema order."""
    return [column for column in schema.REQUIRED_COLUMNS if column not in df.columns]


def non_numeric_values(df: pd.DataFrame) -> dict[str, list[tuple[int, str]]]:
    """For each numeric feature, the (row, value) pairs that hold something other than a number."""
    import pandas as pd

    found: dict[str, list[tuple[int, str]]] = {}
    for column in schema.NUMERIC_FEATURES:
        if column not in df.columns:
            continue
        values = df[column]
        parsed = pd.to_numeric(values, errors="coerce")
        bad = values.notna() & parsed.isna()
        if bad.any():
            found[column] = [(int(row), str(values[row])) for row in values.index[bad]]
    return found


def unknown_labels(df: pd.DataFrame, column: str, allowed: Iterable[str]) -> dict[str, list[int]]:
    """Labels in `column` outside `allowed`, each with its rows. Missing is not unknown."""
    values = df[column]
    bad = values.notna() & ~values.isin(list(allowed))
    found: dict[str, list[int]] = {}
    for row in values.index[bad]:
        found.setdefault(str(values[row]), []).append(int(row))
    return found


def implausible_values(df: pd.DataFrame) -> dict[str, list[tuple[int, float]]]:
    """For each numeric feature, the (row, value) pairs outside `schema.PLAUSIBLE_RANGES`."""
    import pandas as pd

    found: dict[str, list[tuple[int, float]]] = {}
    for column, (low, high) in schema.PLAUSIBLE_RANGES.items():
        values = pd.to_numeric(df[column], errors="coerce")
        bad = values.notna() & ((values < low) | (values > high))
        if bad.any():
            found[column] = [(int(row), float(values[row])) for row in values.index[bad]]
    return found


def missing_shares(df: pd.DataFrame) -> dict[str, float]:
    """The share of missing values in each required column."""
    if df.empty:
        return {column: 1.0 for column in schema.REQUIRED_COLUMNS}
    return {column: float(df[column].isna().mean()) for column in schema.REQUIRED_COLUMNS}


def describe_rows(rows: Sequence[int], limit: int = 5) -> str:
    """'rows 3, 9 and 2 more': enough to find the lines without flooding a message."""
    shown = ", ".join(str(row) for row in rows[:limit])
    more = len(rows) - limit
    noun = "row" if len(rows) == 1 else "rows"
    return f"{noun} {shown}" + (f" and {more} more" if more > 0 else "")
