"""The holdout: the cleaned rows that no registered version trains on, kept to compare them.

A row's side is a function of its values alone (a SHA-256 of the features and the species),
not of its position, the seed or the other rows. So the same penguin lands on the same side in
every run, a new data version only adds rows to each side, and any two versions can be scored
on the rows of the newer one's holdout without either having seen them. Identical rows share a
side, so a duplicate cannot leak a holdout row into training.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from penguins_platform import defaults
from penguins_platform.ml import schema

if TYPE_CHECKING:
    import pandas as pd

# Buckets of the hash: a share is honoured to 1 / BUCKETS.
BUCKETS = 10_000


@dataclass(frozen=True, eq=False)  # DataFrames have no truth value, so no generated __eq__
class Split:
    training: pd.DataFrame
    holdout: pd.DataFrame


def row_keys(frame: pd.DataFrame) -> list[str]:
    """One canonical text per row: the species and features, a missing value as empty."""

    def text(value: object) -> str:
        if value is None or value != value:  # None or NaN
            return ""
        return repr(float(value)) if isinstance(value, int | float) else str(value)

    columns = [frame[c].tolist() for c in schema.REQUIRED_COLUMNS]
    return ["\x1f".join(text(v) for v in values) for values in zip(*columns, strict=True)]


def holdout_mask(frame: pd.DataFrame, share: float) -> list[bool]:
    """Which rows of the cleaned `frame` are holdout rows, for a holdout of `share` (0 to 1)."""
    if not 0.0 <= share < 1.0:
        raise ValueError(f"the holdout share must be in [0, 1), got {share}")
    cut = round(share * BUCKETS)
    return [
        int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") % BUCKETS < cut
        for key in row_keys(frame)
    ]


def split(frame: pd.DataFrame, share: float = defaults.HOLDOUT_SHARE) -> Split:
    """The cleaned table's training rows and holdout rows, each in the table's order."""
    mask = holdout_mask(frame, share)
    holdout = frame[mask]
    training = frame[[not m for m in mask]]
    return Split(training=training, holdout=holdout)


def training_rows(frame: pd.DataFrame, share: float = defaults.HOLDOUT_SHARE) -> pd.DataFrame:
    """The rows of the cleaned `frame` that models train and are cross-validated on."""
    return split(frame, share).training
