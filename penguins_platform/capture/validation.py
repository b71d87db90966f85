"""The production table from what a store held: typed columns, and corrupt rows skipped.

Stores hold whatever was written (SQLite's type affinity lets text into a REAL column), so
`validate_rows` skips and counts corrupt rows instead of failing on them: one bad row must not
stop a monitoring run.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from penguins_platform.capture.contract import (
    MAX_SKIPPED_EXAMPLES,
    PRODUCTION_COLUMNS,
    UNKNOWN_VERSION,
)
from penguins_platform.ml import schema


def _objects(values: Iterable[object]) -> np.ndarray:
    return np.fromiter(values, dtype=object)


def _strings(values: np.ndarray) -> np.ndarray:
    return _objects(v if type(v) is str else str(v) for v in values)


def _text(values: np.ndarray) -> np.ndarray:
    """Text or None: a categorical column once numbers and NaN are normalised."""
    return _objects(
        None if v is None or (type(v) is float and math.isnan(v)) else v if type(v) is str
        else str(v) for v in values
    )  # fmt: skip


def _numbers(values: np.ndarray) -> np.ndarray:
    """Floats, NaN where a value is missing or not a number."""
    try:
        return values.astype(np.float64)  # None -> NaN; the common case, a few times faster
    except (TypeError, ValueError):
        return np.asarray(pd.to_numeric(values, errors="coerce"), dtype=np.float64)


# datetime64[ns] spans 1677-2262; a stamp outside it is garbage, not a reason to fail.
_TIME_BOUNDS = (pd.Timestamp.min.value // 1000 + 1, pd.Timestamp.max.value // 1000 - 1)


def _parse_time(value: object) -> float:
    if not isinstance(value, str):
        return math.nan
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return math.nan
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _times(values: np.ndarray) -> pd.DatetimeIndex:
    """ISO-8601 text to UTC times, NaT where it does not parse. `datetime.fromisoformat` in a
    loop is ten times faster than pandas' ISO-8601 parser on 50,000 stamps."""
    micros = np.round(np.fromiter(map(_parse_time, values), np.float64, len(values)) * 1e6)
    valid = (micros >= _TIME_BOUNDS[0]) & (micros <= _TIME_BOUNDS[1])  # False for NaN
    nanos = np.where(valid, micros * 1000, 0).astype(np.int64)
    nanos[~valid] = np.iinfo(np.int64).min  # NaT
    return pd.DatetimeIndex(nanos.view("datetime64[ns]")).tz_localize(UTC)


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def validate_rows(
    frame: pd.DataFrame | Mapping[str, Sequence[object]], *, noun: str = "key"
) -> tuple[pd.DataFrame, int, list[str]]:
    """The production table from raw rows, the number of corrupt rows skipped, and why.

    `frame` has PRODUCTION_COLUMNS, values as the source stored them: a DataFrame, or columns
    of equal length (a source passes what it fetched, with no typed frame in between). A row
    is corrupt when a numeric feature or the confidence is not a finite number, captured_at is
    not an ISO-8601 time, the prediction or a present target is not a species, or row is not
    an integer. Missing features are legitimate (the model imputes them) and stay None / NaN.
    Whole columns at a time: about 5 µs a row (0.26 s for 50,000). `noun` names the key in the
    reasons: "row id 17: body_mass_g is 'heavy', not a finite number".
    """
    raw = {name: _objects(frame[name]) for name in PRODUCTION_COLUMNS}
    typed: dict[str, np.ndarray | pd.DatetimeIndex] = {
        name: raw[name] for name in PRODUCTION_COLUMNS
    }
    checks: list[tuple[str, np.ndarray, str]] = []

    row = _numbers(raw["row"])
    checks.append(("row", ~(np.isfinite(row) & (np.round(row) == row)), "not a row number"))
    typed["captured_at"] = captured_at = _times(raw["captured_at"])
    checks.append(("captured_at", np.asarray(captured_at.isna()), "not an ISO-8601 time"))
    for name in schema.NUMERIC_FEATURES:
        typed[name] = number = _numbers(raw[name])
        checks.append((name, pd.notna(raw[name]) & ~np.isfinite(number), "not a finite number"))
    for name in schema.CATEGORICAL_FEATURES:
        typed[name] = _text(raw[name])
    species = pd.Index(schema.SPECIES)
    checks.append(("prediction", species.get_indexer(raw["prediction"]) < 0, "not a species"))
    typed["confidence"] = confidence = _numbers(raw["confidence"])
    checks.append(("confidence", ~((confidence >= 0) & (confidence <= 1)), "not a probability"))
    typed["target"] = target = _text(raw["target"])
    checks.append(("target", pd.notna(target) & (species.get_indexer(target) < 0), "not a species"))

    bad = np.zeros(len(raw["key"]), dtype=bool)
    for _, mask, _ in checks:
        bad |= mask
    examples = []
    for i in np.flatnonzero(bad)[:MAX_SKIPPED_EXAMPLES]:
        column, _, expected = next(check for check in checks if check[1][i])
        examples.append(f"{noun} {raw['key'][i]}: {column} is {_short(raw[column][i])}, {expected}")

    keep = ~bad
    version = raw["model_version"]
    typed["model_version"] = np.where(pd.isna(version), UNKNOWN_VERSION, version)
    for name in ("key", "request_id", "model_version"):
        typed[name] = _strings(typed[name])
    typed["row"] = np.where(keep, row, 0).astype(np.int64)
    columns = {name: values[keep] for name, values in typed.items()}
    return pd.DataFrame(columns, columns=list(PRODUCTION_COLUMNS)), int(bad.sum()), examples
