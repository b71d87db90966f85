import dagster as dg
import pytest

from penguins_platform.defs.training import AccuracyThresholdConfig, accuracy_threshold
from penguins_platform.ml.evaluation import CrossValidationScores, FoldScore


def _scores(*accuracies: float) -> CrossValidationScores:
    return CrossValidationScores(
        folds=[FoldScore(i, 80, 20, a, 0.3) for i, a in enumerate(accuracies, start=1)]
    )


def test_mean_accuracy_at_the_threshold_passes():
    result = accuracy_threshold(AccuracyThresholdConfig(threshold=0.8), _scores(0.7, 0.9))
    assert isinstance(result, dg.AssetCheckResult)
    assert result.passed
    assert result.metadata["accuracy_mean"].value == pytest.approx(0.8)


def test_mean_accuracy_below_the_threshold_fails_with_both_numbers():
    result = accuracy_threshold(AccuracyThresholdConfig(threshold=0.99), _scores(0.9, 0.95))
    assert isinstance(result, dg.AssetCheckResult)
    assert not result.passed
    assert result.description == (
        "mean cross-validated accuracy 0.9250 is below the threshold 0.9900"
    )


def test_threshold_outside_zero_to_one_is_rejected():
    with pytest.raises(ValueError, match="threshold"):
        AccuracyThresholdConfig(threshold=1.5)
