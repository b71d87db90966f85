"""Builders for the typed Dagster metadata that the assets show in the UI."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import dagster as dg

if TYPE_CHECKING:
    import pandas as pd


def _cell(value: Any) -> str | int | float | bool | None:
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
    rows: Sequence[Mapping[str, Any]], columns: Sequence[tuple[str, str]]
) -> dg.MetadataValue:
    """A small table from dicts; `columns` gives (name, type) in display order."""
    schema = dg.TableSchema(columns=[dg.TableColumn(name, kind) for name, kind in columns])
    records = [dg.TableRecord({name: _cell(row.get(name)) for name, _ in columns}) for row in rows]
    return dg.MetadataValue.table(records=records, schema=schema)


def column_schema(df: pd.DataFrame) -> dg.TableSchema:
    return dg.TableSchema(
        columns=[dg.TableColumn(str(name), str(dtype)) for name, dtype in df.dtypes.items()]
    )


def link(url: str | None, fallback: str) -> dg.MetadataValue:
    """A clickable URL when there is a UI to link to, else the identifier as text."""
    return dg.MetadataValue.url(url) if url else dg.MetadataValue.text(fallback)
