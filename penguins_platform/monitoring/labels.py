"""Ground truth for captured predictions: where the true species of a scored penguin comes from.

Accuracy in production needs labels, and they arrive late and from elsewhere. A `Labeler` is
that elsewhere: it takes captured rows and answers a species per row, or None for rows it
cannot label yet. `csv_labels` reads real labels from a file keyed by request id.
`simulated_labels` stands in for them in demos and tests, as the reference program's
labeling step does: the prediction, or, with probability 1 - quality, another species.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd

from penguins_platform import defaults
from penguins_platform.ml.schema import SPECIES

REQUEST_ID_COLUMN = "request_id"
ROW_COLUMN = "row"
# `target` is the capture store's name for the same column, so an export of it reads back.
SPECIES_COLUMNS = ("species", "target")
_SHOWN = 5  # examples an error lists before "and N more"


class Labeler(Protocol):
    def __call__(self, rows: pd.DataFrame, /) -> pd.Series:
        """A species per row of `rows` (the production table), aligned on `rows.index`;
        None where this labeler has no label for the row."""
        ...


class LabelFileError(ValueError):
    """A label file cannot be used. The message names the file and what to fix in it."""


def simulated_labels(
    quality: float = defaults.GROUND_TRUTH_QUALITY, seed: int = defaults.SEED
) -> Labeler:
    """Labels that agree with the prediction with probability `quality`; the others are one of
    the two other species, chosen uniformly.

    Each row's label depends only on `seed` and the row's `key`, not on which other rows come
    with it, so labeling a row again (in a later batch, after a retry) gives the same label.
    """
    if not 0.0 <= quality <= 1.0:  # also refuses NaN
        raise ValueError(f"label quality must be between 0 and 1, got {quality!r}")

    def label(rows: pd.DataFrame) -> pd.Series:
        draws = _uniform_draws(seed, rows["key"])
        labels: list[str | None] = []
        for prediction, (keep, pick) in zip(rows["prediction"], draws, strict=True):
            if prediction not in SPECIES:
                labels.append(None)
            elif keep < quality:
                labels.append(prediction)
            else:
                others = [species for species in SPECIES if species != prediction]
                labels.append(others[int(pick * len(others))])
        return pd.Series(labels, index=rows.index, dtype=object, name="target")

    return label


def _uniform_draws(seed: int, keys: pd.Series) -> np.ndarray:
    """Two numbers in [0, 1) per key, from a hash of the seed and the key."""
    draws = np.empty((len(keys), 2))
    for i, key in enumerate(keys):
        digest = hashlib.blake2b(f"{seed}\0{key}".encode(), digest_size=16).digest()
        draws[i] = (int.from_bytes(digest[:8], "little"), int.from_bytes(digest[8:], "little"))
    return draws / 2.0**64


def csv_labels(path: str | Path) -> Labeler:
    """Labels from a CSV file with a header: `request_id`, `species` (or `target`), and
    optionally `row`.

    `request_id` is the id the endpoint answered with; `row` is the record's position in that
    request, from 0. Without a `row` column (or with an empty cell) a label is for row 0: the
    whole request when a request carries one penguin, as the sample request does. A label is
    never copied to the other rows of a request, because the penguins of one request are
    seldom of one species; label those rows with a `row` column. Species match in any case
    (`gentoo` is Gentoo). Labels for requests not captured (yet) are fine: they match nothing.

    The file is read here, once, so a bad file fails before any row is read.
    """
    labels = _read_label_file(Path(path))

    def label(rows: pd.DataFrame) -> pd.Series:
        keys = zip(rows["request_id"].astype(str), rows["row"].astype(int), strict=True)
        return pd.Series(
            [labels.get(key) for key in keys], index=rows.index, dtype=object, name="target"
        )

    return label


def _read_label_file(path: Path) -> dict[tuple[str, int], str]:
    """Species by (request id, row), from a label file; `LabelFileError` on any flaw."""
    expected = f"a header line {REQUEST_ID_COLUMN},species (optionally ,{ROW_COLUMN})"
    try:
        # Every cell as text, and no cell turned into NaN: a blank is checked below.
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except FileNotFoundError:
        raise LabelFileError(
            f"label file {path} does not exist; create it with {expected}"
        ) from None
    except pd.errors.EmptyDataError:
        raise LabelFileError(f"label file {path} is empty; write {expected}") from None
    except (OSError, UnicodeDecodeError, pd.errors.ParserError) as error:
        raise LabelFileError(f"label file {path} cannot be read as CSV: {error}") from None
    frame.columns = [str(column).strip().lower() for column in frame.columns]
    species_columns = [column for column in SPECIES_COLUMNS if column in frame.columns]
    missing = [] if species_columns else ["species"]
    if REQUEST_ID_COLUMN not in frame.columns:
        missing.insert(0, REQUEST_ID_COLUMN)
    if missing:
        raise LabelFileError(
            f"label file {path} has no {' and no '.join(map(repr, missing))} column; found "
            f"{', '.join(map(repr, frame.columns))}, expected {expected}"
        )
    if len(species_columns) > 1:
        raise LabelFileError(
            f"label file {path} has both a 'species' and a 'target' column; keep one"
        )

    lines = frame.index + 2  # the header is line 1
    request_ids = frame[REQUEST_ID_COLUMN].str.strip()
    _refuse(path, lines[request_ids == ""], "have no request_id")
    rows = (
        frame[ROW_COLUMN].str.strip().replace("", "0")
        if ROW_COLUMN in frame.columns
        else pd.Series("0", index=frame.index)
    )
    _refuse(path, lines[~rows.str.fullmatch(r"\d+")], "have a row that is not a whole number >= 0")
    canonical = {species.lower(): species for species in SPECIES}
    given = frame[species_columns[0]].str.strip()
    species = given.str.lower().map(canonical)
    unknown = given[species.isna()]
    if len(unknown):
        names = ", ".join(repr(name) for name in dict.fromkeys(unknown))
        raise LabelFileError(
            f"label file {path} has unknown species {names} (line(s) "
            f"{_some(lines[species.isna()])}); use one of {', '.join(SPECIES)}"
        )

    labels: dict[tuple[str, int], str] = {}
    first_line: dict[tuple[str, int], int] = {}
    for request_id, row, name, line in zip(
        request_ids, rows.astype(int), species, lines, strict=True
    ):
        key = (request_id, row)
        if labels.setdefault(key, name) != name:
            where = f"request {request_id!r}" + (
                f" row {row}" if ROW_COLUMN in frame.columns else ""
            )
            raise LabelFileError(
                f"label file {path} labels {where} as {labels[key]} (line {first_line[key]}) "
                f"and as {name} (line {line}); keep the right one"
            )
        first_line.setdefault(key, line)
    return labels


def _refuse(path: Path, lines: pd.Index, problem: str) -> None:
    if len(lines):
        raise LabelFileError(f"label file {path}: line(s) {_some(lines)} {problem}")


def _some(lines: pd.Index) -> str:
    shown = ", ".join(str(line) for line in lines[:_SHOWN])
    return shown + (f" and {len(lines) - _SHOWN} more" if len(lines) > _SHOWN else "")
