"""Registry stage: the trained model as a new version of the `penguins` MLflow model."""

import dagster as dg
from pydantic import Field

from penguins_platform import defaults
from penguins_platform.defs.data import raw_penguins
from penguins_platform.defs.resources import MlflowTracking
from penguins_platform.defs.training import GROUP, accuracy_threshold, trained_model
from penguins_platform.tracking.contract import CHAMPION_ALIAS, CHECKS_PASSED_TAG, DAGSTER_RUN_TAG


class RegistrationConfig(dg.Config):
    alias: str = Field(
        default=CHAMPION_ALIAS, description="Registry alias moved to the new version."
    )
    example_rows: int = Field(
        default=defaults.EXAMPLE_ROWS, ge=1, description="Rows logged as the input example."
    )


class RegistrationGateError(RuntimeError):
    """The trained model has not passed its accuracy gate, so it must not be registered."""


def require_passed_gate(instance: dg.DagsterInstance) -> dict[str, object]:
    """The passing `accuracy_threshold` evaluation of the latest `trained_model`, or raise.

    A blocking check only stops downstream steps in its own run. Reading the outcome here
    closes the gap: a run that materializes `registered_model_version` alone cannot register
    a model that failed, or never ran, its check.
    """
    from penguins_platform.defs import event_log

    outcome = event_log.latest_check_outcome(instance, accuracy_threshold.check_key)
    latest = event_log.latest_materialization_id(instance, trained_model.key)
    if latest is None or outcome is None:
        raise RegistrationGateError(
            "trained_model has no accuracy_threshold result; materialize trained_model with "
            "its check before registering"
        )
    if outcome.materialization_id != latest:
        raise RegistrationGateError(
            "the latest trained_model has not been checked by accuracy_threshold; "
            "materialize trained_model with its check before registering"
        )
    if not outcome.passed:
        raise RegistrationGateError(
            f"trained_model failed accuracy_threshold in run {outcome.run_id}: "
            f"{outcome.description}; it will not be registered"
        )
    return outcome.metadata


@dg.asset(group_name=GROUP, kinds={"mlflow"})
def registered_model_version(
    context: dg.AssetExecutionContext,
    config: RegistrationConfig,
    penguins,
    feature_transformer,
    trained_model,
    cross_validation_scores,
    mlflow: MlflowTracking,
) -> dg.MaterializeResult:
    """A new version of the registered model, with the champion alias moved to it.

    The version is an MLflow pyfunc: the `.keras` network, the fitted transformers, the
    serving code, a signature, an input example and pinned requirements. Its tags say which
    Dagster run and data version produced it and how it scored.
    """
    from penguins_platform.defs import event_log
    from penguins_platform.ml import packaging, schema

    gate = require_passed_gate(context.instance)
    data_version = event_log.latest_data_version(context.instance, raw_penguins.key) or "unknown"
    name = mlflow.registered_model_name
    tags = {
        DAGSTER_RUN_TAG: context.run.run_id,
        "data_version": data_version,
        "cv_accuracy_mean": f"{cross_validation_scores.accuracy_mean:.6f}",
        "cv_accuracy_std": f"{cross_validation_scores.accuracy_std:.6f}",
        "cv_loss_mean": f"{cross_validation_scores.loss_mean:.6f}",
        "accuracy_threshold": f"{gate.get('threshold', float('nan')):.4f}",
        CHECKS_PASSED_TAG: "true",
    }
    example = penguins[list(schema.FEATURES)].head(config.example_rows).reset_index(drop=True)

    with mlflow.parent_run(context) as run_id:
        version = packaging.log_pyfunc_model(
            run_id, trained_model, feature_transformer, example, name
        )
        packaging.publish_version(mlflow.client(), name, version, tags, config.alias)
        mlflow.client().set_tag(run_id, "registered_model_version", version)

    model_uri = f"models:/{name}/{version}"
    context.log.info(
        f"registered {model_uri} (alias {config.alias!r}) with cross-validated accuracy "
        f"{cross_validation_scores.accuracy_mean:.4f}"
    )
    return dg.MaterializeResult(
        value=version,
        metadata={
            "version": int(version),
            "model_uri": model_uri,
            "alias": config.alias,
            "data_version": data_version,
            "cv_accuracy_mean": cross_validation_scores.accuracy_mean,
            "mlflow_run": dg.MetadataValue.url(mlflow.run_url(run_id)),
            "mlflow_model_version": dg.MetadataValue.url(mlflow.model_version_url(version)),
            "tags": dg.MetadataValue.json(tags),
        },
    )
