import numpy as np

from penguins_platform.ml import validation


def test_real_data_has_no_findings(raw, cleaned):
    assert validation.missing_columns(raw) == []
    assert validation.non_numeric_values(raw) == {}
    assert validation.unknown_labels(cleaned, "species", ["Adelie", "Chinstrap", "Gentoo"]) == {}
    assert validation.implausible_values(cleaned) == {}
    assert max(validation.missing_shares(cleaned).values()) < validation.MAX_MISSING_SHARE


def test_missing_columns_are_listed_in_schema_order(raw):
    assert validation.missing_columns(raw.drop(columns=["sex", "island"])) == ["island", "sex"]


def test_non_numeric_values_report_row_and_value(raw):
    raw.loc[3, "culmen_depth_mm"] = "n/a?"
    assert validation.non_numeric_values(raw) == {"culmen_depth_mm": [(3, "n/a?")]}


def test_unknown_labels_group_rows_by_label(cleaned):
    cleaned.loc[[5, 9], "island"] = "Atlantis"
    found = validation.unknown_labels(cleaned, "island", ["Biscoe", "Dream", "Torgersen"])
    assert {label: sorted(rows) for label, rows in found.items()} == {"Atlantis": [5, 9]}


def test_implausible_values_flag_unit_errors(cleaned):
    cleaned.loc[7, "body_mass_g"] = 4.2  # kilograms instead of grams
    assert validation.implausible_values(cleaned) == {"body_mass_g": [(7, 4.2)]}


def test_all_missing_column_has_share_one(cleaned):
    cleaned["culmen_length_mm"] = np.nan
    assert validation.missing_shares(cleaned)["culmen_length_mm"] == 1.0


def test_describe_rows_truncates():
    assert validation.describe_rows([4]) == "row 4"
    assert validation.describe_rows(list(range(8))) == "rows 0, 1, 2, 3, 4 and 3 more"
