"""The gate's rule on MLflow's own evaluation results: the margin, ties, no champion, and a
champion that cannot be scored. The models' scoring itself runs in test_promotion.py."""

import contextlib

import pandas as pd
import pytest
from mlflow.models.evaluation import EvaluationResult

from penguins_platform.tracking import promotion
from penguins_platform.tracking.promotion import Score, challenge, judge


def score(version: str, accuracy: float, rows: int = 74) -> Score:
    metrics = {"accuracy_score": accuracy, "f1_score": accuracy, "example_count": rows}
    return Score(version, metrics, f"run-{version}", EvaluationResult(metrics, {}))


@pytest.mark.parametrize(
    ("challenger", "champion", "passed"),
    [(0.95, 0.93, True), (0.945, 0.93, True), (0.935, 0.93, False), (0.93, 0.93, False),
     (0.80, 0.93, False)],
)  # fmt: skip
def test_the_challenger_must_win_by_the_margin(challenger, champion, passed):
    decision = judge(score("3", challenger), score("2", champion), "accuracy_score", 0.01)
    assert decision.passed is passed
    verdict = "beats" if passed else "does not beat"
    assert decision.description.startswith(f"version 3 {verdict} champion version 2 on 74 ")
    numbers = decision.numbers()
    assert numbers["difference"] == pytest.approx(challenger - champion)
    assert numbers["decision"] == ("promote" if passed else "keep champion version 2")
    assert decision.tag().startswith("promoted: " if passed else "rejected: ")


def test_with_no_champion_the_first_version_passes():
    decision = judge(score("1", 0.5), None, "accuracy_score", 0.01)
    assert decision.passed
    assert "no champion to beat" in decision.description
    assert "champion_score" not in decision.numbers()


def test_mlflow_refuses_a_margin_that_is_not_positive():
    from mlflow.models.evaluation.validation import MetricThresholdClassException

    with pytest.raises(MetricThresholdClassException, match="positive"):
        judge(score("3", 0.9), score("2", 0.8), "accuracy_score", 0.0)


def test_a_champion_that_cannot_be_scored_fails_the_challenger(monkeypatch):
    def scored(name, version, rows, target, run_id):
        if version == "2":
            raise OSError("its artifacts are gone")
        return score(version, 0.99)

    monkeypatch.setattr(promotion, "score_version", scored)
    runs = []

    @contextlib.contextmanager
    def evaluation_run(name):
        runs.append(name)
        yield name

    rows = pd.DataFrame({"species": ["Adelie"]})
    decision = challenge("m", "3", "2", rows, "species", "accuracy_score", 0.01, evaluation_run)
    assert not decision.passed
    assert decision.description == "champion version 2 could not be scored: its artifacts are gone"
    assert decision.numbers()["decision"] == "keep champion version 2"
    assert runs == ["challenger-v3", "champion-v2"]
    again = challenge("m", "3", "3", rows, "species", "accuracy_score", 0.01, evaluation_run)
    assert again.passed and again.description == "version 3 is already the champion"
