"""The holdout is a function of a row's values: stable across seeds, shuffles and new rows."""

import pandas as pd
import pytest

from penguins_platform import defaults
from penguins_platform.ml import holdout
from penguins_platform.ml.cleaning import clean_penguins
from penguins_platform_tests.conftest import DATA_FILE


@pytest.fixture(scope="module")
def cleaned() -> pd.DataFrame:
    return clean_penguins(pd.read_csv(DATA_FILE, dtype=str), seed=defaults.SEED)


def test_about_the_share_of_rows_is_held_out_and_the_sides_partition_the_table(cleaned):
    split = holdout.split(cleaned)
    assert len(split.holdout) == 74 and len(split.training) == 270
    assert abs(len(split.holdout) / len(cleaned) - defaults.HOLDOUT_SHARE) < 0.03
    assert not set(split.holdout.index) & set(split.training.index)
    assert set(split.holdout["species"]) == {"Adelie", "Chinstrap", "Gentoo"}


def test_a_rows_side_does_not_depend_on_the_shuffle_or_on_other_rows(cleaned):
    reshuffled = clean_penguins(pd.read_csv(DATA_FILE, dtype=str), seed=7)
    assert set(holdout.split(reshuffled).holdout.index) == set(holdout.split(cleaned).holdout.index)
    more = pd.concat([cleaned, cleaned.head(30).assign(body_mass_g=9999.0)], ignore_index=False)
    assert set(holdout.split(cleaned).holdout.index) <= set(holdout.split(more).holdout.index)


def test_identical_rows_share_a_side(cleaned):
    doubled = pd.concat([cleaned, cleaned], ignore_index=True)
    mask = holdout.holdout_mask(doubled, defaults.HOLDOUT_SHARE)
    assert mask[: len(cleaned)] == mask[len(cleaned) :]


def test_a_share_outside_zero_to_one_is_refused(cleaned):
    with pytest.raises(ValueError, match="holdout share"):
        holdout.split(cleaned, 1.0)
    assert holdout.split(cleaned, 0.0).holdout.empty
