import pytest

from penguins_platform.ml import schema
from penguins_platform.ml.cleaning import DataValidationError, clean_penguins, read_penguins_csv


def test_reading_keeps_every_row_as_text(raw):
    assert len(raw) == 344
    assert list(raw.columns) == list(schema.REQUIRED_COLUMNS)
    assert raw["body_mass_g"].iloc[0] == "3750"


def test_empty_file_names_the_source():
    with pytest.raises(DataValidationError, match=r"data/x\.csv is empty"):
        read_penguins_csv(b"  \n", "data/x.csv")


def test_header_only_file_names_the_source():
    header = ",".join(schema.REQUIRED_COLUMNS).encode()
    with pytest.raises(DataValidationError, match=r"data/x\.csv has a header but no data rows"):
        read_penguins_csv(header + b"\n", "data/x.csv")


def test_cleaning_types_columns_and_drops_nothing(raw):
    cleaned = clean_penguins(raw, seed=42)
    assert len(cleaned) == len(raw)
    for column in schema.NUMERIC_FEATURES:
        assert cleaned[column].dtype == "float64"
    assert cleaned["body_mass_g"].isna().sum() == 2


def test_dot_sex_becomes_missing(raw):
    assert (raw["sex"] == ".").sum() == 1
    cleaned = clean_penguins(raw, seed=42)
    assert set(cleaned["sex"].dropna()) == {"MALE", "FEMALE"}
    assert cleaned["sex"].isna().sum() == raw["sex"].isna().sum() + 1


def test_shuffle_is_seeded_and_keeps_raw_row_numbers(raw):
    first, again, other = (clean_penguins(raw, seed=s) for s in (42, 42, 7))
    assert list(first.index) == list(again.index)
    assert list(first.index) != list(other.index)
    assert list(first.index) != list(range(len(raw)))
    assert sorted(first.index) == list(range(len(raw)))
    assert first.loc[0, "body_mass_g"] == 3750.0


def test_missing_column_is_named(raw):
    with pytest.raises(DataValidationError, match=r"lacks required column.*'flipper_length_mm'"):
        clean_penguins(raw.drop(columns=["flipper_length_mm"]), seed=42)


def test_text_in_numeric_column_names_column_row_and_value(raw):
    raw.loc[12, "body_mass_g"] = "heavy"
    with pytest.raises(DataValidationError, match=r"'body_mass_g'.*row 12: 'heavy'"):
        clean_penguins(raw, seed=42)
