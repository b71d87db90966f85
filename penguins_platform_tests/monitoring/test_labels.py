"""Labelers: simulated ground truth of a chosen quality, and real labels from a CSV file."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from penguins_platform.ml.schema import SPECIES
from penguins_platform.monitoring.labels import LabelFileError, csv_labels, simulated_labels


def production_rows(count: int, requests: list[str] | None = None) -> pd.DataFrame:
    """Captured rows as monitoring reads them (the columns a labeler uses), unlabeled.

    With `requests`, row i belongs to request `requests[i]`, at its position in it.
    """
    requests = requests or [f"req-{i}" for i in range(count)]
    rows = pd.Series(requests).groupby(requests).cumcount().to_list()
    return pd.DataFrame(
        {
            "key": [str(i + 1) for i in range(count)],
            "request_id": requests,
            "row": rows,
            "prediction": [SPECIES[i % len(SPECIES)] for i in range(count)],
            "target": [None] * count,
        },
        # Not 0..n-1, so a labeler that ignores the index shows.
        index=np.arange(100, 100 + count),
    )


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "labels.csv"
    path.write_text(text)
    return path


def test_quality_one_labels_every_row_with_its_prediction():
    rows = production_rows(300)
    labels = simulated_labels(quality=1.0)(rows)
    assert labels.index.equals(rows.index)
    assert (labels == rows["prediction"]).all()


def test_quality_zero_labels_every_row_with_another_valid_species():
    rows = production_rows(300)
    labels = simulated_labels(quality=0.0)(rows)
    assert labels.isin(SPECIES).all()
    assert not (labels == rows["prediction"]).any()
    assert set(labels) == set(SPECIES), "the other species are both drawn"


def test_quality_is_the_share_of_labels_that_agree_with_the_prediction():
    rows = production_rows(2000)
    agreement = (simulated_labels(quality=0.8, seed=7)(rows) == rows["prediction"]).mean()
    assert agreement == pytest.approx(0.8, abs=0.03)


def test_a_row_gets_the_same_label_whatever_rows_come_with_it():
    rows = production_rows(500)
    labeler = simulated_labels(quality=0.5, seed=3)
    whole = labeler(rows)
    assert whole.equals(simulated_labels(quality=0.5, seed=3)(rows)), "same seed, same labels"
    later = rows.iloc[::7]
    assert labeler(later).equals(whole.loc[later.index])
    other_seed = simulated_labels(quality=0.5, seed=4)(rows)
    assert (other_seed != whole).any()


@pytest.mark.parametrize("quality", [-0.1, 1.5, float("nan")])
def test_a_quality_outside_zero_to_one_is_refused(quality):
    with pytest.raises(ValueError, match="between 0 and 1"):
        simulated_labels(quality=quality)


def test_csv_labels_join_on_request_id_and_row(tmp_path):
    rows = production_rows(5, ["a", "a", "a", "b", "c"])
    path = write(
        tmp_path,
        "request_id,row,species\n"
        "a,0,Adelie\n"
        "a,2,Gentoo\n"
        "b,0,chinstrap\n"  # species match in any case
        "never-captured,0,Adelie\n",
    )
    labels = csv_labels(path)(rows)
    assert labels.index.equals(rows.index)
    assert labels.to_list() == ["Adelie", None, "Gentoo", "Chinstrap", None]


def test_csv_labels_without_a_row_column_label_row_zero_only(tmp_path):
    rows = production_rows(4, ["single", "batch", "batch", "other"])
    path = write(tmp_path, "request_id,target,note\nsingle,Gentoo,x\nbatch,Adelie,y\n")
    labels = csv_labels(path)(rows)
    assert labels.to_list() == ["Gentoo", "Adelie", None, None]


def test_a_repeated_label_that_agrees_is_kept_once(tmp_path):
    path = write(tmp_path, "request_id,species\na,Adelie\na,Adelie\n")
    assert csv_labels(path)(production_rows(1, ["a"])).to_list() == ["Adelie"]


LABEL_FILE_ERRORS = {
    "missing file": (None, "does not exist; create it with a header line request_id,species"),
    "empty file": ("", "is empty"),
    "no request_id": ("id,species\na,Adelie\n", "has no 'request_id' column; found 'id'"),
    "no species": ("request_id,label\na,Adelie\n", "has no 'species' column"),
    "unknown species": (
        "request_id,species\na,Adelie\nb,Emperor\nc,\n",
        "unknown species 'Emperor', '' (line(s) 3, 4); use one of Adelie, Chinstrap, Gentoo",
    ),
    "row not a number": ("request_id,row,species\na,first,Adelie\n", "line(s) 2 have a row"),
    "conflict": (
        "request_id,row,species\nr-9,1,Adelie\nr-9,0,Gentoo\nr-9,1,Gentoo\n",
        "labels request 'r-9' row 1 as Adelie (line 2) and as Gentoo (line 4)",
    ),
}


@pytest.mark.parametrize("content,fragment", LABEL_FILE_ERRORS.values(), ids=LABEL_FILE_ERRORS)
def test_a_bad_label_file_is_refused_naming_the_file_and_the_fix(tmp_path, content, fragment):
    path = tmp_path / "labels.csv" if content is None else write(tmp_path, content)
    with pytest.raises(LabelFileError) as raised:
        csv_labels(path)
    assert str(path) in str(raised.value)
    assert fragment in str(raised.value)
    assert isinstance(raised.value, ValueError)
