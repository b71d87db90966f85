"""The monitoring report: drift against the training data, and quality as scikit-learn scores it.

Each Evidently run takes about two seconds whatever the batch size, so the batches are small
and the runs that several tests read are module fixtures.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, confusion_matrix, precision_score, recall_score

from penguins_platform import defaults
from penguins_platform.ml.cleaning import clean_penguins, read_penguins_csv
from penguins_platform.ml.schema import FEATURES, SPECIES
from penguins_platform.monitoring.report import (
    MonitoringSummary,
    ReportInputError,
    build_report,
)
from penguins_platform_tests.conftest import DATA_FILE

DRIFT_SHARE = 0.5
ROWS = 300


@pytest.fixture(scope="module")
def training() -> pd.DataFrame:
    """The `penguins` asset, once for the module (the `cleaned` fixture is per test)."""
    return clean_penguins(read_penguins_csv(DATA_FILE.read_bytes(), str(DATA_FILE)), defaults.SEED)


def production_batch(training: pd.DataFrame, rows: int, seed: int) -> pd.DataFrame:
    """Rows drawn from the training data as the endpoint captured them: ids, time, features,
    a prediction (the true species) and no label yet."""
    drawn = training.sample(n=rows, replace=True, random_state=seed).reset_index(drop=True)
    batch = pd.DataFrame(
        {
            "key": [str(i + 1) for i in range(rows)],
            "request_id": [f"req-{i // 10}" for i in range(rows)],
            "row": [i % 10 for i in range(rows)],
            "captured_at": pd.date_range("2025-01-01", periods=rows, freq="s", tz="UTC"),
            "model_version": "1",
        }
    )
    for column in FEATURES:
        batch[column] = drawn[column]
    batch["prediction"] = drawn["species"]
    batch["confidence"] = 0.9
    batch["target"] = None
    return batch


def label_at_random(batch: pd.DataFrame, share: float, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    labeled = rng.random(len(batch)) < share
    batch = batch.copy()
    batch["target"] = pd.Series(rng.choice(SPECIES, len(batch)), dtype=object).where(labeled)
    return batch


def scored_by_sklearn(batch: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    labeled = batch[batch["target"].notna()]
    return labeled["target"].astype(str), labeled["prediction"].astype(str)


@pytest.fixture(scope="module")
def clean(training, tmp_path_factory) -> tuple[pd.DataFrame, MonitoringSummary]:
    """A clean batch, about half of it labeled at random, with its HTML report."""
    batch = label_at_random(production_batch(training, ROWS, seed=1), share=0.5, seed=2)
    html = tmp_path_factory.mktemp("report") / "monitoring.html"
    return batch, build_report(training, batch, drift_share=DRIFT_SHARE, html_path=html)


@pytest.fixture(scope="module")
def noisy(training) -> MonitoringSummary:
    """A batch whose body mass is off by up to 3 kg, every row labeled with its prediction."""
    batch = production_batch(training, ROWS, seed=3)
    noise = np.random.default_rng(4).uniform(1, 3000, ROWS)
    batch["body_mass_g"] = batch["body_mass_g"] + noise
    batch["target"] = batch["prediction"]
    return build_report(training, batch, drift_share=DRIFT_SHARE, html_path=None)


def test_a_clean_sample_of_the_training_data_does_not_drift(clean):
    _, summary = clean
    # At p < 0.05 a clean feature drifts one batch in twenty; this seed's batch has none.
    assert summary.drifted_features == [], summary.p_values
    assert summary.drift_share == 0.0
    assert not summary.dataset_drift


def test_only_the_six_features_are_tested_for_drift(clean):
    _, summary = clean
    assert list(summary.p_values) == list(FEATURES), "ids and timestamps must not be tested"
    assert summary.drift_methods == {
        "island": "chisquare",
        "culmen_length_mm": "ks",
        "culmen_depth_mm": "ks",
        "flipper_length_mm": "ks",
        "body_mass_g": "ks",
        "sex": "chisquare",
    }


def test_noise_on_body_mass_makes_body_mass_drift(noisy):
    assert "body_mass_g" in noisy.drifted_features, noisy.p_values
    assert noisy.p_values["body_mass_g"] < 1e-6
    assert noisy.drift_share >= 1 / len(FEATURES)
    assert noisy.drift_share == len(noisy.drifted_features) / len(FEATURES)


def test_labels_equal_to_the_predictions_score_accuracy_one(noisy):
    assert noisy.labeled == ROWS
    assert noisy.accuracy == 1.0
    assert noisy.precision == noisy.recall == dict.fromkeys(SPECIES, 1.0)
    assert sum(noisy.confusion[i][i] for i in range(len(SPECIES))) == ROWS


def test_random_labels_score_as_scikit_learn_scores_them(clean):
    batch, summary = clean
    truth, predicted = scored_by_sklearn(batch)
    assert summary.rows == ROWS
    assert summary.labeled == len(truth)
    assert summary.accuracy == pytest.approx(accuracy_score(truth, predicted))
    precision = precision_score(truth, predicted, labels=SPECIES, average=None)
    recall = recall_score(truth, predicted, labels=SPECIES, average=None)
    assert summary.precision == pytest.approx(dict(zip(SPECIES, precision, strict=True)))
    assert summary.recall == pytest.approx(dict(zip(SPECIES, recall, strict=True)))
    assert summary.confusion == confusion_matrix(truth, predicted, labels=SPECIES).tolist()


def test_a_batch_with_two_species_scores_them_and_leaves_out_the_third(training):
    # Evidently takes any two-class batch for a binary task: this once failed with KeyError 1.
    batch = production_batch(training, 60, seed=5)
    batch = batch[batch["prediction"] != "Chinstrap"].copy()
    batch["target"] = np.where(np.arange(len(batch)) % 3, batch["prediction"], "Adelie")
    summary = build_report(training, batch, drift_share=DRIFT_SHARE, html_path=None)

    truth, predicted = scored_by_sklearn(batch)
    pair = ["Adelie", "Gentoo"]
    assert summary.accuracy == pytest.approx(accuracy_score(truth, predicted))
    assert summary.precision == pytest.approx(
        dict(zip(pair, precision_score(truth, predicted, labels=pair, average=None), strict=True))
    )
    assert summary.recall == pytest.approx(
        dict(zip(pair, recall_score(truth, predicted, labels=pair, average=None), strict=True))
    )
    assert summary.confusion == confusion_matrix(truth, predicted, labels=SPECIES).tolist()


def test_a_batch_with_no_label_reports_drift_and_no_accuracy(training, tmp_path):
    batch = production_batch(training, 40, seed=6)
    summary = build_report(
        training, batch, drift_share=DRIFT_SHARE, html_path=tmp_path / "report.html"
    )
    assert summary.labeled == 0
    assert summary.accuracy is None
    assert summary.precision == {} and summary.recall == {}
    assert summary.confusion == [[0] * len(SPECIES) for _ in SPECIES]
    assert list(summary.p_values) == list(FEATURES)
    assert "No row has a label yet" in (tmp_path / "report.html").read_text()


def test_a_feature_with_no_value_in_the_batch_counts_as_drifted(training):
    batch = production_batch(training, 40, seed=7)
    batch["sex"] = None
    summary = build_report(training, batch, drift_share=DRIFT_SHARE, html_path=None)
    assert summary.drifted_features == ["sex"]
    assert math.isnan(summary.p_values["sex"])
    assert not any(math.isnan(p) for f, p in summary.p_values.items() if f != "sex")


def test_the_html_report_is_self_contained(clean):
    _, summary = clean
    assert summary.html_path is not None and summary.html_path.is_file()
    html = summary.html_path.read_text(encoding="utf-8")
    assert not re.search(r"<script[^>]*\bsrc\s*=", html), "scripts must be inlined"
    assert not re.search(r"<link[^>]*\bhref\s*=\s*[\"']?(https?:)?//", html), "no remote styles"
    assert "Production features against the training data" in html
    assert f"Model quality on {summary.labeled} labeled rows" in html
    # Evidently inlines its 4 MB JavaScript bundle; the data adds little on top.
    assert summary.html_path.stat().st_size < 8_000_000


def test_an_unknown_species_is_refused_with_its_name(training):
    batch = production_batch(training, 5, seed=8)
    batch.loc[2, "target"] = "Emperor"
    with pytest.raises(ReportInputError, match="'target' of the batch holds 'Emperor'"):
        build_report(training, batch, drift_share=DRIFT_SHARE, html_path=None)


def test_a_batch_without_a_feature_column_is_refused_with_its_name(training):
    batch = production_batch(training, 5, seed=9).drop(columns=["body_mass_g"])
    with pytest.raises(ReportInputError, match="lacks column\\(s\\) 'body_mass_g'"):
        build_report(training, batch, drift_share=DRIFT_SHARE, html_path=None)


def test_an_empty_batch_is_refused(training):
    batch = production_batch(training, 5, seed=10).iloc[:0]
    with pytest.raises(ReportInputError, match="no rows"):
        build_report(training, batch, drift_share=DRIFT_SHARE, html_path=None)


def test_a_feature_the_training_data_never_had_is_not_testable_and_not_drifted(training):
    # Evidently once crashed here: "An empty column ... in the reference dataset".
    reference = training.assign(flipper_length_mm=float("nan"))
    batch = production_batch(training, 40, seed=10)
    summary = build_report(reference, batch, drift_share=DRIFT_SHARE, html_path=None)
    assert summary.not_testable == {"flipper_length_mm": "no value in the training data"}
    assert "flipper_length_mm" not in summary.drifted_features
    assert math.isnan(summary.p_values["flipper_length_mm"])


def test_a_feature_empty_on_both_sides_is_named_once_as_missing_from_production(training):
    reference = training.assign(sex=None)
    batch = production_batch(training, 40, seed=11)
    batch["sex"] = None
    summary = build_report(reference, batch, drift_share=DRIFT_SHARE, html_path=None)
    assert summary.not_testable == {"sex": "no value in the production rows"}
    assert summary.drifted_features == ["sex"]


def test_without_a_reference_drift_is_not_judged_and_quality_still_is(training, tmp_path):
    batch = production_batch(training, 30, seed=12)
    batch["target"] = batch["prediction"]
    html = tmp_path / "report.html"
    summary = build_report(None, batch, drift_share=DRIFT_SHARE, html_path=html)
    assert summary.reference_rows is None
    assert summary.drifted_features == [] and summary.drift_share == 0.0
    assert summary.accuracy == 1.0
    assert "No training data was recorded for this version" in html.read_text(encoding="utf-8")
