"""Training stage: fitted transformers, cross-validation, the final model, and its gate."""

from typing import TYPE_CHECKING

import dagster as dg
from pydantic import Field

from penguins_platform import defaults
from penguins_platform.defs import metadata
from penguins_platform.defs.resources import MlflowTracking

if TYPE_CHECKING:
    from penguins_platform.ml.evaluation import FoldScore
    from penguins_platform.ml.model import TrainingParameters

GROUP = "training"
# Log every Nth epoch: enough to watch progress without burying the run log.
EPOCH_LOG_INTERVAL = 10


class TrainingConfig(dg.Config):
    """The knobs of a fit, shared by cross-validation and the final model."""

    epochs: int = Field(default=defaults.EPOCHS, ge=1, description="Passes over the training rows.")
    batch_size: int = Field(default=defaults.BATCH_SIZE, ge=1, description="Rows per SGD step.")
    learning_rate: float = Field(
        default=defaults.LEARNING_RATE, gt=0, description="SGD learning rate."
    )
    seed: int = Field(
        default=defaults.SEED, description="Seed for weights, batching and fold splits."
    )

    def parameters(self) -> "TrainingParameters":
        from penguins_platform.ml.model import TrainingParameters

        return TrainingParameters(
            epochs=self.epochs,
            batch_size=self.batch_size,
            learning_rate=self.learning_rate,
            seed=self.seed,
        )


class CrossValidationConfig(TrainingConfig):
    folds: int = Field(default=defaults.FOLDS, ge=2, description="Number of K-fold splits.")


class AccuracyThresholdConfig(dg.Config):
    threshold: float = Field(
        default=defaults.THRESHOLD,
        ge=0.0,
        le=1.0,
        description="Minimum mean cross-validated accuracy for the model to be registered.",
    )


@dg.asset(group_name=GROUP, kinds={"scikitlearn"})
def feature_transformer(penguins) -> dg.MaterializeResult:
    """Imputers, scaler and encoders fitted on all cleaned penguins, shipped with the model."""
    from penguins_platform.ml.features import FittedTransformers

    transformers = FittedTransformers.fit(penguins)
    summary = transformers.summary()
    return dg.MaterializeResult(
        value=transformers,
        metadata={
            "feature_count": len(transformers.feature_names),
            "feature_names": dg.MetadataValue.json(transformers.feature_names),
            "learned": dg.MetadataValue.json(summary),
        },
    )


@dg.asset(group_name=GROUP, kinds={"keras", "mlflow"})
def cross_validation_scores(
    context: dg.AssetExecutionContext,
    config: CrossValidationConfig,
    penguins,
    mlflow: MlflowTracking,
) -> dg.MaterializeResult:
    """How well the training recipe generalises: seeded K-fold, one nested MLflow run a fold.

    Each fold fits its own transformers on its training rows only, so no statistic of a
    held-out row leaks into the score.
    """
    from penguins_platform.ml import schema
    from penguins_platform.ml.evaluation import cross_validate
    from penguins_platform.ml.plots import confusion_matrix_markdown

    parameters = config.parameters()
    with mlflow.parent_run(context) as parent_run_id:
        mlflow.log_params(parent_run_id, config.model_dump())

        def on_fold_end(score: "FoldScore") -> None:
            context.log.info(
                f"fold {score.fold}/{config.folds}: accuracy {score.accuracy:.4f}, "
                f"loss {score.loss:.4f}"
            )
            fold_run = mlflow.nested_run(parent_run_id, f"fold-{score.fold}")
            mlflow.log_metrics(fold_run, {"accuracy": score.accuracy, "loss": score.loss})
            mlflow.client().set_terminated(fold_run)

        scores = cross_validate(penguins, config.folds, parameters, on_fold_end=on_fold_end)
        mlflow.log_metrics(parent_run_id, {f"cv_{k}": v for k, v in scores.summary().items()})
    context.log.info(
        f"cross-validated accuracy {scores.accuracy_mean:.4f} ± {scores.accuracy_std:.4f}"
    )
    return dg.MaterializeResult(
        value=scores,
        metadata={
            **scores.summary(),
            "folds": metadata.key_value_table(
                [vars(f) for f in scores.folds],
                [
                    ("fold", "int"),
                    ("train_rows", "int"),
                    ("test_rows", "int"),
                    ("accuracy", "float"),
                    ("loss", "float"),
                ],
            ),
            "confusion_matrix": dg.MetadataValue.md(
                confusion_matrix_markdown(scores.confusion_matrix, schema.SPECIES)
            ),
            "mlflow_run": dg.MetadataValue.url(mlflow.run_url(parent_run_id)),
        },
    )


@dg.asset(group_name=GROUP, kinds={"keras", "jax"})
def trained_model(
    context: dg.AssetExecutionContext,
    config: TrainingConfig,
    penguins,
    feature_transformer,
    mlflow: MlflowTracking,
) -> dg.MaterializeResult:
    """The classifier trained on every cleaned penguin, with the fitted feature transformer."""
    from penguins_platform.ml.model import evaluate_model, train_model
    from penguins_platform.ml.plots import training_curve_markdown

    x = feature_transformer.transform_features(penguins)
    y = feature_transformer.encode_target(penguins)

    def on_epoch_end(epoch: int, logs: dict[str, float]) -> None:
        if epoch % EPOCH_LOG_INTERVAL == 0 or epoch in (1, config.epochs):
            context.log.info(
                f"epoch {epoch}/{config.epochs}: loss {logs.get('loss', float('nan')):.4f}, "
                f"accuracy {logs.get('accuracy', float('nan')):.4f}"
            )

    model, history = train_model(x, y, config.parameters(), on_epoch_end=on_epoch_end)
    loss, accuracy = evaluate_model(model, x, y)
    with mlflow.parent_run(context) as parent_run_id:
        mlflow.log_metric_history(
            parent_run_id, {"train_loss": history.loss, "train_accuracy": history.accuracy}
        )
    return dg.MaterializeResult(
        value=model,
        metadata={
            "training_accuracy": accuracy,
            "training_loss": loss,
            "epochs": config.epochs,
            "parameters": model.count_params(),
            "training_curve": dg.MetadataValue.md(
                training_curve_markdown(history.loss, history.accuracy)
            ),
        },
    )


@dg.asset_check(
    asset=trained_model,
    blocking=True,
    additional_ins={"cross_validation_scores": dg.AssetIn()},
)
def accuracy_threshold(
    config: AccuracyThresholdConfig, cross_validation_scores
) -> dg.AssetCheckResult:
    """A model whose cross-validated accuracy is under the threshold is never registered.

    Blocking: a failure stops `registered_model_version` in this run, and the registration
    step re-reads this check's latest outcome, so a later run cannot register it either.
    """
    accuracy = cross_validation_scores.accuracy_mean
    passed = accuracy >= config.threshold
    verdict = "meets" if passed else "is below"
    return dg.AssetCheckResult(
        passed=passed,
        description=(
            f"mean cross-validated accuracy {accuracy:.4f} {verdict} the threshold "
            f"{config.threshold:.4f}"
        ),
        metadata={"accuracy_mean": accuracy, "threshold": config.threshold},
    )
