"""Registry stage: the trained model as a new version of the `penguins` MLflow model."""

from typing import Any

import dagster as dg
from pydantic import Field

from penguins_platform import metadata
from penguins_platform.assets.data import raw_penguins
from penguins_platform.assets.training import GROUP, accuracy_threshold, trained_model
from penguins_platform.resources.mlflow import MlflowTracking

CHAMPION_ALIAS = "champion"
# Set on every version this asset registers: it passed the blocking checks of its run.
CHECKS_PASSED_TAG = "checks_passed"


class RegistrationConfig(dg.Config):
    alias: str = Field(
        default=CHAMPION_ALIAS, description="Registry alias moved to the new version."
    )
    example_rows: int = Field(default=5, ge=1, description="Rows logged as the input example.")


class RegistrationGateError(RuntimeError):
    """The trained model has not passed its accuracy gate, so it must not be registered."""


def require_passed_gate(instance: dg.DagsterInstance) -> dict[str, Any]:
    """The passing `accuracy_threshold` evaluation of the latest `trained_model`, or raise.

    A blocking check only stops downstream steps in its own run. Reading the outcome here
    closes the gap: a run that materializes `registered_model_version` alone cannot register
    a model that failed, or never ran, its check.
    """
    check_key = accuracy_threshold.check_key
    record = instance.event_log_storage.get_latest_asset_check_execution_by_key([check_key]).get(
        check_key
    )
    latest = instance.fetch_materializations(trained_model.key, limit=1).records
    evaluation = (
        record.event.dagster_event.event_specific_data
        if record and record.event and record.event.dagster_event
        else None
    )
    target = getattr(evaluation, "target_materialization_data", None)
    if not latest or evaluation is None or not hasattr(evaluation, "passed"):
        raise RegistrationGateError(
            "trained_model has no accuracy_threshold result; materialize trained_model with "
            "its check before registering"
        )
    if target is None or target.storage_id != latest[0].storage_id:
        raise RegistrationGateError(
            "the latest trained_model has not been checked by accuracy_threshold; "
            "materialize trained_model with its check before registering"
        )
    if not evaluation.passed:
        raise RegistrationGateError(
            f"trained_model failed accuracy_threshold in run {record.run_id}: "
            f"{evaluation.description}; it will not be registered"
        )
    return {key: value.value for key, value in evaluation.metadata.items()}


def _data_version(instance: dg.DagsterInstance) -> str:
    event = instance.get_latest_materialization_event(raw_penguins.key)
    if event is None or event.asset_materialization is None:
        return "unknown"
    return event.asset_materialization.tags.get("dagster/data_version", "unknown")


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
    from penguins_platform.ml import packaging, schema

    gate = require_passed_gate(context.instance)
    data_version = _data_version(context.instance)
    name = mlflow.registered_model_name
    tags = {
        "dagster_run_id": context.run.run_id,
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
            "mlflow_run": metadata.link(mlflow.run_url(run_id), run_id),
            "mlflow_model_version": metadata.link(mlflow.model_version_url(version), model_uri),
            "tags": dg.MetadataValue.json(tags),
        },
    )
