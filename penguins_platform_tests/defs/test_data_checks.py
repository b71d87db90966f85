"""Each data check, invoked directly, on clean data and on the fault it guards against."""

import numpy as np
import pytest

from penguins_platform.definitions import defs
from penguins_platform.defs.data import (
    categories_are_known,
    measurements_are_numeric,
    measurements_are_plausible,
    missing_values_are_bounded,
    required_columns,
    species_are_known,
)


def test_every_data_check_blocks_downstream():
    specs = {
        spec.key.name: spec for checks in defs.asset_checks or [] for spec in checks.check_specs
    }
    for name in (
        "required_columns",
        "measurements_are_numeric",
        "species_are_known",
        "categories_are_known",
        "measurements_are_plausible",
        "missing_values_are_bounded",
        "accuracy_threshold",
    ):
        assert specs[name].blocking, f"{name} must be blocking"


@pytest.mark.parametrize(
    "check",
    [required_columns, measurements_are_numeric],
    ids=["required_columns", "measurements_are_numeric"],
)
def test_raw_checks_pass_on_real_data(check, raw):
    assert check(raw).passed


@pytest.mark.parametrize(
    "check",
    [
        species_are_known,
        categories_are_known,
        measurements_are_plausible,
        missing_values_are_bounded,
    ],
    ids=["species", "categories", "plausible", "missing"],
)
def test_cleaned_checks_pass_on_real_data(check, cleaned):
    assert check(cleaned).passed


def test_required_columns_fails_naming_the_missing_column(raw):
    result = required_columns(raw.drop(columns=["culmen_depth_mm"]))
    assert not result.passed
    assert "'culmen_depth_mm'" in (result.description or "")


def test_measurements_are_numeric_fails_naming_column_row_and_value(raw):
    raw.loc[17, "flipper_length_mm"] = "long"
    result = measurements_are_numeric(raw)
    assert not result.passed
    assert "'flipper_length_mm' holds text at row 17: 'long'" in (result.description or "")


def test_species_are_known_fails_on_an_unknown_label(cleaned):
    cleaned.loc[3, "species"] = "Emperor"
    result = species_are_known(cleaned)
    assert not result.passed
    assert "unknown label 'Emperor' at row 3" in (result.description or "")


def test_species_are_known_fails_on_a_missing_label(cleaned):
    cleaned.loc[8, "species"] = None
    result = species_are_known(cleaned)
    assert not result.passed
    assert "'<missing>' at row 8" in (result.description or "")


def test_categories_are_known_fails_on_a_new_island(cleaned):
    cleaned.loc[[2, 4], "island"] = "Atlantis"
    result = categories_are_known(cleaned)
    assert not result.passed
    assert "'island' holds unknown label 'Atlantis'" in (result.description or "")


def test_measurements_are_plausible_fails_on_a_unit_error(cleaned):
    cleaned.loc[11, "body_mass_g"] = 4.2
    result = measurements_are_plausible(cleaned)
    assert not result.passed
    assert "'body_mass_g'" in (result.description or "")
    assert "row 11: 4.2" in (result.description or "")


def test_missing_values_are_bounded_fails_on_an_empty_column(cleaned):
    cleaned["culmen_length_mm"] = np.nan
    result = missing_values_are_bounded(cleaned)
    assert not result.passed
    assert "'culmen_length_mm' is 100% missing" in (result.description or "")


def test_the_checks_of_one_asset_run_in_one_step():
    """Six checks, each its own in the UI, in two steps: one per checked table."""
    steps = {
        checks.node_def.name: sorted(spec.key.to_user_string() for spec in checks.check_specs)
        for checks in defs.asset_checks or []
    }
    assert steps["raw_penguins_checks"] == [
        "raw_penguins:measurements_are_numeric",
        "raw_penguins:required_columns",
    ]
    assert steps["penguins_checks"] == [
        "penguins:categories_are_known",
        "penguins:measurements_are_plausible",
        "penguins:missing_values_are_bounded",
        "penguins:species_are_known",
    ]
