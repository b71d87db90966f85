"""Promotion: who becomes the champion, on what evidence, and the record each version keeps.

A new version is the challenger. It is promoted only if it beats the champion on the same rows:
the holdout of the data that trained it, which neither model trained on (`ml/holdout.py`).
Each model is scored by MLflow's own evaluation (`mlflow.models.evaluate`, the classifier
evaluator) in a nested run of its own, and MLflow decides (`mlflow.validate_evaluation_results`
with a `MetricThreshold` against the champion's result). A person can promote any version by
hand, which is also how a rollback works. Every promotion writes its record on the version
(who, why, which champion it replaced, an id) before the alias moves, so the deployment
sensor that sees the alias also sees why it moved.

The registered pyfunc answers two columns, a prediction and its confidence, and MLflow's
classifier evaluator takes a model's output as the prediction only when it is one column. So
each registered model predicts the rows here, through the same pyfunc that serves, and MLflow
evaluates those predictions as a static dataset (`predictions=`), which its API provides for
exactly this.
"""

from __future__ import annotations

import tempfile
import uuid
import warnings
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from penguins_platform.tracking.contract import (
    CHAMPION_ALIAS,
    CHECKS_PASSED_TAG,
    HOLDOUT_DATA_ARTIFACT,
    PREVIOUS_CHAMPION_TAG,
    PROMOTED_AT_TAG,
    PROMOTED_BY_TAG,
    PROMOTION_ID_TAG,
    PROMOTION_KIND_TAG,
    PROMOTION_REASON_TAG,
    TRAINING_DATA_ARTIFACT,
)

if TYPE_CHECKING:
    import pandas as pd
    from mlflow.entities.model_registry import ModelVersion
    from mlflow.models.evaluation import EvaluationResult
    from mlflow.tracking import MlflowClient

# MLflow's classifier metrics that a prediction alone can give (log loss and ROC AUC need the
# probabilities of every class, which the pyfunc does not answer). Greater is better for each.
Metric = Literal["accuracy_score", "f1_score", "precision_score", "recall_score"]
PREDICTION_COLUMN = "prediction"
PromotionKind = Literal["first", "automatic", "manual", "rollback"]


class PromotionError(RuntimeError):
    """A promotion was refused; the registry is unchanged. The message says what to do."""


@dataclass(frozen=True)
class Score:
    """One version's evaluation on the gate's rows, and the MLflow run that holds it."""

    version: str
    metrics: dict[str, float]
    run_id: str
    result: EvaluationResult = field(repr=False, compare=False)

    def value(self, metric: str) -> float:
        return self.metrics[metric]


@dataclass(frozen=True)
class GateDecision:
    """Whether the challenger beat the champion, and the numbers behind it."""

    passed: bool
    description: str
    metric: str
    margin: float
    rows: int
    challenger: Score
    champion: Score | None
    champion_version: str | None  # the champion it was judged against, scored or not

    def tag(self) -> str:
        """The one-line verdict kept on the challenger's version."""
        return f"{'promoted' if self.passed else 'rejected'}: {self.description}"[:500]

    def numbers(self) -> dict[str, float | int | str]:
        """The figures a check shows: scores as floats, so a UI can plot them over time."""
        mine = self.challenger.value(self.metric)
        found: dict[str, float | int | str] = {
            "decision": "promote"
            if self.passed
            else f"keep champion version {self.champion_version}",
            "metric": self.metric,
            "challenger_version": int(self.challenger.version),
            "challenger_score": mine,
            "margin": self.margin,
            "rows_compared": self.rows,
        }
        if self.champion is not None:
            theirs = self.champion.value(self.metric)
            found |= {
                "champion_version": int(self.champion.version),
                "champion_score": theirs,
                "difference": mine - theirs,
            }
        return found


def challenge(
    name: str,
    challenger: str,
    champion: str | None,
    rows: pd.DataFrame,
    target: str,
    metric: str,
    margin: float,
    evaluation_run: Callable[[str], AbstractContextManager[str]],
) -> GateDecision:
    """Score `challenger`, and `champion` unless there is none (or it is the challenger), on
    `rows`, each in an MLflow run that `evaluation_run(run_name)` opens, and decide.

    Fails closed: a champion that cannot be scored cannot be shown to be beaten."""

    def score(role: str, version: str) -> Score:
        with evaluation_run(f"{role}-v{version}") as run_id:
            return score_version(name, version, rows, target, run_id)

    mine = score("challenger", challenger)
    if champion is None or champion == challenger:
        decision = judge(mine, None, metric, margin)
        if champion is None:
            return decision
        return replace(
            decision,
            description=f"version {challenger} is already the champion",
            champion_version=champion,
        )
    try:
        theirs = score("champion", champion)
    except Exception as error:
        return GateDecision(
            False,
            f"champion version {champion} could not be scored: {error}",
            metric,
            margin,
            len(rows),
            mine,
            None,
            champion,
        )
    return judge(mine, theirs, metric, margin)


def score_version(name: str, version: str, rows: pd.DataFrame, target: str, run_id: str) -> Score:
    """Load registered `version` of model `name`, predict `rows`, and evaluate the predictions
    against `rows[target]` with MLflow's classifier evaluator, logged to MLflow run `run_id`.

    The fluent API must already point at the store (`MlflowStore.client()` does that)."""
    import mlflow

    model = mlflow.pyfunc.load_model(f"models:/{name}/{version}")
    answers = model.predict(rows.drop(columns=[target]))
    data = rows[[target]].reset_index(drop=True)
    data[PREDICTION_COLUMN] = list(answers[PREDICTION_COLUMN])
    with warnings.catch_warnings(), mlflow.start_run(run_id=run_id):
        # A species a weak model never predicts has no precision: scikit-learn warns, and
        # MLflow scores it 0, which is what the comparison should see.
        warnings.filterwarnings("ignore", ".*ill-defined")
        result = mlflow.models.evaluate(
            data=data,
            targets=target,
            predictions=PREDICTION_COLUMN,
            model_type="classifier",
            evaluator_config={"log_model_explainability": False},
        )
    metrics = {key: float(value) for key, value in result.metrics.items()}
    return Score(version=str(version), metrics=metrics, run_id=run_id, result=result)


def judge(challenger: Score, champion: Score | None, metric: str, margin: float) -> GateDecision:
    """MLflow's verdict: the challenger passes if its `metric` is at least the champion's plus
    `margin` (MLflow's `min_absolute_change`, which must be positive, so a tie keeps the
    champion). With no champion, the challenger passes: there is nothing to beat."""
    import mlflow
    from mlflow.models import MetricThreshold
    from mlflow.models.evaluation.validation import ModelValidationFailedException

    rows = int(challenger.metrics.get("example_count", 0))
    mine = challenger.value(metric)
    if champion is None:
        return GateDecision(
            True,
            f"no champion to beat; version {challenger.version} scores {metric} {mine:.4f} "
            f"on {rows} holdout rows and becomes the first champion",
            metric,
            margin,
            rows,
            challenger,
            None,
            None,
        )
    theirs = champion.value(metric)
    threshold = MetricThreshold(min_absolute_change=margin, greater_is_better=True)
    try:
        mlflow.validate_evaluation_results({metric: threshold}, challenger.result, champion.result)
        passed = True
    except ModelValidationFailedException:
        passed = False
    verdict = "beats" if passed else "does not beat"
    return GateDecision(
        passed,
        f"version {challenger.version} {verdict} champion version {champion.version} on "
        f"{rows} holdout rows: {metric} {mine:.4f} against {theirs:.4f}, needing at least "
        f"{theirs + margin:.4f} (margin {margin:g})",
        metric,
        margin,
        rows,
        challenger,
        champion,
        champion.version,
    )


def champion(client: MlflowClient, name: str) -> ModelVersion | None:
    """The version the champion alias names; None when no version carries it (or the model
    does not exist yet)."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, CHAMPION_ALIAS)
    except MlflowException as error:
        if error.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        raise


@dataclass(frozen=True)
class Promotion:
    """Why a version becomes the champion, as its tags record it."""

    kind: PromotionKind
    reason: str
    requested_by: str
    previous: str | None  # the champion it replaces
    promotion_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def tags(self, now: datetime | None = None) -> dict[str, str]:
        return {
            PROMOTION_ID_TAG: self.promotion_id,
            PROMOTION_KIND_TAG: self.kind,
            PROMOTED_AT_TAG: (now or datetime.now(UTC)).isoformat(timespec="seconds"),
            PROMOTED_BY_TAG: self.requested_by,
            PROMOTION_REASON_TAG: self.reason[:500],
            PREVIOUS_CHAMPION_TAG: self.previous or "none",
        }


def promote(client: MlflowClient, name: str, version: str, promotion: Promotion) -> None:
    """Write the promotion's record on `version`, then move the champion alias to it.

    The tags go first: whoever sees the alias move (the deployment sensor) finds them there.
    A failure before the alias moves leaves the champion where it was."""
    for key, value in promotion.tags().items():
        client.set_model_version_tag(name, version, key, value)
    client.set_registered_model_alias(name, CHAMPION_ALIAS, version)


def deployment_key(version: ModelVersion) -> str:
    """What makes a deployment of this champion unique: its version and promotion. A version
    promoted before promotions were recorded is keyed by its number alone."""
    promotion = (version.tags or {}).get(PROMOTION_ID_TAG)
    return f"v{version.version}" + (f"-{promotion[:12]}" if promotion else "")


def log_training_data(
    run_id: str, training: pd.DataFrame, holdout: pd.DataFrame, data_version: str, target: str
) -> dict[str, str]:
    """Record what trained a version on its MLflow run: both tables as dataset inputs (their
    digest, schema and profile show in the MLflow UI) and as Parquet artifacts, which
    monitoring reads back. Returns the digests by context."""
    import mlflow
    from mlflow.data.pandas_dataset import from_pandas

    digests = {}
    with tempfile.TemporaryDirectory() as tmp, mlflow.start_run(run_id=run_id):
        for frame, artifact, context in (
            (training, TRAINING_DATA_ARTIFACT, "training"),
            (holdout, HOLDOUT_DATA_ARTIFACT, "evaluation"),
        ):
            dataset = from_pandas(frame, name=f"penguins-{context}@{data_version}", targets=target)
            mlflow.log_input(dataset, context=context)
            path = Path(tmp) / Path(artifact).name
            frame.to_parquet(path)
            mlflow.log_artifact(str(path), str(Path(artifact).parent))
            digests[context] = dataset.digest
    return digests


def training_data(client: MlflowClient, name: str, version: str) -> pd.DataFrame | None:
    """The cleaned rows that trained `version`, as registration recorded them; None for a
    version registered before they were recorded."""
    import pandas as pd
    from mlflow.exceptions import MlflowException

    try:
        run_id = client.get_model_version(name, version).run_id
    except MlflowException:  # "unknown" (a capture without a version), or a deleted version
        return None
    if not run_id:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = client.download_artifacts(run_id, TRAINING_DATA_ARTIFACT, tmp)
        except (MlflowException, OSError):
            names = {f.path for f in client.list_artifacts(run_id, "training_data")}
            if TRAINING_DATA_ARTIFACT not in names:
                return None
            raise
        return pd.read_parquet(path)


def require_promotable(client: MlflowClient, name: str, version: str) -> None:
    """Raise `PromotionError` unless `version` exists and passed its training checks."""
    from mlflow.exceptions import MlflowException

    try:
        found = client.get_model_version(name, version)
    except MlflowException:
        known = sorted(int(v.version) for v in client.search_model_versions(f"name = '{name}'"))
        raise PromotionError(
            f"model {name!r} has no version {version!r}; its versions are "
            f"{', '.join(map(str, known)) or 'none (run `make train` first)'}"
        ) from None
    if (found.tags or {}).get(CHECKS_PASSED_TAG) != "true":
        raise PromotionError(
            f"version {version} of {name!r} never passed the training checks "
            f"(no {CHECKS_PASSED_TAG} tag); it cannot be promoted"
        )


def previous_champion(client: MlflowClient, name: str) -> str:
    """The version the current champion replaced, for a rollback; PromotionError if none."""
    current = champion(client, name)
    if current is None:
        raise PromotionError(f"{name!r} has no champion yet")
    previous = (current.tags or {}).get(PREVIOUS_CHAMPION_TAG)
    if not previous or previous == "none":
        raise PromotionError(
            f"champion version {current.version} of {name!r} replaced no recorded champion; "
            "name the version: `make promote VERSION=n REASON=...`"
        )
    return previous
