"""The numpy fast path: identical to the fitted transformer and the Keras network, and strict."""

import threading

import numpy as np
import pytest

from penguins_platform.ml.features import feature_records
from penguins_platform.ml.inference import InferenceModel, InvalidRecordError


@pytest.fixture(scope="module")
def fast(trained_model) -> InferenceModel:
    return InferenceModel.from_fitted(trained_model.transformers, trained_model.keras_model)


@pytest.fixture(scope="module")
def records(trained_model) -> list[dict]:
    return feature_records(trained_model.penguins)


def test_encoding_equals_the_column_transformer_on_every_row(fast, records, trained_model):
    expected = trained_model.transformers.transform_features(trained_model.penguins)
    np.testing.assert_allclose(fast.encode_records(records).features, expected, atol=1e-6)
    np.testing.assert_allclose(fast.encode_frame(trained_model.penguins), expected, atol=1e-6)


def test_probabilities_match_keras_within_1e6_on_the_whole_dataset(fast, records, trained_model):
    x = trained_model.transformers.transform_features(trained_model.penguins)
    expected = np.asarray(trained_model.keras_model.predict(x, verbose=0))
    actual = fast.probabilities(fast.encode_records(records).features)
    assert np.abs(actual - expected).max() < 1e-6


def test_prediction_per_record_in_order(fast, records, trained_model):
    answers, _ = fast.predict_records(records[:20])
    assert [a["prediction"] for a in answers][:5] == [
        a["prediction"] for a in fast.predict_records(records[:5])[0]
    ]
    assert all(0.0 < a["confidence"] <= 1.0 for a in answers)
    species = trained_model.penguins["species"].tolist()[:20]
    accuracy = np.mean([a["prediction"] == s for a, s in zip(answers, species, strict=True)])
    assert accuracy > 0.8


def test_absent_and_null_features_are_imputed_like_the_transformer(fast, trained_model):
    import pandas as pd

    expected = trained_model.transformers.transform_features(pd.DataFrame([{"island": "Dream"}]))
    for record in ({"island": "Dream"}, {"island": "Dream", "body_mass_g": None, "sex": None}):
        np.testing.assert_allclose(fast.encode_records([record]).features, expected, atol=1e-6)


@pytest.mark.parametrize(
    "record,field_name,fragment",
    [
        ({"body_mass_g": True}, "body_mass_g", "boolean"),
        ({"culmen_length_mm": "long"}, "culmen_length_mm", "text 'long'"),
        ({"flipper_length_mm": float("nan")}, "flipper_length_mm", "finite number"),
        ({"flipper_length_mm": float("inf")}, "flipper_length_mm", "finite number"),
        ({"body_mass_g": {"value": 3}}, "body_mass_g", "nested"),
        ({"island": ["Dream"]}, "island", "nested"),
        ({"sex": 1}, "sex", "expected text"),
    ],
    ids=["boolean", "text", "nan", "infinity", "nested-number", "nested-text", "number-as-sex"],
)
def test_wrong_types_name_the_row_and_field(fast, record, field_name, fragment):
    with pytest.raises(InvalidRecordError) as raised:
        fast.encode_records([{"island": "Dream"}, record])
    assert raised.value.field == field_name
    assert raised.value.row == 1
    assert fragment in str(raised.value)


def test_a_record_that_is_not_an_object_names_its_row(fast):
    with pytest.raises(InvalidRecordError, match="row 1: expected an object") as raised:
        fast.encode_records([{}, ["Biscoe", 40.1]])
    assert raised.value.field is None


def test_unknown_categories_and_implausible_values_are_predicted_and_flagged(fast):
    answers, _ = fast.predict_records(
        [{"island": "Atlantis", "sex": "X", "body_mass_g": -5.0, "culmen_length_mm": 1e9}]
    )
    assert answers[0]["prediction"] in {"Adelie", "Chinstrap", "Gentoo"}
    flags = " | ".join(answers[0]["flags"])
    assert "unknown island 'Atlantis'" in flags
    assert "unknown sex 'X'" in flags
    assert "body_mass_g -5 is outside" in flags
    assert "culmen_length_mm 1e+09 is outside" in flags


def test_extra_fields_are_ignored_and_reported_per_row(fast):
    answers, batch = fast.predict_records([{"island": "Dream", "colour": "blue"}, {}])
    assert batch.ignored_fields == [["colour"], []]
    assert batch.all_ignored_fields() == ["colour"]
    assert answers[1]["flags"] == []


def test_an_empty_batch_gives_no_predictions(fast):
    assert fast.predict_records([])[0] == []


def test_saved_model_loads_back_identical(fast, records, tmp_path):
    fast.save(tmp_path)
    again = InferenceModel.load(tmp_path)
    batch = fast.encode_records(records).features
    np.testing.assert_array_equal(again.probabilities(batch), fast.probabilities(batch))


def test_smoke_test_refuses_nan_weights(fast, tmp_path):
    kernel, bias = fast.weights[-1]
    broken = InferenceModel(
        fast.imputer_means, fast.scaler_means, fast.scaler_scales, fast.modes, fast.categories,
        [*fast.weights[:-1], (np.full_like(kernel, np.nan), bias)],
    )  # fmt: skip
    fast.smoke_test()
    with pytest.raises(ValueError, match="no valid probabilities"):
        broken.smoke_test()


def test_concurrent_threads_get_the_sequential_answers(fast, records):
    expected = [fast.predict_records([r])[0][0] for r in records]
    mismatches: list[int] = []

    def client(offset: int) -> None:
        for i in range(offset, len(records), 8):
            if fast.predict_records([records[i]])[0][0] != expected[i]:
                mismatches.append(i)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert mismatches == []
