"""The monitoring checks' rules on plain values: capture health, drift and accuracy, each
with the bound it was given in its description."""

import math
from datetime import UTC, datetime, timedelta

import pandas as pd

from penguins_platform.capture.contract import CaptureHealth
from penguins_platform.ml import schema
from penguins_platform.monitoring import checks
from penguins_platform.monitoring.production import ProductionData
from penguins_platform.monitoring.report import MonitoringSummary

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)


def _production(
    newest: datetime | None, rows: int = 3, spilled: int = 0, skipped: int = 0
) -> ProductionData:
    return ProductionData(
        rows=pd.DataFrame({"key": [str(i) for i in range(rows)]}),
        skipped=skipped,
        skipped_examples=[],
        removed={},
        health={"local": CaptureHealth(newest_at=newest, spilled_rows=spilled)},
    )


def test_recent_rows_with_nothing_lost_are_healthy():
    verdict = checks.capture_health(_production(NOW - timedelta(hours=1)), {}, 24, NOW)
    assert verdict.passed
    assert verdict.description == "3 recent rows, every request captured"
    assert verdict.metadata["newest_captured_at"] == "2026-12-01T11:00:00+00:00"


def test_every_capture_problem_is_named_in_one_line():
    counters = {"write_failures": 2, "lost": 1, "queue_errors": 0, "spilled": 5}
    stale = NOW - timedelta(hours=30)
    verdict = checks.capture_health(_production(stale, spilled=5, skipped=4), counters, 24, NOW)
    assert not verdict.passed
    assert verdict.description == (
        "no request captured in the last 24 h (newest 2026-11-30 06:00:00+00:00); "
        "5 rows spilled to the capture store's spill file; "
        "2 capture write failures since the endpoint started; "
        "1 rows lost by the capture writer since the endpoint started; "
        "4 corrupt rows skipped"
    )
    assert verdict.metadata["endpoint_write_failures"] == 2
    assert (verdict.metadata["spilled_rows"], verdict.metadata["corrupt_rows_skipped"]) == (5, 4)


def test_nothing_ever_captured_fails_capture_health():
    verdict = checks.capture_health(_production(None, rows=0), None, 24, NOW)
    assert not verdict.passed
    assert verdict.description == "no request was ever captured"
    assert verdict.metadata["newest_captured_at"] == "never"


def _summary(
    drifted: list[str], accuracy: float | None = None, not_testable: dict[str, str] | None = None
) -> MonitoringSummary:
    p_values = {name: 0.001 if name in drifted else 0.5 for name in schema.FEATURES}
    return MonitoringSummary(
        rows=100,
        labeled=0 if accuracy is None else 80,
        drift_share=len(drifted) / len(schema.FEATURES),
        drifted_features=drifted,
        p_values={**p_values, "sex": math.nan} if "sex" in drifted else p_values,
        drift_methods=dict.fromkeys(schema.FEATURES, "ks"),
        accuracy=accuracy,
        precision={},
        recall={},
        confusion=[[0] * 3 for _ in range(3)],
        html_path=None,
        dataset_drift=bool(drifted),
        not_testable=not_testable or {},
        reference_rows=270,
    )


def test_drift_over_its_bound_fails_naming_the_features_and_the_bound():
    verdict = checks.feature_drift(_summary(["body_mass_g"]), drift_share=0.1)
    assert not verdict.passed
    assert verdict.description == (
        "1 of 6 features drifted (body_mass_g): share 0.17 against a bound of 0.1"
    )
    assert verdict.metadata["drift_share"] == 0.1667, "four places, not 0.16666666666666666"
    assert verdict.metadata["bound"] == 0.1
    p_values = verdict.metadata["p_values"]
    assert isinstance(p_values, dict)
    assert p_values["body_mass_g"] == 0.001


def test_the_same_drift_passes_a_looser_bound():
    assert checks.feature_drift(_summary(["body_mass_g"]), drift_share=0.2).passed
    assert checks.feature_drift(_summary([]), drift_share=0.0).passed


def test_a_feature_with_no_value_has_no_p_value_in_json():
    verdict = checks.feature_drift(_summary(["sex"]), drift_share=0.5)
    p_values = verdict.metadata["p_values"]
    assert isinstance(p_values, dict)
    assert p_values["sex"] is None


def test_accuracy_is_judged_against_the_threshold_it_was_given():
    failed = checks.production_accuracy(_summary([], accuracy=0.805), threshold=0.9)
    assert failed is not None and not failed.passed
    assert failed.description == "accuracy 0.8050 on 80 labeled rows against a threshold of 0.9"
    passed = checks.production_accuracy(_summary([], accuracy=0.805), threshold=0.8)
    assert passed is not None and passed.passed


def test_without_labels_accuracy_is_not_judged():
    assert checks.production_accuracy(_summary([]), threshold=0.9) is None


def test_a_feature_that_cannot_be_tested_is_named_with_why():
    summary = _summary([], not_testable={"flipper_length_mm": "no value in the training data"})
    verdict = checks.feature_drift(summary, drift_share=0.1)
    assert verdict.passed
    assert verdict.description.endswith(
        "; not testable: flipper_length_mm: no value in the training data"
    )
    assert verdict.metadata["not_testable"] == {
        "flipper_length_mm": "no value in the training data"
    }
