"""Builders for the typed Dagster metadata that the assets show in the UI."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import dagster as dg

if TYPE_CHECKING:
    import pandas as pd

# What a metadata dict may hold: typed values, or plain ones Dagster types itself.
Entry = dg.MetadataValue | str | int | float | bool | None


def _cell(value: object) -> str | int | float | bool | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, bool | int | float | str):
        return value
    import pandas as pd

    if pd.isna(value):
        return None
    return str(value)


def preview_table(df: pd.DataFrame, rows: int = 10) -> dg.MetadataValue:
    """The first `rows` rows as a table the UI renders with column types."""
    head = df.head(rows)
    schema = dg.TableSchema(
        columns=[dg.TableColumn(str(name), str(dtype)) for name, dtype in head.dtypes.items()]
    )
    records = [
        dg.TableRecord({str(k): _cell(v) for k, v in row.items()})
        for row in head.to_dict(orient="records")
    ]
    return dg.MetadataValue.table(records=records, schema=schema)


def key_value_table(
    rows: Sequence[Mapping[str, object]], columns: Sequence[tuple[str, str]]
) -> dg.MetadataValue:
    """A small table from dicts; `columns` gives (name, type) in display order."""
    schema = dg.TableSchema(columns=[dg.TableColumn(name, kind) for name, kind in columns])
    records = [dg.TableRecord({name: _cell(row.get(name)) for name, _ in columns}) for row in rows]
    return dg.MetadataValue.table(records=records, schema=schema)


def column_schema(df: pd.DataFrame) -> dg.TableSchema:
    return dg.TableSchema(
        columns=[dg.TableColumn(str(name), str(dtype)) for name, dtype in df.dtypes.items()]
    )
