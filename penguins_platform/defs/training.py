"""Training stage: fitted transformers, cross-validation, the final model, and its gate."""

from collections.abc import Iterator
from typing import TYPE_CHECKING

import dagster as dg
from pydantic import Field

from penguins_platform import defaults
from penguins_platform.defs import metadata
from penguins_platform.defs.resources import FoldWorkers, MlflowTracking

if TYPE_CHECKING:
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
    steps_per_execution: int | None = Field(
        default=defaults.STEPS_PER_EXECUTION,
        ge=1,
        description=(
            "SGD steps per compiled call. Unset: a whole epoch per call. 1: Keras's own fit, "
            "one Python dispatch per step (slower, same result). Any value works; one above "
            "the steps in an epoch means a whole epoch."
        ),
    )

    def parameters(self) -> "TrainingParameters":
        from penguins_platform.ml.model import TrainingParameters

        return TrainingParameters(
            epochs=self.epochs,
            batch_size=self.batch_size,
            learning_rate=self.learning_rate,
            seed=self.seed,
            steps_per_execution=self.steps_per_execution,
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
    """Imputers, scaler and encoders fitted on the training rows (every cleaned penguin but
    the holdout), shipped with the model."""
    from penguins_platform.ml.features import FittedTransformers
    from penguins_platform.ml.holdout import training_rows

    transformers = FittedTransformers.fit(training_rows(penguins))
    summary = transformers.summary()
    return dg.MaterializeResult(
        value=transformers,
        metadata={
            "feature_count": len(transformers.feature_names),
            "feature_names": dg.MetadataValue.json(transformers.feature_names),
            "learned": dg.MetadataValue.json(summary),
        },
    )


# Cross-validation is a graph of steps, so each fold is a step of its own: in this process by
# default, or one process, ECS task or Kubernetes pod per fold with a step executor
# (PENGUINS_EXECUTOR, see `defs/executors.py`), as the reference runs a Batch task per fold.


@dg.op(out=dg.DynamicOut(), tags={"kind": "scikitlearn"})
def split_folds(
    context: dg.OpExecutionContext,
    config: CrossValidationConfig,
    penguins,
    mlflow: MlflowTracking,
    fold_workers: FoldWorkers,
) -> Iterator[dg.DynamicOutput]:
    """Seeded K-fold splits, one dynamic output a fold. The MLflow parent run starts here,
    before any fold, so every fold's step nests under the same one. In the run's own
    process the folds start training here, in the background, as many at once as there
    are cores."""
    from penguins_platform.ml.evaluation import fold_splits
    from penguins_platform.ml.holdout import training_rows

    with mlflow.parent_run(context) as parent_run_id:
        mlflow.log_params(parent_run_id, config.model_dump())
    penguins = training_rows(penguins)
    splits = fold_splits(penguins, config.folds, config.seed)
    workers = fold_workers.start(penguins, splits, config.parameters())
    if workers > 1:
        context.log.info(f"training {len(splits)} folds, {workers} at a time, in this process")
    for split in splits:
        yield dg.DynamicOutput(split, mapping_key=f"fold_{split.fold}")


@dg.op(tags={"kind": "keras"})
def score_fold(
    context: dg.OpExecutionContext,
    config: CrossValidationConfig,
    penguins,
    split,
    mlflow: MlflowTracking,
    fold_workers: FoldWorkers,
):
    """One fold: fit on its training rows, score its held-out rows, log a nested MLflow run."""
    from penguins_platform.ml.holdout import training_rows

    result = fold_workers.score(training_rows(penguins), split, config.parameters())
    fold = result.score
    context.log.info(
        f"fold {fold.fold}/{config.folds}: accuracy {fold.accuracy:.4f}, loss {fold.loss:.4f}"
    )
    parent_run_id = mlflow.parent_run_id(context.run.run_id, context.job_name)
    fold_run = mlflow.nested_run(parent_run_id, f"fold-{fold.fold}")
    mlflow.log_metrics(fold_run, {"accuracy": fold.accuracy, "loss": fold.loss})
    mlflow.client().set_terminated(fold_run)
    return result


@dg.op(tags={"kind": "mlflow"})
def combine_folds(
    context: dg.OpExecutionContext,
    config: CrossValidationConfig,
    results,
    mlflow: MlflowTracking,
) -> dg.Output:
    """The folds' scores, their summary and the pooled confusion matrix, as the asset."""
    from penguins_platform.ml import schema
    from penguins_platform.ml.evaluation import combine_folds as combine
    from penguins_platform.ml.plots import confusion_matrix_markdown

    scores = combine(results)
    with mlflow.parent_run(context) as parent_run_id:
        mlflow.log_metrics(parent_run_id, {f"cv_{k}": v for k, v in scores.summary().items()})
    context.log.info(
        f"cross-validated accuracy {scores.accuracy_mean:.4f} ± {scores.accuracy_std:.4f} "
        f"over {len(scores.folds)} folds"
    )
    return dg.Output(
        scores,
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


@dg.config_mapping
def cross_validation_config(config: CrossValidationConfig) -> dict[str, object]:
    """The asset keeps one config block; each of its steps gets the same knobs."""
    values = {"config": config.model_dump()}
    return {"split_folds": values, "score_fold": values, "combine_folds": values}


@dg.graph_asset(
    group_name=GROUP,
    kinds={"keras", "mlflow"},
    config=cross_validation_config,
)
def cross_validation_scores(penguins):
    """How well the training recipe generalises: seeded K-fold, one step and one nested MLflow
    run a fold.

    Each fold fits its own transformers on its training rows only, so no statistic of a
    held-out row leaks into the score.
    """
    splits = split_folds(penguins)
    results = splits.map(lambda split: score_fold(penguins, split))
    return combine_folds(results.collect())


@dg.asset(group_name=GROUP, kinds={"keras", "jax"})
def trained_model(
    context: dg.AssetExecutionContext,
    config: TrainingConfig,
    penguins,
    feature_transformer,
    mlflow: MlflowTracking,
) -> dg.MaterializeResult:
    """The classifier trained on every cleaned penguin but the holdout, with the fitted
    feature transformer. The holdout is kept for `beats_champion`."""
    from penguins_platform.ml.holdout import training_rows
    from penguins_platform.ml.model import evaluate_model, train_model
    from penguins_platform.ml.plots import training_curve_markdown

    penguins = training_rows(penguins)
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
            "training_rows": len(penguins),
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
