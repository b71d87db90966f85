import numpy as np
import pandas as pd
import pytest

from penguins_platform import defaults
from penguins_platform.ml import evaluation, schema
from penguins_platform.ml.cleaning import clean_penguins, read_penguins_csv
from penguins_platform.ml.features import FittedTransformers, feature_records
from penguins_platform.ml.model import TrainingParameters
from penguins_platform_tests.conftest import DATA_FILE


@pytest.fixture(scope="module")
def cleaned() -> pd.DataFrame:
    raw = read_penguins_csv(DATA_FILE.read_bytes(), str(DATA_FILE))
    return clean_penguins(raw, seed=defaults.SEED)


def test_features_are_scaled_numbers_then_one_hot_categories(cleaned):
    transformers = FittedTransformers.fit(cleaned)
    x = transformers.transform_features(cleaned)
    assert x.shape == (len(cleaned), 4 + 3 + 2)
    assert not np.isnan(x).any(), "imputers must fill every missing value"
    np.testing.assert_allclose(x[:, :4].mean(axis=0), 0, atol=1e-5)
    assert set(np.unique(x[:, 4:])) == {0.0, 1.0}
    assert transformers.feature_names[:4] == [f"numeric__{c}" for c in schema.NUMERIC_FEATURES]


def test_target_order_is_fixed_whatever_the_data_order(cleaned):
    reversed_rows = cleaned.sort_values("species", ascending=False)
    transformers = FittedTransformers.fit(reversed_rows)
    encoded = transformers.encode_target(
        pd.DataFrame({"species": ["Adelie", "Chinstrap", "Gentoo"]})
    )
    assert encoded.tolist() == [0, 1, 2]


def test_unknown_island_is_ignored_not_an_error(cleaned):
    transformers = FittedTransformers.fit(cleaned)
    row = cleaned.head(1).copy()
    row["island"] = "Atlantis"
    x = transformers.transform_features(row)
    island_columns = [i for i, n in enumerate(transformers.feature_names) if "island" in n]
    assert x[0, island_columns].tolist() == [0.0, 0.0, 0.0]


def test_absent_features_are_imputed(cleaned):
    transformers = FittedTransformers.fit(cleaned)
    x = transformers.transform_features(pd.DataFrame([{"island": "Dream"}]))
    assert x.shape == (1, 9)
    assert not np.isnan(x).any()
    np.testing.assert_allclose(x[0, :4], 0, atol=1e-6)  # the mean scales to zero


def test_imputer_learns_only_the_rows_it_is_fitted_on(cleaned):
    half = cleaned.iloc[: len(cleaned) // 2]
    transformers = FittedTransformers.fit(half)
    learned = transformers.summary()["numeric_means"]["body_mass_g"]
    assert learned == pytest.approx(half["body_mass_g"].mean())
    assert learned != pytest.approx(cleaned["body_mass_g"].mean())


def test_cross_validation_never_fits_transformers_on_held_out_rows(cleaned, monkeypatch):
    fitted_on: list[set[int]] = []
    original_fit = vars(FittedTransformers)["fit"].__func__

    def recording_fit(cls, df):
        fitted_on.append(set(df.index))
        return original_fit(cls, df)

    monkeypatch.setattr(FittedTransformers, "fit", classmethod(recording_fit))
    scores = evaluation.cross_validate(cleaned, 5, TrainingParameters(epochs=1))

    everything = set(cleaned.index)
    held_out = [everything - rows for rows in fitted_on]
    assert len(fitted_on) == 5
    assert [len(rows) for rows in held_out] == [f.test_rows for f in scores.folds]
    for i, rows in enumerate(held_out):
        assert rows, "each fold must hold rows out"
        for other in held_out[i + 1 :]:
            assert rows.isdisjoint(other), "held-out sets of two folds overlap"
    assert set().union(*held_out) == everything, "every row is held out exactly once"


def test_cross_validation_refuses_too_few_rows_or_folds(cleaned):
    with pytest.raises(ValueError, match="at least 2 folds"):
        evaluation.cross_validate(cleaned, 1, TrainingParameters(epochs=1))
    with pytest.raises(ValueError, match="cannot split 3 rows into 5 folds"):
        evaluation.cross_validate(cleaned.head(3), 5, TrainingParameters(epochs=1))


def test_feature_records_are_json_ready_with_null_for_missing(cleaned):
    import json

    records = feature_records(cleaned)
    assert len(records) == len(cleaned)
    assert list(records[0]) == list(schema.FEATURES)
    missing = [r for r in records if r["sex"] is None]
    assert missing, "the shipped data has penguins of unknown sex"
    assert all(v is None or v == v for r in records for v in r.values()), "no NaN survives"
    json.dumps(records, allow_nan=False)
